//! Where a workstation goes (zone, network, subnetwork) and the resource-path
//! helpers every part of the backend uses.
//!
//! Compute Engine names resources by URL (`selfLink`, e.g.
//! `https://www.googleapis.com/compute/v1/projects/P/zones/Z/instances/N`) and
//! accepts partial paths (`projects/P/zones/Z/instances/N`) in requests. We keep
//! the relative path everywhere, so values compare equal whatever host an API
//! (or an emulator) put in front.

use tokio_util::sync::CancellationToken;

use super::client::Gce;
use super::errors::ErrorContext;
use crate::cloud::{CloudError, ErrorKind};
use crate::spec::WorkstationSpec;

/// The last path segment: the name in a URL or path.
pub(crate) fn last_segment(link: &str) -> &str {
    link.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(link)
}

/// The path from `projects/` on, e.g. `projects/P/global/images/N` for any
/// selfLink; the input unchanged when it has no `projects/` segment.
pub(crate) fn relative(link: &str) -> &str {
    let link = link.trim();
    if link.starts_with("projects/") {
        return link;
    }
    match link.find("/projects/") {
        Some(i) => &link[i + 1..],
        None => link,
    }
}

/// `us-central1-a` → `us-central1`.
pub(crate) fn region_of_zone(zone: &str) -> &str {
    match zone.rsplit_once('-') {
        Some((region, suffix)) if !region.is_empty() && !suffix.is_empty() => region,
        _ => zone,
    }
}

pub(crate) fn instance_path(project: &str, zone: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/instances/{name}")
}

pub(crate) fn disk_path(project: &str, zone: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/disks/{name}")
}

pub(crate) fn firewall_path(project: &str, name: &str) -> String {
    format!("projects/{project}/global/firewalls/{name}")
}

/// Parse `projects/P/{scope}/S/{collection}/N` (or any URL ending so) into
/// (P, S, N) — `scope` is `zones` or `regions`.
pub(crate) fn parse_scoped<'a>(
    link: &'a str,
    scope: &str,
    collection: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    let parts: Vec<&str> = relative(link).trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["projects", p, s, loc, c, n]
            if *s == scope && *c == collection && ![p, loc, n].iter().any(|x| x.is_empty()) =>
        {
            Some((p, loc, n))
        }
        _ => None,
    }
}

/// Parse `projects/P/global/{collection}/N` into (P, N).
pub(crate) fn parse_global<'a>(link: &'a str, collection: &str) -> Option<(&'a str, &'a str)> {
    let parts: Vec<&str> = relative(link).trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["projects", p, "global", c, n] if *c == collection && !p.is_empty() && !n.is_empty() => {
            Some((p, n))
        }
        _ => None,
    }
}

/// A subnetwork reference from `subnet_id`: a selfLink
/// (`https://www.googleapis.com/compute/v1/projects/P/regions/R/subnetworks/S`)
/// or the path hashicorp/google uses as id (`projects/P/regions/R/subnetworks/S`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubnetRef {
    pub project: String,
    pub region: String,
    pub name: String,
}

impl SubnetRef {
    pub(crate) fn parse(subnet_id: &str) -> Result<SubnetRef, CloudError> {
        parse_scoped(subnet_id, "regions", "subnetworks")
            .map(|(p, r, n)| SubnetRef {
                project: p.to_owned(),
                region: r.to_owned(),
                name: n.to_owned(),
            })
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::InvalidInput,
                    "parse subnet_id",
                    format!(
                        "subnet_id {subnet_id:?} is not a Compute Engine subnetwork: expected \
projects/PROJECT/regions/REGION/subnetworks/NAME or its https://www.googleapis.com/compute/v1/... \
self-link"
                    ),
                )
            })
    }

    pub(crate) fn path(&self) -> String {
        format!(
            "projects/{}/regions/{}/subnetworks/{}",
            self.project, self.region, self.name
        )
    }
}

/// Two spellings of the same subnetwork compare equal.
pub(crate) fn same_subnet(a: &str, b: &str) -> bool {
    match (SubnetRef::parse(a), SubnetRef::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The chosen zone and network for a workstation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub zone: String,
    /// `projects/P/global/networks/N`: where the firewall rules go.
    pub network: String,
    /// `projects/P/regions/R/subnetworks/S`, when `subnet_id` was given.
    pub subnetwork: Option<String>,
}

/// What a zone must offer: the machine type and, for N1 shapes, the
/// separately attached accelerator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs<'a> {
    pub machine_type: &'a str,
    pub accelerator_type: Option<&'a str>,
}

/// Choose zone and network. Zone: `spec.zone`, else the provider zone when it is
/// in the region and offers the shape, else the first zone of the region (by
/// name) that offers it.
pub(crate) async fn choose(
    gce: &Gce,
    spec: &WorkstationSpec,
    provider_zone: Option<&str>,
    cancel: &CancellationToken,
) -> Result<Placement, CloudError> {
    let needs = Needs {
        machine_type: &spec.instance_type,
        accelerator_type: spec.accelerator_type.as_deref(),
    };
    let (network, subnetwork) = match spec.subnet_id.as_deref().filter(|s| !s.is_empty()) {
        Some(subnet_id) => {
            let subnet = SubnetRef::parse(subnet_id)?;
            if subnet.region != spec.region {
                return Err(CloudError::new(
                    ErrorKind::InvalidInput,
                    "subnetworks.get",
                    format!(
                        "subnet_id {subnet_id} is in region {}, but the workstation is in {}",
                        subnet.region, spec.region
                    ),
                ));
            }
            let found = gce
                .call("subnetworks.get", &ErrorContext::none(), cancel, || {
                    gce.subnetworks
                        .get()
                        .set_project(&subnet.project)
                        .set_region(&subnet.region)
                        .set_subnetwork(&subnet.name)
                        .send()
                })
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        CloudError::new(
                            ErrorKind::InvalidInput,
                            "subnetworks.get",
                            format!("subnetwork {} does not exist", subnet.path()),
                        )
                    } else {
                        e
                    }
                })?;
            let network = found
                .network
                .as_deref()
                .map(|n| relative(n).to_owned())
                .ok_or_else(|| {
                    CloudError::new(
                        ErrorKind::Unexpected,
                        "subnetworks.get",
                        format!("subnetwork {} has no network", subnet.path()),
                    )
                })?;
            (network, Some(subnet.path()))
        }
        None => (
            format!("projects/{}/global/networks/default", gce.project()),
            None,
        ),
    };

    let zone = if let Some(zone) = spec.zone.as_deref().filter(|z| !z.is_empty()) {
        if region_of_zone(zone) != spec.region {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "choose zone",
                format!("zone {zone} is not in region {}", spec.region),
            ));
        }
        if let Some(missing) = missing_in(gce, zone, needs, cancel).await? {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "choose zone",
                format!("{missing} is not offered in zone {zone}"),
            ));
        }
        zone.to_owned()
    } else {
        let mut chosen = None;
        if let Some(zone) = provider_zone {
            if missing_in(gce, zone, needs, cancel).await?.is_none() {
                chosen = Some(zone.to_owned());
            }
        }
        match chosen {
            Some(z) => z,
            None => first_offering_zone(gce, &spec.region, needs, cancel).await?,
        }
    };
    Ok(Placement {
        zone,
        network,
        subnetwork,
    })
}

/// What `zone` lacks of `needs` (the machine type or the accelerator), if
/// anything. One `machineTypes.get` (and one `acceleratorTypes.get` for N1).
async fn missing_in(
    gce: &Gce,
    zone: &str,
    needs: Needs<'_>,
    cancel: &CancellationToken,
) -> Result<Option<String>, CloudError> {
    let ctx = ErrorContext::zone(zone);
    let found = gce
        .call("machineTypes.get", &ctx, cancel, || {
            gce.machine_types
                .get()
                .set_project(gce.project())
                .set_zone(zone)
                .set_machine_type(needs.machine_type)
                .send()
        })
        .await;
    match found {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(Some(needs.machine_type.to_owned())),
        Err(e) => return Err(e),
    }
    let Some(accelerator) = needs.accelerator_type else {
        return Ok(None);
    };
    let found = gce
        .call("acceleratorTypes.get", &ctx, cancel, || {
            gce.accelerator_types
                .get()
                .set_project(gce.project())
                .set_zone(zone)
                .set_accelerator_type(accelerator)
                .send()
        })
        .await;
    match found {
        Ok(_) => Ok(None),
        Err(e) if e.is_not_found() => Ok(Some(format!(
            "{} with accelerator {accelerator}",
            needs.machine_type
        ))),
        Err(e) => Err(e),
    }
}

/// The region's zones (`zones.list`, all pages), sorted by name, without zones
/// that are DOWN.
async fn zones_of(
    gce: &Gce,
    region: &str,
    cancel: &CancellationToken,
) -> Result<Vec<String>, CloudError> {
    let mut zones = Vec::new();
    let mut token: Option<String> = None;
    // A project sees ~130 zones; bounded in case a server keeps paging.
    for _ in 0..50 {
        let page = gce
            .call("zones.list", &ErrorContext::none(), cancel, || {
                let mut req = gce.zones.list().set_project(gce.project());
                if let Some(t) = &token {
                    req = req.set_page_token(t);
                }
                req.send()
            })
            .await?;
        for z in &page.items {
            let Some(name) = z.name.as_deref() else {
                continue;
            };
            let in_region = match z.region.as_deref() {
                Some(r) => last_segment(r) == region,
                None => region_of_zone(name) == region,
            };
            let down = z.status.as_ref().and_then(|s| s.name()) == Some("DOWN");
            if in_region && !down {
                zones.push(name.to_owned());
            }
        }
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    zones.sort();
    zones.dedup();
    Ok(zones)
}

async fn first_offering_zone(
    gce: &Gce,
    region: &str,
    needs: Needs<'_>,
    cancel: &CancellationToken,
) -> Result<String, CloudError> {
    let zones = zones_of(gce, region, cancel).await?;
    if zones.is_empty() {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "zones.list",
            format!("region {region} has no zones in project {}", gce.project()),
        ));
    }
    for zone in &zones {
        if missing_in(gce, zone, needs, cancel).await?.is_none() {
            return Ok(zone.clone());
        }
    }
    let what = match needs.accelerator_type {
        Some(a) => format!("{} with accelerator {a}", needs.machine_type),
        None => needs.machine_type.to_owned(),
    };
    Err(CloudError::new(
        ErrorKind::InvalidInput,
        "choose zone",
        format!(
            "{what} is not offered in any zone of {region} ({}): pick another region or GPU",
            zones.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_links() {
        let url =
            "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/box";
        assert_eq!(
            relative(url),
            "projects/p/zones/us-central1-a/instances/box"
        );
        assert_eq!(
            relative("projects/p/global/images/x"),
            "projects/p/global/images/x"
        );
        assert_eq!(last_segment(url), "box");
        assert_eq!(last_segment("n1-standard-8"), "n1-standard-8");
        assert_eq!(
            parse_scoped(url, "zones", "instances"),
            Some(("p", "us-central1-a", "box"))
        );
        assert_eq!(parse_scoped(url, "zones", "disks"), None);
        assert_eq!(
            parse_global("projects/p/global/firewalls/aienv-box", "firewalls"),
            Some(("p", "aienv-box"))
        );
    }

    #[test]
    fn zone_to_region() {
        assert_eq!(region_of_zone("us-central1-a"), "us-central1");
        assert_eq!(region_of_zone("europe-west4-b"), "europe-west4");
        assert_eq!(region_of_zone("nozone"), "nozone");
    }

    #[test]
    fn subnet_ids_in_both_spellings() {
        let want = SubnetRef {
            project: "p".into(),
            region: "us-central1".into(),
            name: "ml".into(),
        };
        for s in [
            "projects/p/regions/us-central1/subnetworks/ml",
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/subnetworks/ml",
        ] {
            assert_eq!(SubnetRef::parse(s).ok().as_ref(), Some(&want), "{s}");
        }
        assert!(same_subnet(
            "projects/p/regions/us-central1/subnetworks/ml",
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/subnetworks/ml"
        ));
        for bad in [
            "ml",
            "subnet-0123",
            "projects/p/zones/us-central1-a/subnetworks/ml",
            "projects//regions/r/subnetworks/ml",
        ] {
            assert_eq!(
                SubnetRef::parse(bad).err().map(|e| e.kind),
                Some(ErrorKind::InvalidInput),
                "{bad}"
            );
        }
    }
}
