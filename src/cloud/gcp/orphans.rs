//! Orphan sweep: parts of an earlier workstation of the same name (firewall
//! rules, disks) whose instance is gone — deleted out of band, or a create whose
//! cleanup was interrupted. Their names are deterministic, so left in place they
//! would make the next create fail with alreadyExists. They are removed before a
//! new workstation of that name is created.
//!
//! A part counts as orphaned only when it is ours (rule description mark, disk
//! labels `aienv-name`/`aienv-kind`), a disk has no users, and no instance of
//! that name exists anywhere in the project (`instances.aggregatedList`). When
//! that cannot be established the sweep does nothing.

use google_cloud_compute_v1::model::Disk;
use tokio_util::sync::CancellationToken;

use super::client::Gce;
use super::errors::ErrorContext;
use super::firewall;
use super::workstation::{delete_disk, get_disk};
use crate::cloud::CloudError;
use crate::spec::{TAG_KIND, TAG_NAME};

/// What a sweep found unused, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Orphans {
    pub rules: Vec<String>,
    pub disks: Vec<String>,
}

fn is_our_unused_disk(disk: &Disk, workstation: &str) -> bool {
    disk.users.is_empty()
        && disk.labels.get(TAG_NAME).map(String::as_str) == Some(workstation)
        && disk
            .labels
            .get(TAG_KIND)
            .is_some_and(|k| k.starts_with("workstation"))
}

/// Whether an instance named `name` exists in any zone of the project.
async fn instance_exists(
    gce: &Gce,
    name: &str,
    cancel: &CancellationToken,
) -> Result<bool, CloudError> {
    let filter = format!("name = \"{name}\"");
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let page = gce
            .call(
                "instances.aggregatedList",
                &ErrorContext::none(),
                cancel,
                || {
                    let mut req = gce
                        .instances
                        .aggregated_list()
                        .set_project(gce.project())
                        .set_filter(&filter);
                    if let Some(t) = &token {
                        req = req.set_page_token(t);
                    }
                    req.send()
                },
            )
            .await?;
        // Checked here too: the filter is a server-side nicety.
        if page
            .items
            .values()
            .flat_map(|scoped| scoped.instances.iter())
            .any(|i| i.name.as_deref() == Some(name))
        {
            return Ok(true);
        }
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Find the parts of workstation `name` (rules project-wide, disks in `zone`)
/// that no instance uses.
pub(crate) async fn find(
    gce: &Gce,
    name: &str,
    zone: &str,
    cancel: &CancellationToken,
) -> Result<Orphans, CloudError> {
    let project = gce.project();
    let rules: Vec<String> = firewall::find(gce, project, name, cancel)
        .await?
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect();
    let mut disks = Vec::new();
    for disk_name in [name.to_owned(), format!("{name}-data")] {
        if let Some(d) = get_disk(gce, project, zone, &disk_name, cancel).await? {
            if is_our_unused_disk(&d, name) {
                disks.push(disk_name);
            }
        }
    }
    if rules.is_empty() && disks.is_empty() {
        return Ok(Orphans::default());
    }
    if instance_exists(gce, name, cancel).await? {
        return Ok(Orphans::default());
    }
    Ok(Orphans { rules, disks })
}

/// Delete what `find` reported. Errors are logged, not returned: a sweep must
/// never stop the create it precedes (which then fails with a clear
/// alreadyExists if the sweep could not clear the way).
pub(crate) async fn sweep(gce: &Gce, name: &str, zone: &str, cancel: &CancellationToken) {
    let orphans = match find(gce, name, zone, cancel).await {
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
    for disk in &orphans.disks {
        if let Err(e) = delete_disk(gce, gce.project(), zone, disk, cancel).await {
            tracing::warn!(disk = %disk, error = %e, "could not delete orphaned disk");
        }
    }
    for rule in &orphans.rules {
        if let Err(e) = firewall::delete(gce, gce.project(), rule, cancel).await {
            tracing::warn!(rule = %rule, error = %e, "could not delete orphaned firewall rule");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(labels: &[(&str, &str)], users: &[&str]) -> Disk {
        let mut d = Disk::new();
        d.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.users = users.iter().map(|u| u.to_string()).collect();
        d
    }

    #[test]
    fn only_our_unattached_disks_are_orphans() {
        let ours = [(TAG_NAME, "box"), (TAG_KIND, "workstation-disk")];
        assert!(is_our_unused_disk(&disk(&ours, &[]), "box"));
        assert!(!is_our_unused_disk(
            &disk(&ours, &["projects/p/zones/z/instances/box"]),
            "box"
        ));
        assert!(!is_our_unused_disk(&disk(&ours, &[]), "other"));
        assert!(!is_our_unused_disk(&disk(&[(TAG_NAME, "box")], &[]), "box"));
        assert!(!is_our_unused_disk(&disk(&[], &[]), "box"));
    }
}
