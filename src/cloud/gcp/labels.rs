//! Tags ↔ Compute Engine labels.
//!
//! Labels are stricter than tags: keys and values are at most 63 characters of
//! lowercase letters, digits, `_` and `-`, and keys start with a letter. We
//! sanitise tags into labels (so they show up in billing and filters) and keep
//! the user's original tags as JSON in instance metadata (`aienv-tags`). On read
//! the original spelling is reported for every label that still equals the
//! sanitised form of its original, so a plan shows no perpetual diff for
//! `Team = "ML"`; a label that differs is reported as found, which shows as drift.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Longest key or value Compute Engine accepts.
const MAX_LEN: usize = 63;
/// Most labels one resource may carry.
pub(crate) const MAX_LABELS: usize = 64;

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LEN)
        .collect()
}

/// A tag key as a label key: sanitised, starting with a letter (prefixed with
/// `t_` when not) and not starting with `goog` (reserved by Google).
pub(crate) fn sanitize_key(key: &str) -> String {
    let mut k = sanitize(key);
    if !k.starts_with(|c: char| c.is_ascii_lowercase()) || k.starts_with("goog") {
        k = format!("t_{k}");
        k.truncate(MAX_LEN);
    }
    k
}

pub(crate) fn sanitize_value(value: &str) -> String {
    sanitize(value)
}

/// Labels for user tags. Keys that sanitise to one of ours (`aienv-*`) are
/// dropped, and when two keys sanitise alike the first (by key order) wins.
pub(crate) fn user_labels(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in tags {
        let lk = sanitize_key(k);
        if lk.starts_with("aienv-") || out.contains_key(&lk) {
            continue;
        }
        out.insert(lk, sanitize_value(v));
    }
    out
}

/// The user's tags as stored in metadata.
pub(crate) fn encode_tags(tags: &BTreeMap<String, String>) -> String {
    // A map of strings always serialises.
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn decode_tags(json: Option<&str>) -> BTreeMap<String, String> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// User labels (no `aienv-*`) of a label map.
pub(crate) fn non_bookkeeping(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("aienv-") && !k.starts_with("goog-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The tags to report from the labels found (`aienv-*` already removed) and the
/// originals stored at the last create/update.
pub(crate) fn observed_tags(
    labels: &BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut matched: BTreeSet<String> = BTreeSet::new();
    for (k, v) in stored {
        let lk = sanitize_key(k);
        if matched.contains(&lk) {
            continue;
        }
        if labels.get(&lk) == Some(&sanitize_value(v)) {
            out.insert(k.clone(), v.clone());
            matched.insert(lk);
        }
    }
    for (lk, lv) in labels {
        if !matched.contains(lk) {
            out.insert(lk.clone(), lv.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_and_values_follow_label_rules() {
        assert_eq!(sanitize_key("Team"), "team");
        assert_eq!(sanitize_key("cost center"), "cost_center");
        assert_eq!(sanitize_key("owner.email"), "owner_email");
        assert_eq!(sanitize_key("1st"), "t_1st");
        assert_eq!(sanitize_key("_x"), "t__x");
        assert_eq!(sanitize_key(""), "t_");
        assert_eq!(sanitize_key("google-thing"), "t_google-thing");
        assert_eq!(sanitize_value("ML Platform"), "ml_platform");
        assert_eq!(sanitize_value("ana@example.com"), "ana_example_com");
        assert_eq!(sanitize_value("Zürich"), "z_rich");
        assert_eq!(sanitize_value(""), "");
        let long = "a".repeat(100);
        assert_eq!(sanitize_key(&long).len(), 63);
        assert_eq!(sanitize_value(&long).len(), 63);
        assert_eq!(sanitize_key(&format!("9{long}")).len(), 63);
        for k in ["Team", "1st", "a b", "ÄÖ", "goog"] {
            let s = sanitize_key(k);
            assert!(s.starts_with(|c: char| c.is_ascii_lowercase()), "{k} → {s}");
            assert!(s
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'));
        }
    }

    #[test]
    fn user_labels_drop_ours_and_collisions() {
        let tags = map(&[
            ("Team", "ML"),
            ("team", "other"),
            ("AIENV-NAME", "x"),
            ("env", "dev"),
        ]);
        assert_eq!(user_labels(&tags), map(&[("team", "ml"), ("env", "dev")]));
    }

    #[test]
    fn original_tags_round_trip_through_labels() {
        let tags = map(&[
            ("Team", "ML Platform"),
            ("env", "dev"),
            ("Cost Center", "42"),
        ]);
        let labels = user_labels(&tags);
        let stored = decode_tags(Some(&encode_tags(&tags)));
        assert_eq!(observed_tags(&labels, &stored), tags);
    }

    #[test]
    fn changed_label_shows_as_drift() {
        let tags = map(&[("Team", "ML"), ("env", "dev")]);
        let mut labels = user_labels(&tags);
        labels.insert("team".into(), "infra".into());
        labels.insert("added".into(), "by-console".into());
        labels.remove("env");
        let got = observed_tags(&labels, &tags);
        assert_eq!(got, map(&[("team", "infra"), ("added", "by-console")]));
    }

    #[test]
    fn without_stored_tags_labels_are_reported() {
        let labels = map(&[("team", "ml")]);
        assert_eq!(observed_tags(&labels, &BTreeMap::new()), labels);
        assert!(decode_tags(Some("not json")).is_empty());
        assert!(decode_tags(None).is_empty());
    }

    #[test]
    fn bookkeeping_labels_are_not_user_labels() {
        let labels: HashMap<String, String> = [
            ("aienv-name", "box"),
            ("aienv-kind", "workstation"),
            ("goog-ops-agent-policy", "v2"),
            ("team", "ml"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(non_bookkeeping(&labels), map(&[("team", "ml")]));
    }
}
