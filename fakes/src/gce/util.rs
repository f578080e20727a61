//! Small helpers shared by the fake: links, ids, timestamps, fingerprints,
//! typed access to JSON request bodies with Google-style errors.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::errors::ApiError;

/// Real responses always carry this host in `selfLink`s, whatever endpoint was
/// called, so the fake does the same.
pub const API_BASE: &str = "https://www.googleapis.com/compute/v1";

/// The label/tag fingerprint GCE reports for an empty set (the hash of nothing).
pub const EMPTY_FINGERPRINT: &str = "42WmSpB8rSM=";

pub fn zone_path(project: &str, zone: &str) -> String {
    format!("projects/{project}/zones/{zone}")
}

pub fn region_path(project: &str, region: &str) -> String {
    format!("projects/{project}/regions/{region}")
}

pub fn link(path: &str) -> String {
    format!("{API_BASE}/{path}")
}

pub fn zone_link(project: &str, zone: &str) -> String {
    link(&zone_path(project, zone))
}

pub fn region_link(project: &str, region: &str) -> String {
    link(&region_path(project, region))
}

pub fn zonal_path(project: &str, zone: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/{collection}/{name}")
}

pub fn regional_path(project: &str, region: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/regions/{region}/{collection}/{name}")
}

pub fn global_path(project: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/global/{collection}/{name}")
}

/// `us-central1-a` → `us-central1`.
pub fn region_of_zone(zone: &str) -> &str {
    match zone.rfind('-') {
        Some(i) => &zone[..i],
        None => zone,
    }
}

/// A 19-digit id like the ones GCE hands out.
pub fn new_id() -> u64 {
    fastrand::u64(1_000_000_000_000_000_000..9_999_999_999_999_999_999)
}

/// URL-safe base64 of 8 random bytes, the shape of every GCE fingerprint.
pub fn new_fingerprint() -> String {
    let bytes: [u8; 8] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn decode_fingerprint(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    URL_SAFE
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

/// Fingerprints are opaque bytes: clients decode and re-encode them, possibly
/// with another padding or alphabet, so compare the bytes, not the text.
pub fn fingerprint_matches(supplied: &str, current: &str) -> bool {
    if supplied == current {
        return true;
    }
    match (decode_fingerprint(supplied), decode_fingerprint(current)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

pub fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds and a numeric offset, as GCE prints timestamps.
pub fn now_rfc3339() -> String {
    format_rfc3339(now_millis())
}

pub fn format_rfc3339(millis: u128) -> String {
    let secs = (millis / 1000) as i64;
    let ms = (millis % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A reference to a Compute resource as clients send it: a full URL (any host),
/// a partial path (`projects/P/zones/Z/machineTypes/N`, `zones/Z/...`,
/// `global/networks/N`) or a bare name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceRef {
    pub project: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub global: bool,
    pub collection: Option<String>,
    pub name: String,
    /// `images/family/F` references.
    pub family: bool,
}

pub fn parse_ref(s: &str) -> ResourceRef {
    let mut rest = s.trim();
    if let Some(i) = rest.find("://") {
        // Drop scheme and host, keep the path.
        let after = &rest[i + 3..];
        rest = match after.find('/') {
            Some(j) => &after[j..],
            None => "",
        };
    }
    let rest = rest.trim_start_matches('/');
    let rest = rest
        .strip_prefix("compute/")
        .map(|r| r.split_once('/').map(|(_, tail)| tail).unwrap_or(""))
        .unwrap_or(rest);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut r = ResourceRef::default();
    let mut i = 0;
    while i < segs.len() {
        match segs[i] {
            "projects" if i + 1 < segs.len() && r.project.is_none() => {
                r.project = Some(segs[i + 1].to_string());
                i += 2;
            }
            "zones" if i + 2 < segs.len() => {
                r.zone = Some(segs[i + 1].to_string());
                i += 2;
            }
            "regions" if i + 2 < segs.len() => {
                r.region = Some(segs[i + 1].to_string());
                i += 2;
            }
            "global" => {
                r.global = true;
                i += 1;
            }
            _ => {
                let tail = &segs[i..];
                match tail {
                    [name] => r.name = (*name).to_string(),
                    [coll, "family", fam] => {
                        r.collection = Some((*coll).to_string());
                        r.family = true;
                        r.name = (*fam).to_string();
                    }
                    [coll, name] => {
                        r.collection = Some((*coll).to_string());
                        r.name = (*name).to_string();
                    }
                    _ => r.name = tail.join("/"),
                }
                break;
            }
        }
    }
    r
}

// ---- typed access to request bodies -------------------------------------

/// The body as an object, or the 400 the real API gives for anything else.
pub fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::parse_error("Invalid JSON payload received. Expected an object."))
}

fn type_error(path: &str, ty: &str, v: &Value) -> ApiError {
    ApiError::parse_error(&format!("Invalid value at '{path}' ({ty}), {v}"))
}

pub fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(type_error(path, "TYPE_STRING", v)),
    }
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(type_error(path, "TYPE_BOOL", v)),
    }
}

/// int64 fields arrive as JSON strings from the Google clients (proto3 JSON)
/// and as numbers from hand-written callers; both are accepted.
pub fn opt_i64(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| type_error(path, "TYPE_INT64", &Value::Number(n.clone()))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| type_error(path, "TYPE_INT64", &Value::String(s.clone()))),
        Some(v) => Err(type_error(path, "TYPE_INT64", v)),
    }
}

pub fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a [Value], ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(v) => Err(type_error(path, "TYPE_MESSAGE", v)),
    }
}

pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(type_error(path, "TYPE_MESSAGE", v)),
    }
}

pub fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (i, v) in opt_array(obj, key, path)?.iter().enumerate() {
        match v {
            Value::String(s) => out.push(s.clone()),
            other => return Err(type_error(&format!("{path}[{i}]"), "TYPE_STRING", other)),
        }
    }
    Ok(out)
}

/// RFC 1035 names: what GCE requires of instance, disk and firewall names.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 63 || !b[0].is_ascii_lowercase() {
        return false;
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return false;
    }
    b[b.len() - 1] != b'-'
}

pub const NAME_REGEX: &str = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)";

fn label_char_ok(c: char) -> bool {
    // Lowercase letters (international ones included), digits, '_' and '-'.
    c.is_ascii_digit()
        || c == '_'
        || c == '-'
        || c.is_ascii_lowercase()
        || (!c.is_ascii() && c.is_alphabetic() && !c.is_uppercase())
}

pub fn valid_label_key(k: &str) -> bool {
    let mut chars = k.chars();
    match chars.next() {
        Some(c) if c.is_lowercase() => {}
        _ => return false,
    }
    k.chars().count() <= 63 && k.chars().all(label_char_ok)
}

pub fn valid_label_value(v: &str) -> bool {
    v.chars().count() <= 63 && v.chars().all(label_char_ok)
}

/// Validates a label map the way GCE does; `field` is `resource.labels` on
/// inserts and `labels` on setLabels.
pub fn validate_labels(
    labels: &Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid(&format!(
            "Invalid value for field '{field}': ''. Resource cannot have more than 64 labels."
        )));
    }
    let mut out = Map::new();
    for (k, v) in labels {
        let v = match v {
            Value::String(s) => s.clone(),
            other => return Err(type_error(&format!("{field}[{k}]"), "TYPE_STRING", other)),
        };
        if !valid_label_key(k) {
            return Err(ApiError::invalid(&format!(
                "Invalid value for field '{field}': ''. Label key '{k}' violates format constraints. The key must start with a lowercase character, can only contain lowercase letters, numeric characters, underscores and dashes. The key can be at most 63 characters long. International characters are allowed."
            )));
        }
        if !valid_label_value(&v) {
            return Err(ApiError::invalid(&format!(
                "Invalid value for field '{field}': ''. Label value '{v}' violates format constraints. The value can only contain lowercase letters, numeric characters, underscores and dashes. The value can be at most 63 characters long. International characters are allowed."
            )));
        }
        out.insert(k.clone(), Value::String(v));
    }
    Ok(out)
}

/// A GCE request id must be a UUID other than the zero UUID.
pub fn valid_request_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*c == b'-') || (!dash && !c.is_ascii_hexdigit()) {
            return false;
        }
    }
    id != "00000000-0000-0000-0000-000000000000"
}

/// Parses an IPv4 CIDR (`a.b.c.d/n` or a bare address meaning /32).
pub fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()?),
        None => (s, 32),
    };
    if len > 32 {
        return None;
    }
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    Some((u32::from(ip), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reference_form() {
        let full = parse_ref("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/machineTypes/n1-standard-4");
        assert_eq!(full.project.as_deref(), Some("p"));
        assert_eq!(full.zone.as_deref(), Some("us-central1-a"));
        assert_eq!(full.collection.as_deref(), Some("machineTypes"));
        assert_eq!(full.name, "n1-standard-4");

        let partial = parse_ref("zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4");
        assert_eq!(partial.project, None);
        assert_eq!(partial.zone.as_deref(), Some("us-central1-a"));
        assert_eq!(partial.name, "nvidia-tesla-t4");

        let fam = parse_ref("projects/deeplearning-platform-release/global/images/family/pytorch-latest-cu121-debian-11");
        assert!(fam.global && fam.family);
        assert_eq!(fam.name, "pytorch-latest-cu121-debian-11");

        let local =
            parse_ref("http://127.0.0.1:1234/compute/v1/projects/p/regions/us-east1/subnetworks/s");
        assert_eq!(local.region.as_deref(), Some("us-east1"));
        assert_eq!(local.name, "s");

        assert_eq!(parse_ref("n1-standard-8").name, "n1-standard-8");
    }

    #[test]
    fn fingerprints_are_url_safe_and_compared_as_bytes() {
        for _ in 0..100 {
            let fp = new_fingerprint();
            assert_eq!(fp.len(), 12);
            assert!(!fp.contains('+') && !fp.contains('/'));
            assert!(fingerprint_matches(&fp, &fp));
            assert!(fingerprint_matches(fp.trim_end_matches('='), &fp));
        }
        assert!(!fingerprint_matches("AAAAAAAAAAA=", "AAAAAAAAAAE="));
        assert!(!fingerprint_matches("not base64!", "AAAAAAAAAAE="));
    }

    #[test]
    fn label_rules_match_gce() {
        assert!(valid_label_key("aienv-id"));
        assert!(valid_label_key("a_b-1"));
        assert!(valid_label_key("été"));
        assert!(!valid_label_key("Owner"));
        assert!(!valid_label_key("1abc"));
        assert!(!valid_label_key(""));
        assert!(!valid_label_key(&"a".repeat(64)));
        assert!(valid_label_value(""));
        assert!(!valid_label_value("head.default"));
        assert!(!valid_label_value("test-by-Ahtasham"));
        let mut m = Map::new();
        m.insert("KubernetesCluster".into(), Value::String("x".into()));
        let e = validate_labels(&m, "labels").unwrap_err();
        assert!(e
            .message
            .contains("Label key 'KubernetesCluster' violates format constraints"));
    }

    #[test]
    fn names_request_ids_and_times() {
        assert!(valid_name("ws-1"));
        assert!(!valid_name("Ws"));
        assert!(!valid_name("ws-"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_request_id("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!valid_request_id("00000000-0000-0000-0000-000000000000"));
        assert!(!valid_request_id("retry-1"));
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            format_rfc3339(1_719_427_342_006),
            "2024-06-26T18:42:22.006+00:00"
        );
        assert_eq!(region_of_zone("europe-west4-a"), "europe-west4");
    }
}
