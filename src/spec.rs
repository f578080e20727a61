//! Cloud-neutral model of what the user asked for (`*Spec`) and what a backend
//! observed (`Observed*`). Resources build specs; backends turn them into API calls.
//! Nothing here knows about Terraform or about any one cloud's API.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

/// The clouds we can place a resource on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloudKind {
    Aws,
    Gcp,
    Azure,
}

impl CloudKind {
    pub const ALL: [CloudKind; 3] = [CloudKind::Aws, CloudKind::Gcp, CloudKind::Azure];

    pub fn as_str(self) -> &'static str {
        match self {
            CloudKind::Aws => "aws",
            CloudKind::Gcp => "gcp",
            CloudKind::Azure => "azure",
        }
    }
}

impl fmt::Display for CloudKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CloudKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws" => Ok(CloudKind::Aws),
            "gcp" => Ok(CloudKind::Gcp),
            "azure" => Ok(CloudKind::Azure),
            other => Err(format!(
                "unknown cloud {other:?}: expected one of \"aws\", \"gcp\", \"azure\""
            )),
        }
    }
}

/// Tag keys every backend puts on what it creates, so read, import and orphan
/// cleanup can find a resource's parts.
pub const TAG_NAME: &str = "aienv-name";
pub const TAG_KIND: &str = "aienv-kind";
/// The idle auto-stop threshold the bootstrap script reads from the instance's own
/// tags/metadata, so changing it needs no restart.
pub const TAG_AUTO_STOP: &str = "aienv-auto-stop-idle-minutes";

/// Everything a backend needs to create (or converge) one GPU workstation.
/// All values are already validated and resolved by the plan step.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkstationSpec {
    /// The user's `name`: unique per cloud account+region; names cloud objects.
    pub name: String,
    pub region: String,
    /// None: the backend picks the first zone offering `instance_type`
    /// (or the zone of `subnet_id`).
    pub zone: Option<String>,
    pub instance_type: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    /// The accelerator to attach, for clouds where GPUs are not part of the
    /// machine type (Google Cloud N1 + `nvidia-tesla-t4`); None when the machine
    /// type has its GPUs built in (AWS, Azure, GCP A2/A3/G2).
    pub accelerator_type: Option<String>,
    /// Cloud image id, resolved at plan (e.g. `ami-...`).
    pub image_id: String,
    pub root_disk_gb: u32,
    /// 0 = no data disk.
    pub data_disk_gb: u32,
    pub spot: bool,
    pub running: bool,
    pub public_ip: bool,
    pub allowed_cidrs: Vec<IpNet>,
    pub ports: Vec<u16>,
    pub ssh_public_key: Option<String>,
    pub subnet_id: Option<String>,
    pub auto_stop_idle_minutes: u32,
    pub user_data: Option<String>,
    /// Final tags (provider default_tags merged under resource tags), without the
    /// `aienv-*` bookkeeping tags: backends add those themselves.
    pub tags: BTreeMap<String, String>,
    /// Extra `aienv-*` bookkeeping tags chosen by the resource (the user's own
    /// spelling of `gpu`, `image`, the SSH key) so import can rebuild the
    /// configuration. Backends store them with the other tags/labels and report
    /// them back in `ObservedWorkstation::meta`.
    pub meta: BTreeMap<String, String>,
}

/// Lifecycle state of a machine as the cloud reports it, in our words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Pending,
    Running,
    Stopping,
    Stopped,
    /// Shutting down or terminated: the machine is gone (or going) for good.
    Terminated,
}

impl MachineState {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Pending => "pending",
            MachineState::Running => "running",
            MachineState::Stopping => "stopping",
            MachineState::Stopped => "stopped",
            MachineState::Terminated => "terminated",
        }
    }
}

/// What a backend found in the cloud for one workstation.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedWorkstation {
    /// Backend locator without the cloud prefix, e.g. `us-east-1/i-0abc` on AWS.
    /// The resource id is `"{cloud}/{locator}"`.
    pub locator: String,
    pub name: String,
    pub region: String,
    pub zone: String,
    pub instance_id: String,
    pub instance_type: String,
    pub image_id: String,
    pub state: MachineState,
    pub spot: bool,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    /// Whether the machine was launched with a public address (survives stop/start).
    pub has_public_ip: bool,
    /// Firewall / security group id; None if it is gone.
    pub firewall_id: Option<String>,
    pub allowed_cidrs: Vec<IpNet>,
    pub ports: Vec<u16>,
    pub root_disk_gb: u32,
    pub data_disk_id: Option<String>,
    pub data_disk_gb: u32,
    pub subnet_id: Option<String>,
    pub ssh_key_name: Option<String>,
    pub auto_stop_idle_minutes: u32,
    /// User tags as found on the instance, without `aienv-*` bookkeeping tags.
    pub tags: BTreeMap<String, String>,
    /// All `aienv-*` tags found on the instance (full keys), including
    /// `aienv-name`, `aienv-kind` and the resource's `meta` tags.
    pub meta: BTreeMap<String, String>,
}

/// Things a backend created before a create failed, for cleanup and for state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leftovers {
    pub instance_id: Option<String>,
    pub firewall_id: Option<String>,
    pub ssh_key_name: Option<String>,
    pub data_disk_id: Option<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.instance_id.is_none()
            && self.firewall_id.is_none()
            && self.ssh_key_name.is_none()
            && self.data_disk_id.is_none()
    }
}

/// A cloud image resolved from an alias or id.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    pub id: String,
    pub name: String,
    /// The login user for this image (ubuntu, ec2-user, ...).
    pub ssh_user: String,
}

/// The image aliases every backend understands; anything else is taken as a raw
/// image id of the chosen cloud.
pub const IMAGE_ALIASES: [&str; 4] = ["pytorch", "tensorflow", "cuda", "ubuntu"];
