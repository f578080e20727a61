//! The workstation's security group: created per workstation, ingress = every
//! port × every CIDR over TCP, egress left at EC2's default allow-all.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, Tag, TagSpecification,
};
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use super::errors::ErrorContext;
use crate::cloud::retry::RetryPolicy;
use crate::cloud::{CloudError, ErrorKind};

/// One ingress rule we manage: TCP on one port from one CIDR.
pub(crate) type Rule = (u16, IpNet);

/// The rules a spec asks for. CIDRs are normalised (host bits cleared), the way
/// EC2 stores them, so desired and observed compare equal.
pub(crate) fn desired_rules(ports: &[u16], cidrs: &[IpNet]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for &p in ports {
        for c in cidrs {
            out.insert((p, c.trunc()));
        }
    }
    out
}

/// Marks the ingress ranges this provider manages. Other rules on the group
/// (e.g. an `aws_vpc_security_group_ingress_rule` pointing at `firewall_id`) are
/// left alone: neither reported as drift nor revoked.
pub(crate) const RULE_DESCRIPTION: &str = "managed by aienv";

fn ours(description: Option<&str>) -> bool {
    description == Some(RULE_DESCRIPTION)
}

/// Our rules as found on a group: single-port TCP ranges carrying our marker.
pub(crate) fn rules_of(group: &SecurityGroup) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for perm in group.ip_permissions() {
        let single_tcp_port = perm.ip_protocol() == Some("tcp")
            && perm.from_port().is_some()
            && perm.from_port() == perm.to_port();
        let Some(port) = perm
            .from_port()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|_| single_tcp_port)
        else {
            continue;
        };
        let v4 = perm
            .ip_ranges()
            .iter()
            .filter(|r| ours(r.description()))
            .filter_map(|r| r.cidr_ip());
        let v6 = perm
            .ipv6_ranges()
            .iter()
            .filter(|r| ours(r.description()))
            .filter_map(|r| r.cidr_ipv6());
        for net in v4.chain(v6).filter_map(|c| c.parse::<IpNet>().ok()) {
            rules.insert((port, net));
        }
    }
    rules
}

/// Express a rule set as (ports, cidrs) for the observation.
///
/// When the rules are exactly ports × cidrs this is lossless. When they are not
/// (someone added or removed single rules), report only the ports that have every
/// CIDR and only the CIDRs present on every port: the result is then smaller than
/// the real union, so a plan shows a diff and the update's sync repairs the rules.
pub(crate) fn summarize(rules: &BTreeSet<Rule>) -> (Vec<u16>, Vec<IpNet>) {
    let mut by_port: BTreeMap<u16, BTreeSet<IpNet>> = BTreeMap::new();
    for (p, c) in rules {
        by_port.entry(*p).or_default().insert(*c);
    }
    let all_cidrs: BTreeSet<IpNet> = rules.iter().map(|(_, c)| *c).collect();
    let ports: Vec<u16> = by_port
        .iter()
        .filter(|(_, cs)| **cs == all_cidrs)
        .map(|(p, _)| *p)
        .collect();
    let cidrs: Vec<IpNet> = all_cidrs
        .iter()
        .filter(|c| by_port.values().all(|cs| cs.contains(c)))
        .copied()
        .collect();
    (ports, cidrs)
}

/// What to revoke and what to authorize to go from `actual` to `desired`.
pub(crate) fn diff(
    actual: &BTreeSet<Rule>,
    desired: &BTreeSet<Rule>,
) -> (BTreeSet<Rule>, BTreeSet<Rule>) {
    let revoke = actual.difference(desired).copied().collect();
    let add = desired.difference(actual).copied().collect();
    (revoke, add)
}

/// One permission per port carrying all of that port's CIDRs (IPv4 in IpRanges,
/// IPv6 in Ipv6Ranges), so a whole rule set is one API call.
pub(crate) fn permissions(rules: &BTreeSet<Rule>) -> Vec<IpPermission> {
    let mut by_port: BTreeMap<u16, Vec<IpNet>> = BTreeMap::new();
    for (p, c) in rules {
        by_port.entry(*p).or_default().push(*c);
    }
    by_port
        .into_iter()
        .map(|(port, cidrs)| {
            let mut b = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(port))
                .to_port(i32::from(port));
            for c in cidrs {
                b = match c {
                    IpNet::V4(_) => b.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(c.to_string())
                            .description(RULE_DESCRIPTION)
                            .build(),
                    ),
                    IpNet::V6(_) => b.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(c.to_string())
                            .description(RULE_DESCRIPTION)
                            .build(),
                    ),
                };
            }
            b.build()
        })
        .collect()
}

/// Security group description: EC2 allows only a restricted ASCII set.
fn description(name: &str) -> String {
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(*c))
        .collect();
    let mut d = format!("aienv workstation {safe}: ingress from allowed_cidrs on ports");
    d.truncate(255);
    d
}

/// Create the group with its tags, then authorize `rules` in one call. Returns the
/// group id. If authorizing fails the group is left for the caller's undo.
pub(crate) async fn create(
    ec2: &Ec2,
    group_name: &str,
    workstation_name: &str,
    vpc_id: &str,
    tags: Vec<Tag>,
    cancel: &CancellationToken,
) -> Result<String, CloudError> {
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::SecurityGroup)
        .set_tags(Some(tags))
        .build();
    let desc = description(workstation_name);
    let out = ec2
        .call("CreateSecurityGroup", cancel, || {
            ec2.sdk()
                .create_security_group()
                .group_name(group_name)
                .description(&desc)
                .vpc_id(vpc_id)
                .tag_specifications(spec.clone())
                .send()
        })
        .await?;
    out.group_id().map(str::to_owned).ok_or_else(|| {
        CloudError::new(
            ErrorKind::Unexpected,
            "CreateSecurityGroup",
            format!("EC2 created group {group_name} but returned no id"),
        )
    })
}

/// Authorize `rules` (one call for all of them).
pub(crate) async fn authorize(
    ec2: &Ec2,
    group_id: &str,
    rules: &BTreeSet<Rule>,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    if rules.is_empty() {
        return Ok(());
    }
    let perms = permissions(rules);
    ec2.call("AuthorizeSecurityGroupIngress", cancel, || {
        ec2.sdk()
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(perms.clone()))
            .send()
    })
    .await?;
    Ok(())
}

/// Describe the given groups in one call. Groups that do not exist are simply
/// absent from the result: EC2 fails the whole call for one missing id and names
/// it in the message, so the call is repeated without the ids it names.
pub(crate) async fn describe(
    ec2: &Ec2,
    group_ids: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<SecurityGroup>, CloudError> {
    let mut ids: Vec<String> = group_ids.to_vec();
    ids.sort();
    ids.dedup();
    // Each round drops at least one id, so this ends.
    while !ids.is_empty() {
        let result = ec2
            .call("DescribeSecurityGroups", cancel, || {
                ec2.sdk()
                    .describe_security_groups()
                    .set_group_ids(Some(ids.clone()))
                    .send()
            })
            .await;
        match result {
            Ok(out) => return Ok(out.security_groups().to_vec()),
            Err(e) if e.is_not_found() => {
                let before = ids.len();
                ids.retain(|id| !e.message.contains(id.as_str()));
                if ids.len() == before {
                    // EC2 names the missing group in the message; if it did not,
                    // we cannot tell which one is gone.
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Vec::new())
}

/// Make our ingress rules exactly `desired`: one revoke call for what is extra,
/// one authorize call for what is missing. Rules without our marker stay.
pub(crate) async fn sync(
    ec2: &Ec2,
    group: &SecurityGroup,
    desired: &BTreeSet<Rule>,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let group_id = group.group_id().unwrap_or_default();
    let actual = rules_of(group);
    let (revoke, add) = diff(&actual, desired);
    if !revoke.is_empty() {
        let perms = permissions(&revoke);
        ec2.call("RevokeSecurityGroupIngress", cancel, || {
            ec2.sdk()
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(perms.clone()))
                .send()
        })
        .await?;
    }
    authorize(ec2, group_id, &add, cancel).await
}

/// Delete a group; a group already gone is fine. `DependencyViolation` (the group
/// is still referenced by an ENI of a terminating instance) clears by itself, so it
/// is retried for up to about two minutes.
pub(crate) async fn delete(
    ec2: &Ec2,
    group_id: &str,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let policy = RetryPolicy {
        max_attempts: 12,
        base_delay: std::time::Duration::from_secs(2),
        max_delay: std::time::Duration::from_secs(20),
    };
    let result = ec2
        .call_with(
            "DeleteSecurityGroup",
            &ErrorContext::region(ec2.region()),
            &policy,
            cancel,
            || ec2.sdk().delete_security_group().group_id(group_id).send(),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse()
            .unwrap_or_else(|e| panic!("bad test cidr {s}: {e}"))
    }

    #[test]
    fn desired_is_the_cartesian_product_normalised() {
        let r = desired_rules(&[22, 8888], &[net("10.1.2.3/8"), net("2001:db8::1/32")]);
        assert_eq!(r.len(), 4);
        assert!(r.contains(&(22, net("10.0.0.0/8"))));
        assert!(r.contains(&(8888, net("2001:db8::/32"))));
    }

    #[test]
    fn permissions_group_by_port_and_family() {
        let r = desired_rules(
            &[22, 8888],
            &[net("10.0.0.0/8"), net("1.2.3.4/32"), net("2001:db8::/32")],
        );
        let perms = permissions(&r);
        assert_eq!(perms.len(), 2);
        for p in &perms {
            assert_eq!(p.ip_protocol(), Some("tcp"));
            assert_eq!(p.from_port(), p.to_port());
            assert_eq!(p.ip_ranges().len(), 2);
            assert_eq!(p.ipv6_ranges().len(), 1);
        }
    }

    #[test]
    fn rules_round_trip_through_a_group() {
        let r = desired_rules(&[22, 443], &[net("10.0.0.0/8"), net("2001:db8::/32")]);
        let group = SecurityGroup::builder()
            .group_id("sg-1")
            .set_ip_permissions(Some(permissions(&r)))
            .build();
        let back = rules_of(&group);
        assert_eq!(back, r);
        assert_eq!(
            summarize(&back),
            (vec![22, 443], vec![net("10.0.0.0/8"), net("2001:db8::/32")])
        );
    }

    #[test]
    fn rules_without_our_marker_are_not_ours() {
        let all_traffic = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let range = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(1000)
            .to_port(2000)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        // Someone else's single-port rule (e.g. from hashicorp/aws) on our group.
        let theirs = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(5432)
            .to_port(5432)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("10.0.0.0/8")
                    .description("db")
                    .build(),
            )
            .build();
        let group = SecurityGroup::builder()
            .set_ip_permissions(Some(vec![all_traffic, range, theirs]))
            .build();
        assert!(rules_of(&group).is_empty());
    }

    #[test]
    fn diff_revokes_extra_and_adds_missing() {
        let actual = desired_rules(&[22, 80], &[net("10.0.0.0/8")]);
        let desired = desired_rules(&[22, 443], &[net("10.0.0.0/8")]);
        let (revoke, add) = diff(&actual, &desired);
        assert_eq!(
            revoke.into_iter().collect::<Vec<_>>(),
            vec![(80, net("10.0.0.0/8"))]
        );
        assert_eq!(
            add.into_iter().collect::<Vec<_>>(),
            vec![(443, net("10.0.0.0/8"))]
        );
        let (revoke, add) = diff(&desired, &desired);
        assert!(revoke.is_empty() && add.is_empty());
    }

    #[test]
    fn summarize_shrinks_when_rules_are_not_a_product() {
        let a = net("10.0.0.0/8");
        let b = net("192.168.0.0/16");
        let c = net("2001:db8::/32");
        // One rule removed by hand: 22 lost `a`.
        let rules: BTreeSet<Rule> = [(22, b), (8888, a), (8888, b)].into_iter().collect();
        assert_eq!(summarize(&rules), (vec![8888], vec![b]));
        // One port added by hand with only `a`.
        let rules: BTreeSet<Rule> = [(22, a), (22, b), (8888, a), (8888, b), (443, a)]
            .into_iter()
            .collect();
        assert_eq!(summarize(&rules), (vec![22, 8888], vec![a]));
        // One CIDR added by hand on one port.
        let rules: BTreeSet<Rule> = [(22, a), (22, b), (22, c), (8888, a), (8888, b)]
            .into_iter()
            .collect();
        assert_eq!(summarize(&rules), (vec![22], vec![a, b]));
        assert_eq!(summarize(&BTreeSet::new()), (vec![], vec![]));
    }

    #[test]
    fn description_is_ascii_and_bounded() {
        let d = description("gpu-box_1 ✓");
        assert!(d.is_ascii());
        assert!(d.contains("gpu-box_1"));
        assert!(description(&"x".repeat(400)).len() <= 255);
    }
}
