//! Orphan sweep: parts of an earlier workstation of the same name (security
//! group, key pair, data disk) whose instance is gone — terminated out of band,
//! or a create whose cleanup was interrupted. Found by their `aienv-name` tag and
//! removed before a new workstation of that name is created, so a user's account
//! does not collect stray groups, keys and disks.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, VolumeState};
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use crate::cloud::CloudError;
use crate::spec::{TAG_KIND, TAG_NAME};

fn filter(name: &str, values: &[&str]) -> Filter {
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(*v);
    }
    f.build()
}

/// What a sweep found unattached, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Orphans {
    pub groups: Vec<String>,
    pub keys: Vec<String>,
    pub volumes: Vec<String>,
}

/// Find the parts tagged for workstation `name` that no live instance uses.
/// Four describe calls whatever the number of parts.
pub(crate) async fn find(
    ec2: &Ec2,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Orphans, CloudError> {
    let tag_name = format!("tag:{TAG_NAME}");
    let live = ec2
        .call("DescribeInstances", cancel, || {
            ec2.sdk()
                .describe_instances()
                .filters(filter(&tag_name, &[name]))
                .filters(filter(
                    "instance-state-name",
                    &["pending", "running", "stopping", "stopped", "shutting-down"],
                ))
                .send()
        })
        .await?;
    let mut used_groups = BTreeSet::new();
    let mut used_keys = BTreeSet::new();
    let mut used_volumes = BTreeSet::new();
    for inst in live.reservations().iter().flat_map(|r| r.instances()) {
        used_groups.extend(
            inst.security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned)),
        );
        for eni in inst.network_interfaces() {
            used_groups.extend(
                eni.groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned)),
            );
        }
        used_keys.extend(inst.key_name().map(str::to_owned));
        used_volumes.extend(
            inst.block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs().and_then(|e| e.volume_id()).map(str::to_owned)),
        );
    }

    let tag_kind = format!("tag:{TAG_KIND}");
    let groups = ec2
        .call("DescribeSecurityGroups", cancel, || {
            ec2.sdk()
                .describe_security_groups()
                .filters(filter(&tag_name, &[name]))
                .filters(filter(&tag_kind, &["workstation-firewall"]))
                .send()
        })
        .await?;
    let keys = ec2
        .call("DescribeKeyPairs", cancel, || {
            ec2.sdk()
                .describe_key_pairs()
                .filters(filter(&tag_name, &[name]))
                .filters(filter(&tag_kind, &["workstation-key"]))
                .send()
        })
        .await?;
    let volumes = ec2
        .call("DescribeVolumes", cancel, || {
            ec2.sdk()
                .describe_volumes()
                .filters(filter(&tag_name, &[name]))
                .filters(filter(&tag_kind, &["workstation-disk"]))
                .send()
        })
        .await?;
    Ok(Orphans {
        groups: groups
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .filter(|id| !used_groups.contains(*id))
            .map(str::to_owned)
            .collect(),
        keys: keys
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name())
            .filter(|k| k.starts_with("aienv-") && !used_keys.contains(*k))
            .map(str::to_owned)
            .collect(),
        volumes: volumes
            .volumes()
            .iter()
            .filter(|v| v.state() == Some(&VolumeState::Available))
            .filter_map(|v| v.volume_id())
            .filter(|id| !used_volumes.contains(*id))
            .map(str::to_owned)
            .collect(),
    })
}

/// Delete what `find` reported. Errors are logged, not returned: a sweep must
/// never stop the create it precedes.
pub(crate) async fn sweep(ec2: &Ec2, name: &str, cancel: &CancellationToken) {
    let orphans = match find(ec2, name, cancel).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(workstation = name, error = %e, "could not look for orphaned parts");
            return;
        }
    };
    if orphans == Orphans::default() {
        return;
    }
    tracing::info!(
        workstation = name,
        ?orphans,
        "removing parts left by an earlier workstation of this name"
    );
    for id in &orphans.volumes {
        if let Err(e) = super::workstation::delete_volume(ec2, id, cancel).await {
            tracing::warn!(volume = %id, error = %e, "could not delete orphaned volume");
        }
    }
    for key in &orphans.keys {
        if let Err(e) = super::workstation::delete_key(ec2, key, cancel).await {
            tracing::warn!(key = %key, error = %e, "could not delete orphaned key pair");
        }
    }
    for id in &orphans.groups {
        if let Err(e) = super::firewall::delete(ec2, id, cancel).await {
            tracing::warn!(group = %id, error = %e, "could not delete orphaned security group");
        }
    }
}
