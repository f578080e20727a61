//! `instances.*`: validation with the real API's refusals, the instance
//! resource as GET returns it, and the accept phase of every mutating verb.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::catalog::{self, MachineTypeInfo};
use super::errors::ApiError;
use super::state::{initial_label_fingerprint, Action, Project, Scope, State};
use super::util::{
    body_object, fingerprint_matches, link, new_fingerprint, new_id, now_rfc3339, opt_array,
    opt_bool, opt_i64, opt_object, opt_str, parse_ref, region_of_zone, string_list, valid_name,
    validate_labels, zonal_path, zone_link, EMPTY_FINGERPRINT, NAME_REGEX,
};

pub type Query = HashMap<String, String>;

const LIVE_MIGRATION: &str = "Instances with guest accelerators do not support live migration.";

fn instance_path(project: &str, zone: &str, name: &str) -> String {
    zonal_path(project, zone, "instances", name)
}

pub fn machine_type_link(project: &str, zone: &str, name: &str) -> String {
    link(&zonal_path(project, zone, "machineTypes", name))
}

fn accel_link(project: &str, zone: &str, name: &str) -> String {
    link(&zonal_path(project, zone, "acceleratorTypes", name))
}

/// Resolves a machine type reference in `zone` (URL, partial path or name).
fn resolve_machine_type(zone: &str, raw: &str, field: &str) -> Result<MachineTypeInfo, ApiError> {
    let r = parse_ref(raw);
    let in_zone = r.zone.as_deref().unwrap_or(zone);
    let not_found = || {
        ApiError::invalid_field(
            field,
            raw,
            &format!(
                "Machine type with name '{}' does not exist in zone '{in_zone}'.",
                r.name
            ),
        )
    };
    if in_zone != zone {
        return Err(ApiError::invalid_field(
            field,
            raw,
            &format!("Machine type must be in zone '{zone}'."),
        ));
    }
    catalog::machine_type(zone, &r.name).ok_or_else(not_found)
}

/// The guestAccelerators an instance reports: the explicit ones (N1), or the
/// GPUs built into an A2/A3/G2 machine type.
pub fn effective_accelerators(
    project: &str,
    zone: &str,
    machine_type: &str,
    explicit: &[Value],
) -> Vec<Value> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    match catalog::machine_type(zone, machine_type).and_then(|m| m.gpus) {
        Some((gpu, count)) => vec![json!({
            "acceleratorType": accel_link(project, zone, gpu),
            "acceleratorCount": count,
        })],
        None => Vec::new(),
    }
}

/// How many vCPUs an N1 VM may have per number of attached GPUs (public
/// GPU-platform tables).
fn max_vcpus(gpu: &str, count: i64) -> Option<u32> {
    match (gpu, count) {
        ("nvidia-tesla-t4", 1 | 2) => Some(48),
        ("nvidia-tesla-t4", 4) => Some(96),
        ("nvidia-tesla-v100", 1) => Some(12),
        ("nvidia-tesla-v100", 2) => Some(24),
        ("nvidia-tesla-v100", 4) => Some(48),
        ("nvidia-tesla-v100", 8) => Some(96),
        _ => None,
    }
}

/// Validates `guestAccelerators` against the machine type and zone; returns
/// them normalised to full URLs.
fn validate_accelerators(
    project: &str,
    zone: &str,
    mt: &MachineTypeInfo,
    list: &[Value],
    prefix: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let path = format!("{prefix}guestAccelerators[{i}]");
        let obj = a.as_object().ok_or_else(|| {
            ApiError::parse_error(&format!("Invalid value at '{path}', expected an object"))
        })?;
        let raw = opt_str(obj, "acceleratorType", &format!("{path}.acceleratorType"))?
            .ok_or_else(|| ApiError::required(&format!("{path}.acceleratorType")))?;
        let count =
            opt_i64(obj, "acceleratorCount", &format!("{path}.acceleratorCount"))?.unwrap_or(0);
        let r = parse_ref(raw);
        let type_zone = r.zone.clone().unwrap_or_else(|| zone.to_string());
        let Some(info) = catalog::accelerator(zone, &r.name).filter(|_| type_zone == zone) else {
            return Err(ApiError::invalid_field(
                &format!("{path}.acceleratorType"),
                raw,
                &format!(
                    "Accelerator type '{}' does not exist in zone '{type_zone}'.",
                    r.name
                ),
            ));
        };
        // GPUs are built into A2/A3/G2 shapes; only N1 takes attached GPUs,
        // and only T4/V100 (among the ones we model) attach to N1.
        let n1_gpu = matches!(info.name, "nvidia-tesla-t4" | "nvidia-tesla-v100");
        if mt.gpus.is_some() || !mt.name.starts_with("n1-") || !n1_gpu {
            return Err(ApiError::bad_request(&format!(
                "[{}, {}] features are not compatible for creating instance.",
                info.name, mt.name
            )));
        }
        if count < 1 || count > i64::from(info.max_cards) || max_vcpus(info.name, count).is_none() {
            return Err(ApiError::invalid_field(
                &format!("{path}.acceleratorCount"),
                &count.to_string(),
                &format!(
                    "Accelerator count must be one of the supported counts for '{}'.",
                    info.name
                ),
            ));
        }
        if let Some(max) = max_vcpus(info.name, count) {
            if mt.cpus > max {
                return Err(ApiError::invalid_field(
                    &format!("{path}.acceleratorCount"),
                    &count.to_string(),
                    &format!("At most {max} vCPUs can be used along with {count} accelerator cards in an instance."),
                ));
            }
        }
        out.push(json!({
            "acceleratorType": accel_link(project, zone, info.name),
            "acceleratorCount": count,
        }));
    }
    Ok(out)
}

/// Scheduling with the defaults GCE fills in, after the real API's checks.
fn validate_scheduling(
    sched: Option<&Map<String, Value>>,
    has_gpu: bool,
    prefix: &str,
) -> Result<Value, ApiError> {
    let empty = Map::new();
    let s = sched.unwrap_or(&empty);
    let field = |f: &str| format!("{prefix}scheduling.{f}");
    let enum_err = |f: &str, ty: &str, v: &str| {
        ApiError::parse_error(&format!(
            "Invalid value at '{}' (type.googleapis.com/compute.Scheduling.{ty}), \"{v}\"",
            field(f)
        ))
    };
    let model = opt_str(s, "provisioningModel", &field("provisioningModel"))?.unwrap_or("STANDARD");
    if !matches!(model, "STANDARD" | "SPOT") {
        return Err(enum_err("provisioningModel", "ProvisioningModel", model));
    }
    let preemptible_req = opt_bool(s, "preemptible", &field("preemptible"))?;
    let spot = model == "SPOT";
    let preemptible = spot || preemptible_req.unwrap_or(false);
    let ohm = opt_str(s, "onHostMaintenance", &field("onHostMaintenance"))?;
    if let Some(v) = ohm {
        if !matches!(v, "MIGRATE" | "TERMINATE") {
            return Err(enum_err("onHostMaintenance", "OnHostMaintenance", v));
        }
    }
    let auto = opt_bool(s, "automaticRestart", &field("automaticRestart"))?;
    let action = opt_str(
        s,
        "instanceTerminationAction",
        &field("instanceTerminationAction"),
    )?;
    if let Some(v) = action {
        if !matches!(v, "STOP" | "DELETE") {
            return Err(enum_err(
                "instanceTerminationAction",
                "InstanceTerminationAction",
                v,
            ));
        }
    }
    if preemptible {
        if ohm == Some("MIGRATE") {
            return Err(ApiError::invalid_field(
                &field("onHostMaintenance"),
                "MIGRATE",
                "Scheduling must have preemptible be false when OnHostMaintenance isn't TERMINATE.",
            ));
        }
        if auto == Some(true) {
            return Err(ApiError::invalid_field(
                &field("automaticRestart"),
                "true",
                "Scheduling must have preemptible be false when AutomaticRestart is true.",
            ));
        }
    } else if let Some(v) = action {
        return Err(ApiError::invalid_field(
            &field("instanceTerminationAction"),
            v,
            "Instance termination action can only be set for Spot VMs or VMs with a max run duration.",
        ));
    }
    let ohm = ohm.unwrap_or(if preemptible { "TERMINATE" } else { "MIGRATE" });
    if has_gpu && ohm == "MIGRATE" {
        return Err(ApiError::bad_request(LIVE_MIGRATION));
    }
    let mut out = json!({
        "onHostMaintenance": ohm,
        "automaticRestart": auto.unwrap_or(!preemptible),
        "preemptible": preemptible,
        "provisioningModel": model,
    });
    if spot {
        // Spot VMs are stopped on preemption unless told otherwise.
        out["instanceTerminationAction"] = json!(action.unwrap_or("STOP"));
    }
    Ok(out)
}

fn validate_metadata_items(items: &[Value], field: &str) -> Result<Vec<Value>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, it) in items.iter().enumerate() {
        let path = format!("{field}.items[{i}]");
        let obj = it.as_object().ok_or_else(|| {
            ApiError::parse_error(&format!("Invalid value at '{path}', expected an object"))
        })?;
        let key = opt_str(obj, "key", &format!("{path}.key"))?.unwrap_or("");
        let value = opt_str(obj, "value", &format!("{path}.value"))?.unwrap_or("");
        let key_ok = !key.is_empty()
            && key.len() <= 128
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !key_ok {
            return Err(ApiError::invalid_field(
                &format!("{path}.key"),
                key,
                "Must be a match of regex '[a-zA-Z0-9-_]{1,128}'",
            ));
        }
        if !seen.insert(key.to_string()) {
            return Err(ApiError::invalid_field(
                field,
                "",
                &format!("Metadata has duplicate keys: {key}."),
            ));
        }
        if value.len() > 256 * 1024 {
            return Err(ApiError::invalid_field(
                &format!("{path}.value"),
                "",
                "Metadata value exceeds the maximum size of 256 KB.",
            ));
        }
        total += key.len() + value.len();
        out.push(json!({"key": key, "value": value}));
    }
    if total > 512 * 1024 {
        return Err(ApiError::invalid_field(
            field,
            "",
            "Metadata exceeds the maximum total size of 512 KB.",
        ));
    }
    Ok(out)
}

fn validate_tags(items: &[String], field: &str) -> Result<(), ApiError> {
    if items.len() > 64 {
        return Err(ApiError::invalid_field(
            field,
            "",
            "Too many tags (maximum 64).",
        ));
    }
    for (i, t) in items.iter().enumerate() {
        if !valid_name(t) {
            return Err(ApiError::invalid_field(
                &format!("{field}[{i}]"),
                t,
                &format!("Must be a match of regex '{NAME_REGEX}'"),
            ));
        }
    }
    Ok(())
}

/// Resolves the image of `initializeParams.sourceImage`.
fn resolve_image(
    project: &str,
    raw: &str,
    field: &str,
) -> Result<&'static catalog::ImageInfo, ApiError> {
    let r = parse_ref(raw);
    let img_project = r.project.clone().unwrap_or_else(|| project.to_string());
    let found = if r.family {
        catalog::image_from_family(&img_project, &r.name)
    } else {
        catalog::image(&img_project, &r.name)
    };
    found.ok_or_else(|| {
        ApiError::invalid_field(field, raw, "The referenced image resource cannot be found.")
    })
}

fn resolve_disk_type(
    project: &str,
    zone: &str,
    raw: Option<&str>,
    field: &str,
) -> Result<String, ApiError> {
    let Some(raw) = raw else {
        return Ok(catalog::disk_type_link(project, zone, "pd-standard"));
    };
    let r = parse_ref(raw);
    if r.zone.as_deref().is_some_and(|z| z != zone)
        || !catalog::DISK_TYPES.contains(&r.name.as_str())
    {
        return Err(ApiError::invalid_field(
            field,
            raw,
            &format!("Disk type '{}' does not exist in zone '{zone}'.", r.name),
        ));
    }
    Ok(catalog::disk_type_link(project, zone, &r.name))
}

/// A new persistent disk resource in CREATING state.
#[allow(clippy::too_many_arguments)]
pub fn new_disk_json(
    project: &str,
    zone: &str,
    name: &str,
    size_gb: i64,
    disk_type: &str,
    image: Option<&catalog::ImageInfo>,
    labels: &Map<String, Value>,
    description: Option<&str>,
) -> Value {
    let mut d = json!({
        "kind": "compute#disk",
        "id": new_id().to_string(),
        "creationTimestamp": now_rfc3339(),
        "name": name,
        "sizeGb": size_gb.to_string(),
        "zone": zone_link(project, zone),
        "status": "CREATING",
        "selfLink": link(&zonal_path(project, zone, "disks", name)),
        "type": disk_type,
        "labelFingerprint": initial_label_fingerprint(labels),
        "physicalBlockSizeBytes": "4096",
        "architecture": "X86_64",
    });
    if !labels.is_empty() {
        d["labels"] = Value::Object(labels.clone());
    }
    if let Some(desc) = description {
        d["description"] = json!(desc);
    }
    if let Some(img) = image {
        let img_json = catalog::image_json(img);
        d["sourceImage"] = img_json["selfLink"].clone();
        d["sourceImageId"] = img_json["id"].clone();
    }
    d
}

/// Resolves the network and subnetwork of a NIC.
fn resolve_nic(
    p: &Project,
    zone: &str,
    nic: &Map<String, Value>,
    path: &str,
) -> Result<(String, Value), ApiError> {
    let region = region_of_zone(zone);
    let net_raw = opt_str(nic, "network", &format!("{path}.network"))?;
    let sub_raw = opt_str(nic, "subnetwork", &format!("{path}.subnetwork"))?;
    let subnet = match sub_raw {
        Some(raw) => {
            let r = parse_ref(raw);
            let sub_project = r.project.clone().unwrap_or_else(|| p.name.clone());
            let sub_region = r.region.clone().unwrap_or_else(|| region.to_string());
            let found = (sub_project == p.name)
                .then(|| p.subnetworks.get(&(sub_region.clone(), r.name.clone())))
                .flatten();
            let Some(s) = found else {
                return Err(ApiError::invalid_field(
                    &format!("{path}.subnetwork"),
                    raw,
                    "The referenced subnetwork resource cannot be found.",
                ));
            };
            if sub_region != region {
                return Err(ApiError::invalid_field(
                    &format!("{path}.subnetwork"),
                    raw,
                    &format!("Subnetwork must be in region '{region}' of the instance."),
                ));
            }
            Some(s.clone())
        }
        None => None,
    };
    let network = match net_raw {
        Some(raw) => {
            let r = parse_ref(raw);
            let net_project = r.project.clone().unwrap_or_else(|| p.name.clone());
            let found = (net_project == p.name)
                .then(|| p.networks.get(&r.name))
                .flatten();
            let Some(n) = found else {
                return Err(ApiError::invalid_field(
                    &format!("{path}.network"),
                    raw,
                    "The referenced network resource cannot be found.",
                ));
            };
            n.clone()
        }
        None => match &subnet {
            Some(s) => {
                let name = s["network"]
                    .as_str()
                    .and_then(|l| l.rsplit('/').next())
                    .unwrap_or("default");
                p.networks.get(name).cloned().unwrap_or(Value::Null)
            }
            None => p.networks.get("default").cloned().ok_or_else(|| {
                ApiError::invalid_field(
                    &format!("{path}.network"),
                    "global/networks/default",
                    "The referenced network resource cannot be found.",
                )
            })?,
        },
    };
    let net_link = network["selfLink"].as_str().unwrap_or_default().to_string();
    let subnet = match subnet {
        Some(s) => {
            if s["network"].as_str() != Some(net_link.as_str()) {
                return Err(ApiError::invalid_field(
                    &format!("{path}.subnetwork"),
                    s["selfLink"].as_str().unwrap_or_default(),
                    "Subnetwork does not belong to the specified network.",
                ));
            }
            s
        }
        None => {
            if network["autoCreateSubnetworks"] != true {
                return Err(ApiError::invalid_field(
                    path,
                    "",
                    "Subnetwork should be specified for custom subnetmode network",
                ));
            }
            let net_name = network["name"].as_str().unwrap_or("default");
            p.subnetworks
                .values()
                .find(|s| {
                    s["network"].as_str() == Some(net_link.as_str())
                        && s["region"]
                            .as_str()
                            .is_some_and(|r| r.ends_with(&format!("/regions/{region}")))
                })
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        &format!("{path}.network"),
                        net_name,
                        &format!("The network has no subnetwork in region '{region}'."),
                    )
                })?
        }
    };
    Ok((net_link, subnet))
}

/// `instances.insert`.
pub fn insert(
    st: &mut State,
    project: &str,
    zone: &str,
    body: &Value,
    request_id: Option<&str>,
) -> Result<Value, ApiError> {
    let obj = body_object(body)?;
    let name = opt_str(obj, "name", "resource.name")?
        .ok_or_else(|| ApiError::required("resource.name"))?;
    if !valid_name(name) {
        return Err(ApiError::invalid_field(
            "resource.name",
            name,
            &format!("Must be a match of regex '{NAME_REGEX}'"),
        ));
    }
    let p = st.project(project);
    if p.instances
        .contains_key(&(zone.to_string(), name.to_string()))
    {
        return Err(ApiError::already_exists(&instance_path(
            project, zone, name,
        )));
    }
    let mt_raw = opt_str(obj, "machineType", "resource.machineType")?
        .ok_or_else(|| ApiError::required("resource.machineType"))?;
    let mt = resolve_machine_type(zone, mt_raw, "resource.machineType")?;
    let accels = validate_accelerators(
        project,
        zone,
        &mt,
        opt_array(obj, "guestAccelerators", "resource.guestAccelerators")?,
        "resource.",
    )?;
    let has_gpu = !accels.is_empty() || mt.gpus.is_some();
    let scheduling = validate_scheduling(
        opt_object(obj, "scheduling", "resource.scheduling")?,
        has_gpu,
        "resource.",
    )?;
    let labels = match opt_object(obj, "labels", "resource.labels")? {
        Some(l) => validate_labels(l, "resource.labels")?,
        None => Map::new(),
    };
    let md_items = match opt_object(obj, "metadata", "resource.metadata")? {
        Some(m) => validate_metadata_items(
            opt_array(m, "items", "resource.metadata.items")?,
            "resource.metadata",
        )?,
        None => Vec::new(),
    };
    let tags = match opt_object(obj, "tags", "resource.tags")? {
        Some(t) => string_list(t, "items", "resource.tags.items")?,
        None => Vec::new(),
    };
    validate_tags(&tags, "resource.tags.items")?;
    let deletion_protection =
        opt_bool(obj, "deletionProtection", "resource.deletionProtection")?.unwrap_or(false);
    let can_ip_forward = opt_bool(obj, "canIpForward", "resource.canIpForward")?.unwrap_or(false);

    // Network interfaces.
    let nics_in = opt_array(obj, "networkInterfaces", "resource.networkInterfaces")?;
    if nics_in.is_empty() {
        return Err(ApiError::invalid_field(
            "resource.networkInterfaces",
            "",
            "At least one network interface must be specified.",
        ));
    }
    let mut nics = Vec::new();
    for (i, n) in nics_in.iter().enumerate() {
        let path = format!("resource.networkInterfaces[{i}]");
        let nic = n.as_object().ok_or_else(|| {
            ApiError::parse_error(&format!("Invalid value at '{path}', expected an object"))
        })?;
        let (net_link, subnet) = resolve_nic(p, zone, nic, &path)?;
        let ip = match opt_str(nic, "networkIP", &format!("{path}.networkIP"))? {
            Some(ip) => {
                let inside =
                    super::util::parse_cidr(subnet["ipCidrRange"].as_str().unwrap_or_default())
                        .zip(ip.parse::<std::net::Ipv4Addr>().ok())
                        .is_some_and(|((base, len), addr)| {
                            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                            u32::from(addr) & mask == base & mask
                        });
                if !inside {
                    return Err(ApiError::invalid_field(
                        &format!("{path}.networkIP"),
                        ip,
                        "Requested internal IP is outside the subnetwork CIDR range.",
                    ));
                }
                ip.to_string()
            }
            None => p.allocate_ip(&subnet),
        };
        let mut acs = Vec::new();
        let acs_in = opt_array(nic, "accessConfigs", &format!("{path}.accessConfigs"))?;
        if acs_in.len() > 1 {
            return Err(ApiError::invalid_field(
                &format!("{path}.accessConfigs"),
                "",
                "At most one access config currently supported.",
            ));
        }
        for (j, ac) in acs_in.iter().enumerate() {
            let ap = format!("{path}.accessConfigs[{j}]");
            let ac = ac.as_object().ok_or_else(|| {
                ApiError::parse_error(&format!("Invalid value at '{ap}', expected an object"))
            })?;
            let ty = opt_str(ac, "type", &format!("{ap}.type"))?.unwrap_or("ONE_TO_ONE_NAT");
            if ty != "ONE_TO_ONE_NAT" {
                return Err(ApiError::parse_error(&format!(
                    "Invalid value at '{ap}.type' (type.googleapis.com/compute.AccessConfig.Type), \"{ty}\""
                )));
            }
            let mut out = json!({
                "kind": "compute#accessConfig",
                "type": ty,
                "name": opt_str(ac, "name", &format!("{ap}.name"))?.unwrap_or("External NAT"),
                "networkTier": opt_str(ac, "networkTier", &format!("{ap}.networkTier"))?.unwrap_or("PREMIUM"),
            });
            if let Some(ip) = opt_str(ac, "natIP", &format!("{ap}.natIP"))? {
                out["natIP"] = json!(ip);
                p.static_nat.insert(ip.to_string());
            }
            acs.push(out);
        }
        let mut nic_out = json!({
            "kind": "compute#networkInterface",
            "network": net_link,
            "subnetwork": subnet["selfLink"],
            "networkIP": ip,
            "name": format!("nic{i}"),
            "fingerprint": new_fingerprint(),
            "stackType": "IPV4_ONLY",
        });
        if !acs.is_empty() {
            nic_out["accessConfigs"] = Value::Array(acs);
        }
        nics.push(nic_out);
    }

    // Disks: validate everything before creating anything.
    let disks_in = opt_array(obj, "disks", "resource.disks")?;
    if disks_in.is_empty() {
        return Err(ApiError::invalid_field(
            "resource.disks",
            "",
            "Boot disk must be specified.",
        ));
    }
    let boot_flags: Vec<bool> = disks_in
        .iter()
        .map(|d| d.get("boot").and_then(Value::as_bool).unwrap_or(false))
        .collect();
    let boots = boot_flags.iter().filter(|b| **b).count();
    if boots > 1 {
        return Err(ApiError::invalid_field(
            "resource.disks",
            "",
            "Only one boot disk may be specified.",
        ));
    }
    let me = link(&instance_path(project, zone, name));
    let mut new_disks: Vec<Value> = Vec::new();
    let mut attached_existing: Vec<String> = Vec::new();
    let mut attached: Vec<Value> = Vec::new();
    let mut device_names = std::collections::HashSet::new();
    for (i, d) in disks_in.iter().enumerate() {
        let path = format!("resource.disks[{i}]");
        let dobj = d.as_object().ok_or_else(|| {
            ApiError::parse_error(&format!("Invalid value at '{path}', expected an object"))
        })?;
        // With no disk flagged as boot, the first one boots, as on GCE.
        let boot = if boots == 0 { i == 0 } else { boot_flags[i] };
        let auto_delete =
            opt_bool(dobj, "autoDelete", &format!("{path}.autoDelete"))?.unwrap_or(false);
        let mode = opt_str(dobj, "mode", &format!("{path}.mode"))?.unwrap_or("READ_WRITE");
        if !matches!(mode, "READ_WRITE" | "READ_ONLY") {
            return Err(ApiError::parse_error(&format!(
                "Invalid value at '{path}.mode' (type.googleapis.com/compute.AttachedDisk.Mode), \"{mode}\""
            )));
        }
        let device = opt_str(dobj, "deviceName", &format!("{path}.deviceName"))?
            .map(str::to_string)
            .unwrap_or_else(|| format!("persistent-disk-{i}"));
        if !device_names.insert(device.clone()) {
            return Err(ApiError::invalid_field(
                &format!("{path}.deviceName"),
                &device,
                "Device name is already in use by another disk of this instance.",
            ));
        }
        let source = opt_str(dobj, "source", &format!("{path}.source"))?;
        let init = opt_object(
            dobj,
            "initializeParams",
            &format!("{path}.initializeParams"),
        )?;
        let (disk_json, is_new) = match (source, init) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(
                    &format!("{path}.source"),
                    "",
                    "Cannot specify both source and initializeParams.",
                ))
            }
            (None, None) => return Err(ApiError::required(&format!("{path}.source"))),
            (Some(raw), None) => {
                let r = parse_ref(raw);
                let dz = r.zone.clone().unwrap_or_else(|| zone.to_string());
                let found = (dz == zone)
                    .then(|| p.disks.get(&(dz.clone(), r.name.clone())))
                    .flatten();
                let Some(disk) = found else {
                    return Err(ApiError::invalid_field(
                        &format!("{path}.source"),
                        raw,
                        "The referenced disk resource cannot be found.",
                    ));
                };
                if disk["status"] != "READY" {
                    return Err(ApiError::not_ready(&zonal_path(
                        project, zone, "disks", &r.name,
                    )));
                }
                if let Some(user) = disk["users"]
                    .as_array()
                    .and_then(|u| u.first())
                    .and_then(Value::as_str)
                {
                    return Err(ApiError::in_use(
                        "disk",
                        &zonal_path(project, zone, "disks", &r.name),
                        user.trim_start_matches(&format!("{}/", super::util::API_BASE)),
                    ));
                }
                (disk.clone(), false)
            }
            (None, Some(ip)) => {
                let ipath = format!("{path}.initializeParams");
                let disk_name = opt_str(ip, "diskName", &format!("{ipath}.diskName"))?
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        if boot {
                            name.to_string()
                        } else {
                            format!("{name}-disk-{i}")
                        }
                    });
                if !valid_name(&disk_name) {
                    return Err(ApiError::invalid_field(
                        &format!("{ipath}.diskName"),
                        &disk_name,
                        &format!("Must be a match of regex '{NAME_REGEX}'"),
                    ));
                }
                if p.disks.contains_key(&(zone.to_string(), disk_name.clone()))
                    || new_disks.iter().any(|d| d["name"] == disk_name.as_str())
                {
                    return Err(ApiError::already_exists(&zonal_path(
                        project, zone, "disks", &disk_name,
                    )));
                }
                let image = match opt_str(ip, "sourceImage", &format!("{ipath}.sourceImage"))? {
                    Some(raw) => Some(resolve_image(
                        project,
                        raw,
                        &format!("{ipath}.sourceImage"),
                    )?),
                    None => None,
                };
                let size = opt_i64(ip, "diskSizeGb", &format!("{ipath}.diskSizeGb"))?;
                let min = image.map_or(1, |im| im.disk_size_gb);
                let size = size.unwrap_or(if image.is_some() { min } else { 10 });
                if size < min {
                    return Err(ApiError::invalid_field(
                        &format!("{ipath}.diskSizeGb"),
                        &size.to_string(),
                        &format!(
                            "Requested disk size cannot be smaller than the image size ({min} GB)"
                        ),
                    ));
                }
                if size > 65_536 {
                    return Err(ApiError::invalid_field(
                        &format!("{ipath}.diskSizeGb"),
                        &size.to_string(),
                        "Disk size cannot be larger than 65536 GB.",
                    ));
                }
                let dtype = resolve_disk_type(
                    project,
                    zone,
                    opt_str(ip, "diskType", &format!("{ipath}.diskType"))?,
                    &format!("{ipath}.diskType"),
                )?;
                let dlabels = match opt_object(ip, "labels", &format!("{ipath}.labels"))? {
                    Some(l) => validate_labels(l, &format!("{ipath}.labels"))?,
                    None => Map::new(),
                };
                let disk = new_disk_json(
                    project, zone, &disk_name, size, &dtype, image, &dlabels, None,
                );
                (disk, true)
            }
        };
        let disk_name = disk_json["name"].as_str().unwrap_or_default().to_string();
        let mut att = json!({
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": mode,
            "source": disk_json["selfLink"],
            "deviceName": device,
            "index": i,
            "boot": boot,
            "autoDelete": auto_delete,
            "interface": if mt.name.starts_with("a3-") { "NVME" } else { "SCSI" },
            "diskSizeGb": disk_json["sizeGb"],
            "architecture": "X86_64",
        });
        if boot {
            att["licenses"] = json!([]);
        }
        attached.push(att);
        if is_new {
            new_disks.push(disk_json);
        } else {
            attached_existing.push(disk_name);
        }
    }

    let id = new_id().to_string();
    let mut inst = json!({
        "kind": "compute#instance",
        "id": id,
        "creationTimestamp": now_rfc3339(),
        "name": name,
        "tags": {"fingerprint": EMPTY_FINGERPRINT},
        "machineType": machine_type_link(project, zone, mt.name),
        "status": "PROVISIONING",
        "zone": zone_link(project, zone),
        "canIpForward": can_ip_forward,
        "networkInterfaces": nics,
        "disks": attached,
        "metadata": {"kind": "compute#metadata", "fingerprint": new_fingerprint()},
        "selfLink": me,
        "scheduling": scheduling,
        "cpuPlatform": "Intel Broadwell",
        "labelFingerprint": initial_label_fingerprint(&labels),
        "startRestricted": false,
        "deletionProtection": deletion_protection,
        "shieldedInstanceConfig": {"enableSecureBoot": false, "enableVtpm": true, "enableIntegrityMonitoring": true},
        "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": true},
        "fingerprint": new_fingerprint(),
        "lastStartTimestamp": Value::Null,
    });
    if let Some(o) = inst.as_object_mut() {
        o.remove("lastStartTimestamp");
    }
    if let Some(desc) = opt_str(obj, "description", "resource.description")? {
        inst["description"] = json!(desc);
    }
    if !labels.is_empty() {
        inst["labels"] = Value::Object(labels);
    }
    if !md_items.is_empty() {
        inst["metadata"]["items"] = Value::Array(md_items);
    }
    if !tags.is_empty() {
        inst["tags"] = json!({"items": tags, "fingerprint": new_fingerprint()});
    }
    let sa = opt_array(obj, "serviceAccounts", "resource.serviceAccounts")?;
    if !sa.is_empty() {
        let list: Vec<Value> = sa
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if s["email"] == "default" {
                    s["email"] = json!("123456789012-compute@developer.gserviceaccount.com");
                }
                s
            })
            .collect();
        inst["serviceAccounts"] = Value::Array(list);
    }
    let eff = effective_accelerators(project, zone, mt.name, &accels);
    if !eff.is_empty() {
        inst["guestAccelerators"] = Value::Array(eff);
    }

    // Accept: the instance shows up as PROVISIONING, its new disks as CREATING.
    let key = (zone.to_string(), name.to_string());
    p.instances.insert(key.clone(), inst);
    if !accels.is_empty() {
        p.explicit_accels.insert(key, accels);
    }
    let mut new_names = Vec::new();
    for mut d in new_disks {
        let dn = d["name"].as_str().unwrap_or_default().to_string();
        d["users"] = json!([me]);
        d["lastAttachTimestamp"] = json!(now_rfc3339());
        p.disks.insert((zone.to_string(), dn.clone()), d);
        new_names.push(dn);
    }
    for dn in &attached_existing {
        if let Some(d) = p.disks.get_mut(&(zone.to_string(), dn.clone())) {
            d["users"] = json!([me]);
            d["lastAttachTimestamp"] = json!(now_rfc3339());
        }
    }
    let action = Action::InstanceInsert {
        zone: zone.to_string(),
        name: name.to_string(),
        new_disks: new_names,
        attached_disks: attached_existing,
    };
    Ok(st.new_operation(
        project,
        Scope::Zone(zone.to_string()),
        "insert",
        &me,
        &id,
        action,
        request_id,
    ))
}

fn get_instance<'a>(p: &'a Project, zone: &str, name: &str) -> Result<&'a Value, ApiError> {
    p.instances
        .get(&(zone.to_string(), name.to_string()))
        .ok_or_else(|| ApiError::not_found(&instance_path(&p.name, zone, name)))
}

pub fn get(st: &mut State, project: &str, zone: &str, name: &str) -> Result<Value, ApiError> {
    get_instance(st.project(project), zone, name).cloned()
}

fn status_of(i: &Value) -> String {
    i["status"].as_str().unwrap_or_default().to_string()
}

/// Creates the operation for a verb on an existing instance.
fn instance_op(
    st: &mut State,
    project: &str,
    zone: &str,
    name: &str,
    op_type: &str,
    action: Action,
    request_id: Option<&str>,
) -> Result<Value, ApiError> {
    let p = st.project(project);
    let i = get_instance(p, zone, name)?;
    let id = i["id"].as_str().unwrap_or_default().to_string();
    let target = i["selfLink"].as_str().unwrap_or_default().to_string();
    Ok(st.new_operation(
        project,
        Scope::Zone(zone.to_string()),
        op_type,
        &target,
        &id,
        action,
        request_id,
    ))
}

/// POST on `instances/{name}/{verb}` and DELETE on the instance.
pub fn verb(
    st: &mut State,
    project: &str,
    zone: &str,
    name: &str,
    verb: &str,
    query: &Query,
    body: &Value,
) -> Result<Value, ApiError> {
    let rid = query.get("requestId").map(String::as_str);
    let p = st.project(project);
    let inst = get_instance(p, zone, name)?.clone();
    let status = status_of(&inst);
    let z = zone.to_string();
    let n = name.to_string();
    let key = (z.clone(), n.clone());
    match verb {
        "delete" => {
            if inst["deletionProtection"] == true {
                return Err(ApiError::invalid_usage(
                    "Resource cannot be deleted if it's protected against deletion.",
                ));
            }
            if matches!(status.as_str(), "RUNNING" | "PROVISIONING" | "STAGING") {
                if let Some(i) = p.instances.get_mut(&key) {
                    i["status"] = json!("STOPPING");
                }
            }
            let action = Action::InstanceDelete {
                zone: z,
                name: n,
                prev_status: status,
            };
            instance_op(st, project, zone, name, "delete", action, rid)
        }
        "start" => {
            if status == "TERMINATED" || status == "STOPPING" {
                if let Some(i) = p.instances.get_mut(&key) {
                    i["status"] = json!("PROVISIONING");
                }
            }
            let action = Action::InstanceStart {
                zone: z,
                name: n,
                prev_status: status,
            };
            instance_op(st, project, zone, name, "start", action, rid)
        }
        "resume" => {
            if status != "SUSPENDED" {
                return Err(ApiError::invalid_usage(
                    "Instance should be in the SUSPENDED state.",
                ));
            }
            if let Some(i) = p.instances.get_mut(&key) {
                i["status"] = json!("PROVISIONING");
            }
            let action = Action::InstanceStart {
                zone: z,
                name: n,
                prev_status: status,
            };
            instance_op(st, project, zone, name, "resume", action, rid)
        }
        "suspend" => {
            if !matches!(status.as_str(), "RUNNING" | "SUSPENDED" | "SUSPENDING") {
                return Err(ApiError::invalid_usage(
                    "Instance should be in the RUNNING state.",
                ));
            }
            if status == "RUNNING" {
                if let Some(i) = p.instances.get_mut(&key) {
                    i["status"] = json!("SUSPENDING");
                }
            }
            let action = Action::InstanceSuspend {
                zone: z,
                name: n,
                prev_status: status,
            };
            instance_op(st, project, zone, name, "suspend", action, rid)
        }
        "setMachineResources" => {
            let obj = body_object(body)?;
            if status != "TERMINATED" {
                return Err(ApiError::invalid_usage(
                    "Instance should be in the STOPPED state.",
                ));
            }
            let mt_name = inst["machineType"]
                .as_str()
                .and_then(|m| m.rsplit('/').next())
                .unwrap_or_default()
                .to_string();
            let mt = catalog::machine_type(zone, &mt_name).ok_or_else(|| {
                ApiError::invalid_field("machineType", &mt_name, "Unknown machine type.")
            })?;
            let accels = validate_accelerators(
                project,
                zone,
                &mt,
                opt_array(obj, "guestAccelerators", "guestAccelerators")?,
                "",
            )?;
            let has_gpu = !accels.is_empty() || mt.gpus.is_some();
            if has_gpu && inst["scheduling"]["onHostMaintenance"] == "MIGRATE" {
                return Err(ApiError::bad_request(LIVE_MIGRATION));
            }
            let action = Action::InstanceSetMachineResources {
                zone: z,
                name: n,
                accels,
            };
            instance_op(st, project, zone, name, "setMachineResources", action, rid)
        }
        "stop" => {
            if matches!(status.as_str(), "RUNNING" | "PROVISIONING" | "STAGING") {
                if let Some(i) = p.instances.get_mut(&key) {
                    i["status"] = json!("STOPPING");
                }
            }
            let action = Action::InstanceStop {
                zone: z,
                name: n,
                prev_status: status,
            };
            instance_op(st, project, zone, name, "stop", action, rid)
        }
        "setMachineType" => {
            let obj = body_object(body)?;
            let raw = opt_str(obj, "machineType", "machineType")?
                .ok_or_else(|| ApiError::required("machineType"))?;
            if status != "TERMINATED" {
                return Err(ApiError::invalid_usage(
                    "Instance should be in the STOPPED state.",
                ));
            }
            let mt = resolve_machine_type(zone, raw, "machineType")?;
            let explicit = p.explicit_accels.get(&key).cloned().unwrap_or_default();
            if !explicit.is_empty() {
                if let Some(first) = explicit.first() {
                    let gpu = first["acceleratorType"]
                        .as_str()
                        .and_then(|s| s.rsplit('/').next())
                        .unwrap_or_default();
                    let n1_ok = mt.name.starts_with("n1-") && mt.gpus.is_none();
                    if !n1_ok {
                        return Err(ApiError::bad_request(&format!(
                            "[{gpu}, {}] features are not compatible for creating instance.",
                            mt.name
                        )));
                    }
                    let count = first["acceleratorCount"].as_i64().unwrap_or(1);
                    if let Some(max) = max_vcpus(gpu, count) {
                        if mt.cpus > max {
                            return Err(ApiError::invalid_field(
                                "guestAccelerators[0].acceleratorCount",
                                &count.to_string(),
                                &format!("At most {max} vCPUs can be used along with {count} accelerator cards in an instance."),
                            ));
                        }
                    }
                }
            }
            let has_gpu = !explicit.is_empty() || mt.gpus.is_some();
            if has_gpu && inst["scheduling"]["onHostMaintenance"] == "MIGRATE" {
                return Err(ApiError::bad_request(LIVE_MIGRATION));
            }
            let action = Action::InstanceSetMachineType {
                zone: z,
                name: n,
                machine_type: machine_type_link(project, zone, mt.name),
            };
            instance_op(st, project, zone, name, "setMachineType", action, rid)
        }
        "setLabels" => {
            let obj = body_object(body)?;
            let fp = opt_str(obj, "labelFingerprint", "labelFingerprint")?;
            let current = inst["labelFingerprint"].as_str().unwrap_or_default();
            if !fp.is_some_and(|f| fingerprint_matches(f, current)) {
                return Err(ApiError::condition_not_met(
                    "Labels fingerprint either invalid or resource labels have changed",
                ));
            }
            let labels = match opt_object(obj, "labels", "labels")? {
                Some(l) => validate_labels(l, "labels")?,
                None => Map::new(),
            };
            let action = Action::InstanceSetLabels {
                zone: z,
                name: n,
                labels,
            };
            instance_op(st, project, zone, name, "setLabels", action, rid)
        }
        "setMetadata" => {
            let obj = body_object(body)?;
            let fp = opt_str(obj, "fingerprint", "fingerprint")?;
            let current = inst["metadata"]["fingerprint"].as_str().unwrap_or_default();
            if !fp.is_some_and(|f| fingerprint_matches(f, current)) {
                return Err(ApiError::condition_not_met(
                    "Supplied fingerprint does not match current metadata fingerprint.",
                ));
            }
            let items = validate_metadata_items(opt_array(obj, "items", "items")?, "metadata")?;
            let action = Action::InstanceSetMetadata {
                zone: z,
                name: n,
                items,
            };
            instance_op(st, project, zone, name, "setMetadata", action, rid)
        }
        "setTags" => {
            let obj = body_object(body)?;
            let fp = opt_str(obj, "fingerprint", "fingerprint")?;
            let current = inst["tags"]["fingerprint"].as_str().unwrap_or_default();
            if !fp.is_some_and(|f| fingerprint_matches(f, current)) {
                return Err(ApiError::condition_not_met(
                    "Supplied fingerprint does not match current tags fingerprint.",
                ));
            }
            let items = string_list(obj, "items", "items")?;
            validate_tags(&items, "tags.items")?;
            let action = Action::InstanceSetTags {
                zone: z,
                name: n,
                items,
            };
            instance_op(st, project, zone, name, "setTags", action, rid)
        }
        "attachDisk" => {
            let obj = body_object(body)?;
            let raw = opt_str(obj, "source", "resource.source")?
                .ok_or_else(|| ApiError::required("resource.source"))?;
            let r = parse_ref(raw);
            let dz = r.zone.clone().unwrap_or_else(|| zone.to_string());
            let dpath = zonal_path(project, &dz, "disks", &r.name);
            let disk = p
                .disks
                .get(&(dz.clone(), r.name.clone()))
                .filter(|_| dz == zone)
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "resource.source",
                        raw,
                        "The referenced disk resource cannot be found.",
                    )
                })?;
            let mode = opt_str(obj, "mode", "resource.mode")?.unwrap_or("READ_WRITE");
            if disk["status"] != "READY" {
                return Err(ApiError::not_ready(&dpath));
            }
            if let Some(user) = disk["users"]
                .as_array()
                .and_then(|u| u.first())
                .and_then(Value::as_str)
            {
                return Err(ApiError::in_use(
                    "disk",
                    &dpath,
                    user.trim_start_matches(&format!("{}/", super::util::API_BASE)),
                ));
            }
            let existing = inst["disks"].as_array().cloned().unwrap_or_default();
            let device = opt_str(obj, "deviceName", "resource.deviceName")?
                .map(str::to_string)
                .unwrap_or_else(|| {
                    (0..)
                        .map(|k| format!("persistent-disk-{k}"))
                        .find(|c| !existing.iter().any(|d| d["deviceName"] == c.as_str()))
                        .unwrap_or_default()
                });
            if existing.iter().any(|d| d["deviceName"] == device.as_str()) {
                return Err(ApiError::invalid_field(
                    "resource.deviceName",
                    &device,
                    "Device name is already in use by another disk of this instance.",
                ));
            }
            let attached = json!({
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": mode,
                "source": disk["selfLink"],
                "deviceName": device,
                "boot": opt_bool(obj, "boot", "resource.boot")?.unwrap_or(false),
                "autoDelete": opt_bool(obj, "autoDelete", "resource.autoDelete")?.unwrap_or(false),
                "interface": "SCSI",
                "diskSizeGb": disk["sizeGb"],
                "architecture": "X86_64",
            });
            let action = Action::InstanceAttachDisk {
                zone: z,
                name: n,
                attached,
                disk: r.name,
            };
            instance_op(st, project, zone, name, "attachDisk", action, rid)
        }
        "detachDisk" => {
            let device = query
                .get("deviceName")
                .cloned()
                .ok_or_else(|| ApiError::required("deviceName"))?;
            let disks = inst["disks"].as_array().cloned().unwrap_or_default();
            let Some(d) = disks.iter().find(|d| d["deviceName"] == device.as_str()) else {
                return Err(ApiError::invalid_field(
                    "deviceName",
                    &device,
                    &format!("No attached disk found with device name '{device}'"),
                ));
            };
            if d["boot"] == true && status != "TERMINATED" {
                return Err(ApiError::invalid_usage(
                    "Cannot detach boot disk from a running instance.",
                ));
            }
            let action = Action::InstanceDetachDisk {
                zone: z,
                name: n,
                device_name: device,
            };
            instance_op(st, project, zone, name, "detachDisk", action, rid)
        }
        "setDeletionProtection" => {
            let value = match query.get("deletionProtection").map(String::as_str) {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(ApiError::invalid_field(
                        "deletionProtection",
                        other,
                        "Must be a boolean.",
                    ))
                }
            };
            let action = Action::InstanceSetDeletionProtection {
                zone: z,
                name: n,
                value,
            };
            instance_op(
                st,
                project,
                zone,
                name,
                "setDeletionProtection",
                action,
                rid,
            )
        }
        "setDiskAutoDelete" => {
            let device = query
                .get("deviceName")
                .cloned()
                .ok_or_else(|| ApiError::required("deviceName"))?;
            let value = match query.get("autoDelete").map(String::as_str) {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(ApiError::required("autoDelete")),
            };
            if !inst["disks"]
                .as_array()
                .is_some_and(|l| l.iter().any(|d| d["deviceName"] == device.as_str()))
            {
                return Err(ApiError::invalid_field(
                    "deviceName",
                    &device,
                    &format!("No attached disk found with device name '{device}'"),
                ));
            }
            let action = Action::InstanceSetDiskAutoDelete {
                zone: z,
                name: n,
                device_name: device,
                value,
            };
            instance_op(st, project, zone, name, "setDiskAutoDelete", action, rid)
        }
        _ => Err(ApiError::new(
            404,
            "NOT_FOUND",
            "notFound",
            &format!("Method '{verb}' is not supported by this fake."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(machine: &str) -> Value {
        json!({
            "name": "ws",
            "machineType": format!("zones/us-central1-a/machineTypes/{machine}"),
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {
                "sourceImage": "projects/deeplearning-platform-release/global/images/family/pytorch-latest-cu121-debian-11",
                "diskSizeGb": "100", "diskType": "zones/us-central1-a/diskTypes/pd-balanced"}}],
            "networkInterfaces": [{"network": "global/networks/default", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
        })
    }

    fn insert_err(body: Value) -> ApiError {
        let mut st = State::default();
        insert(&mut st, "p", "us-central1-a", &body, None).unwrap_err()
    }

    #[test]
    fn gpus_need_terminate_on_host_maintenance() {
        let mut b = base("n1-standard-8");
        b["guestAccelerators"] = json!([{"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}]);
        let e = insert_err(b.clone());
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Instances with guest accelerators do not support live migration."
        );
        let e = insert_err(base("a2-highgpu-1g"));
        assert_eq!(e.message, LIVE_MIGRATION);
        b["scheduling"] = json!({"onHostMaintenance": "TERMINATE"});
        let mut st = State::default();
        let op = insert(&mut st, "p", "us-central1-a", &b, None).unwrap();
        assert_eq!(op["operationType"], "insert");
        assert_eq!(op["status"], "PENDING");
        let inst = &st.project("p").instances[&("us-central1-a".into(), "ws".into())];
        assert_eq!(inst["status"], "PROVISIONING");
        assert!(inst["guestAccelerators"][0]["acceleratorType"]
            .as_str()
            .unwrap()
            .ends_with("/acceleratorTypes/nvidia-tesla-t4"));
    }

    #[test]
    fn built_in_gpus_refuse_guest_accelerators() {
        let mut b = base("a2-highgpu-1g");
        b["scheduling"] = json!({"onHostMaintenance": "TERMINATE"});
        b["guestAccelerators"] = json!([{"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-a100", "acceleratorCount": 1}]);
        let e = insert_err(b);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "[nvidia-tesla-a100, a2-highgpu-1g] features are not compatible for creating instance."
        );
    }

    #[test]
    fn unknown_types_and_too_many_vcpus() {
        let e = insert_err(base("n1-standard-3"));
        assert_eq!(
            e.message,
            "Invalid value for field 'resource.machineType': 'zones/us-central1-a/machineTypes/n1-standard-3'. Machine type with name 'n1-standard-3' does not exist in zone 'us-central1-a'."
        );
        let mut b = base("n1-standard-16");
        b["scheduling"] = json!({"onHostMaintenance": "TERMINATE"});
        b["guestAccelerators"] = json!([{"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-v100", "acceleratorCount": 1}]);
        let e = insert_err(b.clone());
        assert!(
            e.message
                .contains("At most 12 vCPUs can be used along with 1 accelerator cards"),
            "{}",
            e.message
        );
        b["guestAccelerators"] = json!([{"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-k80", "acceleratorCount": 1}]);
        assert!(insert_err(b).message.contains(
            "Accelerator type 'nvidia-tesla-k80' does not exist in zone 'us-central1-a'"
        ));
    }

    #[test]
    fn spot_rules() {
        let mut b = base("n1-standard-4");
        b["scheduling"] = json!({"provisioningModel": "SPOT", "automaticRestart": true});
        assert!(insert_err(b.clone())
            .message
            .contains("AutomaticRestart is true"));
        b["scheduling"] = json!({"provisioningModel": "SPOT", "onHostMaintenance": "MIGRATE"});
        assert!(insert_err(b.clone())
            .message
            .contains("OnHostMaintenance isn't TERMINATE"));
        b["scheduling"] = json!({"instanceTerminationAction": "STOP"});
        assert_eq!(insert_err(b.clone()).code, 400);
        b["scheduling"] = json!({"provisioningModel": "SPOT"});
        let mut st = State::default();
        insert(&mut st, "p", "us-central1-a", &b, None).unwrap();
        let s = &st.project("p").instances[&("us-central1-a".into(), "ws".into())]["scheduling"];
        assert_eq!(s["instanceTerminationAction"], "STOP");
        assert_eq!(s["automaticRestart"], false);
        assert_eq!(s["onHostMaintenance"], "TERMINATE");
        assert_eq!(s["preemptible"], true);
    }

    #[test]
    fn boot_disk_and_labels_validation() {
        let mut b = base("n1-standard-4");
        b["disks"][0]["initializeParams"]["diskSizeGb"] = json!("10");
        assert!(insert_err(b)
            .message
            .contains("cannot be smaller than the image size (50 GB)"));
        let mut b = base("n1-standard-4");
        b["labels"] = json!({"Owner": "me"});
        assert!(insert_err(b)
            .message
            .contains("Label key 'Owner' violates format constraints"));
        let mut b = base("n1-standard-4");
        b["name"] = json!("Bad_Name");
        assert!(insert_err(b)
            .message
            .starts_with("Invalid value for field 'resource.name': 'Bad_Name'"));
        let mut b = base("n1-standard-4");
        b["disks"][0]["initializeParams"]["diskSizeGb"] = json!({"x": 1});
        assert_eq!(insert_err(b).reason, "parseError");
        let mut b = base("n1-standard-4");
        b["networkInterfaces"][0]["subnetwork"] =
            json!("projects/p/regions/us-central1/subnetworks/nope");
        assert!(insert_err(b)
            .message
            .contains("The referenced subnetwork resource cannot be found."));
    }

    #[test]
    fn disks_being_created_are_not_ready() {
        let mut st = State::default();
        let p = st.project("p");
        let d = new_disk_json(
            "p",
            "us-central1-a",
            "data",
            100,
            "pd-ssd",
            None,
            &Map::new(),
            None,
        );
        p.disks.insert(("us-central1-a".into(), "data".into()), d);
        let mut b = base("n1-standard-4");
        b["disks"] = json!([b["disks"][0].clone(), {"source": "zones/us-central1-a/disks/data", "autoDelete": true}]);
        let e = insert(&mut st, "p", "us-central1-a", &b, None).unwrap_err();
        assert_eq!(e.reason, "resourceNotReady");
        assert_eq!(
            e.message,
            "The resource 'projects/p/zones/us-central1-a/disks/data' is not ready"
        );
        st.project("p")
            .disks
            .get_mut(&("us-central1-a".into(), "data".into()))
            .unwrap()["status"] = json!("READY");
        insert(&mut st, "p", "us-central1-a", &b, None).unwrap();
        let inst = &st.project("p").instances[&("us-central1-a".into(), "ws".into())];
        assert_eq!(inst["disks"][1]["deviceName"], "persistent-disk-1");
        assert_eq!(inst["disks"][1]["boot"], false);
    }

    #[test]
    fn duplicate_names_are_409() {
        let mut st = State::default();
        insert(&mut st, "p", "us-central1-a", &base("n1-standard-4"), None).unwrap();
        let e = insert(&mut st, "p", "us-central1-a", &base("n1-standard-4"), None).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "The resource 'projects/p/zones/us-central1-a/instances/ws' already exists"
        );
    }
}
