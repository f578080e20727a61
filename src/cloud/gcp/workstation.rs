//! Workstation lifecycle on Compute Engine: create (steps with undo), read,
//! update in place, delete, and cleanup of what a failed create left behind.
//!
//! A workstation is one instance named like the workstation plus the parts made
//! for it: firewall rules `aienv-{name}` (and `aienv-{name}-v6`) targeting the
//! network tag `aienv-{name}`, and an optional data disk `{name}-data` created by
//! `disks.insert` and attached with `autoDelete`, so deleting the instance
//! deletes both disks. Undo and delete still delete the data disk explicitly
//! when it outlived the instance (a failed insert, autoDelete turned off).
//!
//! Tags become labels (see `labels`); our bookkeeping (`aienv-*` keys: the
//! auto-stop threshold the bootstrap reads, the original tags, the resource's
//! `meta`) lives in instance metadata, since label values cannot hold it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use google_cloud_compute_v1::model::{
    access_config, attached_disk, scheduling, AcceleratorConfig, AccessConfig, AttachedDisk,
    AttachedDiskInitializeParams, Disk, DisksResizeRequest, Instance, InstancesSetLabelsRequest,
    InstancesSetMachineResourcesRequest, InstancesSetMachineTypeRequest, Metadata,
    NetworkInterface, Operation, Scheduling, Tags,
};
use tokio_util::sync::CancellationToken;

use super::client::{request_id, Gce};
use super::errors::ErrorContext;
use super::firewall;
use super::images::ssh_user;
use super::labels::{self, MAX_LABELS};
use super::network::{
    self, disk_path, firewall_path, instance_path, last_segment, parse_scoped, region_of_zone,
    relative, same_subnet, Placement,
};
use super::operations;
use crate::cloud::bootstrap::{boot_script, MetadataSource};
use crate::cloud::retry::wait_for;
use crate::cloud::{CloudError, CreateFailure, ErrorKind};
use crate::spec::{
    Leftovers, MachineState, ObservedWorkstation, WorkstationSpec, TAG_AUTO_STOP, TAG_KIND,
    TAG_NAME,
};

const KIND_INSTANCE: &str = "workstation";
const KIND_DISK: &str = "workstation-disk";
/// Metadata key holding the user's tags as JSON (labels can only hold a
/// sanitised form).
const META_TAGS: &str = "aienv-tags";
/// Metadata key holding `subnet_id` as the user spelled it (self-link or path),
/// so a read reports that spelling while it names the same subnetwork.
const META_SUBNET: &str = "aienv-subnet-id";
/// Device name of the data disk (the guest sees /dev/disk/by-id/google-aienv-data).
const DATA_DEVICE: &str = "aienv-data";
/// Bound on every instance state wait (running, stopped).
const WAIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------
// Locator and pure helpers
// ---------------------------------------------------------------------------

/// One instance: project, zone, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub project: String,
    pub zone: String,
    pub name: String,
}

impl Target {
    /// `{project}/{zone}/{name}`; the resource id is `gcp/` + this.
    pub(crate) fn locator(&self) -> String {
        format!("{}/{}/{}", self.project, self.zone, self.name)
    }

    pub(crate) fn path(&self) -> String {
        instance_path(&self.project, &self.zone, &self.name)
    }
}

fn is_gce_name(s: &str) -> bool {
    // RFC 1035 label: [a-z]([-a-z0-9]{0,61}[a-z0-9])?
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_project_id(s: &str) -> bool {
    // Includes domain-scoped projects (`example.com:proj`).
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

fn is_zone_name(s: &str) -> bool {
    is_gce_name(s) && s.contains('-')
}

/// Parse a locator. Accepted: `{project}/{zone}/{name}` (what we produce), the
/// instance path `projects/P/zones/Z/instances/N` (hashicorp/google's id, handy
/// for import) and `{region}/projects/P/zones/Z/instances/N` (the id a failed
/// create records: `gcp/{region}/{instance_id}`).
pub(crate) fn parse_locator(locator: &str) -> Result<Target, CloudError> {
    let bad = || {
        CloudError::new(
            ErrorKind::InvalidInput,
            "parse workstation id",
            format!(
                "{locator:?} is not a Google Cloud workstation id: expected \
\"<project>/<zone>/<name>\", e.g. \"my-project/us-central1-a/gpu-box\""
            ),
        )
    };
    let trimmed = locator.trim().trim_matches('/');
    // From `projects/` on, wherever it starts (after a region, or in a URL).
    let rel = relative(trimmed);
    let (project, zone, name) = if rel.starts_with("projects/") {
        parse_scoped(rel, "zones", "instances").ok_or_else(bad)?
    } else {
        let parts: Vec<&str> = trimmed.split('/').collect();
        match parts.as_slice() {
            [p, z, n] => (*p, *z, *n),
            _ => return Err(bad()),
        }
    };
    if is_project_id(project) && is_zone_name(zone) && is_gce_name(name) {
        Ok(Target {
            project: project.to_owned(),
            zone: zone.to_owned(),
            name: name.to_owned(),
        })
    } else {
        Err(bad())
    }
}

fn data_disk_name(workstation: &str) -> String {
    format!("{workstation}-data")
}

/// Persistent Disk for most shapes; A3 Ultra (H200) and A4 (B200) machines
/// attach only Hyperdisk.
fn disk_type(project: &str, zone: &str, machine_type: &str) -> String {
    let kind = if machine_type.starts_with("a3-ultragpu") || machine_type.starts_with("a4-") {
        "hyperdisk-balanced"
    } else {
        "pd-balanced"
    };
    format!("projects/{project}/zones/{zone}/diskTypes/{kind}")
}

fn machine_type_path(zone: &str, machine_type: &str) -> String {
    format!("zones/{zone}/machineTypes/{machine_type}")
}

fn accelerator_path(project: &str, zone: &str, accelerator: &str) -> String {
    format!("projects/{project}/zones/{zone}/acceleratorTypes/{accelerator}")
}

/// Bookkeeping keys this backend owns; a resource's `meta` cannot override them.
fn is_reserved(key: &str) -> bool {
    matches!(
        key,
        TAG_NAME | TAG_KIND | TAG_AUTO_STOP | META_TAGS | META_SUBNET
    )
}

/// The labels of a part: user tags (sanitised) plus name and kind.
fn part_labels(
    name: &str,
    tags: &BTreeMap<String, String>,
    kind: &str,
) -> Result<HashMap<String, String>, CloudError> {
    let mut l = labels::user_labels(tags);
    if l.len() + 2 > MAX_LABELS {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "check labels",
            format!(
                "Compute Engine allows {MAX_LABELS} labels per resource; {} tags plus aienv's 2 \
are too many",
                l.len()
            ),
        ));
    }
    l.insert(TAG_NAME.to_owned(), labels::sanitize_value(name));
    l.insert(TAG_KIND.to_owned(), kind.to_owned());
    Ok(l.into_iter().collect())
}

/// Our `aienv-*` metadata for a spec: auto-stop threshold, original tags,
/// subnet spelling, and the resource's `meta`.
fn bookkeeping_metadata(spec: &WorkstationSpec) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = spec
        .meta
        .iter()
        .filter(|(k, _)| k.starts_with("aienv-") && !is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.insert(
        TAG_AUTO_STOP.to_owned(),
        spec.auto_stop_idle_minutes.to_string(),
    );
    m.insert(META_TAGS.to_owned(), labels::encode_tags(&spec.tags));
    if let Some(subnet) = spec.subnet_id.as_deref().filter(|s| !s.is_empty()) {
        m.insert(META_SUBNET.to_owned(), subnet.to_owned());
    }
    m
}

/// Metadata items: the others' items kept in order, ours (`aienv-*`) replaced.
fn merge_metadata(
    current: &[(String, String)],
    ours: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = current
        .iter()
        .filter(|(k, _)| !k.starts_with("aienv-"))
        .cloned()
        .collect();
    out.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn metadata_pairs(inst: &Instance) -> Vec<(String, String)> {
    inst.metadata
        .as_ref()
        .map(|m| {
            m.items
                .iter()
                .filter_map(|i| Some((i.key.clone()?, i.value.clone().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata with `pairs` as items, keeping `base`'s fingerprint (None for a
/// new instance).
fn to_metadata(pairs: &[(String, String)], base: Option<&Metadata>) -> Metadata {
    let mut m = base.cloned().unwrap_or_default();
    m.items = pairs
        .iter()
        .map(|(k, v)| {
            let mut item = google_cloud_compute_v1::model::metadata::Items::new();
            item.key = Some(k.clone());
            item.value = Some(v.clone());
            item
        })
        .collect();
    m
}

fn machine_state(inst: &Instance) -> MachineState {
    match inst.status.as_ref().and_then(|s| s.name()) {
        Some("PROVISIONING" | "STAGING" | "REPAIRING" | "PENDING") => MachineState::Pending,
        Some("RUNNING") => MachineState::Running,
        Some("STOPPING" | "SUSPENDING" | "PENDING_STOP") => MachineState::Stopping,
        Some("TERMINATED" | "SUSPENDED" | "STOPPED") => MachineState::Stopped,
        Some("DEPROVISIONING") => MachineState::Terminated,
        // Unknown future states: treat as in transition.
        _ => MachineState::Pending,
    }
}

fn is_suspended(inst: &Instance) -> bool {
    inst.status.as_ref().and_then(|s| s.name()) == Some("SUSPENDED")
}

/// The accelerators attached separately (N1), as (type name, count).
fn accelerators(inst: &Instance) -> Option<(String, u32)> {
    inst.guest_accelerators.first().map(|a| {
        (
            a.accelerator_type
                .as_deref()
                .map(last_segment)
                .unwrap_or_default()
                .to_owned(),
            a.accelerator_count
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
        )
    })
}

fn wanted_accelerators(spec: &WorkstationSpec) -> Option<(String, u32)> {
    spec.accelerator_type
        .as_ref()
        .filter(|a| !a.is_empty())
        .map(|a| (a.clone(), spec.gpu_count))
}

fn accelerator_configs(
    project: &str,
    zone: &str,
    spec: &WorkstationSpec,
) -> Vec<AcceleratorConfig> {
    wanted_accelerators(spec)
        .map(|(t, n)| {
            let mut a = AcceleratorConfig::new();
            a.accelerator_type = Some(accelerator_path(project, zone, &t));
            a.accelerator_count = Some(i32::try_from(n).unwrap_or(i32::MAX));
            vec![a]
        })
        .unwrap_or_default()
}

fn to_i64_gb(gb: u32) -> i64 {
    i64::from(gb)
}

/// The boot disk and the data disk of an instance, as disk paths.
fn disk_paths(inst: &Instance, workstation: &str) -> (Option<String>, Option<String>) {
    let boot = inst
        .disks
        .iter()
        .find(|d| d.boot == Some(true))
        .and_then(|d| d.source.as_deref())
        .map(|s| relative(s).to_owned());
    let data_name = data_disk_name(workstation);
    let data = inst
        .disks
        .iter()
        .filter(|d| d.boot != Some(true))
        .find(|d| {
            d.device_name.as_deref() == Some(DATA_DEVICE)
                || d.source.as_deref().map(last_segment) == Some(data_name.as_str())
        })
        .and_then(|d| d.source.as_deref())
        .map(|s| relative(s).to_owned());
    (boot, data)
}

/// Build the instance for `spec` in `place`. `data_disk` is the path of the
/// data disk created before, attached with autoDelete.
pub(crate) fn instance_body(
    project: &str,
    spec: &WorkstationSpec,
    place: &Placement,
    data_disk: Option<&str>,
) -> Result<Instance, CloudError> {
    let zone = place.zone.as_str();

    let mut boot_params = AttachedDiskInitializeParams::new();
    boot_params.source_image = Some(spec.image_id.clone());
    boot_params.disk_size_gb = Some(to_i64_gb(spec.root_disk_gb));
    boot_params.disk_type = Some(disk_type(project, zone, &spec.instance_type));
    boot_params.labels = part_labels(&spec.name, &spec.tags, KIND_DISK)?;
    let mut boot = AttachedDisk::new();
    boot.boot = Some(true);
    boot.auto_delete = Some(true);
    boot.r#type = Some(attached_disk::Type::from("PERSISTENT"));
    boot.initialize_params = Some(boot_params);
    let mut disks = vec![boot];
    if let Some(source) = data_disk {
        let mut data = AttachedDisk::new();
        data.boot = Some(false);
        data.auto_delete = Some(true);
        data.r#type = Some(attached_disk::Type::from("PERSISTENT"));
        data.device_name = Some(DATA_DEVICE.to_owned());
        data.source = Some(source.to_owned());
        disks.push(data);
    }

    let mut nic = NetworkInterface::new();
    match &place.subnetwork {
        Some(subnet) => nic.subnetwork = Some(subnet.clone()),
        None => nic.network = Some(place.network.clone()),
    }
    if spec.public_ip {
        let mut ac = AccessConfig::new();
        ac.name = Some("External NAT".to_owned());
        ac.r#type = Some(access_config::Type::from("ONE_TO_ONE_NAT"));
        nic.access_configs = vec![ac];
    }

    // GPUs cannot live-migrate: maintenance must stop the machine. Spot
    // machines stop (keeping their disks) when preempted, like a stopped
    // workstation, and must not restart on their own.
    let mut sched = Scheduling::new();
    sched.on_host_maintenance = Some(scheduling::OnHostMaintenance::from("TERMINATE"));
    if spec.spot {
        sched.provisioning_model = Some(scheduling::ProvisioningModel::from("SPOT"));
        sched.instance_termination_action =
            Some(scheduling::InstanceTerminationAction::from("STOP"));
        sched.automatic_restart = Some(false);
    } else {
        sched.automatic_restart = Some(true);
    }

    let mut metadata: Vec<(String, String)> = vec![(
        "startup-script".to_owned(),
        boot_script(
            MetadataSource::GceInstanceAttributes,
            spec.user_data.as_deref(),
        ),
    )];
    if let Some(key) = spec
        .ssh_public_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        metadata.push((
            "ssh-keys".to_owned(),
            format!("{}:{key}", ssh_user(&spec.image_id)),
        ));
    }
    let metadata = merge_metadata(&metadata, &bookkeeping_metadata(spec));

    let mut tags = Tags::new();
    tags.items = vec![firewall::tag(&spec.name)];

    let mut inst = Instance::new();
    inst.name = Some(spec.name.clone());
    inst.machine_type = Some(machine_type_path(zone, &spec.instance_type));
    inst.disks = disks;
    inst.network_interfaces = vec![nic];
    inst.guest_accelerators = accelerator_configs(project, zone, spec);
    inst.scheduling = Some(sched);
    inst.tags = Some(tags);
    inst.labels = part_labels(&spec.name, &spec.tags, KIND_INSTANCE)?;
    inst.metadata = Some(to_metadata(&metadata, None));
    Ok(inst)
}

/// Refuse what the plan must turn into a replacement. A public address is
/// chosen at create on GCE (an access config), so it is one of those too.
pub(crate) fn check_in_place(
    current: &ObservedWorkstation,
    desired: &WorkstationSpec,
) -> Result<(), CloudError> {
    crate::cloud::check_in_place(current, desired, &|a, b| {
        relative(a) == relative(b) || same_subnet(a, b)
    })?;
    if desired.public_ip != current.has_public_ip {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "update workstation",
            "public_ip cannot be changed in place; the workstation must be replaced",
        ));
    }
    Ok(())
}

/// Whether a failed create step may have left its object behind: the outcome
/// is unknown (no answer, 5xx, cancelled mid-flight).
fn ambiguous(e: &CloudError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Timeout | ErrorKind::Unexpected | ErrorKind::Cancelled
    )
}

/// A name taken by someone else: not ours to undo.
fn already_exists(e: &CloudError) -> bool {
    e.kind == ErrorKind::Conflict && !e.retryable
}

fn stopped_while_starting(t: &Target, inst: &Instance) -> CloudError {
    let why = inst
        .status_message
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or("no reason given");
    let spot = inst
        .scheduling
        .as_ref()
        .and_then(|s| s.provisioning_model.as_ref())
        .and_then(|p| p.name())
        == Some("SPOT");
    let kind = if spot {
        ErrorKind::Capacity
    } else {
        ErrorKind::Unexpected
    };
    CloudError::new(
        kind,
        "instances.start",
        format!("instance {} stopped while starting: {why}", t.path()),
    )
}

fn gone(t: &Target) -> CloudError {
    CloudError::new(
        ErrorKind::NotFound,
        "instances.get",
        format!("instance {} no longer exists", t.path()),
    )
}

// ---------------------------------------------------------------------------
// Instance helpers
// ---------------------------------------------------------------------------

pub(crate) async fn get_instance(
    gce: &Gce,
    t: &Target,
    cancel: &CancellationToken,
) -> Result<Option<Instance>, CloudError> {
    match gce
        .call(
            "instances.get",
            &ErrorContext::zone(&t.zone),
            cancel,
            || {
                gce.instances
                    .get()
                    .set_project(&t.project)
                    .set_zone(&t.zone)
                    .set_instance(&t.name)
                    .send()
            },
        )
        .await
    {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Running,
    Stopped,
    /// Running or stopped, not in transition.
    Settled,
}

/// Poll (one `instances.get` per poll) until the instance is in the wanted state.
async fn wait_state(
    gce: &Gce,
    t: &Target,
    want: Want,
    cancel: &CancellationToken,
) -> Result<Instance, CloudError> {
    let what = match want {
        Want::Running => format!("wait for {} to be running", t.name),
        Want::Stopped => format!("wait for {} to be stopped", t.name),
        Want::Settled => format!("wait for {} to finish starting or stopping", t.name),
    };
    wait_for(&what, WAIT_TIMEOUT, cancel, || async move {
        let Some(inst) = get_instance(gce, t, cancel).await? else {
            return Err(gone(t));
        };
        let state = machine_state(&inst);
        Ok(match (want, state) {
            (Want::Running, MachineState::Running)
            | (Want::Stopped, MachineState::Stopped)
            | (Want::Settled, MachineState::Running | MachineState::Stopped) => Some(inst),
            (_, MachineState::Terminated) => return Err(gone(t)),
            // Only waited for after a create or start finished: a machine
            // that stopped meanwhile did not start (spot preemption, a failed
            // boot). Waiting on would only run into the timeout.
            (Want::Running, MachineState::Stopped) => return Err(stopped_while_starting(t, &inst)),
            _ => None,
        })
    })
    .await
}

/// Send an instance action (start, stop, ...) and wait for its Operation.
async fn instance_action<F, Fut>(
    gce: &Gce,
    what: &'static str,
    ctx: &ErrorContext<'_>,
    cancel: &CancellationToken,
    f: F,
) -> Result<(), CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = google_cloud_compute_v1::Result<Operation>>,
{
    gce.mutate(what, ctx, cancel, f).await.map(|_| ())
}

/// Start or stop the instance so it ends up running or stopped, and wait.
async fn ensure_running(
    gce: &Gce,
    t: &Target,
    running: bool,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let inst = wait_state(gce, t, Want::Settled, cancel).await?;
    let rid = request_id();
    match (machine_state(&inst), running) {
        (MachineState::Stopped, true) => {
            // A start needs capacity like a create: name type and zone if it fails.
            let machine_type = inst
                .machine_type
                .as_deref()
                .map(last_segment)
                .unwrap_or_default();
            let ctx = ErrorContext::machine(&t.zone, machine_type);
            if is_suspended(&inst) {
                instance_action(gce, "instances.resume", &ctx, cancel, || {
                    gce.instances
                        .resume()
                        .set_project(&t.project)
                        .set_zone(&t.zone)
                        .set_instance(&t.name)
                        .set_request_id(&rid)
                        .send()
                })
                .await?;
            } else {
                instance_action(gce, "instances.start", &ctx, cancel, || {
                    gce.instances
                        .start()
                        .set_project(&t.project)
                        .set_zone(&t.zone)
                        .set_instance(&t.name)
                        .set_request_id(&rid)
                        .send()
                })
                .await?;
            }
            wait_state(gce, t, Want::Running, cancel).await.map(|_| ())
        }
        (MachineState::Running, false) => stop(gce, t, cancel).await,
        _ => Ok(()),
    }
}

async fn stop(gce: &Gce, t: &Target, cancel: &CancellationToken) -> Result<(), CloudError> {
    let rid = request_id();
    instance_action(
        gce,
        "instances.stop",
        &ErrorContext::zone(&t.zone),
        cancel,
        || {
            gce.instances
                .stop()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_instance(&t.name)
                .set_request_id(&rid)
                .send()
        },
    )
    .await?;
    wait_state(gce, t, Want::Stopped, cancel).await.map(|_| ())
}

/// Delete the instance (its autoDelete disks go with it) and wait. An instance
/// already gone is fine.
async fn delete_instance(
    gce: &Gce,
    t: &Target,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    match gce
        .mutate(
            "instances.delete",
            &ErrorContext::zone(&t.zone),
            cancel,
            || {
                gce.instances
                    .delete()
                    .set_project(&t.project)
                    .set_zone(&t.zone)
                    .set_instance(&t.name)
                    .set_request_id(&rid)
                    .send()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------
// Disks
// ---------------------------------------------------------------------------

pub(crate) async fn get_disk(
    gce: &Gce,
    project: &str,
    zone: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Option<Disk>, CloudError> {
    match gce
        .call("disks.get", &ErrorContext::zone(zone), cancel, || {
            gce.disks
                .get()
                .set_project(project)
                .set_zone(zone)
                .set_disk(name)
                .send()
        })
        .await
    {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Delete a disk if it still exists. A disk still detaching from a deleted
/// instance answers resourceInUseByAnotherResource, which the retry policy
/// retries.
pub(crate) async fn delete_disk(
    gce: &Gce,
    project: &str,
    zone: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    match gce
        .mutate("disks.delete", &ErrorContext::zone(zone), cancel, || {
            gce.disks
                .delete()
                .set_project(project)
                .set_zone(zone)
                .set_disk(name)
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

fn data_disk_body(project: &str, zone: &str, spec: &WorkstationSpec) -> Result<Disk, CloudError> {
    let mut d = Disk::new();
    d.name = Some(data_disk_name(&spec.name));
    d.size_gb = Some(to_i64_gb(spec.data_disk_gb));
    d.r#type = Some(disk_type(project, zone, &spec.instance_type));
    d.labels = part_labels(&spec.name, &spec.tags, KIND_DISK)?;
    Ok(d)
}

fn size_gb(disk: Option<&Disk>) -> u32 {
    disk.and_then(|d| d.size_gb)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Read
// ---------------------------------------------------------------------------

pub(crate) async fn read(
    gce: &Gce,
    t: &Target,
    cancel: &CancellationToken,
) -> Result<Option<ObservedWorkstation>, CloudError> {
    let Some(inst) = get_instance(gce, t, cancel).await? else {
        return Ok(None);
    };
    observe(gce, t, &inst, cancel).await.map(Some)
}

/// Build the observation of an instance: its firewall rules (by name) and its
/// disks (one `disks.get` each).
async fn observe(
    gce: &Gce,
    t: &Target,
    inst: &Instance,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    let name = inst.labels.get(TAG_NAME).cloned().unwrap_or_default();
    let metadata: BTreeMap<String, String> = metadata_pairs(inst).into_iter().collect();

    let rules = if name.is_empty() {
        [None, None]
    } else {
        firewall::find(gce, &t.project, &name, cancel).await?
    };
    let found: Vec<&google_cloud_compute_v1::model::Firewall> = rules.iter().flatten().collect();
    let (ports, allowed_cidrs) = firewall::summarize(&found);

    let (boot_path, data_path) = disk_paths(inst, if name.is_empty() { &t.name } else { &name });
    let boot = match boot_path
        .as_deref()
        .and_then(|p| parse_scoped(p, "zones", "disks"))
    {
        Some((p, z, n)) => get_disk(gce, p, z, n, cancel).await?,
        None => None,
    };
    let data = match data_path
        .as_deref()
        .and_then(|p| parse_scoped(p, "zones", "disks"))
    {
        Some((p, z, n)) => get_disk(gce, p, z, n, cancel).await?,
        None => None,
    };

    let nic = inst.network_interfaces.first();
    let access = nic.and_then(|n| n.access_configs.first());
    let observed_subnet = nic
        .and_then(|n| n.subnetwork.as_deref())
        .map(|s| relative(s).to_owned());
    // Report the user's spelling of the same subnetwork (self-link or path).
    let subnet_id = match (observed_subnet, metadata.get(META_SUBNET)) {
        (Some(found), Some(theirs)) if same_subnet(&found, theirs) => Some(theirs.clone()),
        (found, _) => found,
    };

    let user_labels = labels::non_bookkeeping(&inst.labels);
    let stored_tags = labels::decode_tags(metadata.get(META_TAGS).map(String::as_str));
    let mut meta: BTreeMap<String, String> = inst
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("aienv-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.extend(
        metadata
            .iter()
            .filter(|(k, _)| {
                k.starts_with("aienv-") && !matches!(k.as_str(), META_TAGS | META_SUBNET)
            })
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let scheduling = inst.scheduling.as_ref();
    let spot = scheduling.is_some_and(|s| {
        s.provisioning_model.as_ref().and_then(|p| p.name()) == Some("SPOT")
            || s.preemptible == Some(true)
    });

    Ok(ObservedWorkstation {
        locator: t.locator(),
        name,
        region: region_of_zone(&t.zone).to_owned(),
        zone: t.zone.clone(),
        instance_id: t.path(),
        instance_type: inst
            .machine_type
            .as_deref()
            .map(last_segment)
            .unwrap_or_default()
            .to_owned(),
        image_id: boot
            .as_ref()
            .and_then(|d| d.source_image.as_deref())
            .map(|s| relative(s).to_owned())
            .unwrap_or_default(),
        state: machine_state(inst),
        spot,
        public_ip: access
            .and_then(|a| a.nat_ip.as_deref())
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned),
        private_ip: nic
            .and_then(|n| n.network_ip.as_deref())
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned),
        // An access config survives stop/start; its address may not.
        has_public_ip: access.is_some(),
        firewall_id: firewall::id_of(&t.project, &rules),
        allowed_cidrs,
        ports,
        root_disk_gb: size_gb(boot.as_ref()),
        data_disk_gb: size_gb(data.as_ref()),
        // Only report a data disk that still exists.
        data_disk_id: data.as_ref().and(data_path),
        subnet_id,
        ssh_key_name: None,
        auto_stop_idle_minutes: metadata
            .get(TAG_AUTO_STOP)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        tags: labels::observed_tags(&user_labels, &stored_tags),
        meta,
    })
}

// ---------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------

/// What a create made so far (or may have made), for undo. Names are
/// deterministic, so undo deletes by name.
#[derive(Debug, Default)]
struct Made {
    project: String,
    zone: Option<String>,
    rules: Vec<String>,
    data_disk: Option<String>,
    instance: Option<String>,
}

/// Send an insert, then wait for its Operation, recording in `made` whether the
/// object may exist afterwards: yes once the insert was accepted (unless its
/// Operation says the name was taken by someone else), and when the insert's
/// own outcome is unknown.
async fn insert_tracked<F, Fut>(
    gce: &Gce,
    what: &'static str,
    ctx: &ErrorContext<'_>,
    cancel: &CancellationToken,
    made: &mut bool,
    f: F,
) -> Result<Operation, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = google_cloud_compute_v1::Result<Operation>>,
{
    // Cancelled before anything was sent: nothing of ours can exist, and a
    // same-named object that does exist belongs to someone else.
    if cancel.is_cancelled() {
        *made = false;
        return Err(CloudError::cancelled(what));
    }
    let op = match gce.call(what, ctx, cancel, f).await {
        Ok(op) => op,
        Err(e) => {
            *made = ambiguous(&e);
            return Err(e);
        }
    };
    *made = true;
    operations::wait(gce, op, what, ctx, cancel)
        .await
        .inspect_err(|e| {
            if already_exists(e) {
                *made = false;
            }
        })
}

pub(crate) async fn create(
    gce: &Gce,
    spec: &WorkstationSpec,
    provider_zone: Option<&str>,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CreateFailure> {
    let mut made = Made {
        project: gce.project().to_owned(),
        ..Default::default()
    };
    match create_steps(gce, spec, provider_zone, &mut made, cancel).await {
        Ok(obs) => Ok(obs),
        Err(error) => {
            tracing::debug!(name = %spec.name, error = %error, "create failed; undoing its steps");
            let (leftovers, undo_errors) = undo(gce, &made).await;
            Err(CreateFailure {
                error,
                leftovers,
                undo_errors,
            })
        }
    }
}

async fn create_steps(
    gce: &Gce,
    spec: &WorkstationSpec,
    provider_zone: Option<&str>,
    made: &mut Made,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    // `aienv-{name}-v6` must fit the 63 characters of a Compute Engine name.
    if !is_gce_name(&spec.name) || spec.name.len() > 54 {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "create workstation",
            format!(
                "name {:?} cannot name Compute Engine objects: lowercase letters, digits and \
hyphens, starting with a letter, at most 54 characters",
                spec.name
            ),
        ));
    }
    let place = network::choose(gce, spec, provider_zone, cancel).await?;
    made.zone = Some(place.zone.clone());
    let project = gce.project().to_owned();
    let zone = place.zone.clone();
    // Build the instance first: a spec it cannot express fails before anything
    // is created.
    let data_disk =
        (spec.data_disk_gb > 0).then(|| disk_path(&project, &zone, &data_disk_name(&spec.name)));
    let instance = instance_body(&project, spec, &place, data_disk.as_deref())?;
    super::orphans::sweep(gce, &spec.name, &zone, cancel).await;

    // 1. Firewall rules (none without allowed_cidrs).
    for rule in firewall::desired_rules(&spec.name, &spec.ports, &spec.allowed_cidrs) {
        let body = firewall::rule_body(&spec.name, &place.network, &rule);
        let rid = request_id();
        let mut maybe = false;
        let r = insert_tracked(
            gce,
            "firewalls.insert",
            &ErrorContext::none(),
            cancel,
            &mut maybe,
            || {
                gce.firewalls
                    .insert()
                    .set_project(&project)
                    .set_request_id(&rid)
                    .set_body(body.clone())
                    .send()
            },
        )
        .await;
        if maybe {
            made.rules.push(rule.name.clone());
        }
        r.map_err(|mut e| {
            if e.is_not_found() && place.subnetwork.is_none() {
                e.message = format!(
                    "{} (project {project} may have no `default` network: pass subnet_id)",
                    e.message
                );
            }
            e
        })?;
    }

    // 2. Data disk.
    if spec.data_disk_gb > 0 {
        let body = data_disk_body(&project, &zone, spec)?;
        let rid = request_id();
        let mut maybe = false;
        let r = insert_tracked(
            gce,
            "disks.insert",
            &ErrorContext::zone(&zone),
            cancel,
            &mut maybe,
            || {
                gce.disks
                    .insert()
                    .set_project(&project)
                    .set_zone(&zone)
                    .set_request_id(&rid)
                    .set_body(body.clone())
                    .send()
            },
        )
        .await;
        if maybe {
            made.data_disk = Some(data_disk_name(&spec.name));
        }
        r?;
    }

    // 3. The instance. Safe to retry: the requestId makes a repeated insert
    // return the first insert's Operation instead of creating again.
    let rid = request_id();
    let ctx = ErrorContext::machine(&zone, &spec.instance_type);
    let mut maybe = false;
    let r = insert_tracked(gce, "instances.insert", &ctx, cancel, &mut maybe, || {
        gce.instances
            .insert()
            .set_project(&project)
            .set_zone(&zone)
            .set_request_id(&rid)
            .set_body(instance.clone())
            .send()
    })
    .await;
    if maybe {
        made.instance = Some(spec.name.clone());
    }
    r?;
    let target = Target {
        project: project.clone(),
        zone: zone.clone(),
        name: spec.name.clone(),
    };

    // 4. Wait until it runs; stop it if it should not run.
    let mut inst = wait_state(gce, &target, Want::Running, cancel).await?;
    if !spec.running {
        stop(gce, &target, cancel).await?;
        inst = wait_state(gce, &target, Want::Stopped, cancel).await?;
    }
    observe(gce, &target, &inst, cancel).await
}

/// Undo a failed create in reverse order with a fresh cancellation token (the
/// caller's may be what stopped the create). Returns what is still there.
async fn undo(gce: &Gce, made: &Made) -> (Leftovers, Vec<CloudError>) {
    let cancel = CancellationToken::new();
    let mut left = Leftovers::default();
    let mut errors = Vec::new();
    let project = made.project.as_str();

    if let (Some(zone), Some(name)) = (&made.zone, &made.instance) {
        let t = Target {
            project: project.to_owned(),
            zone: zone.clone(),
            name: name.clone(),
        };
        if let Err(e) = delete_instance(gce, &t, &cancel).await {
            errors.push(e);
            left.instance_id = Some(t.path());
        }
    }
    if let (Some(zone), Some(disk)) = (&made.zone, &made.data_disk) {
        if left.instance_id.is_some() {
            // Still attached to the instance we could not remove: it goes with
            // the instance (autoDelete) or with the next delete.
            left.data_disk_id = Some(disk_path(project, zone, disk));
        } else if let Err(e) = delete_disk(gce, project, zone, disk, &cancel).await {
            errors.push(e);
            left.data_disk_id = Some(disk_path(project, zone, disk));
        }
    }
    for rule in &made.rules {
        if let Err(e) = firewall::delete(gce, project, rule, &cancel).await {
            errors.push(e);
            left.firewall_id
                .get_or_insert_with(|| firewall_path(project, rule));
        }
    }
    (left, errors)
}

// ---------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------

pub(crate) async fn update(
    gce: &Gce,
    current: &ObservedWorkstation,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    check_in_place(current, desired)?;
    let t = parse_locator(&current.locator)?;
    let inst = get_instance(gce, &t, cancel)
        .await?
        .ok_or_else(|| gone(&t))?;
    let name = if current.name.is_empty() {
        desired.name.clone()
    } else {
        current.name.clone()
    };

    // Labels (one setLabels with the current fingerprint).
    let mut want_labels = part_labels(&name, &desired.tags, KIND_INSTANCE)?;
    // Labels Google sets itself (goog-*) are not ours to remove.
    want_labels.extend(
        inst.labels
            .iter()
            .filter(|(k, _)| k.starts_with("goog-"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if want_labels != inst.labels {
        set_labels(gce, &t, &want_labels, cancel).await?;
    }

    // Bookkeeping metadata: auto-stop threshold (the idle watcher reads it each
    // minute, no restart needed), original tags, meta.
    let ours = bookkeeping_metadata(desired);
    let current_items = metadata_pairs(&inst);
    let merged = merge_metadata(&current_items, &ours);
    let as_map = |v: &[(String, String)]| v.iter().cloned().collect::<BTreeMap<_, _>>();
    if as_map(&merged) != as_map(&current_items) {
        set_metadata(gce, &t, &ours, cancel).await?;
    }

    // Firewall rules, in the instance's network.
    let network = inst
        .network_interfaces
        .first()
        .and_then(|n| n.network.as_deref())
        .map(|n| relative(n).to_owned())
        .unwrap_or_else(|| format!("projects/{}/global/networks/default", t.project));
    firewall::sync(
        gce,
        &t.project,
        &name,
        &network,
        &desired.ports,
        &desired.allowed_cidrs,
        cancel,
    )
    .await?;

    // Machine type and separately attached accelerators: only while stopped.
    let current_type = inst
        .machine_type
        .as_deref()
        .map(last_segment)
        .unwrap_or_default();
    let current_acc = attached_accelerators(gce, &t, &inst, cancel).await?;
    let want_acc = wanted_accelerators(desired);
    if current_type != desired.instance_type || current_acc != want_acc {
        ensure_running(gce, &t, false, cancel).await?;
        // N1 → A2/G2: drop the accelerators first (an accelerator-optimized
        // type refuses guestAccelerators); A2 → N1: type first, then attach.
        if want_acc.is_none() && current_acc.is_some() {
            set_accelerators(gce, &t, desired, cancel).await?;
        }
        if current_type != desired.instance_type {
            let rid = request_id();
            let mut body = InstancesSetMachineTypeRequest::new();
            body.machine_type = Some(machine_type_path(&t.zone, &desired.instance_type));
            let ctx = ErrorContext::machine(&t.zone, &desired.instance_type);
            instance_action(gce, "instances.setMachineType", &ctx, cancel, || {
                gce.instances
                    .set_machine_type()
                    .set_project(&t.project)
                    .set_zone(&t.zone)
                    .set_instance(&t.name)
                    .set_request_id(&rid)
                    .set_body(body.clone())
                    .send()
            })
            .await?;
        }
        if want_acc.is_some() && current_acc != want_acc {
            set_accelerators(gce, &t, desired, cancel).await?;
        }
    }

    // Disks: grow in place, or add the data disk.
    let (boot_path, data_path) = disk_paths(&inst, &name);
    for (path, want) in [
        (boot_path.as_deref(), desired.root_disk_gb),
        (data_path.as_deref(), desired.data_disk_gb),
    ] {
        if let Some((p, z, n)) = path.and_then(|p| parse_scoped(p, "zones", "disks")) {
            grow_disk(gce, p, z, n, want, cancel).await?;
        }
    }
    if data_path.is_none() && desired.data_disk_gb > 0 {
        add_data_disk(gce, &t, desired, cancel).await?;
    }

    // Running state last, so a type change ends started only if wanted.
    ensure_running(gce, &t, desired.running, cancel).await?;

    read(gce, &t, cancel).await?.ok_or_else(|| gone(&t))
}

/// The accelerators attached separately (N1 + T4...). Instances of
/// accelerator-optimized types (A2/A3/G2) list their built-in GPUs in
/// `guestAccelerators` too; those are the machine type's (`machineTypes.get`
/// names them) and not ours to change.
async fn attached_accelerators(
    gce: &Gce,
    t: &Target,
    inst: &Instance,
    cancel: &CancellationToken,
) -> Result<Option<(String, u32)>, CloudError> {
    let Some(found) = accelerators(inst) else {
        return Ok(None);
    };
    let machine_type = inst
        .machine_type
        .as_deref()
        .map(last_segment)
        .unwrap_or_default();
    let ctx = ErrorContext::machine(&t.zone, machine_type);
    let info = gce
        .call("machineTypes.get", &ctx, cancel, || {
            gce.machine_types
                .get()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_machine_type(machine_type)
                .send()
        })
        .await;
    let builtin = match info {
        Ok(info) => info.accelerators.first().map(|a| {
            (
                a.guest_accelerator_type
                    .as_deref()
                    .map(last_segment)
                    .unwrap_or_default()
                    .to_owned(),
                a.guest_accelerator_count
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(0),
            )
        }),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    Ok((builtin.as_ref() != Some(&found)).then_some(found))
}

/// setLabels with the instance's current label fingerprint. Each attempt reads
/// the fingerprint afresh, so a conditionNotMet (someone changed the labels
/// meanwhile) retried by the policy can succeed.
async fn set_labels(
    gce: &Gce,
    t: &Target,
    want: &HashMap<String, String>,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    let ctx = ErrorContext::zone(&t.zone);
    let op = gce
        .call("instances.setLabels", &ctx, cancel, || async {
            gce.note_extra_call();
            let inst = gce
                .instances
                .get()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_instance(&t.name)
                .send()
                .await?;
            let mut body = InstancesSetLabelsRequest::new();
            body.label_fingerprint = inst.label_fingerprint;
            body.labels = want.clone();
            gce.instances
                .set_labels()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_instance(&t.name)
                .set_request_id(&rid)
                .set_body(body)
                .send()
                .await
        })
        .await?;
    operations::wait(gce, op, "instances.setLabels", &ctx, cancel)
        .await
        .map(|_| ())
}

/// setMetadata replacing our `aienv-*` items and keeping everyone else's, with
/// the current fingerprint read in each attempt (see `set_labels`).
async fn set_metadata(
    gce: &Gce,
    t: &Target,
    ours: &BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    let ctx = ErrorContext::zone(&t.zone);
    let op = gce
        .call("instances.setMetadata", &ctx, cancel, || async {
            gce.note_extra_call();
            let inst = gce
                .instances
                .get()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_instance(&t.name)
                .send()
                .await?;
            let merged = merge_metadata(&metadata_pairs(&inst), ours);
            let body = to_metadata(&merged, inst.metadata.as_ref());
            gce.instances
                .set_metadata()
                .set_project(&t.project)
                .set_zone(&t.zone)
                .set_instance(&t.name)
                .set_request_id(&rid)
                .set_body(body)
                .send()
                .await
        })
        .await?;
    operations::wait(gce, op, "instances.setMetadata", &ctx, cancel)
        .await
        .map(|_| ())
}

/// setMachineResources: the separately attached accelerators (none for
/// accelerator-optimized types). The instance must be stopped.
async fn set_accelerators(
    gce: &Gce,
    t: &Target,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let rid = request_id();
    let mut body = InstancesSetMachineResourcesRequest::new();
    body.guest_accelerators = accelerator_configs(&t.project, &t.zone, desired);
    let ctx = ErrorContext::machine(&t.zone, &desired.instance_type);
    instance_action(gce, "instances.setMachineResources", &ctx, cancel, || {
        gce.instances
            .set_machine_resources()
            .set_project(&t.project)
            .set_zone(&t.zone)
            .set_instance(&t.name)
            .set_request_id(&rid)
            .set_body(body.clone())
            .send()
    })
    .await
}

/// disks.resize when the disk is smaller than wanted (disks only grow).
async fn grow_disk(
    gce: &Gce,
    project: &str,
    zone: &str,
    name: &str,
    want_gb: u32,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let Some(disk) = get_disk(gce, project, zone, name, cancel).await? else {
        return Ok(());
    };
    let have = size_gb(Some(&disk));
    if have == 0 || want_gb <= have {
        return Ok(());
    }
    let rid = request_id();
    let mut body = DisksResizeRequest::new();
    body.size_gb = Some(to_i64_gb(want_gb));
    gce.mutate("disks.resize", &ErrorContext::zone(zone), cancel, || {
        gce.disks
            .resize()
            .set_project(project)
            .set_zone(zone)
            .set_disk(name)
            .set_request_id(&rid)
            .set_body(body.clone())
            .send()
    })
    .await
    .map(|_| ())
}

/// Create the data disk in the instance's zone and attach it with autoDelete.
/// If attaching fails the new disk is deleted.
async fn add_data_disk(
    gce: &Gce,
    t: &Target,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let body = data_disk_body(&t.project, &t.zone, desired)?;
    let disk_name = data_disk_name(&t.name);
    let rid = request_id();
    gce.mutate("disks.insert", &ErrorContext::zone(&t.zone), cancel, || {
        gce.disks
            .insert()
            .set_project(&t.project)
            .set_zone(&t.zone)
            .set_request_id(&rid)
            .set_body(body.clone())
            .send()
    })
    .await?;
    let mut attach = AttachedDisk::new();
    attach.source = Some(disk_path(&t.project, &t.zone, &disk_name));
    attach.device_name = Some(DATA_DEVICE.to_owned());
    attach.auto_delete = Some(true);
    attach.boot = Some(false);
    attach.r#type = Some(attached_disk::Type::from("PERSISTENT"));
    let rid = request_id();
    let attached = gce
        .mutate(
            "instances.attachDisk",
            &ErrorContext::zone(&t.zone),
            cancel,
            || {
                gce.instances
                    .attach_disk()
                    .set_project(&t.project)
                    .set_zone(&t.zone)
                    .set_instance(&t.name)
                    .set_request_id(&rid)
                    .set_body(attach.clone())
                    .send()
            },
        )
        .await;
    if let Err(e) = attached {
        // Do not leave an unattached disk behind.
        let _ = delete_disk(
            gce,
            &t.project,
            &t.zone,
            &disk_name,
            &CancellationToken::new(),
        )
        .await;
        return Err(e);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------

/// The parts of a workstation to delete.
#[derive(Debug, Default)]
struct Parts {
    instance: Option<Target>,
    /// (project, zone, name)
    data_disk: Option<(String, String, String)>,
    /// (project, rule names)
    rules: Option<(String, [String; 2])>,
}

pub(crate) async fn delete(
    gce: &Gce,
    current: &ObservedWorkstation,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let t = parse_locator(&current.locator)?;
    let name = if current.name.is_empty() {
        t.name.clone()
    } else {
        current.name.clone()
    };
    let rules = current
        .firewall_id
        .as_deref()
        .and_then(firewall::rule_names_from_id)
        .or_else(|| Some((t.project.clone(), firewall::rule_names(&name))));
    let data_disk = current
        .data_disk_id
        .as_deref()
        .and_then(|d| parse_scoped(d, "zones", "disks"))
        .map(|(p, z, n)| (p.to_owned(), z.to_owned(), n.to_owned()));
    delete_parts(
        gce,
        Parts {
            instance: Some(t),
            data_disk,
            rules,
        },
        cancel,
    )
    .await
}

pub(crate) async fn delete_leftovers(
    gce: &Gce,
    leftovers: &Leftovers,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let instance = leftovers
        .instance_id
        .as_deref()
        .map(parse_locator)
        .transpose()?;
    let data_disk = leftovers
        .data_disk_id
        .as_deref()
        .and_then(|d| parse_scoped(d, "zones", "disks"))
        .map(|(p, z, n)| (p.to_owned(), z.to_owned(), n.to_owned()));
    let rules = leftovers
        .firewall_id
        .as_deref()
        .and_then(firewall::rule_names_from_id);
    delete_parts(
        gce,
        Parts {
            instance,
            data_disk,
            rules,
        },
        cancel,
    )
    .await
}

/// Instance (with its autoDelete disks) → data disk, if it outlived the
/// instance → firewall rules. Parts already gone are fine. After the instance,
/// every part is attempted; the first error is returned.
async fn delete_parts(
    gce: &Gce,
    parts: Parts,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    if let Some(t) = &parts.instance {
        delete_instance(gce, t, cancel).await?;
    }
    let mut first_error: Option<CloudError> = None;
    if let Some((p, z, n)) = &parts.data_disk {
        if let Err(e) = delete_disk(gce, p, z, n, cancel).await {
            first_error.get_or_insert(e);
        }
    }
    if let Some((p, names)) = &parts.rules {
        if let Err(e) = firewall::delete_all(gce, p, names, cancel).await {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec() -> WorkstationSpec {
        WorkstationSpec {
            name: "box".into(),
            region: "us-central1".into(),
            zone: None,
            instance_type: "n1-standard-8".into(),
            gpu_model: "T4".into(),
            gpu_count: 1,
            accelerator_type: Some("nvidia-tesla-t4".into()),
            image_id: "projects/deeplearning-platform-release/global/images/pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260416".into(),
            root_disk_gb: 200,
            data_disk_gb: 0,
            spot: false,
            running: true,
            public_ip: true,
            allowed_cidrs: vec!["10.0.0.0/8".parse::<IpNet>().unwrap_or_else(|_| unreachable!())],
            ports: vec![22, 8888],
            ssh_public_key: Some("ssh-ed25519 AAAAC3Nza test@example".into()),
            subnet_id: None,
            auto_stop_idle_minutes: 30,
            user_data: Some("echo hi".into()),
            tags: map(&[("Team", "ML Platform")]),
            meta: map(&[
                ("aienv-gpu", "t4"),
                ("aienv-image", "pytorch"),
                ("aienv-name", "hijack"),
            ]),
        }
    }

    fn place() -> Placement {
        Placement {
            zone: "us-central1-a".into(),
            network: "projects/p/global/networks/default".into(),
            subnetwork: None,
        }
    }

    fn items(inst: &Instance) -> BTreeMap<String, String> {
        metadata_pairs(inst).into_iter().collect()
    }

    #[test]
    fn hyperdisk_only_shapes_get_hyperdisk() {
        assert!(disk_type("p", "z", "a4-highgpu-8g").ends_with("/hyperdisk-balanced"));
        assert!(disk_type("p", "z", "a3-ultragpu-8g").ends_with("/hyperdisk-balanced"));
        assert!(disk_type("p", "z", "n1-standard-4").ends_with("/pd-balanced"));
    }

    #[test]
    fn locators() {
        let t = Target {
            project: "my-proj".into(),
            zone: "us-central1-a".into(),
            name: "box".into(),
        };
        assert_eq!(t.locator(), "my-proj/us-central1-a/box");
        assert_eq!(parse_locator(&t.locator()).ok(), Some(t.clone()));
        assert_eq!(
            parse_locator("projects/my-proj/zones/us-central1-a/instances/box").ok(),
            Some(t.clone())
        );
        assert_eq!(
            parse_locator("us-central1/projects/my-proj/zones/us-central1-a/instances/box").ok(),
            Some(t.clone())
        );
        assert_eq!(
            parse_locator("example.com:proj/europe-west4-b/gpu-1")
                .ok()
                .map(|t| t.project),
            Some("example.com:proj".to_string())
        );
        for bad in [
            "",
            "box",
            "us-central1/i-0123",
            "p/us-central1-a",
            "p/us-central1-a/Box",
            "p/us-central1-a/box-",
            "p//box",
            "P/us-central1-a/box",
            "p/zone/box/extra",
            "p/us-central1-a/1box",
            "us-east-1/i-0123456789abcdef0",
        ] {
            assert_eq!(
                parse_locator(bad).err().map(|e| e.kind),
                Some(ErrorKind::InvalidInput),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn n1_instance_gets_accelerators_and_terminate_on_maintenance() {
        let inst = instance_body("p", &spec(), &place(), None);
        let Ok(inst) = inst else {
            panic!("body must build");
        };
        assert_eq!(
            inst.machine_type.as_deref(),
            Some("zones/us-central1-a/machineTypes/n1-standard-8")
        );
        assert_eq!(inst.guest_accelerators.len(), 1);
        assert_eq!(
            inst.guest_accelerators[0].accelerator_type.as_deref(),
            Some("projects/p/zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4")
        );
        assert_eq!(inst.guest_accelerators[0].accelerator_count, Some(1));
        let sched = inst.scheduling.clone().unwrap_or_default();
        assert_eq!(
            sched.on_host_maintenance.as_ref().and_then(|m| m.name()),
            Some("TERMINATE")
        );
        assert_eq!(sched.automatic_restart, Some(true));
        assert_eq!(sched.provisioning_model, None);
        assert_eq!(
            inst.tags.as_ref().map(|t| t.items.clone()),
            Some(vec!["aienv-box".to_string()])
        );
    }

    #[test]
    fn a2_instance_has_no_accelerators_and_spot_fields() {
        let mut s = spec();
        s.instance_type = "a2-highgpu-1g".into();
        s.accelerator_type = None;
        s.spot = true;
        let inst = instance_body("p", &s, &place(), None).unwrap_or_default();
        assert!(inst.guest_accelerators.is_empty());
        let sched = inst.scheduling.clone().unwrap_or_default();
        assert_eq!(
            sched.provisioning_model.as_ref().and_then(|m| m.name()),
            Some("SPOT")
        );
        assert_eq!(
            sched
                .instance_termination_action
                .as_ref()
                .and_then(|m| m.name()),
            Some("STOP")
        );
        assert_eq!(sched.automatic_restart, Some(false));
        assert_eq!(
            sched.on_host_maintenance.as_ref().and_then(|m| m.name()),
            Some("TERMINATE")
        );
    }

    #[test]
    fn disks_network_and_public_ip() {
        let mut s = spec();
        s.data_disk_gb = 500;
        s.public_ip = false;
        let mut p = place();
        p.subnetwork = Some("projects/p/regions/us-central1/subnetworks/ml".into());
        let inst = instance_body(
            "p",
            &s,
            &p,
            Some("projects/p/zones/us-central1-a/disks/box-data"),
        )
        .unwrap_or_default();
        assert_eq!(inst.disks.len(), 2);
        let boot = &inst.disks[0];
        assert_eq!(boot.boot, Some(true));
        assert_eq!(boot.auto_delete, Some(true));
        let params = boot.initialize_params.clone().unwrap_or_default();
        assert_eq!(params.disk_size_gb, Some(200));
        assert_eq!(params.source_image.as_deref(), Some(s.image_id.as_str()));
        assert_eq!(
            params.disk_type.as_deref(),
            Some("projects/p/zones/us-central1-a/diskTypes/pd-balanced")
        );
        let data = &inst.disks[1];
        assert_eq!(data.auto_delete, Some(true));
        assert_eq!(data.device_name.as_deref(), Some(DATA_DEVICE));
        let nic = &inst.network_interfaces[0];
        assert!(nic.access_configs.is_empty());
        assert_eq!(
            nic.subnetwork.as_deref(),
            Some("projects/p/regions/us-central1/subnetworks/ml")
        );
        assert_eq!(nic.network, None);

        let inst = instance_body("p", &spec(), &place(), None).unwrap_or_default();
        let nic = &inst.network_interfaces[0];
        assert_eq!(nic.access_configs.len(), 1);
        assert_eq!(
            nic.access_configs[0].r#type.as_ref().and_then(|t| t.name()),
            Some("ONE_TO_ONE_NAT")
        );
        assert_eq!(
            nic.network.as_deref(),
            Some("projects/p/global/networks/default")
        );
    }

    #[test]
    fn labels_and_metadata() {
        let inst = instance_body("p", &spec(), &place(), None).unwrap_or_default();
        let labels: BTreeMap<String, String> = inst.labels.clone().into_iter().collect();
        assert_eq!(
            labels,
            map(&[
                ("team", "ml_platform"),
                ("aienv-name", "box"),
                ("aienv-kind", "workstation")
            ])
        );
        let md = items(&inst);
        assert_eq!(
            md.get("ssh-keys").map(String::as_str),
            Some("ubuntu:ssh-ed25519 AAAAC3Nza test@example")
        );
        assert_eq!(md.get(TAG_AUTO_STOP).map(String::as_str), Some("30"));
        assert_eq!(md.get("aienv-gpu").map(String::as_str), Some("t4"));
        assert_eq!(md.get("aienv-image").map(String::as_str), Some("pytorch"));
        // meta cannot override our keys.
        assert!(!md.contains_key("aienv-name"));
        assert_eq!(
            labels::decode_tags(md.get(META_TAGS).map(String::as_str)),
            map(&[("Team", "ML Platform")])
        );
        let script = md.get("startup-script").cloned().unwrap_or_default();
        assert!(script.contains("instance/attributes/aienv-auto-stop-idle-minutes"));
        assert!(script.contains("echo hi"));
    }

    #[test]
    fn metadata_merge_keeps_others_and_replaces_ours() {
        let current = vec![
            ("startup-script".to_string(), "x".to_string()),
            ("aienv-image".to_string(), "old".to_string()),
            ("aienv-auto-stop-idle-minutes".to_string(), "30".to_string()),
            ("enable-oslogin".to_string(), "TRUE".to_string()),
        ];
        let ours = map(&[("aienv-auto-stop-idle-minutes", "60")]);
        assert_eq!(
            merge_metadata(&current, &ours),
            vec![
                ("startup-script".to_string(), "x".to_string()),
                ("enable-oslogin".to_string(), "TRUE".to_string()),
                ("aienv-auto-stop-idle-minutes".to_string(), "60".to_string()),
            ]
        );
    }

    #[test]
    fn too_many_tags_are_refused() {
        let mut s = spec();
        s.tags = (0..63)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            instance_body("p", &s, &place(), None).err().map(|e| e.kind),
            Some(ErrorKind::InvalidInput)
        );
    }

    fn observed() -> ObservedWorkstation {
        ObservedWorkstation {
            locator: "p/us-central1-a/box".into(),
            name: "box".into(),
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
            instance_id: "projects/p/zones/us-central1-a/instances/box".into(),
            instance_type: "n1-standard-4".into(),
            image_id: spec().image_id,
            state: MachineState::Running,
            spot: false,
            public_ip: None,
            private_ip: None,
            has_public_ip: true,
            firewall_id: None,
            allowed_cidrs: vec![],
            ports: vec![22],
            root_disk_gb: 200,
            data_disk_id: None,
            data_disk_gb: 0,
            subnet_id: Some("projects/p/regions/us-central1/subnetworks/default".into()),
            ssh_key_name: None,
            auto_stop_idle_minutes: 0,
            tags: BTreeMap::new(),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn in_place_changes_pass_and_replacements_are_refused() {
        let mut s = spec();
        s.root_disk_gb = 300;
        s.data_disk_gb = 100;
        s.running = false;
        s.subnet_id = Some(
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/subnetworks/default"
                .into(),
        );
        assert!(check_in_place(&observed(), &s).is_ok());
        let cases: [fn(&mut WorkstationSpec); 7] = [
            |s| s.root_disk_gb = 50,
            |s| s.spot = true,
            |s| s.image_id = "projects/p/global/images/other".into(),
            |s| s.region = "us-east1".into(),
            |s| s.zone = Some("us-central1-b".into()),
            |s| s.subnet_id = Some("projects/p/regions/us-central1/subnetworks/ml".into()),
            |s| s.public_ip = false,
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut s = spec();
            change(&mut s);
            let kind = check_in_place(&observed(), &s).err().map(|e| e.kind);
            assert_eq!(kind, Some(ErrorKind::InvalidInput), "case {i}");
        }
    }

    #[test]
    fn state_mapping() {
        let st = |s: &str| {
            let mut i = Instance::new();
            i.status = Some(s.into());
            machine_state(&i)
        };
        assert_eq!(st("PROVISIONING"), MachineState::Pending);
        assert_eq!(st("STAGING"), MachineState::Pending);
        assert_eq!(st("RUNNING"), MachineState::Running);
        assert_eq!(st("STOPPING"), MachineState::Stopping);
        assert_eq!(st("SUSPENDING"), MachineState::Stopping);
        assert_eq!(st("TERMINATED"), MachineState::Stopped);
        assert_eq!(st("SUSPENDED"), MachineState::Stopped);
    }

    #[test]
    fn undo_decisions() {
        let already = CloudError::new(ErrorKind::Conflict, "x", "exists");
        assert!(already_exists(&already));
        assert!(!ambiguous(&already));
        let timeout = CloudError::new(ErrorKind::Timeout, "x", "slow");
        assert!(ambiguous(&timeout));
        let quota = CloudError::new(ErrorKind::Quota, "x", "none");
        assert!(!ambiguous(&quota) && !already_exists(&quota));
    }
}
