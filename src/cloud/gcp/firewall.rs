//! The workstation's firewall rules: INGRESS, TCP on `ports`, from
//! `allowed_cidrs`, to instances with the network tag `aienv-{name}`.
//!
//! One GCE rule cannot mix IPv4 and IPv6 source ranges, so IPv6 ranges get a
//! second rule `aienv-{name}-v6`. A rule with no source ranges would default to
//! 0.0.0.0/0 and one with no ports would open every TCP port, so when either
//! list is empty there is no rule at all (no ingress).
//!
//! `firewall_id` is the IPv4 rule's path `projects/P/global/firewalls/aienv-{name}`
//! (the IPv6 rule's when there are only IPv6 ranges); both rules are found by name.

use std::collections::BTreeSet;

use google_cloud_compute_v1::model::{firewall, Firewall};
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::client::{request_id, Gce};
use super::errors::ErrorContext;
use super::network::{firewall_path, parse_global};
use crate::cloud::{CloudError, ErrorKind};

/// Marks rules this provider made (firewall rules have no labels).
pub(crate) const DESCRIPTION_MARK: &str = "managed by aienv";

/// Network tag (and rule name) of a workstation.
pub(crate) fn tag(workstation: &str) -> String {
    format!("aienv-{workstation}")
}

/// The rule names of a workstation: IPv4 rule, IPv6 rule.
pub(crate) fn rule_names(workstation: &str) -> [String; 2] {
    [tag(workstation), format!("{}-v6", tag(workstation))]
}

/// Both rule names from one of them (a `firewall_id` kept in state).
pub(crate) fn rule_names_from_id(firewall_id: &str) -> Option<(String, [String; 2])> {
    let (project, name) = parse_global(firewall_id, "firewalls")?;
    let base = name.strip_suffix("-v6").unwrap_or(name);
    Some((project.to_owned(), [base.to_owned(), format!("{base}-v6")]))
}

fn description(workstation: &str) -> String {
    format!("aienv workstation {workstation}: SSH/Jupyter/TensorBoard ingress, {DESCRIPTION_MARK}")
}

pub(crate) fn is_ours(rule: &Firewall) -> bool {
    rule.description
        .as_deref()
        .is_some_and(|d| d.contains(DESCRIPTION_MARK))
}

/// The rules a spec asks for (0, 1 or 2): name, sources, ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub source_ranges: Vec<String>,
    pub ports: Vec<String>,
}

/// IPv4 rule first, IPv6 rule second; none for a family without ranges, and
/// none at all without ports.
pub(crate) fn desired_rules(workstation: &str, ports: &[u16], cidrs: &[IpNet]) -> Vec<RuleSpec> {
    let ports: BTreeSet<u16> = ports.iter().copied().collect();
    if ports.is_empty() {
        return Vec::new();
    }
    let port_strings: Vec<String> = ports.iter().map(u16::to_string).collect();
    let v4: BTreeSet<String> = cidrs
        .iter()
        .filter(|c| matches!(c, IpNet::V4(_)))
        .map(|c| c.trunc().to_string())
        .collect();
    let v6: BTreeSet<String> = cidrs
        .iter()
        .filter(|c| matches!(c, IpNet::V6(_)))
        .map(|c| c.trunc().to_string())
        .collect();
    let [v4_name, v6_name] = rule_names(workstation);
    let mut out = Vec::new();
    for (name, ranges) in [(v4_name, v4), (v6_name, v6)] {
        if !ranges.is_empty() {
            out.push(RuleSpec {
                name,
                source_ranges: ranges.into_iter().collect(),
                ports: port_strings.clone(),
            });
        }
    }
    out
}

/// The full rule body for an insert.
pub(crate) fn rule_body(workstation: &str, network: &str, rule: &RuleSpec) -> Firewall {
    let mut allowed = firewall::Allowed::new();
    allowed.ip_protocol = Some("tcp".to_owned());
    allowed.ports = rule.ports.clone();
    let mut fw = Firewall::new();
    fw.name = Some(rule.name.clone());
    fw.description = Some(description(workstation));
    fw.network = Some(network.to_owned());
    fw.direction = Some(firewall::Direction::from("INGRESS"));
    fw.priority = Some(1000);
    fw.allowed = vec![allowed];
    fw.source_ranges = rule.source_ranges.clone();
    fw.target_tags = vec![tag(workstation)];
    fw
}

/// What one found rule allows: its TCP single ports and its source ranges.
fn allows(rule: &Firewall) -> (BTreeSet<u16>, BTreeSet<IpNet>) {
    let ports = rule
        .allowed
        .iter()
        .filter(|a| {
            a.ip_protocol
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
                == Some("tcp")
        })
        .flat_map(|a| a.ports.iter())
        // Ranges ("8000-8010") are not ours: left out, they show as drift.
        .filter_map(|p| p.parse::<u16>().ok())
        .collect();
    let cidrs = rule
        .source_ranges
        .iter()
        .filter_map(|c| {
            c.parse::<IpNet>()
                .ok()
                .or_else(|| c.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        })
        .map(|n| n.trunc())
        .collect();
    (ports, cidrs)
}

/// (ports, cidrs) from the rules found. When the two rules allow different
/// ports, only the ports both allow are reported, so the plan shows a diff and
/// the update's sync repairs them.
pub(crate) fn summarize(rules: &[&Firewall]) -> (Vec<u16>, Vec<IpNet>) {
    let mut ports: Option<BTreeSet<u16>> = None;
    let mut cidrs: BTreeSet<IpNet> = BTreeSet::new();
    for r in rules {
        let (p, c) = allows(r);
        ports = Some(match ports {
            None => p,
            Some(prev) => prev.intersection(&p).copied().collect(),
        });
        cidrs.extend(c);
    }
    (
        ports.unwrap_or_default().into_iter().collect(),
        cidrs.into_iter().collect(),
    )
}

/// Whether a found rule already is what `want` describes.
fn matches(found: &Firewall, want: &RuleSpec) -> bool {
    let (ports, cidrs) = allows(found);
    let want_ports: BTreeSet<u16> = want.ports.iter().filter_map(|p| p.parse().ok()).collect();
    let want_cidrs: BTreeSet<IpNet> = want
        .source_ranges
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .collect();
    ports == want_ports && cidrs == want_cidrs && found.allowed.len() == 1
}

/// Get a rule by name; None when it does not exist.
pub(crate) async fn get(
    gce: &Gce,
    project: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Option<Firewall>, CloudError> {
    match gce
        .call("firewalls.get", &ErrorContext::none(), cancel, || {
            gce.firewalls
                .get()
                .set_project(project)
                .set_firewall(name)
                .send()
        })
        .await
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Both rules of a workstation, as found (IPv4, IPv6). Rules without our mark
/// are not ours and count as absent.
pub(crate) async fn find(
    gce: &Gce,
    project: &str,
    workstation: &str,
    cancel: &CancellationToken,
) -> Result<[Option<Firewall>; 2], CloudError> {
    let [v4, v6] = rule_names(workstation);
    let v4 = get(gce, project, &v4, cancel).await?.filter(is_ours);
    let v6 = get(gce, project, &v6, cancel).await?.filter(is_ours);
    Ok([v4, v6])
}

/// The `firewall_id` to report for the rules found.
pub(crate) fn id_of(project: &str, found: &[Option<Firewall>; 2]) -> Option<String> {
    found
        .iter()
        .flatten()
        .next()
        .and_then(|f| f.name.as_deref())
        .map(|n| firewall_path(project, n))
}

/// Insert one rule and wait for it.
pub(crate) async fn insert(
    gce: &Gce,
    project: &str,
    body: &Firewall,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    gce.mutate("firewalls.insert", &ErrorContext::none(), cancel, || {
        gce.firewalls
            .insert()
            .set_project(project)
            .set_request_id(&rid)
            .set_body(body.clone())
            .send()
    })
    .await
    .map(|_| ())
}

/// Delete a rule by name and wait. A rule already gone is fine.
pub(crate) async fn delete(
    gce: &Gce,
    project: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    match gce
        .mutate("firewalls.delete", &ErrorContext::none(), cancel, || {
            gce.firewalls
                .delete()
                .set_project(project)
                .set_firewall(name)
                .set_request_id(&rid)
                .send()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete both rules of a workstation if they are ours.
pub(crate) async fn delete_all(
    gce: &Gce,
    project: &str,
    names: &[String; 2],
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let mut first_error = None;
    for name in names {
        let result = match get(gce, project, name, cancel).await {
            Ok(Some(rule)) if is_ours(&rule) => delete(gce, project, name, cancel).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Make the rules match the spec: patch the ones that differ, insert the
/// missing ones, delete the ones no longer wanted (a rule cannot be patched to
/// empty sources: that would mean 0.0.0.0/0). `network` is where new rules go.
pub(crate) async fn sync(
    gce: &Gce,
    project: &str,
    workstation: &str,
    network: &str,
    ports: &[u16],
    cidrs: &[IpNet],
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let desired = desired_rules(workstation, ports, cidrs);
    let found = find(gce, project, workstation, cancel).await?;
    for (name, existing) in rule_names(workstation).iter().zip(found.iter()) {
        let want = desired.iter().find(|r| &r.name == name);
        match (existing, want) {
            (Some(f), Some(w)) if matches(f, w) => {}
            (Some(f), Some(w)) => {
                // Patch only what we manage; GCE merges the rest.
                let mut allowed = firewall::Allowed::new();
                allowed.ip_protocol = Some("tcp".to_owned());
                allowed.ports = w.ports.clone();
                let mut body = Firewall::new();
                body.allowed = vec![allowed];
                body.source_ranges = w.source_ranges.clone();
                let rid = request_id();
                let rule_name = f.name.clone().unwrap_or_else(|| name.clone());
                gce.mutate("firewalls.patch", &ErrorContext::none(), cancel, || {
                    gce.firewalls
                        .patch()
                        .set_project(project)
                        .set_firewall(&rule_name)
                        .set_request_id(&rid)
                        .set_body(body.clone())
                        .send()
                })
                .await?;
            }
            (Some(_), None) => delete(gce, project, name, cancel).await?,
            (None, Some(w)) => {
                // A rule of this name that is not ours blocks the insert; say so
                // rather than fail with a bare alreadyExists.
                if let Some(other) = get(gce, project, name, cancel).await? {
                    return Err(CloudError::new(
                        ErrorKind::Conflict,
                        "firewalls.insert",
                        format!(
                            "a firewall rule named {} already exists and was not made by aienv",
                            other.name.as_deref().unwrap_or(name)
                        ),
                    ));
                }
                insert(gce, project, &rule_body(workstation, network, w), cancel).await?;
            }
            (None, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().filter_map(|c| c.parse().ok()).collect()
    }

    #[test]
    fn no_cidrs_or_no_ports_means_no_rule() {
        assert!(desired_rules("box", &[22, 8888], &[]).is_empty());
        assert!(desired_rules("box", &[], &nets(&["10.0.0.0/8"])).is_empty());
    }

    #[test]
    fn ipv4_and_ipv6_get_separate_rules() {
        let rules = desired_rules(
            "box",
            &[8888, 22, 22],
            &nets(&["10.1.2.3/8", "2001:db8::1/32", "192.168.1.0/24"]),
        );
        assert_eq!(
            rules,
            vec![
                RuleSpec {
                    name: "aienv-box".into(),
                    source_ranges: vec!["10.0.0.0/8".into(), "192.168.1.0/24".into()],
                    ports: vec!["22".into(), "8888".into()],
                },
                RuleSpec {
                    name: "aienv-box-v6".into(),
                    source_ranges: vec!["2001:db8::/32".into()],
                    ports: vec!["22".into(), "8888".into()],
                },
            ]
        );
        let only_v6 = desired_rules("box", &[22], &nets(&["2001:db8::/32"]));
        assert_eq!(
            only_v6.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["aienv-box-v6"]
        );
    }

    #[test]
    fn rule_body_targets_the_tag_and_is_marked() {
        let rules = desired_rules("box", &[22], &nets(&["10.0.0.0/8"]));
        let body = rule_body("box", "projects/p/global/networks/default", &rules[0]);
        assert_eq!(body.target_tags, vec!["aienv-box".to_string()]);
        assert_eq!(
            body.direction.as_ref().and_then(|d| d.name()),
            Some("INGRESS")
        );
        assert_eq!(body.source_ranges, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(body.allowed.len(), 1);
        assert_eq!(body.allowed[0].ip_protocol.as_deref(), Some("tcp"));
        assert!(is_ours(&body));
        assert!(matches(&body, &rules[0]));
        let (ports, cidrs) = summarize(&[&body]);
        assert_eq!(ports, vec![22]);
        assert_eq!(cidrs, nets(&["10.0.0.0/8"]));
    }

    #[test]
    fn summary_intersects_ports_and_unions_ranges() {
        let v4 = rule_body(
            "box",
            "n",
            &desired_rules("box", &[22, 8888], &nets(&["10.0.0.0/8"]))[0],
        );
        let v6 = rule_body(
            "box",
            "n",
            &desired_rules("box", &[22], &nets(&["2001:db8::/32"]))[0],
        );
        let (ports, cidrs) = summarize(&[&v4, &v6]);
        assert_eq!(ports, vec![22]);
        assert_eq!(cidrs, nets(&["10.0.0.0/8", "2001:db8::/32"]));
        assert_eq!(summarize(&[]), (vec![], vec![]));
    }

    #[test]
    fn names_from_an_id() {
        let want = Some((
            "p".to_string(),
            ["aienv-box".to_string(), "aienv-box-v6".to_string()],
        ));
        assert_eq!(
            rule_names_from_id("projects/p/global/firewalls/aienv-box"),
            want
        );
        assert_eq!(
            rule_names_from_id("projects/p/global/firewalls/aienv-box-v6"),
            want
        );
        assert_eq!(rule_names_from_id("aienv-box"), None);
    }
}
