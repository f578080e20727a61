//! Workstation lifecycle on EC2: create (steps with undo), read, update in place,
//! delete, and cleanup of what a failed create left behind.
//!
//! A workstation is one instance plus the parts made for it: a security group
//! (`aienv-kind=workstation-firewall`), an optional imported key pair
//! (`workstation-key`) and its EBS volumes (`workstation-disk`; root and `/dev/sdf`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, EbsInstanceBlockDeviceSpecification,
    Filter, HttpTokensState, Instance, InstanceBlockDeviceMappingSpecification,
    InstanceInterruptionBehavior, InstanceLifecycleType, InstanceMarketOptionsRequest,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceMetadataTagsState,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, MarketType,
    ResourceType, SecurityGroup, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
    Volume, VolumeAttachmentState, VolumeState, VolumeType,
};
use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use super::errors::{classify, ErrorContext};
use super::{firewall, images, network};
use crate::cloud::bootstrap::{boot_script, MetadataSource};
use crate::cloud::retry::wait_for;
use crate::cloud::{CloudError, CreateFailure, ErrorKind};
use crate::spec::{
    Leftovers, MachineState, ObservedWorkstation, WorkstationSpec, TAG_AUTO_STOP, TAG_KIND,
    TAG_NAME,
};

const KIND_INSTANCE: &str = "workstation";
const KIND_FIREWALL: &str = "workstation-firewall";
const KIND_KEY: &str = "workstation-key";
const KIND_DISK: &str = "workstation-disk";
/// AWS-only bookkeeping: whether the instance was launched with a public address.
/// A stopped instance has no public IP and EC2 does not report the launch-time
/// `AssociatePublicIpAddress` anywhere that survives a stop (the ENI attribute
/// `associatePublicIpAddress` only reflects later changes and is missing from
/// older accounts' answers and from moto), so we record it ourselves.
const TAG_PUBLIC_IP: &str = "aienv-public-ip";
/// Device name of the data disk. EC2 reports the name we asked for, even on Nitro
/// types where the guest sees an NVMe device.
const DATA_DEVICE: &str = "/dev/sdf";
/// Bound on every state wait (launch, stop, start, terminate, volume states).
const WAIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------
// Locator and tags (pure)
// ---------------------------------------------------------------------------

/// `"{region}/{instance_id}"`.
pub(crate) fn locator(region: &str, instance_id: &str) -> String {
    format!("{region}/{instance_id}")
}

/// Split a locator into region and instance id, checking both look right.
pub(crate) fn parse_locator(locator: &str) -> Result<(&str, &str), CloudError> {
    let bad = || {
        CloudError::new(
            ErrorKind::InvalidInput,
            "parse workstation id",
            format!(
                "{locator:?} is not an AWS workstation id: expected \"<region>/i-<hex>\", e.g. \
\"us-east-1/i-0123456789abcdef0\""
            ),
        )
    };
    let (region, id) = locator.split_once('/').ok_or_else(bad)?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let id_ok = id
        .strip_prefix("i-")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if region_ok && id_ok {
        Ok((region, id))
    } else {
        Err(bad())
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// User tags plus our bookkeeping tags for one part of a workstation.
fn part_tags(
    user: &BTreeMap<String, String>,
    name: &str,
    kind: &str,
    extra: &[(&str, String)],
) -> Vec<Tag> {
    let mut tags: Vec<Tag> = user
        .iter()
        .filter(|(k, _)| !is_bookkeeping(k))
        .map(|(k, v)| tag(k, v))
        .collect();
    tags.push(tag(TAG_NAME, name));
    tags.push(tag(TAG_KIND, kind));
    for (k, v) in extra {
        tags.push(tag(k, v));
    }
    tags
}

fn tag_spec(resource: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags))
        .build()
}

/// Tags that are not the user's: ours (`aienv-*`) and AWS's own (`aws:*`, which
/// nobody can set or remove).
fn is_bookkeeping(key: &str) -> bool {
    key.starts_with("aienv-") || key.starts_with("aws:")
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// All `aienv-*` tags (full keys), ours and the resource's `meta`.
fn aienv_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
        .filter(|(k, _)| k.starts_with("aienv-"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Bookkeeping keys this backend owns; a resource's `meta` cannot override them.
fn is_reserved(key: &str) -> bool {
    matches!(key, TAG_NAME | TAG_KIND | TAG_AUTO_STOP | TAG_PUBLIC_IP)
}

/// The resource's `meta` tags to store: `aienv-*` keys only, never our own.
fn meta_tags(meta: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    meta.iter()
        .filter(|(k, _)| k.starts_with("aienv-") && !is_reserved(k))
}

fn user_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
        .filter(|(k, _)| !is_bookkeeping(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What to set and what to remove to go from `current` to `desired` user tags.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TagDiff {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl TagDiff {
    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

pub(crate) fn tag_diff(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> TagDiff {
    let set = desired
        .iter()
        .filter(|(k, v)| !is_bookkeeping(k) && current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !is_bookkeeping(k) && !desired.contains_key(*k))
        .cloned()
        .collect();
    TagDiff { set, remove }
}

/// Like `tag_diff`, for our own `aienv-*` keys on the instance.
fn bookkeeping_diff(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> TagDiff {
    TagDiff {
        set: desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        remove: current
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect(),
    }
}

fn hex6() -> String {
    format!("{:06x}", fastrand::u32(..0x0100_0000))
}

fn to_i32(gb: u32, what: &str) -> Result<i32, CloudError> {
    i32::try_from(gb).map_err(|_| {
        CloudError::new(
            ErrorKind::InvalidInput,
            "check disk size",
            format!("{what} of {gb} GB is too large"),
        )
    })
}

fn machine_state(inst: &Instance) -> MachineState {
    match inst.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Pending) => MachineState::Pending,
        Some(InstanceStateName::Running) => MachineState::Running,
        Some(InstanceStateName::Stopping) => MachineState::Stopping,
        Some(InstanceStateName::Stopped) => MachineState::Stopped,
        Some(InstanceStateName::ShuttingDown) | Some(InstanceStateName::Terminated) => {
            MachineState::Terminated
        }
        // Unknown future states: treat as in transition.
        _ => MachineState::Pending,
    }
}

/// Whether the instance was launched with a public address.
///
/// A public IP now settles it, and a running instance without one was not given
/// one (EC2 keeps an auto-assigned address for as long as the instance runs).
/// A stopped instance has released its address, so we use the tag written at
/// launch; without it (an instance we did not launch) we cannot tell: false.
fn has_public_ip(inst: &Instance) -> bool {
    if inst.public_ip_address().is_some_and(|ip| !ip.is_empty()) {
        return true;
    }
    if machine_state(inst) == MachineState::Running {
        return false;
    }
    tag_value(inst.tags(), TAG_PUBLIC_IP) == Some("true")
}

/// All security groups on the instance and its network interfaces.
fn group_ids(inst: &Instance) -> Vec<String> {
    let mut ids: BTreeSet<String> = inst
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    // moto (and EC2 for groups given per network interface) lists them on the ENI.
    for eni in inst.network_interfaces() {
        ids.extend(
            eni.groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned)),
        );
    }
    ids.into_iter().collect()
}

fn our_group(groups: &[SecurityGroup]) -> Option<&SecurityGroup> {
    groups
        .iter()
        .find(|g| tag_value(g.tags(), TAG_KIND) == Some(KIND_FIREWALL))
}

fn volume_on(inst: &Instance, device: &str) -> Option<String> {
    inst.block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(device))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_id())
        .map(str::to_owned)
}

fn root_volume(inst: &Instance) -> Option<String> {
    volume_on(inst, inst.root_device_name().unwrap_or("/dev/sda1"))
}

fn size_of(volumes: &[Volume], id: Option<&str>) -> u32 {
    id.and_then(|id| volumes.iter().find(|v| v.volume_id() == Some(id)))
        .and_then(|v| v.size())
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0)
}

/// Refuse what the plan must turn into a replacement.
pub(crate) fn check_in_place(
    current: &ObservedWorkstation,
    desired: &WorkstationSpec,
) -> Result<(), CloudError> {
    crate::cloud::check_in_place(current, desired, &|a, b| a == b)
}

/// A create step whose outcome is unknown: the request may have been carried
/// out even though we got no answer (timeout, 5xx, cancelled mid-flight).
fn ambiguous(e: &CloudError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Timeout | ErrorKind::Unexpected | ErrorKind::Cancelled
    )
}

// ---------------------------------------------------------------------------
// Instance helpers
// ---------------------------------------------------------------------------

async fn describe_instance(
    ec2: &Ec2,
    id: &str,
    cancel: &CancellationToken,
) -> Result<Option<Instance>, CloudError> {
    let out = ec2
        .call("DescribeInstances", cancel, || {
            ec2.sdk().describe_instances().instance_ids(id).send()
        })
        .await;
    match out {
        Ok(out) => Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
            .cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why an instance ended up terminated while we waited for it to run.
fn launch_failure(id: &str, inst: &Instance) -> CloudError {
    let reason = inst.state_reason();
    let code = reason.and_then(|r| r.code());
    let message = reason
        .and_then(|r| r.message())
        .unwrap_or("no reason given");
    let (kind, _) = classify(code, None);
    let kind = if kind == ErrorKind::NotFound {
        ErrorKind::Unexpected
    } else {
        kind
    };
    let mut e = CloudError::new(
        kind,
        "RunInstances",
        format!("instance {id} was terminated while starting: {message}"),
    );
    e.code = code.map(str::to_owned);
    e
}

/// Poll until the instance is running (`want_running`) or stopped. Fails if it
/// terminates meanwhile. One DescribeInstances per poll.
async fn wait_instance(
    ec2: &Ec2,
    id: &str,
    want_running: bool,
    cancel: &CancellationToken,
) -> Result<Instance, CloudError> {
    let target = if want_running { "running" } else { "stopped" };
    let what = format!("wait for {id} to be {target}");
    wait_for(&what, WAIT_TIMEOUT, cancel, || async move {
        // Right after RunInstances the id can be unknown for a moment (eventual
        // consistency): keep polling.
        let Some(inst) = describe_instance(ec2, id, cancel).await? else {
            return Ok(None);
        };
        match machine_state(&inst) {
            MachineState::Running if want_running => Ok(Some(inst)),
            MachineState::Stopped if !want_running => Ok(Some(inst)),
            MachineState::Terminated => Err(launch_failure(id, &inst)),
            _ => Ok(None),
        }
    })
    .await
}

/// Poll until the instance is running or stopped (not in transition).
async fn wait_stable(
    ec2: &Ec2,
    id: &str,
    cancel: &CancellationToken,
) -> Result<Instance, CloudError> {
    let what = format!("wait for {id} to finish starting or stopping");
    wait_for(&what, WAIT_TIMEOUT, cancel, || async move {
        let Some(inst) = describe_instance(ec2, id, cancel).await? else {
            return Err(gone(id));
        };
        match machine_state(&inst) {
            MachineState::Running | MachineState::Stopped => Ok(Some(inst)),
            MachineState::Terminated => Err(gone(id)),
            _ => Ok(None),
        }
    })
    .await
}

fn gone(id: &str) -> CloudError {
    CloudError::new(
        ErrorKind::NotFound,
        "DescribeInstances",
        format!("instance {id} no longer exists (terminated)"),
    )
}

/// Start or stop the instance so it ends up running or stopped, and wait.
async fn ensure_running(
    ec2: &Ec2,
    id: &str,
    running: bool,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let inst = wait_stable(ec2, id, cancel).await?;
    match (machine_state(&inst), running) {
        (MachineState::Stopped, true) => {
            // A start needs capacity like a launch: name type and zone if it fails.
            let ctx = ErrorContext {
                region: ec2.region(),
                instance_type: inst.instance_type().map(|t| t.as_str()),
                zone: inst.placement().and_then(|p| p.availability_zone()),
            };
            ec2.call_with("StartInstances", &ctx, ec2.policy(), cancel, || {
                ec2.sdk().start_instances().instance_ids(id).send()
            })
            .await?;
        }
        (MachineState::Running, false) => {
            ec2.call("StopInstances", cancel, || {
                ec2.sdk().stop_instances().instance_ids(id).send()
            })
            .await?;
        }
        _ => return Ok(()),
    }
    wait_instance(ec2, id, running, cancel).await.map(|_| ())
}

/// Terminate and wait until terminated. An instance already gone is fine. A
/// persistent spot request is cancelled first, else EC2 would launch a
/// replacement instance as soon as this one terminates.
async fn terminate(ec2: &Ec2, id: &str, cancel: &CancellationToken) -> Result<(), CloudError> {
    let Some(inst) = describe_instance(ec2, id, cancel).await? else {
        return Ok(());
    };
    if inst.state().and_then(|s| s.name()) == Some(&InstanceStateName::Terminated) {
        return Ok(());
    }
    if let Some(request) = inst.spot_instance_request_id() {
        let r = ec2
            .call("CancelSpotInstanceRequests", cancel, || {
                ec2.sdk()
                    .cancel_spot_instance_requests()
                    .spot_instance_request_ids(request)
                    .send()
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let r = ec2
        .call("TerminateInstances", cancel, || {
            ec2.sdk().terminate_instances().instance_ids(id).send()
        })
        .await;
    match r {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    let what = format!("wait for {id} to be terminated");
    wait_for(&what, WAIT_TIMEOUT, cancel, || async move {
        Ok(match describe_instance(ec2, id, cancel).await? {
            None => Some(()),
            Some(i) if i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Terminated) => {
                Some(())
            }
            Some(_) => None,
        })
    })
    .await
}

// ---------------------------------------------------------------------------
// Volumes, keys
// ---------------------------------------------------------------------------

/// Describe volumes in one call; ids that no longer exist are left out.
async fn describe_volumes(
    ec2: &Ec2,
    ids: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<Volume>, CloudError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = ids.to_vec();
    while !ids.is_empty() {
        let r = ec2
            .call("DescribeVolumes", cancel, || {
                ec2.sdk()
                    .describe_volumes()
                    .set_volume_ids(Some(ids.clone()))
                    .send()
            })
            .await;
        match r {
            Ok(out) => return Ok(out.volumes().to_vec()),
            // EC2 fails the whole call for one missing id and names it.
            Err(e) if e.is_not_found() => {
                let before = ids.len();
                ids.retain(|id| !e.message.contains(id.as_str()));
                if ids.len() == before {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Vec::new())
}

/// Delete a volume if it still exists, waiting for it to detach first (after
/// its instance terminated). A volume already deleting is fine.
pub(crate) async fn delete_volume(
    ec2: &Ec2,
    id: &str,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let ids = [id.to_owned()];
    let what = format!("wait for volume {id} to detach");
    let present = wait_for(&what, WAIT_TIMEOUT, cancel, || async {
        let vols = describe_volumes(ec2, &ids, cancel).await?;
        Ok(match vols.first().and_then(|v| v.state()) {
            None | Some(VolumeState::Deleting) | Some(VolumeState::Deleted) => Some(false),
            Some(VolumeState::InUse) | Some(VolumeState::Creating) => None,
            Some(_) => Some(true),
        })
    })
    .await?;
    if !present {
        return Ok(());
    }
    match ec2
        .call("DeleteVolume", cancel, || {
            ec2.sdk().delete_volume().volume_id(id).send()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete one of our key pairs. EC2 answers success for a missing key.
pub(crate) async fn delete_key(
    ec2: &Ec2,
    name: &str,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    match ec2
        .call("DeleteKeyPair", cancel, || {
            ec2.sdk().delete_key_pair().key_name(name).send()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Only key pairs we imported are ours to delete.
fn is_our_key(name: &str) -> bool {
    name.starts_with("aienv-")
}

// ---------------------------------------------------------------------------
// Read
// ---------------------------------------------------------------------------

pub(crate) async fn read(
    ec2: &Ec2,
    locator: &str,
    cancel: &CancellationToken,
) -> Result<Option<ObservedWorkstation>, CloudError> {
    let (_, id) = parse_locator(locator)?;
    let Some(inst) = describe_instance(ec2, id, cancel).await? else {
        return Ok(None);
    };
    if machine_state(&inst) == MachineState::Terminated {
        return Ok(None);
    }
    observe(ec2, &inst, cancel).await.map(Some)
}

/// Build the observation of a described instance: one DescribeSecurityGroups for
/// its groups and one DescribeVolumes for root and data volumes.
async fn observe(
    ec2: &Ec2,
    inst: &Instance,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    let id = inst.instance_id().unwrap_or_default().to_owned();

    let groups = firewall::describe(ec2, &group_ids(inst), cancel).await?;
    let ours = our_group(&groups);
    let (ports, allowed_cidrs) = match ours {
        Some(g) => firewall::summarize(&firewall::rules_of(g)),
        None => (Vec::new(), Vec::new()),
    };

    let root_id = root_volume(inst);
    let data_id = volume_on(inst, DATA_DEVICE);
    let wanted: Vec<String> = root_id.iter().chain(data_id.iter()).cloned().collect();
    let volumes = describe_volumes(ec2, &wanted, cancel).await?;

    let tags = inst.tags();
    Ok(ObservedWorkstation {
        locator: locator(ec2.region(), &id),
        name: tag_value(tags, TAG_NAME).unwrap_or_default().to_owned(),
        region: ec2.region().to_owned(),
        zone: inst
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        instance_type: inst
            .instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        image_id: inst.image_id().unwrap_or_default().to_owned(),
        state: machine_state(inst),
        spot: inst.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
        public_ip: inst
            .public_ip_address()
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned),
        private_ip: inst.private_ip_address().map(str::to_owned),
        has_public_ip: has_public_ip(inst),
        firewall_id: ours.and_then(|g| g.group_id()).map(str::to_owned),
        allowed_cidrs,
        ports,
        root_disk_gb: size_of(&volumes, root_id.as_deref()),
        data_disk_gb: size_of(&volumes, data_id.as_deref()),
        // Only report a data disk that still exists.
        data_disk_id: data_id.filter(|d| volumes.iter().any(|v| v.volume_id() == Some(d))),
        subnet_id: inst.subnet_id().map(str::to_owned),
        ssh_key_name: inst.key_name().map(str::to_owned),
        auto_stop_idle_minutes: tag_value(tags, TAG_AUTO_STOP)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        tags: user_tags(tags),
        meta: aienv_tags(tags),
        instance_id: id,
    })
}

// ---------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------

/// What a create made so far, for undo.
#[derive(Debug, Default)]
struct Made {
    vpc_id: Option<String>,
    /// Set before CreateSecurityGroup, so an unanswered create can be found by name.
    group_name: Option<String>,
    group_id: Option<String>,
    group_unknown: bool,
    /// Set before ImportKeyPair: deleting a key by name is safe even if the import
    /// never happened.
    key_name: Option<String>,
    /// Set before RunInstances, so an unanswered launch can be found by token.
    client_token: Option<String>,
    instance_id: Option<String>,
    launch_unknown: bool,
}

pub(crate) async fn create(
    ec2: &Ec2,
    spec: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CreateFailure> {
    let mut made = Made::default();
    match create_steps(ec2, spec, &mut made, cancel).await {
        Ok(obs) => Ok(obs),
        Err(error) => {
            tracing::debug!(name = %spec.name, error = %error, "create failed; undoing its steps");
            let (leftovers, undo_errors) = undo(ec2, &made).await;
            Err(CreateFailure {
                error,
                leftovers,
                undo_errors,
            })
        }
    }
}

async fn create_steps(
    ec2: &Ec2,
    spec: &WorkstationSpec,
    made: &mut Made,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    let root_gb = to_i32(spec.root_disk_gb, "root disk")?;
    let data_gb = to_i32(spec.data_disk_gb, "data disk")?;
    let image = images::describe(ec2, &spec.image_id, cancel).await?;
    let place = network::choose(ec2, spec, cancel).await?;
    made.vpc_id = Some(place.vpc_id.clone());
    super::orphans::sweep(ec2, &spec.name, cancel).await;

    // 1. Security group with its ingress rules.
    let group_name = format!("aienv-{}-{}", spec.name, hex6());
    made.group_name = Some(group_name.clone());
    let group_tags = part_tags(&spec.tags, &spec.name, KIND_FIREWALL, &[]);
    let group_id = firewall::create(
        ec2,
        &group_name,
        &spec.name,
        &place.vpc_id,
        group_tags,
        cancel,
    )
    .await
    .inspect_err(|e| made.group_unknown = ambiguous(e))?;
    made.group_id = Some(group_id.clone());
    let rules = firewall::desired_rules(&spec.ports, &spec.allowed_cidrs);
    firewall::authorize(ec2, &group_id, &rules, cancel).await?;

    // 2. Key pair.
    let key_name = match spec
        .ssh_public_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        Some(public_key) => {
            let key_name = format!("aienv-{}-{}", spec.name, hex6());
            made.key_name = Some(key_name.clone());
            let tags = tag_spec(
                ResourceType::KeyPair,
                part_tags(&spec.tags, &spec.name, KIND_KEY, &[]),
            );
            ec2.call("ImportKeyPair", cancel, || {
                ec2.sdk()
                    .import_key_pair()
                    .key_name(&key_name)
                    .public_key_material(Blob::new(public_key.as_bytes()))
                    .tag_specifications(tags.clone())
                    .send()
            })
            .await?;
            Some(key_name)
        }
        None => None,
    };

    // 3. The instance.
    let token = format!("aienv-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    made.client_token = Some(token.clone());
    let request = run_request(
        ec2,
        spec,
        &image.root_device_name,
        &place,
        &group_id,
        key_name.as_deref(),
        root_gb,
        data_gb,
        &token,
    );
    let ctx = ErrorContext {
        region: ec2.region(),
        instance_type: Some(&spec.instance_type),
        zone: Some(&place.zone),
    };
    // Safe to retry: the ClientToken makes a repeated launch return the first
    // launch's instance instead of starting a second one.
    let out = ec2
        .call_with("RunInstances", &ctx, ec2.policy(), cancel, || {
            request.clone().send()
        })
        .await
        .inspect_err(|e| made.launch_unknown = ambiguous(e))?;
    let instance_id = out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .map(str::to_owned)
        .ok_or_else(|| {
            made.launch_unknown = true;
            CloudError::new(
                ErrorKind::Unexpected,
                "RunInstances",
                "EC2 accepted the launch but returned no instance id",
            )
        })?;
    made.instance_id = Some(instance_id.clone());

    // 4. Wait until it runs; stop it if it should not run.
    let mut inst = wait_instance(ec2, &instance_id, true, cancel).await?;
    if !spec.running {
        ec2.call("StopInstances", cancel, || {
            ec2.sdk().stop_instances().instance_ids(&instance_id).send()
        })
        .await?;
        inst = wait_instance(ec2, &instance_id, false, cancel).await?;
    }
    observe(ec2, &inst, cancel).await
}

#[allow(clippy::too_many_arguments)]
fn run_request(
    ec2: &Ec2,
    spec: &WorkstationSpec,
    root_device: &str,
    place: &network::Placement,
    group_id: &str,
    key_name: Option<&str>,
    root_gb: i32,
    data_gb: i32,
    token: &str,
) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
    let disk = |device: &str, size: i32| {
        BlockDeviceMapping::builder()
            .device_name(device)
            .ebs(
                EbsBlockDevice::builder()
                    .volume_size(size)
                    .volume_type(VolumeType::Gp3)
                    .encrypted(true)
                    .delete_on_termination(true)
                    .build(),
            )
            .build()
    };
    let user_data = base64::engine::general_purpose::STANDARD.encode(boot_script(
        MetadataSource::AwsInstanceTags,
        spec.user_data.as_deref(),
    ));
    let mut extra = vec![
        (TAG_AUTO_STOP, spec.auto_stop_idle_minutes.to_string()),
        (TAG_PUBLIC_IP, spec.public_ip.to_string()),
    ];
    extra.extend(meta_tags(&spec.meta).map(|(k, v)| (k.as_str(), v.clone())));
    let instance_tags = part_tags(&spec.tags, &spec.name, KIND_INSTANCE, &extra);
    let volume_tags = part_tags(&spec.tags, &spec.name, KIND_DISK, &[]);

    let mut req = ec2
        .sdk()
        .run_instances()
        .image_id(&spec.image_id)
        .instance_type(InstanceType::from(spec.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .client_token(token)
        .network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(&place.subnet_id)
                .groups(group_id)
                .associate_public_ip_address(spec.public_ip)
                .delete_on_termination(true)
                .build(),
        )
        .metadata_options(
            // IMDSv2 only; tags in metadata so the idle watcher can read its threshold.
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(HttpTokensState::Required)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .instance_metadata_tags(InstanceMetadataTagsState::Enabled)
                .build(),
        )
        .block_device_mappings(disk(root_device, root_gb))
        .user_data(user_data)
        .tag_specifications(tag_spec(ResourceType::Instance, instance_tags))
        .tag_specifications(tag_spec(ResourceType::Volume, volume_tags));
    if data_gb > 0 {
        req = req.block_device_mappings(disk(DATA_DEVICE, data_gb));
    }
    if let Some(k) = key_name {
        req = req.key_name(k);
    }
    if spec.spot {
        // Persistent + stop: an interruption stops the machine (disks kept) and
        // EC2 restarts it when capacity returns, like a stopped workstation.
        req = req.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .spot_instance_type(SpotInstanceType::Persistent)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Stop)
                        .build(),
                )
                .build(),
        );
    }
    req
}

/// Undo a failed create in reverse order with a fresh cancellation token (the
/// caller's may be what stopped the create). Returns what is still there.
async fn undo(ec2: &Ec2, made: &Made) -> (Leftovers, Vec<CloudError>) {
    let cancel = CancellationToken::new();
    let mut left = Leftovers::default();
    let mut errors = Vec::new();

    let mut instance_id = made.instance_id.clone();
    if instance_id.is_none() && made.launch_unknown {
        if let Some(token) = &made.client_token {
            match find_by_client_token(ec2, token, &cancel).await {
                Ok(found) => instance_id = found,
                Err(e) => errors.push(e),
            }
        }
    }
    if let Some(id) = instance_id {
        if let Err(e) = terminate(ec2, &id, &cancel).await {
            errors.push(e);
            left.instance_id = Some(id);
        }
    }

    if let Some(key) = &made.key_name {
        if let Err(e) = delete_key(ec2, key, &cancel).await {
            errors.push(e);
            left.ssh_key_name = Some(key.clone());
        }
    }

    let mut group_id = made.group_id.clone();
    if group_id.is_none() && made.group_unknown {
        if let (Some(name), Some(vpc)) = (&made.group_name, &made.vpc_id) {
            match find_group_by_name(ec2, name, vpc, &cancel).await {
                Ok(found) => group_id = found,
                Err(e) => errors.push(e),
            }
        }
    }
    if let Some(g) = group_id {
        if left.instance_id.is_some() {
            // Still used by the instance we could not remove: deleting it would
            // only fail with DependencyViolation after minutes of retries.
            left.firewall_id = Some(g);
        } else if let Err(e) = firewall::delete(ec2, &g, &cancel).await {
            errors.push(e);
            left.firewall_id = Some(g);
        }
    }
    (left, errors)
}

/// The instance a launch with this ClientToken created, if any.
async fn find_by_client_token(
    ec2: &Ec2,
    token: &str,
    cancel: &CancellationToken,
) -> Result<Option<String>, CloudError> {
    // moto 5.2.5 does not implement this filter (nor ClientToken at all).
    let out = ec2
        .call("DescribeInstances", cancel, || {
            ec2.sdk()
                .describe_instances()
                .filters(Filter::builder().name("client-token").values(token).build())
                .send()
        })
        .await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| machine_state(i) != MachineState::Terminated)
        .and_then(|i| i.instance_id())
        .map(str::to_owned))
}

async fn find_group_by_name(
    ec2: &Ec2,
    name: &str,
    vpc_id: &str,
    cancel: &CancellationToken,
) -> Result<Option<String>, CloudError> {
    let out = ec2
        .call("DescribeSecurityGroups", cancel, || {
            ec2.sdk()
                .describe_security_groups()
                .filters(Filter::builder().name("group-name").values(name).build())
                .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
                .send()
        })
        .await?;
    Ok(out
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
        .map(str::to_owned))
}

// ---------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------

pub(crate) async fn update(
    ec2: &Ec2,
    current: &ObservedWorkstation,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<ObservedWorkstation, CloudError> {
    check_in_place(current, desired)?;
    let id = current.instance_id.as_str();
    let inst = describe_instance(ec2, id, cancel)
        .await?
        .filter(|i| machine_state(i) != MachineState::Terminated)
        .ok_or_else(|| gone(id))?;
    let groups = firewall::describe(ec2, &group_ids(&inst), cancel).await?;
    let group = our_group(&groups).cloned();

    // Tags on every part: instance, volumes, group, key pair.
    let diff = tag_diff(&user_tags(inst.tags()), &desired.tags);
    if !diff.is_empty() {
        let mut resources: Vec<String> = vec![id.to_owned()];
        resources.extend(
            inst.block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs().and_then(|e| e.volume_id()).map(str::to_owned)),
        );
        if let Some(g) = group.as_ref().and_then(|g| g.group_id()) {
            resources.push(g.to_owned());
        }
        if let Some(key) = inst.key_name().filter(|k| is_our_key(k)) {
            // Tags address key pairs by id (key-...), not by name.
            if let Some(key_id) = key_pair_id(ec2, key, cancel).await? {
                resources.push(key_id);
            }
        }
        apply_tags(ec2, &resources, &diff, cancel).await?;
    }
    // Instance-only bookkeeping: the auto-stop threshold (the idle watcher reads
    // it through instance metadata each minute) and the resource's meta tags.
    let current_meta: BTreeMap<String, String> = aienv_tags(inst.tags())
        .into_iter()
        .filter(|(k, _)| !is_reserved(k) || k == TAG_AUTO_STOP)
        .collect();
    let mut desired_meta: BTreeMap<String, String> = meta_tags(&desired.meta)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    desired_meta.insert(
        TAG_AUTO_STOP.to_owned(),
        desired.auto_stop_idle_minutes.to_string(),
    );
    let meta_diff = bookkeeping_diff(&current_meta, &desired_meta);
    if !meta_diff.is_empty() {
        apply_tags(ec2, &[id.to_owned()], &meta_diff, cancel).await?;
    }

    // Firewall rules, or a new group if ours is gone.
    let rules = firewall::desired_rules(&desired.ports, &desired.allowed_cidrs);
    match &group {
        Some(g) => {
            if firewall::rules_of(g) != rules {
                firewall::sync(ec2, g, &rules, cancel).await?;
            }
        }
        None => replace_group(ec2, &inst, desired, &groups, &rules, cancel).await?,
    }

    // Instance type: only while stopped.
    let current_type = inst.instance_type().map(|t| t.as_str()).unwrap_or_default();
    if desired.instance_type != current_type {
        ensure_running(ec2, id, false, cancel).await?;
        let ctx = ErrorContext {
            region: ec2.region(),
            instance_type: Some(&desired.instance_type),
            zone: Some(&current.zone),
        };
        let value = AttributeValue::builder()
            .value(&desired.instance_type)
            .build();
        ec2.call_with(
            "ModifyInstanceAttribute",
            &ctx,
            ec2.policy(),
            cancel,
            || {
                ec2.sdk()
                    .modify_instance_attribute()
                    .instance_id(id)
                    .instance_type(value.clone())
                    .send()
            },
        )
        .await?;
    }

    // Disks: grow in place, or add the data disk.
    grow_disks(ec2, &inst, desired, cancel).await?;
    if volume_on(&inst, DATA_DEVICE).is_none() && desired.data_disk_gb > 0 {
        add_data_disk(ec2, &inst, desired, cancel).await?;
    }

    // Running state last, so a type change ends started only if wanted.
    ensure_running(ec2, id, desired.running, cancel).await?;

    read(ec2, &current.locator, cancel)
        .await?
        .ok_or_else(|| gone(id))
}

async fn key_pair_id(
    ec2: &Ec2,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Option<String>, CloudError> {
    match ec2
        .call("DescribeKeyPairs", cancel, || {
            ec2.sdk().describe_key_pairs().key_names(name).send()
        })
        .await
    {
        Ok(out) => Ok(out
            .key_pairs()
            .first()
            .and_then(|k| k.key_pair_id())
            .map(str::to_owned)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// One CreateTags and/or one DeleteTags for all resources.
async fn apply_tags(
    ec2: &Ec2,
    resources: &[String],
    diff: &TagDiff,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    if !diff.set.is_empty() {
        let tags: Vec<Tag> = diff.set.iter().map(|(k, v)| tag(k, v)).collect();
        ec2.call("CreateTags", cancel, || {
            ec2.sdk()
                .create_tags()
                .set_resources(Some(resources.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
    }
    if !diff.remove.is_empty() {
        // Key only: removes the tag whatever its value.
        let tags: Vec<Tag> = diff
            .remove
            .iter()
            .map(|k| Tag::builder().key(k).build())
            .collect();
        ec2.call("DeleteTags", cancel, || {
            ec2.sdk()
                .delete_tags()
                .set_resources(Some(resources.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Our group is gone: create a new one and put it on the primary network
/// interface, keeping any other groups someone attached.
async fn replace_group(
    ec2: &Ec2,
    inst: &Instance,
    desired: &WorkstationSpec,
    existing: &[SecurityGroup],
    rules: &BTreeSet<firewall::Rule>,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let (Some(vpc_id), Some(eni)) = (
        inst.vpc_id(),
        inst.network_interfaces()
            .iter()
            .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
            .and_then(|n| n.network_interface_id()),
    ) else {
        return Err(CloudError::new(
            ErrorKind::Unexpected,
            "update workstation",
            "the instance has no VPC or primary network interface to attach a new security group to",
        ));
    };
    let name = format!("aienv-{}-{}", desired.name, hex6());
    let tags = part_tags(&desired.tags, &desired.name, KIND_FIREWALL, &[]);
    let group_id = firewall::create(ec2, &name, &desired.name, vpc_id, tags, cancel).await?;
    let attach = async {
        firewall::authorize(ec2, &group_id, rules, cancel).await?;
        let mut ids: Vec<String> = existing
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect();
        ids.push(group_id.clone());
        ec2.call("ModifyNetworkInterfaceAttribute", cancel, || {
            ec2.sdk()
                .modify_network_interface_attribute()
                .network_interface_id(eni)
                .set_groups(Some(ids.clone()))
                .send()
        })
        .await
        .map(|_| ())
    };
    if let Err(e) = attach.await {
        // Do not leave an unattached group behind.
        let _ = firewall::delete(ec2, &group_id, &CancellationToken::new()).await;
        return Err(e);
    }
    Ok(())
}

/// ModifyVolume for the root and data volumes that must grow, then wait until
/// DescribeVolumes reports the new sizes (one call per poll for both).
async fn grow_disks(
    ec2: &Ec2,
    inst: &Instance,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let root = root_volume(inst);
    let data = volume_on(inst, DATA_DEVICE);
    let ids: Vec<String> = root.iter().chain(data.iter()).cloned().collect();
    let volumes = describe_volumes(ec2, &ids, cancel).await?;
    let mut targets: Vec<(String, i32)> = Vec::new();
    for (vol, want) in [(root, desired.root_disk_gb), (data, desired.data_disk_gb)] {
        let Some(vol) = vol else { continue };
        let have = size_of(&volumes, Some(&vol));
        if want > have && have > 0 {
            targets.push((vol, to_i32(want, "disk")?));
        }
    }
    for (vol, size) in &targets {
        ec2.call("ModifyVolume", cancel, || {
            ec2.sdk().modify_volume().volume_id(vol).size(*size).send()
        })
        .await?;
    }
    if targets.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = targets.iter().map(|(v, _)| v.clone()).collect();
    wait_for("wait for volumes to grow", WAIT_TIMEOUT, cancel, || async {
        let vols = describe_volumes(ec2, &ids, cancel).await?;
        let done = targets.iter().all(|(id, size)| {
            vols.iter()
                .find(|v| v.volume_id() == Some(id))
                .and_then(|v| v.size())
                .is_some_and(|s| s >= *size)
        });
        Ok(done.then_some(()))
    })
    .await
}

/// Create the data volume in the instance's zone, attach it as /dev/sdf and make
/// it go with the instance. If attaching fails the new volume is deleted.
async fn add_data_disk(
    ec2: &Ec2,
    inst: &Instance,
    desired: &WorkstationSpec,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    let id = inst.instance_id().unwrap_or_default();
    let zone = inst
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap_or_default();
    let size = to_i32(desired.data_disk_gb, "data disk")?;
    let tags = tag_spec(
        ResourceType::Volume,
        part_tags(&desired.tags, &desired.name, KIND_DISK, &[]),
    );
    let token = format!("aienv-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let ctx = ErrorContext {
        region: ec2.region(),
        instance_type: None,
        zone: Some(zone),
    };
    let out = ec2
        .call_with("CreateVolume", &ctx, ec2.policy(), cancel, || {
            ec2.sdk()
                .create_volume()
                .availability_zone(zone)
                .size(size)
                .volume_type(VolumeType::Gp3)
                .encrypted(true)
                .tag_specifications(tags.clone())
                .client_token(&token)
                .send()
        })
        .await?;
    let vol = out.volume_id().map(str::to_owned).ok_or_else(|| {
        CloudError::new(
            ErrorKind::Unexpected,
            "CreateVolume",
            "EC2 created a volume but returned no id",
        )
    })?;
    let ids = [vol.clone()];

    let attach = async {
        wait_for(
            &format!("wait for volume {vol} to be available"),
            WAIT_TIMEOUT,
            cancel,
            || async {
                let vols = describe_volumes(ec2, &ids, cancel).await?;
                match vols.first().and_then(|v| v.state()) {
                    Some(VolumeState::Available) => Ok(Some(())),
                    Some(VolumeState::Error) => Err(CloudError::new(
                        ErrorKind::Unexpected,
                        "CreateVolume",
                        format!("volume {vol} failed to create (state error)"),
                    )),
                    _ => Ok(None),
                }
            },
        )
        .await?;
        ec2.call("AttachVolume", cancel, || {
            ec2.sdk()
                .attach_volume()
                .volume_id(&vol)
                .instance_id(id)
                .device(DATA_DEVICE)
                .send()
        })
        .await
        .map(|_| ())
    };
    if let Err(e) = attach.await {
        let _ = delete_volume(ec2, &vol, &CancellationToken::new()).await;
        return Err(e);
    }

    wait_for(
        &format!("wait for volume {vol} to attach"),
        WAIT_TIMEOUT,
        cancel,
        || async {
            let vols = describe_volumes(ec2, &ids, cancel).await?;
            let attached = vols
                .first()
                .map(|v| v.attachments())
                .unwrap_or_default()
                .iter()
                .any(|a| {
                    a.instance_id() == Some(id)
                        && a.state() == Some(&VolumeAttachmentState::Attached)
                });
            Ok(attached.then_some(()))
        },
    )
    .await?;

    // Attached volumes default to DeleteOnTermination=false; ours go with the
    // instance like the ones made at launch.
    let mapping = InstanceBlockDeviceMappingSpecification::builder()
        .device_name(DATA_DEVICE)
        .ebs(
            EbsInstanceBlockDeviceSpecification::builder()
                .volume_id(&vol)
                .delete_on_termination(true)
                .build(),
        )
        .build();
    ec2.call("ModifyInstanceAttribute", cancel, || {
        ec2.sdk()
            .modify_instance_attribute()
            .instance_id(id)
            .block_device_mappings(mapping.clone())
            .send()
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------

pub(crate) async fn delete(
    ec2: &Ec2,
    current: &ObservedWorkstation,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    delete_parts(
        ec2,
        &Leftovers {
            instance_id: Some(current.instance_id.clone()),
            firewall_id: current.firewall_id.clone(),
            ssh_key_name: current.ssh_key_name.clone(),
            data_disk_id: current.data_disk_id.clone(),
        },
        cancel,
    )
    .await
}

pub(crate) async fn delete_leftovers(
    ec2: &Ec2,
    leftovers: &Leftovers,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    delete_parts(ec2, leftovers, cancel).await
}

/// Terminate → wait → data volume → key → group. Parts already gone are fine.
/// After the instance, every part is attempted; the first error is returned.
async fn delete_parts(
    ec2: &Ec2,
    parts: &Leftovers,
    cancel: &CancellationToken,
) -> Result<(), CloudError> {
    if let Some(id) = &parts.instance_id {
        terminate(ec2, id, cancel).await?;
    }
    let mut first_error: Option<CloudError> = None;
    if let Some(vol) = &parts.data_disk_id {
        if let Err(e) = delete_volume(ec2, vol, cancel).await {
            first_error.get_or_insert(e);
        }
    }
    if let Some(key) = parts.ssh_key_name.as_deref().filter(|k| is_our_key(k)) {
        if let Err(e) = delete_key(ec2, key, cancel).await {
            first_error.get_or_insert(e);
        }
    }
    if let Some(g) = &parts.firewall_id {
        if let Err(e) = firewall::delete(ec2, g, cancel).await {
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
    use aws_sdk_ec2::types::InstanceState;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn locator_round_trip() {
        let l = locator("us-east-1", "i-0123456789abcdef0");
        assert_eq!(l, "us-east-1/i-0123456789abcdef0");
        assert_eq!(
            parse_locator(&l).ok(),
            Some(("us-east-1", "i-0123456789abcdef0"))
        );
    }

    #[test]
    fn malformed_locators_are_invalid_input() {
        for bad in [
            "",
            "us-east-1",
            "i-0123",
            "/i-0123",
            "us-east-1/",
            "us-east-1/vol-0123",
            "us-east-1/i-",
            "us-east-1/i-01/23",
            "US-EAST-1/i-0123",
            "aws/us-east-1/i-0123",
        ] {
            let e = parse_locator(bad).err().map(|e| e.kind);
            assert_eq!(e, Some(ErrorKind::InvalidInput), "{bad:?}");
        }
    }

    #[test]
    fn tag_diff_sets_changed_and_removes_missing() {
        let current = map(&[("team", "ml"), ("owner", "ana"), ("old", "x")]);
        let desired = map(&[("team", "ml"), ("owner", "bo"), ("new", "y")]);
        let d = tag_diff(&current, &desired);
        assert_eq!(d.set, map(&[("owner", "bo"), ("new", "y")]));
        assert_eq!(d.remove, vec!["old".to_string()]);
        assert!(tag_diff(&desired, &desired).is_empty());
    }

    #[test]
    fn tag_diff_never_touches_bookkeeping_tags() {
        let current = map(&[("aienv-name", "a"), ("aws:cloudformation:stack-name", "s")]);
        let desired = map(&[("aienv-kind", "oops")]);
        assert!(tag_diff(&current, &desired).is_empty());
    }

    #[test]
    fn user_tags_drop_bookkeeping() {
        let tags = vec![
            tag("team", "ml"),
            tag(TAG_NAME, "box"),
            tag(TAG_KIND, KIND_INSTANCE),
            tag(TAG_AUTO_STOP, "30"),
            tag("aws:ec2launchtemplate:id", "lt-1"),
        ];
        assert_eq!(user_tags(&tags), map(&[("team", "ml")]));
    }

    #[test]
    fn meta_tags_never_override_ours() {
        let meta = map(&[
            ("aienv-gpu", "a10g"),
            ("aienv-name", "other"),
            ("aienv-kind", "x"),
            ("not-ours", "y"),
        ]);
        let kept: Vec<&String> = meta_tags(&meta).map(|(k, _)| k).collect();
        assert_eq!(kept, vec!["aienv-gpu"]);
    }

    #[test]
    fn bookkeeping_diff_updates_meta_and_auto_stop() {
        let current = map(&[
            (TAG_AUTO_STOP, "30"),
            ("aienv-gpu", "a10g"),
            ("aienv-image", "pytorch"),
        ]);
        let desired = map(&[(TAG_AUTO_STOP, "60"), ("aienv-gpu", "a10g")]);
        let d = bookkeeping_diff(&current, &desired);
        assert_eq!(d.set, map(&[(TAG_AUTO_STOP, "60")]));
        assert_eq!(d.remove, vec!["aienv-image".to_string()]);
    }

    #[test]
    fn aienv_tags_are_reported_as_meta() {
        let tags = vec![
            tag("team", "ml"),
            tag(TAG_NAME, "box"),
            tag("aienv-gpu", "a10g"),
        ];
        assert_eq!(
            aienv_tags(&tags),
            map(&[(TAG_NAME, "box"), ("aienv-gpu", "a10g")])
        );
    }

    #[test]
    fn part_tags_add_name_and_kind() {
        let tags = part_tags(&map(&[("team", "ml")]), "box", KIND_DISK, &[]);
        assert_eq!(tag_value(&tags, TAG_NAME), Some("box"));
        assert_eq!(tag_value(&tags, TAG_KIND), Some(KIND_DISK));
        assert_eq!(tag_value(&tags, "team"), Some("ml"));
    }

    fn instance(
        state: InstanceStateName,
        public_ip: Option<&str>,
        tag_public: Option<&str>,
    ) -> Instance {
        let mut b = Instance::builder()
            .instance_id("i-1")
            .state(InstanceState::builder().name(state).build());
        if let Some(ip) = public_ip {
            b = b.public_ip_address(ip);
        }
        if let Some(v) = tag_public {
            b = b.tags(tag(TAG_PUBLIC_IP, v));
        }
        b.build()
    }

    #[test]
    fn public_ip_inference() {
        use InstanceStateName::*;
        assert!(has_public_ip(&instance(Running, Some("3.4.5.6"), None)));
        assert!(!has_public_ip(&instance(Running, None, Some("true"))));
        assert!(has_public_ip(&instance(Stopped, None, Some("true"))));
        assert!(!has_public_ip(&instance(Stopped, None, Some("false"))));
        assert!(!has_public_ip(&instance(Stopped, None, None)));
        assert!(has_public_ip(&instance(Pending, None, Some("true"))));
    }

    fn observed() -> ObservedWorkstation {
        ObservedWorkstation {
            locator: "us-east-1/i-1".into(),
            name: "box".into(),
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
            instance_id: "i-1".into(),
            instance_type: "g5.xlarge".into(),
            image_id: "ami-1".into(),
            state: MachineState::Running,
            spot: false,
            public_ip: None,
            private_ip: None,
            has_public_ip: true,
            firewall_id: Some("sg-1".into()),
            allowed_cidrs: vec![],
            ports: vec![22],
            root_disk_gb: 100,
            data_disk_id: None,
            data_disk_gb: 50,
            subnet_id: Some("subnet-1".into()),
            ssh_key_name: None,
            auto_stop_idle_minutes: 0,
            tags: BTreeMap::new(),
            meta: BTreeMap::new(),
        }
    }

    fn spec() -> WorkstationSpec {
        WorkstationSpec {
            name: "box".into(),
            region: "us-east-1".into(),
            zone: None,
            instance_type: "g5.2xlarge".into(),
            gpu_model: "A10G".into(),
            gpu_count: 1,
            accelerator_type: None,
            image_id: "ami-1".into(),
            root_disk_gb: 100,
            data_disk_gb: 50,
            spot: false,
            running: true,
            public_ip: true,
            allowed_cidrs: vec![],
            ports: vec![22],
            ssh_public_key: None,
            subnet_id: None,
            auto_stop_idle_minutes: 0,
            user_data: None,
            tags: BTreeMap::new(),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn in_place_changes_pass() {
        let mut s = spec();
        s.root_disk_gb = 200;
        s.data_disk_gb = 500;
        s.running = false;
        assert!(check_in_place(&observed(), &s).is_ok());
    }

    #[test]
    fn replacements_are_refused() {
        let cases: [fn(&mut WorkstationSpec); 8] = [
            |s| s.root_disk_gb = 50,
            |s| s.data_disk_gb = 0,
            |s| s.data_disk_gb = 10,
            |s| s.spot = true,
            |s| s.image_id = "ami-2".into(),
            |s| s.region = "us-west-2".into(),
            |s| s.zone = Some("us-east-1b".into()),
            |s| s.subnet_id = Some("subnet-2".into()),
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
        use InstanceStateName::*;
        let st = |s| machine_state(&instance(s, None, None));
        assert_eq!(st(Pending), MachineState::Pending);
        assert_eq!(st(Running), MachineState::Running);
        assert_eq!(st(Stopping), MachineState::Stopping);
        assert_eq!(st(Stopped), MachineState::Stopped);
        assert_eq!(st(ShuttingDown), MachineState::Terminated);
        assert_eq!(st(Terminated), MachineState::Terminated);
    }

    #[test]
    fn launch_failure_maps_state_reason() {
        let inst = Instance::builder()
            .instance_id("i-1")
            .state(InstanceState::builder().name(InstanceStateName::Terminated).build())
            .state_reason(
                aws_sdk_ec2::types::StateReason::builder()
                    .code("Server.InsufficientInstanceCapacity")
                    .message("Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy Spot request")
                    .build(),
            )
            .build();
        let e = launch_failure("i-1", &inst);
        assert_eq!(e.kind, ErrorKind::Capacity);
        assert!(e.message.contains("Insufficient capacity"));
    }
}
