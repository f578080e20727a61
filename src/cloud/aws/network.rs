//! Where a workstation goes: its availability zone, subnet and VPC.

use aws_sdk_ec2::types::{Filter, LocationType};
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use crate::cloud::{CloudError, ErrorKind};
use crate::spec::WorkstationSpec;

/// The chosen zone, subnet and VPC for a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub zone: String,
    pub subnet_id: String,
    pub vpc_id: String,
}

/// With `subnet_id`: that subnet's zone and VPC (a conflicting `zone` is an
/// error). Without: `zone`, or the first zone offering the instance type, and the
/// default VPC's default subnet there.
pub(crate) async fn choose(
    ec2: &Ec2,
    spec: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<Placement, CloudError> {
    if let Some(subnet_id) = spec.subnet_id.as_deref().filter(|s| !s.is_empty()) {
        return from_subnet(ec2, subnet_id, spec.zone.as_deref(), cancel).await;
    }

    let offered = offered_zones(ec2, &spec.instance_type, cancel).await?;
    let defaults = ec2
        .call("DescribeSubnets", cancel, || {
            ec2.sdk()
                .describe_subnets()
                .filters(
                    Filter::builder()
                        .name("default-for-az")
                        .values("true")
                        .build(),
                )
                .send()
        })
        .await?;
    let default_subnets: Vec<(String, String, String)> = defaults
        .subnets()
        .iter()
        .filter_map(|s| {
            Some((
                s.availability_zone()?.to_owned(),
                s.subnet_id()?.to_owned(),
                s.vpc_id()?.to_owned(),
            ))
        })
        .collect();
    if default_subnets.is_empty() {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "DescribeSubnets",
            format!(
                "there is no default VPC (or it has no default subnets) in {}: pass subnet_id",
                ec2.region()
            ),
        ));
    }
    let zone = pick_zone(
        ec2.region(),
        &spec.instance_type,
        spec.zone.as_deref(),
        &offered,
        &default_subnets,
    )?;
    let (_, subnet_id, vpc_id) = default_subnets
        .into_iter()
        .find(|(z, _, _)| *z == zone)
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeSubnets",
                format!("the default VPC has no default subnet in {zone}: pass subnet_id"),
            )
        })?;
    Ok(Placement {
        zone,
        subnet_id,
        vpc_id,
    })
}

async fn from_subnet(
    ec2: &Ec2,
    subnet_id: &str,
    zone: Option<&str>,
    cancel: &CancellationToken,
) -> Result<Placement, CloudError> {
    let out = ec2
        .call("DescribeSubnets", cancel, || {
            ec2.sdk().describe_subnets().subnet_ids(subnet_id).send()
        })
        .await?;
    let subnet = out
        .subnets()
        .iter()
        .find(|s| s.subnet_id() == Some(subnet_id))
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "DescribeSubnets",
                format!("subnet {subnet_id} does not exist in {}", ec2.region()),
            )
        })?;
    let (Some(subnet_zone), Some(vpc_id)) = (subnet.availability_zone(), subnet.vpc_id()) else {
        return Err(CloudError::new(
            ErrorKind::Unexpected,
            "DescribeSubnets",
            format!("EC2 returned subnet {subnet_id} without zone or VPC"),
        ));
    };
    if let Some(zone) = zone.filter(|z| !z.is_empty() && *z != subnet_zone) {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "DescribeSubnets",
            format!(
                "zone {zone} conflicts with subnet {subnet_id}, which is in {subnet_zone}: \
drop zone or pick a subnet in {zone}"
            ),
        ));
    }
    Ok(Placement {
        zone: subnet_zone.to_owned(),
        subnet_id: subnet_id.to_owned(),
        vpc_id: vpc_id.to_owned(),
    })
}

/// Zones of the region offering `instance_type`, sorted.
async fn offered_zones(
    ec2: &Ec2,
    instance_type: &str,
    cancel: &CancellationToken,
) -> Result<Vec<String>, CloudError> {
    let mut zones = Vec::new();
    let mut token: Option<String> = None;
    // Filtered to one type there is one page; follow NextToken anyway, bounded.
    for _ in 0..20 {
        let out = ec2
            .call("DescribeInstanceTypeOfferings", cancel, || {
                ec2.sdk()
                    .describe_instance_type_offerings()
                    .location_type(LocationType::AvailabilityZone)
                    .filters(
                        Filter::builder()
                            .name("instance-type")
                            .values(instance_type)
                            .build(),
                    )
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        zones.extend(
            out.instance_type_offerings()
                .iter()
                .filter_map(|o| o.location().map(str::to_owned)),
        );
        match out.next_token().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    zones.sort();
    zones.dedup();
    Ok(zones)
}

/// Choose the zone. Only standard zones (`<region><letter>`) are candidates:
/// Local and Wavelength Zones (`us-east-1-bos-1a`) sort first but are rarely what
/// a workstation wants and need opting in.
fn pick_zone(
    region: &str,
    instance_type: &str,
    wanted: Option<&str>,
    offered: &[String],
    default_subnets: &[(String, String, String)],
) -> Result<String, CloudError> {
    if let Some(zone) = wanted.filter(|z| !z.is_empty()) {
        if !offered.iter().any(|z| z == zone) {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeInstanceTypeOfferings",
                if offered.is_empty() {
                    format!("{instance_type} is not offered in any zone of {region}")
                } else {
                    format!(
                        "{instance_type} is not offered in {zone}; it is offered in {}",
                        offered.join(", ")
                    )
                },
            ));
        }
        return Ok(zone.to_owned());
    }
    let standard: Vec<&String> = offered
        .iter()
        .filter(|z| is_standard_zone(region, z))
        .collect();
    if standard.is_empty() {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "DescribeInstanceTypeOfferings",
            format!("{instance_type} is not offered in any zone of {region}: pick another region or instance type"),
        ));
    }
    // Prefer the first offering zone that also has a default subnet.
    standard
        .iter()
        .find(|z| default_subnets.iter().any(|(dz, _, _)| dz == **z))
        .or(standard.first())
        .map(|z| (*z).clone())
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeInstanceTypeOfferings",
                format!("{instance_type} is not offered in {region}"),
            )
        })
}

fn is_standard_zone(region: &str, zone: &str) -> bool {
    zone.strip_prefix(region)
        .is_some_and(|rest| rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn subnets(zones: &[&str]) -> Vec<(String, String, String)> {
        zones
            .iter()
            .map(|z| (z.to_string(), format!("subnet-{z}"), "vpc-1".to_string()))
            .collect()
    }

    #[test]
    fn first_standard_offering_zone_with_a_default_subnet() {
        let offered = s(&["us-east-1-bos-1a", "us-east-1a", "us-east-1b", "us-east-1c"]);
        let z = pick_zone(
            "us-east-1",
            "g5.xlarge",
            None,
            &offered,
            &subnets(&["us-east-1b", "us-east-1c"]),
        );
        assert_eq!(z.ok().as_deref(), Some("us-east-1b"));
        let z = pick_zone(
            "us-east-1",
            "g5.xlarge",
            None,
            &offered,
            &subnets(&["us-east-1a"]),
        );
        assert_eq!(z.ok().as_deref(), Some("us-east-1a"));
    }

    #[test]
    fn wanted_zone_must_offer_the_type() {
        let offered = s(&["us-east-1a", "us-east-1b"]);
        let z = pick_zone(
            "us-east-1",
            "p4d.24xlarge",
            Some("us-east-1b"),
            &offered,
            &[],
        );
        assert_eq!(z.ok().as_deref(), Some("us-east-1b"));
        let e = pick_zone(
            "us-east-1",
            "p4d.24xlarge",
            Some("us-east-1e"),
            &offered,
            &[],
        );
        let e = e.err().map(|e| (e.kind, e.message));
        assert_eq!(
            e,
            Some((
                ErrorKind::InvalidInput,
                "p4d.24xlarge is not offered in us-east-1e; it is offered in us-east-1a, us-east-1b"
                    .to_string()
            ))
        );
    }

    #[test]
    fn no_offering_is_an_error() {
        let e = pick_zone(
            "eu-north-1",
            "p5.48xlarge",
            None,
            &[],
            &subnets(&["eu-north-1a"]),
        );
        assert_eq!(e.err().map(|e| e.kind), Some(ErrorKind::InvalidInput));
    }

    #[test]
    fn standard_zone_names() {
        assert!(is_standard_zone("us-east-1", "us-east-1a"));
        assert!(!is_standard_zone("us-east-1", "us-east-1-bos-1a"));
        assert!(!is_standard_zone("us-east-1", "us-east-2a"));
        assert!(!is_standard_zone("us-east-1", "us-east-1"));
    }
}
