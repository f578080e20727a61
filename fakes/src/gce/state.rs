//! The fake's world: per-project resources, operations and the controls tests
//! use to inject faults.
//!
//! Operations are the heart of it. A mutating call validates synchronously
//! (4xx errors come back on the HTTP call, like the real API), makes the
//! transitional change a real VM shows at once (PROVISIONING, STOPPING...),
//! and returns a PENDING Operation. Each `get`/`wait` of that operation moves
//! it one step: RUNNING, then DONE, at which point the final effect is applied
//! — or, when a failure was injected, rolled back so nothing is left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::catalog;
use super::errors::ApiError;
use super::util::{
    global_path, link, new_fingerprint, new_id, now_millis, now_rfc3339, region_link,
    regional_path, zone_link, zone_path, EMPTY_FINGERPRINT,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Zone(String),
    Region(String),
    Global,
}

/// What an operation does when it reaches DONE (and how to undo its
/// transitional change when it fails).
#[derive(Debug, Clone)]
pub enum Action {
    InstanceInsert {
        zone: String,
        name: String,
        new_disks: Vec<String>,
        attached_disks: Vec<String>,
    },
    InstanceDelete {
        zone: String,
        name: String,
        prev_status: String,
    },
    InstanceStart {
        zone: String,
        name: String,
        prev_status: String,
    },
    InstanceStop {
        zone: String,
        name: String,
        prev_status: String,
    },
    InstanceSetMachineType {
        zone: String,
        name: String,
        machine_type: String,
    },
    InstanceSetLabels {
        zone: String,
        name: String,
        labels: Map<String, Value>,
    },
    InstanceSetMetadata {
        zone: String,
        name: String,
        items: Vec<Value>,
    },
    InstanceSetTags {
        zone: String,
        name: String,
        items: Vec<String>,
    },
    InstanceAttachDisk {
        zone: String,
        name: String,
        attached: Value,
        disk: String,
    },
    InstanceDetachDisk {
        zone: String,
        name: String,
        device_name: String,
    },
    InstanceSetDeletionProtection {
        zone: String,
        name: String,
        value: bool,
    },
    InstanceSuspend {
        zone: String,
        name: String,
        prev_status: String,
    },
    /// `setMachineResources`: the explicitly attached GPUs.
    InstanceSetMachineResources {
        zone: String,
        name: String,
        accels: Vec<Value>,
    },
    InstanceSetDiskAutoDelete {
        zone: String,
        name: String,
        device_name: String,
        value: bool,
    },
    DiskInsert {
        zone: String,
        name: String,
    },
    DiskDelete {
        zone: String,
        name: String,
        prev_status: String,
    },
    DiskResize {
        zone: String,
        name: String,
        size_gb: i64,
    },
    DiskSetLabels {
        zone: String,
        name: String,
        labels: Map<String, Value>,
    },
    FirewallInsert {
        firewall: Value,
    },
    FirewallReplace {
        name: String,
        firewall: Value,
    },
    FirewallDelete {
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub json: Value,
    pub scope: Scope,
    pub polls: u32,
    pub polls_needed: u32,
    pub action: Action,
    /// Injected asynchronous failure: (error code, message).
    pub failure: Option<(String, String)>,
    pub created: Instant,
    pub seq: u64,
}

impl Operation {
    pub fn is_done(&self) -> bool {
        self.json["status"] == "DONE"
    }
}

#[derive(Debug, Default)]
pub struct Project {
    pub name: String,
    pub instances: BTreeMap<(String, String), Value>,
    /// guestAccelerators the caller attached explicitly (N1), per instance;
    /// built-in GPUs of A2/A3/G2 are derived from the machine type.
    pub explicit_accels: HashMap<(String, String), Vec<Value>>,
    pub disks: BTreeMap<(String, String), Value>,
    pub firewalls: BTreeMap<String, Value>,
    /// The rules every project starts with; not counted as test leftovers.
    pub builtin_firewalls: BTreeSet<String>,
    pub networks: BTreeMap<String, Value>,
    pub subnetworks: BTreeMap<(String, String), Value>,
    pub operations: BTreeMap<String, Operation>,
    pub request_ids: HashMap<String, String>,
    /// Next host offset per subnetwork selfLink.
    pub next_host: HashMap<String, u32>,
    pub nat_counter: u32,
    /// External addresses the caller chose (reserved static IPs): they stay
    /// on the instance across stop/start, unlike ephemeral ones.
    pub static_nat: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct PendingOpFailure {
    pub kind: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct PendingRequestFailure {
    pub pattern: String,
    pub status: u16,
    pub remaining: usize,
}

#[derive(Debug, Clone)]
pub struct Call {
    /// `instances.insert`, `zoneOperations.get`...
    pub short: String,
    /// `POST /compute/v1/projects/p/zones/z/instances`
    pub line: String,
    pub query: String,
}

#[derive(Debug)]
pub struct State {
    pub projects: BTreeMap<String, Project>,
    pub polls_needed: u32,
    pub auto_complete_after: Option<Duration>,
    pub op_failures: Vec<PendingOpFailure>,
    pub request_failures: Vec<PendingRequestFailure>,
    pub calls: Vec<Call>,
    pub seq: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            projects: BTreeMap::new(),
            polls_needed: 2,
            auto_complete_after: None,
            op_failures: Vec::new(),
            request_failures: Vec::new(),
            calls: Vec::new(),
            seq: 0,
        }
    }
}

fn default_firewall(
    project: &str,
    name: &str,
    allowed: Value,
    ranges: &[&str],
    prio: i64,
) -> Value {
    json!({
        "kind": "compute#firewall",
        "id": new_id().to_string(),
        "creationTimestamp": "2024-01-01T00:00:00.000-08:00",
        "name": name,
        "description": format!("Allow {} from anywhere", name.trim_start_matches("default-allow-")),
        "network": link(&global_path(project, "networks", "default")),
        "priority": prio,
        "sourceRanges": ranges,
        "allowed": allowed,
        "direction": "INGRESS",
        "logConfig": {"enable": false},
        "disabled": false,
        "selfLink": link(&global_path(project, "firewalls", name)),
    })
}

impl Project {
    /// A fresh project: the auto-mode `default` network with one subnetwork per
    /// region, and the four default firewall rules GCE creates with it.
    pub fn new(name: &str) -> Self {
        let mut p = Project {
            name: name.to_string(),
            ..Default::default()
        };
        let net_link = link(&global_path(name, "networks", "default"));
        let mut subnet_links = Vec::new();
        for (region, cidr) in catalog::REGIONS {
            let self_link = link(&regional_path(name, region, "subnetworks", "default"));
            subnet_links.push(self_link.clone());
            let gateway = cidr_host(cidr, 1).unwrap_or_default();
            p.subnetworks.insert(
                ((*region).to_string(), "default".to_string()),
                json!({
                    "kind": "compute#subnetwork",
                    "id": new_id().to_string(),
                    "creationTimestamp": "2024-01-01T00:00:00.000-08:00",
                    "name": "default",
                    "network": net_link,
                    "ipCidrRange": cidr,
                    "gatewayAddress": gateway,
                    "region": region_link(name, region),
                    "selfLink": self_link,
                    "privateIpGoogleAccess": false,
                    "fingerprint": new_fingerprint(),
                    "purpose": "PRIVATE",
                    "stackType": "IPV4_ONLY",
                }),
            );
        }
        p.networks.insert(
            "default".to_string(),
            json!({
                "kind": "compute#network",
                "id": new_id().to_string(),
                "creationTimestamp": "2024-01-01T00:00:00.000-08:00",
                "name": "default",
                "description": "Default network for the project",
                "selfLink": link(&global_path(name, "networks", "default")),
                "selfLinkWithId": link(&global_path(name, "networks", &new_id().to_string())),
                "autoCreateSubnetworks": true,
                "subnetworks": subnet_links,
                "routingConfig": {"routingMode": "REGIONAL"},
                "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
            }),
        );
        let defaults = [
            (
                "default-allow-internal",
                json!([{"IPProtocol": "tcp", "ports": ["0-65535"]}, {"IPProtocol": "udp", "ports": ["0-65535"]}, {"IPProtocol": "icmp"}]),
                vec!["10.128.0.0/9"],
                65534,
            ),
            (
                "default-allow-ssh",
                json!([{"IPProtocol": "tcp", "ports": ["22"]}]),
                vec!["0.0.0.0/0"],
                65534,
            ),
            (
                "default-allow-rdp",
                json!([{"IPProtocol": "tcp", "ports": ["3389"]}]),
                vec!["0.0.0.0/0"],
                65534,
            ),
            (
                "default-allow-icmp",
                json!([{"IPProtocol": "icmp"}]),
                vec!["0.0.0.0/0"],
                65534,
            ),
        ];
        for (fw, allowed, ranges, prio) in defaults {
            p.firewalls.insert(
                fw.to_string(),
                default_firewall(name, fw, allowed, &ranges, prio),
            );
            p.builtin_firewalls.insert(fw.to_string());
        }
        p
    }

    /// A user subnetwork (custom-mode network `net` is created on first use).
    pub fn add_subnetwork(
        &mut self,
        region: &str,
        name: &str,
        network: &str,
        cidr: &str,
    ) -> String {
        let net_link = link(&global_path(&self.name, "networks", network));
        let self_link = link(&regional_path(&self.name, region, "subnetworks", name));
        let project = self.name.clone();
        let net = self.networks.entry(network.to_string()).or_insert_with(|| {
            json!({
                "kind": "compute#network",
                "id": new_id().to_string(),
                "creationTimestamp": now_rfc3339(),
                "name": network,
                "selfLink": link(&global_path(&project, "networks", network)),
                "autoCreateSubnetworks": false,
                "subnetworks": [],
                "routingConfig": {"routingMode": "REGIONAL"},
                "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
            })
        });
        if let Some(list) = net.get_mut("subnetworks").and_then(Value::as_array_mut) {
            if !list.iter().any(|l| l == &Value::String(self_link.clone())) {
                list.push(Value::String(self_link.clone()));
            }
        }
        self.subnetworks.insert(
            (region.to_string(), name.to_string()),
            json!({
                "kind": "compute#subnetwork",
                "id": new_id().to_string(),
                "creationTimestamp": now_rfc3339(),
                "name": name,
                "network": net_link,
                "ipCidrRange": cidr,
                "gatewayAddress": cidr_host(cidr, 1).unwrap_or_default(),
                "region": region_link(&self.name, region),
                "selfLink": self_link,
                "privateIpGoogleAccess": false,
                "fingerprint": new_fingerprint(),
                "purpose": "PRIVATE",
                "stackType": "IPV4_ONLY",
            }),
        );
        self_link
    }

    /// Next free internal address in a subnetwork (.0 and .1 are reserved, as
    /// on GCE).
    pub fn allocate_ip(&mut self, subnet: &Value) -> String {
        let self_link = subnet["selfLink"].as_str().unwrap_or_default().to_string();
        let cidr = subnet["ipCidrRange"]
            .as_str()
            .unwrap_or("10.128.0.0/20")
            .to_string();
        let used: BTreeSet<String> = self
            .instances
            .values()
            .flat_map(|i| {
                i["networkInterfaces"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|n| n["networkIP"].as_str().map(str::to_string))
            .collect();
        let next = self.next_host.entry(self_link).or_insert(2);
        loop {
            let candidate = cidr_host(&cidr, *next).unwrap_or_else(|| "10.0.0.2".to_string());
            *next += 1;
            if !used.contains(&candidate) {
                return candidate;
            }
        }
    }

    /// An ephemeral external address; unique within the project.
    pub fn allocate_nat_ip(&mut self) -> String {
        self.nat_counter += 1;
        let n = self.nat_counter;
        format!(
            "34.{}.{}.{}",
            66 + (n >> 16) % 100,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }
}

/// Host number `n` of a CIDR, as a dotted quad.
pub fn cidr_host(cidr: &str, n: u32) -> Option<String> {
    let (base, len) = super::util::parse_cidr(cidr)?;
    let size = if len == 0 {
        u32::MAX
    } else {
        (1u32 << (32 - len)) - 1
    };
    if n > size {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(std::net::Ipv4Addr::from((base & mask) + n).to_string())
}

/// Operation names look like the real ones:
/// `operation-1712345678901-6153a1b2c3d4e-5f6a7b8c-9d0e1f2a`.
fn operation_name() -> String {
    format!(
        "operation-{}-{:013x}-{:08x}-{:08x}",
        now_millis(),
        fastrand::u64(..) >> 12,
        fastrand::u32(..),
        fastrand::u32(..)
    )
}

pub fn scope_path(project: &str, scope: &Scope) -> String {
    match scope {
        Scope::Zone(z) => zone_path(project, z),
        Scope::Region(r) => super::util::region_path(project, r),
        Scope::Global => format!("projects/{project}/global"),
    }
}

impl State {
    pub fn project(&mut self, name: &str) -> &mut Project {
        self.projects
            .entry(name.to_string())
            .or_insert_with(|| Project::new(name))
    }

    /// Creates an operation for an accepted mutating call. `target_link` and
    /// `target_id` name the resource; `op_type` is the API's `operationType`.
    #[allow(clippy::too_many_arguments)]
    pub fn new_operation(
        &mut self,
        project: &str,
        scope: Scope,
        op_type: &str,
        target_link: &str,
        target_id: &str,
        action: Action,
        request_id: Option<&str>,
    ) -> Value {
        self.seq += 1;
        let seq = self.seq;
        let name = operation_name();
        let collection = target_collection(target_link);
        let failure = self
            .op_failures
            .iter()
            .position(|f| {
                f.kind == "*"
                    || f.kind == op_type
                    || f.kind == format!("{collection}.{op_type}")
                    || f.kind == format!("compute.{collection}.{op_type}")
            })
            .map(|i| self.op_failures.remove(i));
        let polls_needed = self.polls_needed;
        let mut j = json!({
            "kind": "compute#operation",
            "id": new_id().to_string(),
            "name": name,
            "operationType": op_type,
            "targetLink": target_link,
            "targetId": target_id,
            "status": "PENDING",
            "user": "fake-gce@aienv.test",
            "progress": 0,
            "insertTime": now_rfc3339(),
            "selfLink": link(&format!("{}/operations/{name}", scope_path(project, &scope))),
        });
        match &scope {
            Scope::Zone(z) => j["zone"] = Value::String(zone_link(project, z)),
            Scope::Region(r) => j["region"] = Value::String(region_link(project, r)),
            Scope::Global => {}
        }
        let op = Operation {
            json: j,
            scope,
            polls: 0,
            polls_needed,
            action,
            failure: failure.map(|f| {
                let msg = if f.message.is_empty() {
                    default_failure_message(&f.code, project, &target_link_zone(target_link))
                } else {
                    f.message
                };
                (f.code, msg)
            }),
            created: Instant::now(),
            seq,
        };
        let p = self.project(project);
        if let Some(rid) = request_id {
            p.request_ids.insert(rid.to_string(), name.clone());
        }
        p.operations.insert(name.clone(), op);
        if polls_needed == 0 {
            finish(p, &name);
        }
        p.operations
            .get(&name)
            .map(|o| o.json.clone())
            .unwrap_or(Value::Null)
    }

    /// Completes operations older than the auto-complete age, as the real
    /// service would in the background.
    pub fn tick(&mut self) {
        let Some(age) = self.auto_complete_after else {
            return;
        };
        for p in self.projects.values_mut() {
            let due: Vec<String> = p
                .operations
                .iter()
                .filter(|(_, o)| !o.is_done() && o.created.elapsed() >= age)
                .map(|(n, _)| n.clone())
                .collect();
            for n in due {
                finish(p, &n);
            }
        }
    }
}

fn target_collection(target_link: &str) -> String {
    let parts: Vec<&str> = target_link.rsplit('/').collect();
    parts.get(1).map(|s| (*s).to_string()).unwrap_or_default()
}

fn target_link_zone(target_link: &str) -> String {
    let mut it = target_link.split('/');
    while let Some(s) = it.next() {
        if s == "zones" {
            return it.next().unwrap_or_default().to_string();
        }
    }
    String::new()
}

/// The messages GCE puts in a failed operation for the codes tests inject.
pub fn default_failure_message(code: &str, project: &str, zone: &str) -> String {
    match code {
        "QUOTA_EXCEEDED" => {
            "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.".to_string()
        }
        "ZONE_RESOURCE_POOL_EXHAUSTED" => format!(
            "The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later."
        ),
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" => format!(
            "The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill the request.  '(resource type:compute)'."
        ),
        other => format!("Operation failed: {other}"),
    }
}

/// The HTTP status GCE reports on a failed operation for an error code.
fn http_status_for(code: &str) -> (u16, &'static str) {
    match code {
        "QUOTA_EXCEEDED" => (403, "FORBIDDEN"),
        "ZONE_RESOURCE_POOL_EXHAUSTED" | "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" => {
            (503, "SERVICE UNAVAILABLE")
        }
        "RESOURCE_NOT_FOUND" => (404, "NOT FOUND"),
        "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" => (400, "BAD REQUEST"),
        "INTERNAL_ERROR" => (500, "INTERNAL SERVER ERROR"),
        _ => (400, "BAD REQUEST"),
    }
}

/// One poll (`get` or `wait`): PENDING → RUNNING → … → DONE.
pub fn poll(p: &mut Project, name: &str) {
    let Some(op) = p.operations.get_mut(name) else {
        return;
    };
    if op.is_done() {
        return;
    }
    op.polls += 1;
    if op.polls >= op.polls_needed {
        finish(p, name);
        return;
    }
    op.json["status"] = json!("RUNNING");
    if op.json.get("startTime").is_none() {
        op.json["startTime"] = json!(now_rfc3339());
    }
    let pct = (op.polls * 100 / op.polls_needed.max(1)).min(99);
    op.json["progress"] = json!(pct);
    let action = op.action.clone();
    on_running(p, &action);
}

/// Applies the effect (or the rollback) and marks the operation DONE.
pub fn finish(p: &mut Project, name: &str) {
    let Some(op) = p.operations.get(name) else {
        return;
    };
    if op.is_done() {
        return;
    }
    let action = op.action.clone();
    let failure = op.failure.clone();
    let error = match failure {
        Some((code, message)) => {
            rollback(p, &action);
            Some((code, message))
        }
        None => match apply(p, &action) {
            Ok(()) => None,
            Err(e) => {
                rollback(p, &action);
                let code = match e.reason {
                    "notFound" => "RESOURCE_NOT_FOUND",
                    "resourceInUseByAnotherResource" => "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
                    "alreadyExists" => "RESOURCE_ALREADY_EXISTS",
                    _ => "INVALID_USAGE",
                };
                Some((code.to_string(), e.message))
            }
        },
    };
    let Some(op) = p.operations.get_mut(name) else {
        return;
    };
    let now = now_rfc3339();
    if op.json.get("startTime").is_none() {
        op.json["startTime"] = json!(now);
    }
    op.json["endTime"] = json!(now);
    op.json["status"] = json!("DONE");
    op.json["progress"] = json!(100);
    if let Some((code, message)) = error {
        let (status, text) = http_status_for(&code);
        op.json["error"] = json!({"errors": [{"code": code, "message": message}]});
        op.json["httpErrorStatusCode"] = json!(status);
        op.json["httpErrorMessage"] = json!(text);
    }
}

fn instance_mut<'a>(p: &'a mut Project, zone: &str, name: &str) -> Option<&'a mut Value> {
    p.instances.get_mut(&(zone.to_string(), name.to_string()))
}

fn on_running(p: &mut Project, action: &Action) {
    match action {
        Action::InstanceInsert { zone, name, .. } | Action::InstanceStart { zone, name, .. } => {
            if let Some(i) = instance_mut(p, zone, name) {
                if i["status"] == "PROVISIONING" {
                    i["status"] = json!("STAGING");
                }
            }
        }
        _ => {}
    }
}

fn instance_link(p: &Project, zone: &str, name: &str) -> String {
    link(&super::util::zonal_path(&p.name, zone, "instances", name))
}

/// Sets or clears the ephemeral external address of every access config.
fn set_nat(p: &mut Project, zone: &str, name: &str, running: bool) {
    let key = (zone.to_string(), name.to_string());
    let needs: usize = p
        .instances
        .get(&key)
        .and_then(|i| i["networkInterfaces"].as_array())
        .map(|nics| {
            nics.iter()
                .map(|n| n["accessConfigs"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    let ips: Vec<String> = (0..needs).map(|_| p.allocate_nat_ip()).collect();
    let mut ips = ips.into_iter();
    let statics = p.static_nat.clone();
    if let Some(i) = p.instances.get_mut(&key) {
        if let Some(nics) = i["networkInterfaces"].as_array_mut() {
            for nic in nics {
                if let Some(acs) = nic["accessConfigs"].as_array_mut() {
                    for ac in acs {
                        let Some(obj) = ac.as_object_mut() else {
                            continue;
                        };
                        let fresh = ips.next();
                        // A static address the caller reserved survives a stop.
                        if obj
                            .get("natIP")
                            .and_then(Value::as_str)
                            .is_some_and(|ip| statics.contains(ip))
                        {
                            continue;
                        }
                        if running {
                            if let Some(ip) = fresh {
                                obj.insert("natIP".into(), json!(ip));
                            }
                        } else {
                            obj.remove("natIP");
                        }
                    }
                }
            }
        }
    }
}

fn set_disk_status(p: &mut Project, zone: &str, disk: &str, status: &str) {
    if let Some(d) = p.disks.get_mut(&(zone.to_string(), disk.to_string())) {
        d["status"] = json!(status);
    }
}

fn remove_user(p: &mut Project, zone: &str, disk: &str, user: &str) {
    if let Some(d) = p.disks.get_mut(&(zone.to_string(), disk.to_string())) {
        if let Some(users) = d["users"].as_array_mut() {
            users.retain(|u| u != user);
            if users.is_empty() {
                if let Some(o) = d.as_object_mut() {
                    o.remove("users");
                }
                d["lastDetachTimestamp"] = json!(now_rfc3339());
            }
        }
    }
}

/// Removes an instance the way a delete does: auto-delete disks go with it,
/// the others are detached.
pub fn remove_instance(p: &mut Project, zone: &str, name: &str) {
    let key = (zone.to_string(), name.to_string());
    let Some(inst) = p.instances.remove(&key) else {
        return;
    };
    p.explicit_accels.remove(&key);
    let me = instance_link(p, zone, name);
    for d in inst["disks"].as_array().cloned().unwrap_or_default() {
        let disk_name = d["source"]
            .as_str()
            .and_then(|s| s.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        if d["autoDelete"] == true {
            p.disks.remove(&(zone.to_string(), disk_name));
        } else {
            remove_user(p, zone, &disk_name, &me);
        }
    }
}

fn missing(project: &str, zone: &str, collection: &str, name: &str) -> ApiError {
    ApiError::not_found(&super::util::zonal_path(project, zone, collection, name))
}

fn apply(p: &mut Project, action: &Action) -> Result<(), ApiError> {
    let now = now_rfc3339();
    let pn = p.name.clone();
    match action {
        Action::InstanceInsert {
            zone,
            name,
            new_disks,
            ..
        } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            i["status"] = json!("RUNNING");
            i["lastStartTimestamp"] = json!(now);
            for d in new_disks {
                set_disk_status(p, zone, d, "READY");
            }
            set_nat(p, zone, name, true);
        }
        Action::InstanceDelete { zone, name, .. } => {
            remove_instance(p, zone, name);
        }
        Action::InstanceStart {
            zone,
            name,
            prev_status,
        } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            if prev_status != "RUNNING" {
                i["status"] = json!("RUNNING");
                i["lastStartTimestamp"] = json!(now);
                set_nat(p, zone, name, true);
            }
        }
        Action::InstanceStop {
            zone,
            name,
            prev_status,
        } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            if prev_status != "TERMINATED" {
                i["status"] = json!("TERMINATED");
                i["lastStopTimestamp"] = json!(now);
                set_nat(p, zone, name, false);
            }
        }
        Action::InstanceSuspend {
            zone,
            name,
            prev_status,
        } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            if prev_status != "SUSPENDED" {
                i["status"] = json!("SUSPENDED");
                i["lastSuspendedTimestamp"] = json!(now);
                set_nat(p, zone, name, false);
            }
        }
        Action::InstanceSetMachineResources { zone, name, accels } => {
            let key = (zone.clone(), name.clone());
            let mt = instance_mut(p, zone, name)
                .ok_or_else(|| missing(&pn, zone, "instances", name))?["machineType"]
                .as_str()
                .and_then(|m| m.rsplit('/').next())
                .unwrap_or_default()
                .to_string();
            if accels.is_empty() {
                p.explicit_accels.remove(&key);
            } else {
                p.explicit_accels.insert(key, accels.clone());
            }
            let eff = super::instances::effective_accelerators(&pn, zone, &mt, accels);
            if let Some(o) = instance_mut(p, zone, name).and_then(Value::as_object_mut) {
                if eff.is_empty() {
                    o.remove("guestAccelerators");
                } else {
                    o.insert("guestAccelerators".into(), Value::Array(eff));
                }
            }
        }
        Action::InstanceSetMachineType {
            zone,
            name,
            machine_type,
        } => {
            let key = (zone.clone(), name.clone());
            let explicit = p.explicit_accels.get(&key).cloned().unwrap_or_default();
            let project = p.name.clone();
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            i["machineType"] = json!(machine_type);
            let mt_name = machine_type.rsplit('/').next().unwrap_or_default();
            let accels =
                super::instances::effective_accelerators(&project, zone, mt_name, &explicit);
            if let Some(o) = i.as_object_mut() {
                if accels.is_empty() {
                    o.remove("guestAccelerators");
                } else {
                    o.insert("guestAccelerators".into(), Value::Array(accels));
                }
            }
            i["fingerprint"] = json!(new_fingerprint());
        }
        Action::InstanceSetLabels { zone, name, labels } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            set_labels(i, labels);
        }
        Action::InstanceSetMetadata { zone, name, items } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            let mut md = json!({"kind": "compute#metadata", "fingerprint": new_fingerprint()});
            if !items.is_empty() {
                md["items"] = Value::Array(items.clone());
            }
            i["metadata"] = md;
        }
        Action::InstanceSetTags { zone, name, items } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            let mut tags = json!({"fingerprint": new_fingerprint()});
            if !items.is_empty() {
                tags["items"] = json!(items);
            }
            i["tags"] = tags;
        }
        Action::InstanceAttachDisk {
            zone,
            name,
            attached,
            disk,
        } => {
            let me = instance_link(p, zone, name);
            let dkey = (zone.clone(), disk.clone());
            if !p.disks.contains_key(&dkey) {
                return Err(missing(&pn, zone, "disks", disk));
            }
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            let list = i["disks"].as_array().cloned().unwrap_or_default();
            let mut att = attached.clone();
            att["index"] = json!(list.len());
            let mut list = list;
            list.push(att);
            i["disks"] = Value::Array(list);
            if let Some(d) = p.disks.get_mut(&dkey) {
                let mut users = d["users"].as_array().cloned().unwrap_or_default();
                users.push(json!(me));
                d["users"] = Value::Array(users);
                d["lastAttachTimestamp"] = json!(now);
            }
        }
        Action::InstanceDetachDisk {
            zone,
            name,
            device_name,
        } => {
            let me = instance_link(p, zone, name);
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            let mut list = i["disks"].as_array().cloned().unwrap_or_default();
            let Some(pos) = list
                .iter()
                .position(|d| d["deviceName"] == device_name.as_str())
            else {
                return Ok(());
            };
            let removed = list.remove(pos);
            for (idx, d) in list.iter_mut().enumerate() {
                d["index"] = json!(idx);
            }
            i["disks"] = Value::Array(list);
            let disk = removed["source"]
                .as_str()
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or_default()
                .to_string();
            remove_user(p, zone, &disk, &me);
        }
        Action::InstanceSetDeletionProtection { zone, name, value } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            i["deletionProtection"] = json!(value);
        }
        Action::InstanceSetDiskAutoDelete {
            zone,
            name,
            device_name,
            value,
        } => {
            let i =
                instance_mut(p, zone, name).ok_or_else(|| missing(&pn, zone, "instances", name))?;
            if let Some(list) = i["disks"].as_array_mut() {
                for d in list {
                    if d["deviceName"] == device_name.as_str() {
                        d["autoDelete"] = json!(value);
                    }
                }
            }
        }
        Action::DiskInsert { zone, name } => {
            if !p.disks.contains_key(&(zone.clone(), name.clone())) {
                return Err(missing(&pn, zone, "disks", name));
            }
            set_disk_status(p, zone, name, "READY");
        }
        Action::DiskDelete { zone, name, .. } => {
            p.disks.remove(&(zone.clone(), name.clone()));
        }
        Action::DiskResize {
            zone,
            name,
            size_gb,
        } => {
            let dkey = (zone.clone(), name.clone());
            let d = p
                .disks
                .get_mut(&dkey)
                .ok_or_else(|| missing(&pn, zone, "disks", name))?;
            d["sizeGb"] = json!(size_gb.to_string());
            let source = d["selfLink"].clone();
            // The instance view of an attached disk reports its size too.
            for i in p.instances.values_mut() {
                if let Some(list) = i["disks"].as_array_mut() {
                    for ad in list {
                        if ad["source"] == source {
                            ad["diskSizeGb"] = json!(size_gb.to_string());
                        }
                    }
                }
            }
        }
        Action::DiskSetLabels { zone, name, labels } => {
            let d = p
                .disks
                .get_mut(&(zone.clone(), name.clone()))
                .ok_or_else(|| missing(&pn, zone, "disks", name))?;
            set_labels(d, labels);
        }
        Action::FirewallInsert { firewall } => {
            let name = firewall["name"].as_str().unwrap_or_default().to_string();
            p.firewalls.insert(name, firewall.clone());
        }
        Action::FirewallReplace { name, firewall } => {
            if !p.firewalls.contains_key(name) {
                return Err(ApiError::not_found(&global_path(&pn, "firewalls", name)));
            }
            p.firewalls.insert(name.clone(), firewall.clone());
        }
        Action::FirewallDelete { name } => {
            p.firewalls.remove(name);
        }
    }
    Ok(())
}

pub fn set_labels(v: &mut Value, labels: &Map<String, Value>) {
    if let Some(o) = v.as_object_mut() {
        if labels.is_empty() {
            o.remove("labels");
        } else {
            o.insert("labels".into(), Value::Object(labels.clone()));
        }
        o.insert("labelFingerprint".into(), json!(new_fingerprint()));
    }
}

/// Undoes the transitional change of a failed operation so nothing is left.
fn rollback(p: &mut Project, action: &Action) {
    match action {
        Action::InstanceInsert {
            zone,
            name,
            new_disks,
            attached_disks,
        } => {
            let me = instance_link(p, zone, name);
            let key = (zone.clone(), name.clone());
            p.instances.remove(&key);
            p.explicit_accels.remove(&key);
            for d in new_disks {
                p.disks.remove(&(zone.clone(), d.clone()));
            }
            for d in attached_disks {
                remove_user(p, zone, d, &me);
            }
        }
        Action::InstanceDelete {
            zone,
            name,
            prev_status,
        }
        | Action::InstanceStart {
            zone,
            name,
            prev_status,
        }
        | Action::InstanceStop {
            zone,
            name,
            prev_status,
        }
        | Action::InstanceSuspend {
            zone,
            name,
            prev_status,
        } => {
            if let Some(i) = instance_mut(p, zone, name) {
                i["status"] = json!(prev_status);
            }
        }
        Action::DiskInsert { zone, name } => {
            p.disks.remove(&(zone.clone(), name.clone()));
        }
        Action::DiskDelete {
            zone,
            name,
            prev_status,
        } => set_disk_status(p, zone, name, prev_status),
        _ => {}
    }
}

/// `labelFingerprint` for a resource that has never had labels set.
pub fn initial_label_fingerprint(labels: &Map<String, Value>) -> String {
    if labels.is_empty() {
        EMPTY_FINGERPRINT.to_string()
    } else {
        new_fingerprint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_polls(n: u32) -> State {
        State {
            polls_needed: n,
            ..Default::default()
        }
    }

    fn add_instance(st: &mut State, status: &str) {
        let p = st.project("p");
        p.instances.insert(
            ("us-central1-a".into(), "vm".into()),
            json!({"name": "vm", "status": status, "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}], "disks": []}),
        );
    }

    fn stop_op(st: &mut State) -> String {
        let action = Action::InstanceStop {
            zone: "us-central1-a".into(),
            name: "vm".into(),
            prev_status: "RUNNING".into(),
        };
        let op = st.new_operation(
            "p",
            Scope::Zone("us-central1-a".into()),
            "stop",
            "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/vm",
            "1",
            action,
            None,
        );
        op["name"].as_str().unwrap().to_string()
    }

    #[test]
    fn operations_walk_pending_running_done() {
        let mut st = state_with_polls(3);
        add_instance(&mut st, "RUNNING");
        let name = stop_op(&mut st);
        let p = st.project("p");
        assert_eq!(p.operations[&name].json["status"], "PENDING");
        assert!(p.operations[&name].json["selfLink"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/projects/p/zones/us-central1-a/operations/{name}"
            )));
        poll(p, &name);
        assert_eq!(p.operations[&name].json["status"], "RUNNING");
        assert!(p.operations[&name].json.get("startTime").is_some());
        poll(p, &name);
        assert_eq!(p.operations[&name].json["status"], "RUNNING");
        // Not applied before DONE.
        assert_eq!(
            p.instances[&("us-central1-a".into(), "vm".into())]["status"],
            "RUNNING"
        );
        poll(p, &name);
        let op = &p.operations[&name].json;
        assert_eq!(op["status"], "DONE");
        assert_eq!(op["progress"], 100);
        assert!(op.get("endTime").is_some() && op.get("error").is_none());
        assert_eq!(
            p.instances[&("us-central1-a".into(), "vm".into())]["status"],
            "TERMINATED"
        );
        // Further polls change nothing.
        poll(p, &name);
        assert_eq!(p.operations[&name].json["status"], "DONE");
    }

    #[test]
    fn zero_polls_means_done_on_return() {
        let mut st = state_with_polls(0);
        add_instance(&mut st, "RUNNING");
        let name = stop_op(&mut st);
        assert_eq!(st.project("p").operations[&name].json["status"], "DONE");
    }

    #[test]
    fn injected_failures_end_done_with_error_and_roll_back() {
        let mut st = state_with_polls(1);
        add_instance(&mut st, "STOPPING");
        st.op_failures.push(PendingOpFailure {
            kind: "instances.stop".into(),
            code: "ZONE_RESOURCE_POOL_EXHAUSTED".into(),
            message: String::new(),
        });
        let name = stop_op(&mut st);
        let p = st.project("p");
        poll(p, &name);
        let op = &p.operations[&name].json;
        assert_eq!(op["status"], "DONE");
        assert_eq!(op["httpErrorStatusCode"], 503);
        assert_eq!(
            op["error"]["errors"][0]["code"],
            "ZONE_RESOURCE_POOL_EXHAUSTED"
        );
        assert!(op["error"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not have enough resources available"));
        // Rolled back to the status before the call.
        assert_eq!(
            p.instances[&("us-central1-a".into(), "vm".into())]["status"],
            "RUNNING"
        );
        // The failure was consumed: the next operation succeeds.
        assert!(st.op_failures.is_empty());
    }

    #[test]
    fn auto_complete_finishes_old_operations() {
        let mut st = state_with_polls(5);
        st.auto_complete_after = Some(Duration::from_millis(0));
        add_instance(&mut st, "RUNNING");
        let name = stop_op(&mut st);
        st.tick();
        assert_eq!(st.project("p").operations[&name].json["status"], "DONE");
    }

    #[test]
    fn ip_allocation_and_cidr_hosts() {
        assert_eq!(cidr_host("10.128.0.0/20", 2).as_deref(), Some("10.128.0.2"));
        assert_eq!(cidr_host("10.0.0.0/30", 4), None);
        let mut p = Project::new("p");
        let subnet = p.subnetworks[&("us-central1".into(), "default".into())].clone();
        assert_eq!(p.allocate_ip(&subnet), "10.128.0.2");
        assert_eq!(p.allocate_ip(&subnet), "10.128.0.3");
        let a = p.allocate_nat_ip();
        let b = p.allocate_nat_ip();
        assert_ne!(a, b);
    }
}
