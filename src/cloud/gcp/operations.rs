//! Waiting for Compute Engine Operations.
//!
//! Every insert, delete and update answers with an Operation that goes PENDING →
//! RUNNING → DONE. DONE means finished, not succeeded: an instance insert can
//! end DONE with `error.errors = [{code: QUOTA_EXCEEDED}]` or
//! `ZONE_RESOURCE_POOL_EXHAUSTED` although every HTTP call returned 200. (The
//! client library's own poller reports such an Operation as a success, which is
//! why we poll ourselves.) We poll with `zoneOperations.get` /
//! `globalOperations.get` through `retry::wait_for` (bounded, cancellable; each
//! poll goes through the retry policy) and turn a DONE Operation's `error` into a
//! `CloudError`.

use std::time::Duration;

use google_cloud_compute_v1::model::{operation, Operation};
use tokio_util::sync::CancellationToken;

use super::client::Gce;
use super::errors::{from_operation, ErrorContext};
use super::network::last_segment;
use crate::cloud::retry::wait_for;
use crate::cloud::{CloudError, ErrorKind};

/// Bound on one Operation. A GPU instance insert usually finishes within two
/// minutes; stopping one with a large local state can take several.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Where an Operation lives, from its `zone` / `region` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    Zone(String),
    Region(String),
    Global,
}

pub(crate) fn scope_of(op: &Operation) -> Scope {
    if let Some(zone) = op.zone.as_deref().filter(|z| !z.is_empty()) {
        return Scope::Zone(last_segment(zone).to_owned());
    }
    if let Some(region) = op.region.as_deref().filter(|r| !r.is_empty()) {
        return Scope::Region(last_segment(region).to_owned());
    }
    Scope::Global
}

pub(crate) fn is_done(op: &Operation) -> bool {
    op.status == Some(operation::Status::Done)
}

/// Wait until `op` is DONE; fail with its error if it has one. `what` names the
/// request (e.g. `instances.insert`) in messages.
pub(crate) async fn wait(
    gce: &Gce,
    op: Operation,
    what: &'static str,
    ctx: &ErrorContext<'_>,
    cancel: &CancellationToken,
) -> Result<Operation, CloudError> {
    let op = if is_done(&op) {
        op
    } else {
        let name = op.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
            CloudError::new(
                ErrorKind::Unexpected,
                what,
                "Compute Engine returned an unfinished operation without a name",
            )
        })?;
        let scope = scope_of(&op);
        // The project the operation belongs to: from its selfLink, else ours.
        let project = op
            .self_link
            .as_deref()
            .and_then(project_of)
            .unwrap_or_else(|| gce.project().to_owned());
        let label = format!("wait for {what} ({name})");
        wait_for(&label, OPERATION_TIMEOUT, cancel, || {
            let (name, scope, project) = (&name, &scope, &project);
            async move {
                let cur = get(gce, project, scope, name, cancel).await?;
                Ok(is_done(&cur).then_some(cur))
            }
        })
        .await?
    };
    match from_operation(what, ctx, &op) {
        Some(e) => Err(e),
        None => Ok(op),
    }
}

async fn get(
    gce: &Gce,
    project: &str,
    scope: &Scope,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Operation, CloudError> {
    let ctx = ErrorContext::none();
    match scope {
        Scope::Zone(zone) => {
            gce.call("zoneOperations.get", &ctx, cancel, || {
                gce.zone_operations
                    .get()
                    .set_project(project)
                    .set_zone(zone)
                    .set_operation(name)
                    .send()
            })
            .await
        }
        Scope::Global => {
            gce.call("globalOperations.get", &ctx, cancel, || {
                gce.global_operations
                    .get()
                    .set_project(project)
                    .set_operation(name)
                    .send()
            })
            .await
        }
        // We never start regional operations.
        Scope::Region(region) => Err(CloudError::new(
            ErrorKind::Unexpected,
            "wait for operation",
            format!("unexpected regional operation {name} in {region}"),
        )),
    }
}

/// `.../projects/P/...` → `P`.
fn project_of(link: &str) -> Option<String> {
    let mut parts = link.split('/');
    parts.find(|p| *p == "projects")?;
    parts.next().filter(|p| !p.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_from_operation_fields() {
        let mut op = Operation::new();
        op.zone =
            Some("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a".into());
        assert_eq!(scope_of(&op), Scope::Zone("us-central1-a".into()));
        let mut op = Operation::new();
        op.region = Some("projects/p/regions/us-central1".into());
        assert_eq!(scope_of(&op), Scope::Region("us-central1".into()));
        assert_eq!(scope_of(&Operation::new()), Scope::Global);
    }

    #[test]
    fn project_from_self_link() {
        assert_eq!(
            project_of(
                "https://www.googleapis.com/compute/v1/projects/my-proj/global/operations/op-1"
            )
            .as_deref(),
            Some("my-proj")
        );
        assert_eq!(project_of("operations/op-1"), None);
    }
}
