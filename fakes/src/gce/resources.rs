//! Disks, firewalls, networks, the read-only catalog, operations and list
//! responses.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::catalog;
use super::errors::ApiError;
use super::filter;
use super::instances::{new_disk_json, Query};
use super::state::{poll, scope_path, Action, Project, Scope, State};
use super::util::{
    body_object, fingerprint_matches, global_path, link, new_id, now_rfc3339, opt_array, opt_bool,
    opt_i64, opt_object, opt_str, parse_cidr, parse_ref, string_list, valid_name, validate_labels,
    zonal_path, NAME_REGEX,
};

// ---- lists ----------------------------------------------------------------

fn decode_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// A `compute#xxxList` page: filter, orderBy (`name`, `creationTimestamp desc`),
/// maxResults (≤ 500) and opaque page tokens.
pub fn list_response(
    kind: &str,
    path: &str,
    items: Vec<Value>,
    query: &Query,
) -> Result<Value, ApiError> {
    let f = filter::parse(query.get("filter").map(String::as_str).unwrap_or(""))?;
    let mut items: Vec<Value> = items.into_iter().filter(|v| f.matches(v)).collect();
    match query.get("orderBy").map(|s| s.trim()) {
        None | Some("") | Some("name") => {
            items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
        Some("creationTimestamp desc") => {
            items.sort_by(|a, b| {
                b["creationTimestamp"]
                    .as_str()
                    .cmp(&a["creationTimestamp"].as_str())
            });
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "orderBy",
                other,
                "Only 'name' and 'creationTimestamp desc' are supported.",
            ))
        }
    }
    let max = match query.get("maxResults") {
        None => 500,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if n <= 500 => n.max(1),
            _ => {
                return Err(ApiError::invalid_field(
                    "maxResults",
                    m,
                    "Must be less than or equal to 500",
                ))
            }
        },
    };
    let start = match query.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => decode_token(t)
            .ok_or_else(|| ApiError::invalid_field("pageToken", t, "Invalid page token."))?,
    };
    let end = (start + max).min(items.len());
    let page: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = json!({
        "kind": kind,
        "id": path,
        "selfLink": link(path),
    });
    if !page.is_empty() {
        out["items"] = Value::Array(page);
    }
    if end < items.len() {
        out["nextPageToken"] = json!(encode_token(end));
    }
    Ok(out)
}

/// `aggregated/xxx`: every zone of the catalog, with the NO_RESULTS_ON_PAGE
/// warning for empty scopes as the real API does.
pub fn aggregated(
    kind: &str,
    project: &str,
    collection: &str,
    by_zone: Vec<(String, Value)>,
    query: &Query,
) -> Result<Value, ApiError> {
    let f = filter::parse(query.get("filter").map(String::as_str).unwrap_or(""))?;
    let mut items = Map::new();
    for z in catalog::ZONES {
        let scope = format!("zones/{z}");
        let list: Vec<Value> = by_zone
            .iter()
            .filter(|(zone, v)| zone == z && f.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        let entry = if list.is_empty() {
            json!({"warning": {
                "code": "NO_RESULTS_ON_PAGE",
                "message": format!("There are no results for scope '{scope}' on this page."),
                "data": [{"key": "scope", "value": scope}],
            }})
        } else {
            json!({ collection: list })
        };
        items.insert(scope, entry);
    }
    let path = format!("projects/{project}/aggregated/{collection}");
    Ok(json!({
        "kind": kind,
        "id": path,
        "items": items,
        "selfLink": link(&path),
    }))
}

// ---- catalog reads ----------------------------------------------------------

pub fn zones_list(project: &str, query: &Query) -> Result<Value, ApiError> {
    let items = catalog::ZONES
        .iter()
        .map(|z| catalog::zone_json(project, z))
        .collect();
    list_response(
        "compute#zoneList",
        &format!("projects/{project}/zones"),
        items,
        query,
    )
}

pub fn regions_list(project: &str, query: &Query) -> Result<Value, ApiError> {
    let items = catalog::REGIONS
        .iter()
        .map(|(r, _)| catalog::region_json(project, r))
        .collect();
    list_response(
        "compute#regionList",
        &format!("projects/{project}/regions"),
        items,
        query,
    )
}

pub fn machine_type_get(project: &str, zone: &str, name: &str) -> Result<Value, ApiError> {
    catalog::machine_type(zone, name)
        .map(|m| catalog::machine_type_json(project, zone, &m))
        .ok_or_else(|| ApiError::not_found(&zonal_path(project, zone, "machineTypes", name)))
}

pub fn machine_types_list(project: &str, zone: &str, query: &Query) -> Result<Value, ApiError> {
    let items = catalog::MACHINE_TYPES
        .iter()
        .filter_map(|m| catalog::machine_type(zone, m.name))
        .map(|m| catalog::machine_type_json(project, zone, &m))
        .collect();
    list_response(
        "compute#machineTypeList",
        &format!("projects/{project}/zones/{zone}/machineTypes"),
        items,
        query,
    )
}

pub fn accelerator_get(project: &str, zone: &str, name: &str) -> Result<Value, ApiError> {
    catalog::accelerator(zone, name)
        .map(|a| catalog::accelerator_json(project, zone, a))
        .ok_or_else(|| ApiError::not_found(&zonal_path(project, zone, "acceleratorTypes", name)))
}

pub fn accelerators_list(project: &str, zone: &str, query: &Query) -> Result<Value, ApiError> {
    let items = catalog::zone_accelerators(zone)
        .iter()
        .filter_map(|n| catalog::accelerator(zone, n))
        .map(|a| catalog::accelerator_json(project, zone, a))
        .collect();
    list_response(
        "compute#acceleratorTypeList",
        &format!("projects/{project}/zones/{zone}/acceleratorTypes"),
        items,
        query,
    )
}

pub fn image_get(project: &str, name: &str) -> Result<Value, ApiError> {
    catalog::image(project, name)
        .map(catalog::image_json)
        .ok_or_else(|| ApiError::not_found(&global_path(project, "images", name)))
}

pub fn image_from_family(project: &str, family: &str) -> Result<Value, ApiError> {
    catalog::image_from_family(project, family)
        .map(catalog::image_json)
        .ok_or_else(|| {
            ApiError::not_found(&format!("projects/{project}/global/images/family/{family}"))
        })
}

pub fn images_list(project: &str, query: &Query) -> Result<Value, ApiError> {
    let items = catalog::images_of(project)
        .map(catalog::image_json)
        .collect();
    list_response(
        "compute#imageList",
        &format!("projects/{project}/global/images"),
        items,
        query,
    )
}

// ---- networks ----------------------------------------------------------------

pub fn network_get(p: &Project, name: &str) -> Result<Value, ApiError> {
    p.networks
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&global_path(&p.name, "networks", name)))
}

pub fn networks_list(p: &Project, query: &Query) -> Result<Value, ApiError> {
    let items = p.networks.values().cloned().collect();
    list_response(
        "compute#networkList",
        &format!("projects/{}/global/networks", p.name),
        items,
        query,
    )
}

pub fn subnetwork_get(p: &Project, region: &str, name: &str) -> Result<Value, ApiError> {
    p.subnetworks
        .get(&(region.to_string(), name.to_string()))
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(&format!(
                "projects/{}/regions/{region}/subnetworks/{name}",
                p.name
            ))
        })
}

pub fn subnetworks_list(p: &Project, region: &str, query: &Query) -> Result<Value, ApiError> {
    let items = p
        .subnetworks
        .iter()
        .filter(|((r, _), _)| r == region)
        .map(|(_, v)| v.clone())
        .collect();
    list_response(
        "compute#subnetworkList",
        &format!("projects/{}/regions/{region}/subnetworks", p.name),
        items,
        query,
    )
}

// ---- disks -------------------------------------------------------------------

fn disk_path(project: &str, zone: &str, name: &str) -> String {
    zonal_path(project, zone, "disks", name)
}

pub fn disk_get(p: &Project, zone: &str, name: &str) -> Result<Value, ApiError> {
    p.disks
        .get(&(zone.to_string(), name.to_string()))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&disk_path(&p.name, zone, name)))
}

pub fn disks_list(p: &Project, zone: &str, query: &Query) -> Result<Value, ApiError> {
    let items = p
        .disks
        .iter()
        .filter(|((z, _), _)| z == zone)
        .map(|(_, v)| v.clone())
        .collect();
    list_response(
        "compute#diskList",
        &format!("projects/{}/zones/{zone}/disks", p.name),
        items,
        query,
    )
}

pub fn disk_insert(
    st: &mut State,
    project: &str,
    zone: &str,
    body: &Value,
    query: &Query,
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
    if p.disks.contains_key(&(zone.to_string(), name.to_string())) {
        return Err(ApiError::already_exists(&disk_path(project, zone, name)));
    }
    let image_raw = match query.get("sourceImage") {
        Some(s) => Some(s.as_str()),
        None => opt_str(obj, "sourceImage", "resource.sourceImage")?,
    };
    let image = match image_raw {
        Some(raw) => {
            let r = parse_ref(raw);
            let ip = r.project.clone().unwrap_or_else(|| project.to_string());
            let found = if r.family {
                catalog::image_from_family(&ip, &r.name)
            } else {
                catalog::image(&ip, &r.name)
            };
            Some(found.ok_or_else(|| {
                ApiError::invalid_field(
                    "resource.sourceImage",
                    raw,
                    "The referenced image resource cannot be found.",
                )
            })?)
        }
        None => None,
    };
    let type_raw = opt_str(obj, "type", "resource.type")?;
    let dtype = match type_raw {
        None => catalog::disk_type_link(project, zone, "pd-standard"),
        Some(raw) => {
            let r = parse_ref(raw);
            if r.zone.as_deref().is_some_and(|z| z != zone)
                || !catalog::DISK_TYPES.contains(&r.name.as_str())
            {
                return Err(ApiError::invalid_field(
                    "resource.type",
                    raw,
                    &format!("Disk type '{}' does not exist in zone '{zone}'.", r.name),
                ));
            }
            catalog::disk_type_link(project, zone, &r.name)
        }
    };
    let min = image.map_or(1, |i| i.disk_size_gb);
    let default = match image {
        Some(i) => i.disk_size_gb,
        None if dtype.ends_with("/pd-standard") => 500,
        None => 100,
    };
    let size = opt_i64(obj, "sizeGb", "resource.sizeGb")?.unwrap_or(default);
    if size < min {
        return Err(ApiError::invalid_field(
            "resource.sizeGb",
            &size.to_string(),
            &format!("Requested disk size cannot be smaller than the image size ({min} GB)"),
        ));
    }
    if size > 65_536 {
        return Err(ApiError::invalid_field(
            "resource.sizeGb",
            &size.to_string(),
            "Disk size cannot be larger than 65536 GB.",
        ));
    }
    let labels = match opt_object(obj, "labels", "resource.labels")? {
        Some(l) => validate_labels(l, "resource.labels")?,
        None => Map::new(),
    };
    let desc = opt_str(obj, "description", "resource.description")?;
    let disk = new_disk_json(project, zone, name, size, &dtype, image, &labels, desc);
    let id = disk["id"].as_str().unwrap_or_default().to_string();
    let target = disk["selfLink"].as_str().unwrap_or_default().to_string();
    p.disks.insert((zone.to_string(), name.to_string()), disk);
    let action = Action::DiskInsert {
        zone: zone.to_string(),
        name: name.to_string(),
    };
    let rid = query.get("requestId").map(String::as_str);
    Ok(st.new_operation(
        project,
        Scope::Zone(zone.to_string()),
        "insert",
        &target,
        &id,
        action,
        rid,
    ))
}

pub fn disk_verb(
    st: &mut State,
    project: &str,
    zone: &str,
    name: &str,
    verb: &str,
    body: &Value,
    query: &Query,
) -> Result<Value, ApiError> {
    let rid = query.get("requestId").map(String::as_str);
    let p = st.project(project);
    let disk = disk_get(p, zone, name)?;
    let id = disk["id"].as_str().unwrap_or_default().to_string();
    let target = disk["selfLink"].as_str().unwrap_or_default().to_string();
    let key = (zone.to_string(), name.to_string());
    let current = disk["sizeGb"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    let action = match verb {
        "delete" => {
            if let Some(user) = disk["users"]
                .as_array()
                .and_then(|u| u.first())
                .and_then(Value::as_str)
            {
                return Err(ApiError::in_use(
                    "disk",
                    &disk_path(project, zone, name),
                    user.trim_start_matches(&format!("{}/", super::util::API_BASE)),
                ));
            }
            let prev = disk["status"].as_str().unwrap_or("READY").to_string();
            if let Some(d) = p.disks.get_mut(&key) {
                d["status"] = json!("DELETING");
            }
            Action::DiskDelete {
                zone: zone.to_string(),
                name: name.to_string(),
                prev_status: prev,
            }
        }
        "resize" => {
            let obj = body_object(body)?;
            let size =
                opt_i64(obj, "sizeGb", "sizeGb")?.ok_or_else(|| ApiError::required("sizeGb"))?;
            if size <= current {
                return Err(ApiError::invalid_field(
                    "sizeGb",
                    &size.to_string(),
                    &format!("New disk size '{size}' GiB must be larger than existing size '{current}' GiB."),
                ));
            }
            if size > 65_536 {
                return Err(ApiError::invalid_field(
                    "sizeGb",
                    &size.to_string(),
                    "Disk size cannot be larger than 65536 GB.",
                ));
            }
            Action::DiskResize {
                zone: zone.to_string(),
                name: name.to_string(),
                size_gb: size,
            }
        }
        "setLabels" => {
            let obj = body_object(body)?;
            let fp = opt_str(obj, "labelFingerprint", "labelFingerprint")?;
            let cur = disk["labelFingerprint"].as_str().unwrap_or_default();
            if !fp.is_some_and(|f| fingerprint_matches(f, cur)) {
                return Err(ApiError::condition_not_met(
                    "Labels fingerprint either invalid or resource labels have changed",
                ));
            }
            let labels = match opt_object(obj, "labels", "labels")? {
                Some(l) => validate_labels(l, "labels")?,
                None => Map::new(),
            };
            Action::DiskSetLabels {
                zone: zone.to_string(),
                name: name.to_string(),
                labels,
            }
        }
        other => {
            return Err(ApiError::new(
                404,
                "NOT_FOUND",
                "notFound",
                &format!("Method '{other}' is not supported by this fake."),
            ))
        }
    };
    Ok(st.new_operation(
        project,
        Scope::Zone(zone.to_string()),
        verb,
        &target,
        &id,
        action,
        rid,
    ))
}

// ---- firewalls -----------------------------------------------------------------

fn validate_rules(list: &[Value], field: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let obj = r.as_object().ok_or_else(|| {
            ApiError::parse_error(&format!("Invalid value at '{path}', expected an object"))
        })?;
        let proto = opt_str(obj, "IPProtocol", &format!("{path}.IPProtocol"))?
            .ok_or_else(|| ApiError::required(&format!("{path}.IPProtocol")))?;
        let named = ["tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"];
        let lower = proto.to_ascii_lowercase();
        if !named.contains(&lower.as_str()) && proto.parse::<u8>().is_err() {
            return Err(ApiError::invalid_field(
                &format!("{path}.IPProtocol"),
                proto,
                "Must be one of [\"ah\", \"all\", \"esp\", \"icmp\", \"ipip\", \"sctp\", \"tcp\", \"udp\"] or an IP protocol number between 0 and 255.",
            ));
        }
        let ports = string_list(obj, "ports", &format!("{path}.ports"))?;
        if !ports.is_empty()
            && !matches!(
                lower.as_str(),
                "tcp" | "udp" | "sctp" | "all" | "6" | "17" | "132"
            )
        {
            return Err(ApiError::invalid_field(
                &format!("{path}.ports"),
                "",
                "Ports can only be specified for TCP, UDP and SCTP rules.",
            ));
        }
        for (j, port) in ports.iter().enumerate() {
            let ok = match port.split_once('-') {
                Some((a, b)) => {
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= b)
                }
                None => port.parse::<u16>().is_ok(),
            };
            if !ok {
                return Err(ApiError::invalid_field(
                    &format!("{path}.ports[{j}]"),
                    port,
                    "Invalid port specification.",
                ));
            }
        }
        let mut rule = json!({"IPProtocol": lower});
        if !ports.is_empty() {
            rule["ports"] = json!(ports);
        }
        out.push(rule);
    }
    Ok(out)
}

fn is_ipv6_cidr(s: &str) -> bool {
    let (addr, len) = s.split_once('/').unwrap_or((s, "128"));
    addr.parse::<std::net::Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
}

/// IPv4 or IPv6 CIDRs; one rule cannot mix the two families.
fn validate_ranges(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    let field = format!("resource.{key}");
    let ranges = string_list(obj, key, &field)?;
    let (mut v4, mut v6) = (false, false);
    for (i, r) in ranges.iter().enumerate() {
        if parse_cidr(r).is_some() {
            v4 = true;
        } else if is_ipv6_cidr(r) {
            v6 = true;
        } else {
            return Err(ApiError::invalid_field(
                &format!("{field}[{i}]"),
                r,
                "Must be a valid IPV4 or IPV6 CIDR address range.",
            ));
        }
    }
    if v4 && v6 {
        return Err(ApiError::invalid_field(
            &field,
            "",
            "IPv4 and IPv6 ranges cannot be mixed in the same firewall rule.",
        ));
    }
    Ok(ranges)
}

fn validate_tag_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    let field = format!("resource.{key}");
    let tags = string_list(obj, key, &field)?;
    for (i, t) in tags.iter().enumerate() {
        if !valid_name(t) {
            return Err(ApiError::invalid_field(
                &format!("{field}[{i}]"),
                t,
                &format!("Must be a match of regex '{NAME_REGEX}'"),
            ));
        }
    }
    Ok(tags)
}

/// Builds the firewall resource from a request body (insert/update, or the
/// merge of a patch), applying the real API's defaults: INGRESS, priority
/// 1000, logging off, and `sourceRanges = [0.0.0.0/0]` when an ingress rule
/// names no source at all.
fn build_firewall(
    p: &Project,
    obj: &Map<String, Value>,
    existing: Option<&Value>,
) -> Result<Value, ApiError> {
    let project = &p.name;
    let name = opt_str(obj, "name", "resource.name")?
        .ok_or_else(|| ApiError::required("resource.name"))?;
    if !valid_name(name) {
        return Err(ApiError::invalid_field(
            "resource.name",
            name,
            &format!("Must be a match of regex '{NAME_REGEX}'"),
        ));
    }
    let net_raw = opt_str(obj, "network", "resource.network")?.unwrap_or("global/networks/default");
    let r = parse_ref(net_raw);
    let net_project = r.project.clone().unwrap_or_else(|| project.clone());
    let net = (net_project == *project)
        .then(|| p.networks.get(&r.name))
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid_field(
                "resource.network",
                net_raw,
                "The referenced network resource cannot be found.",
            )
        })?;
    let direction = opt_str(obj, "direction", "resource.direction")?.unwrap_or("INGRESS");
    if !matches!(direction, "INGRESS" | "EGRESS") {
        return Err(ApiError::parse_error(&format!(
            "Invalid value at 'resource.direction' (type.googleapis.com/compute.Firewall.Direction), \"{direction}\""
        )));
    }
    let priority = opt_i64(obj, "priority", "resource.priority")?.unwrap_or(1000);
    if !(0..=65535).contains(&priority) {
        return Err(ApiError::invalid_field(
            "resource.priority",
            &priority.to_string(),
            "Must be between 0 and 65535.",
        ));
    }
    let allowed = validate_rules(
        opt_array(obj, "allowed", "resource.allowed")?,
        "resource.allowed",
    )?;
    let denied = validate_rules(
        opt_array(obj, "denied", "resource.denied")?,
        "resource.denied",
    )?;
    if allowed.is_empty() == denied.is_empty() {
        return Err(ApiError::invalid_field(
            "resource",
            "",
            "Exactly one of 'allowed' or 'denied' must be specified.",
        ));
    }
    let mut source_ranges = validate_ranges(obj, "sourceRanges")?;
    let mut dest_ranges = validate_ranges(obj, "destinationRanges")?;
    let source_tags = validate_tag_list(obj, "sourceTags")?;
    let target_tags = validate_tag_list(obj, "targetTags")?;
    let source_sas = string_list(
        obj,
        "sourceServiceAccounts",
        "resource.sourceServiceAccounts",
    )?;
    let target_sas = string_list(
        obj,
        "targetServiceAccounts",
        "resource.targetServiceAccounts",
    )?;
    if !target_tags.is_empty() && !target_sas.is_empty() {
        return Err(ApiError::invalid_field(
            "resource.targetServiceAccounts",
            "",
            "Cannot specify both targetTags and targetServiceAccounts.",
        ));
    }
    if direction == "INGRESS" {
        if source_ranges.is_empty() && source_tags.is_empty() && source_sas.is_empty() {
            source_ranges.push("0.0.0.0/0".to_string());
        }
    } else {
        if !source_tags.is_empty() || !source_sas.is_empty() {
            return Err(ApiError::invalid_field(
                "resource.sourceTags",
                "",
                "Source tags and source service accounts cannot be specified for EGRESS rules.",
            ));
        }
        if dest_ranges.is_empty() {
            dest_ranges.push("0.0.0.0/0".to_string());
        }
    }
    let log_enable = match opt_object(obj, "logConfig", "resource.logConfig")? {
        Some(l) => opt_bool(l, "enable", "resource.logConfig.enable")?.unwrap_or(false),
        None => false,
    };
    let mut fw = json!({
        "kind": "compute#firewall",
        "id": existing.map_or_else(|| json!(new_id().to_string()), |e| e["id"].clone()),
        "creationTimestamp": existing.map_or_else(|| json!(now_rfc3339()), |e| e["creationTimestamp"].clone()),
        "name": name,
        "network": net["selfLink"],
        "priority": priority,
        "direction": direction,
        "logConfig": {"enable": log_enable},
        "disabled": opt_bool(obj, "disabled", "resource.disabled")?.unwrap_or(false),
        "selfLink": link(&global_path(project, "firewalls", name)),
    });
    if let Some(d) = opt_str(obj, "description", "resource.description")? {
        fw["description"] = json!(d);
    }
    let put = |fw: &mut Value, k: &str, v: Vec<String>| {
        if !v.is_empty() {
            fw[k] = json!(v);
        }
    };
    put(&mut fw, "sourceRanges", source_ranges);
    put(&mut fw, "destinationRanges", dest_ranges);
    put(&mut fw, "sourceTags", source_tags);
    put(&mut fw, "targetTags", target_tags);
    put(&mut fw, "sourceServiceAccounts", source_sas);
    put(&mut fw, "targetServiceAccounts", target_sas);
    if !allowed.is_empty() {
        fw["allowed"] = Value::Array(allowed);
    }
    if !denied.is_empty() {
        fw["denied"] = Value::Array(denied);
    }
    Ok(fw)
}

fn firewall_path(project: &str, name: &str) -> String {
    global_path(project, "firewalls", name)
}

pub fn firewall_get(p: &Project, name: &str) -> Result<Value, ApiError> {
    p.firewalls
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&firewall_path(&p.name, name)))
}

pub fn firewalls_list(p: &Project, query: &Query) -> Result<Value, ApiError> {
    let items = p.firewalls.values().cloned().collect();
    list_response(
        "compute#firewallList",
        &format!("projects/{}/global/firewalls", p.name),
        items,
        query,
    )
}

fn pending_insert(p: &Project, target: &str) -> bool {
    p.operations.values().any(|o| {
        !o.is_done() && o.json["operationType"] == "insert" && o.json["targetLink"] == target
    })
}

pub fn firewall_insert(
    st: &mut State,
    project: &str,
    body: &Value,
    query: &Query,
) -> Result<Value, ApiError> {
    let obj = body_object(body)?;
    let p = st.project(project);
    let fw = build_firewall(p, obj, None)?;
    let name = fw["name"].as_str().unwrap_or_default().to_string();
    let target = fw["selfLink"].as_str().unwrap_or_default().to_string();
    // A rule still being inserted counts as existing.
    if p.firewalls.contains_key(&name) || pending_insert(p, &target) {
        return Err(ApiError::already_exists(&firewall_path(project, &name)));
    }
    let id = fw["id"].as_str().unwrap_or_default().to_string();
    let rid = query.get("requestId").map(String::as_str);
    Ok(st.new_operation(
        project,
        Scope::Global,
        "insert",
        &target,
        &id,
        Action::FirewallInsert { firewall: fw },
        rid,
    ))
}

/// PATCH merges the fields present; PUT (update) replaces the rule.
pub fn firewall_change(
    st: &mut State,
    project: &str,
    name: &str,
    body: &Value,
    query: &Query,
    patch: bool,
) -> Result<Value, ApiError> {
    let obj = body_object(body)?;
    let p = st.project(project);
    let current = firewall_get(p, name)?;
    if let Some(n) = opt_str(obj, "name", "resource.name")? {
        if n != name {
            return Err(ApiError::invalid_field(
                "resource.name",
                n,
                "Name cannot be changed.",
            ));
        }
    }
    let merged = if patch {
        let mut m = current.as_object().cloned().unwrap_or_default();
        for (k, v) in obj {
            m.insert(k.clone(), v.clone());
        }
        // The API recomputes the default source from what the patch leaves.
        if (obj.contains_key("sourceTags") || obj.contains_key("sourceServiceAccounts"))
            && !obj.contains_key("sourceRanges")
            && current["sourceRanges"] == json!(["0.0.0.0/0"])
        {
            m.remove("sourceRanges");
        }
        // allowed/denied are one-of: setting one clears the other.
        if obj.contains_key("allowed") && !obj.contains_key("denied") {
            m.remove("denied");
        }
        if obj.contains_key("denied") && !obj.contains_key("allowed") {
            m.remove("allowed");
        }
        m
    } else {
        let mut m = obj.clone();
        m.insert("name".into(), json!(name));
        m
    };
    let fw = build_firewall(p, &merged, Some(&current))?;
    let id = current["id"].as_str().unwrap_or_default().to_string();
    let target = current["selfLink"].as_str().unwrap_or_default().to_string();
    let rid = query.get("requestId").map(String::as_str);
    let action = Action::FirewallReplace {
        name: name.to_string(),
        firewall: fw,
    };
    let op_type = if patch { "patch" } else { "update" };
    Ok(st.new_operation(project, Scope::Global, op_type, &target, &id, action, rid))
}

pub fn firewall_delete(
    st: &mut State,
    project: &str,
    name: &str,
    query: &Query,
) -> Result<Value, ApiError> {
    let p = st.project(project);
    let current = firewall_get(p, name)?;
    let id = current["id"].as_str().unwrap_or_default().to_string();
    let target = current["selfLink"].as_str().unwrap_or_default().to_string();
    let rid = query.get("requestId").map(String::as_str);
    let action = Action::FirewallDelete {
        name: name.to_string(),
    };
    Ok(st.new_operation(project, Scope::Global, "delete", &target, &id, action, rid))
}

// ---- operations ----------------------------------------------------------------

fn op_path(project: &str, scope: &Scope, name: &str) -> String {
    format!("{}/operations/{name}", scope_path(project, scope))
}

/// `get` and `wait` both count as a poll and advance the operation one step.
pub fn operation_poll(p: &mut Project, scope: &Scope, name: &str) -> Result<Value, ApiError> {
    match p.operations.get(name) {
        Some(o) if &o.scope == scope => {}
        _ => return Err(ApiError::not_found(&op_path(&p.name, scope, name))),
    }
    poll(p, name);
    p.operations
        .get(name)
        .map(|o| o.json.clone())
        .ok_or_else(|| ApiError::not_found(&op_path(&p.name, scope, name)))
}

pub fn operation_delete(p: &mut Project, scope: &Scope, name: &str) -> Result<(), ApiError> {
    match p.operations.get(name) {
        Some(o) if &o.scope == scope => {
            p.operations.remove(name);
            Ok(())
        }
        _ => Err(ApiError::not_found(&op_path(&p.name, scope, name))),
    }
}

pub fn operations_list(p: &Project, scope: &Scope, query: &Query) -> Result<Value, ApiError> {
    let mut ops: Vec<&super::state::Operation> = p
        .operations
        .values()
        .filter(|o| &o.scope == scope)
        .collect();
    ops.sort_by_key(|o| o.seq);
    let items = ops.into_iter().map(|o| o.json.clone()).collect();
    list_response(
        "compute#operationList",
        &format!("{}/operations", scope_path(&p.name, scope)),
        items,
        query,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn q() -> Query {
        HashMap::new()
    }

    fn done(st: &mut State, op: &Value) -> Value {
        let name = op["name"].as_str().unwrap().to_string();
        let p = st.project("p");
        for _ in 0..10 {
            poll(p, &name);
        }
        p.operations[&name].json.clone()
    }

    #[test]
    fn firewall_defaults_source_ranges_for_ingress() {
        let mut st = State::default();
        let body = json!({"name": "ws-ssh", "allowed": [{"IPProtocol": "tcp", "ports": ["22", "8888-8890"]}], "targetTags": ["ws"]});
        let op = firewall_insert(&mut st, "p", &body, &q()).unwrap();
        assert_eq!(op["operationType"], "insert");
        assert!(op.get("zone").is_none());
        assert!(op["selfLink"]
            .as_str()
            .unwrap()
            .contains("/projects/p/global/operations/"));
        // Not visible before DONE.
        assert!(firewall_get(st.project("p"), "ws-ssh").is_err());
        done(&mut st, &op);
        let fw = firewall_get(st.project("p"), "ws-ssh").unwrap();
        assert_eq!(fw["sourceRanges"], json!(["0.0.0.0/0"]));
        assert_eq!(fw["direction"], "INGRESS");
        assert_eq!(fw["priority"], 1000);
        assert!(fw["network"]
            .as_str()
            .unwrap()
            .ends_with("/global/networks/default"));
    }

    #[test]
    fn firewall_validation_and_patch() {
        let mut st = State::default();
        let bad = json!({"name": "x", "allowed": [{"IPProtocol": "tcp", "ports": ["70000"]}]});
        assert!(firewall_insert(&mut st, "p", &bad, &q())
            .unwrap_err()
            .message
            .contains("Invalid port"));
        let bad = json!({"name": "x", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["1.2.3.4/40"]});
        assert_eq!(
            firewall_insert(&mut st, "p", &bad, &q()).unwrap_err().code,
            400
        );
        let mixed = json!({"name": "x", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["1.2.3.0/24", "2001:db8::/32"]});
        assert!(firewall_insert(&mut st, "p", &mixed, &q())
            .unwrap_err()
            .message
            .contains("cannot be mixed"));
        let v6 = json!({"name": "v6", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["2001:db8::/32"]});
        firewall_insert(&mut st, "p", &v6, &q()).unwrap();
        let bad = json!({"name": "x", "allowed": [{"IPProtocol": "ipv6-icmp"}]});
        assert!(firewall_insert(&mut st, "p", &bad, &q())
            .unwrap_err()
            .message
            .contains("or an IP protocol number"));
        let bad = json!({"name": "x"});
        assert_eq!(
            firewall_insert(&mut st, "p", &bad, &q()).unwrap_err().code,
            400
        );
        let ok = json!({"name": "x", "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "sourceRanges": ["10.0.0.0/8"]});
        let op = firewall_insert(&mut st, "p", &ok, &q()).unwrap();
        assert_eq!(
            firewall_insert(&mut st, "p", &ok, &q()).unwrap_err().code,
            409
        );
        done(&mut st, &op);
        let patch = json!({"sourceRanges": ["192.168.0.0/16"]});
        let op = firewall_change(&mut st, "p", "x", &patch, &q(), true).unwrap();
        assert_eq!(op["operationType"], "patch");
        done(&mut st, &op);
        let fw = firewall_get(st.project("p"), "x").unwrap();
        assert_eq!(fw["sourceRanges"], json!(["192.168.0.0/16"]));
        assert_eq!(fw["allowed"][0]["ports"], json!(["22"]));
    }

    #[test]
    fn attached_disks_cannot_be_deleted_and_resize_only_grows() {
        let mut st = State::default();
        let op = disk_insert(&mut st, "p", "us-central1-a", &json!({"name": "data", "sizeGb": "100", "type": "zones/us-central1-a/diskTypes/pd-ssd"}), &q()).unwrap();
        assert_eq!(
            st.project("p").disks[&("us-central1-a".into(), "data".into())]["status"],
            "CREATING"
        );
        done(&mut st, &op);
        let p = st.project("p");
        assert_eq!(
            p.disks[&("us-central1-a".into(), "data".into())]["status"],
            "READY"
        );
        p.disks
            .get_mut(&("us-central1-a".into(), "data".into()))
            .unwrap()["users"] = json!([
            "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/vm"
        ]);
        let e = disk_verb(
            &mut st,
            "p",
            "us-central1-a",
            "data",
            "delete",
            &Value::Null,
            &q(),
        )
        .unwrap_err();
        assert_eq!(e.reason, "resourceInUseByAnotherResource");
        assert_eq!(
            e.message,
            "The disk resource 'projects/p/zones/us-central1-a/disks/data' is already being used by 'projects/p/zones/us-central1-a/instances/vm'"
        );
        let e = disk_verb(
            &mut st,
            "p",
            "us-central1-a",
            "data",
            "resize",
            &json!({"sizeGb": "50"}),
            &q(),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        let op = disk_verb(
            &mut st,
            "p",
            "us-central1-a",
            "data",
            "resize",
            &json!({"sizeGb": "200"}),
            &q(),
        )
        .unwrap();
        done(&mut st, &op);
        assert_eq!(
            st.project("p").disks[&("us-central1-a".into(), "data".into())]["sizeGb"],
            "200"
        );
    }

    #[test]
    fn lists_paginate_and_filter() {
        let items: Vec<Value> = (0..5).map(|i| json!({"name": format!("n{i}"), "labels": {"k": if i % 2 == 0 {"even"} else {"odd"}}})).collect();
        let mut query = q();
        query.insert("maxResults".into(), "2".into());
        let page1 = list_response("compute#xList", "projects/p/x", items.clone(), &query).unwrap();
        assert_eq!(page1["items"].as_array().unwrap().len(), 2);
        let tok = page1["nextPageToken"].as_str().unwrap().to_string();
        query.insert("pageToken".into(), tok);
        let page2 = list_response("compute#xList", "projects/p/x", items.clone(), &query).unwrap();
        assert_eq!(page2["items"][0]["name"], "n2");
        let mut fq = q();
        fq.insert("filter".into(), "labels.k = even".into());
        let f = list_response("compute#xList", "projects/p/x", items, &fq).unwrap();
        assert_eq!(f["items"].as_array().unwrap().len(), 3);
        assert!(f.get("nextPageToken").is_none());
        let empty = list_response("compute#xList", "projects/p/x", vec![], &q()).unwrap();
        assert!(empty.get("items").is_none());
    }
}
