//! The GPU offerings table: the CSV embedded at compile time and its parser.
//!
//! The table is compiled in so that plan-time validation and cost estimates work
//! offline and give the same answer on every machine running one provider build.
//! `catalog/SOURCES.md` says where the numbers come from and how to update them.

use std::collections::HashSet;

use crate::spec::CloudKind;

/// The embedded table. The path is relative to this file, so the same source
/// compiles from any crate that includes it.
pub(crate) const EMBEDDED_CSV: &str = include_str!("../../catalog/gpu-offerings.csv");

const HEADER: &str = "cloud,instance_type,gpu_model,gpu_count,gpu_memory_gb,vcpus,memory_gb,\
                      region,ondemand_usd_hour,spot_usd_hour,gcp_accelerator_type";
const FIELDS: usize = 11;

/// One purchasable shape: an instance type with a fixed GPU model and count, in
/// one region, with its hourly prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Offering {
    pub cloud: CloudKind,
    pub instance_type: String,
    /// Canonical model name as users write it in `gpu` (e.g. `A100-80GB`).
    pub gpu_model: String,
    pub gpu_count: u32,
    /// Nominal memory per GPU.
    pub gpu_memory_gb: u32,
    pub vcpus: u32,
    pub memory_gb: f64,
    pub region: String,
    pub ondemand_usd_hour: f64,
    /// None: the catalog has no spot price, so a spot request cannot use this row.
    pub spot_usd_hour: Option<f64>,
    /// GCP hosts with attached GPUs only (e.g. `nvidia-tesla-t4`): the backend must
    /// attach this accelerator type `gpu_count` times.
    pub gcp_accelerator_type: Option<String>,
}

impl Offering {
    /// The hourly price the user pays: the spot price when `spot`, else on-demand.
    /// None when spot is asked for and the row has no spot price.
    pub fn price(&self, spot: bool) -> Option<f64> {
        if spot {
            self.spot_usd_hour
        } else {
            Some(self.ondemand_usd_hour)
        }
    }

    /// Whether this row has exactly `count` GPUs of `model` (case-insensitive, so a
    /// hand-built spec still matches the canonical spelling).
    pub(crate) fn carries(&self, model: &str, count: u32) -> bool {
        self.gpu_count == count && self.gpu_model.eq_ignore_ascii_case(model)
    }
}

/// The embedded table could not be parsed. This is a bug in the shipped data (the
/// unit tests parse the same bytes), reported as an error so a broken build fails
/// resources loudly instead of crashing the provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("built-in GPU catalog, line {line}: {message}")]
pub struct CatalogError {
    /// 1-based line in the CSV.
    pub line: usize,
    pub message: String,
}

impl CatalogError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        CatalogError {
            line,
            message: message.into(),
        }
    }
}

/// Parses the whole table: the exact header, then one offering per non-empty line.
/// Rejects duplicates of (cloud, instance_type, region, gpu_model, gpu_count); the
/// GPU part is in the key because a GCP N1 host appears once per accelerator shape.
pub(crate) fn parse_offerings(csv: &str) -> Result<Vec<Offering>, CatalogError> {
    let mut lines = csv.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header)) if header.trim_end() == HEADER => {}
        Some((line, header)) => {
            return Err(CatalogError::new(
                line,
                format!("header is {header:?}, expected {HEADER:?}"),
            ))
        }
        None => return Err(CatalogError::new(1, "the table is empty")),
    }

    let mut offerings = Vec::new();
    let mut seen = HashSet::new();
    for (line, text) in lines {
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let offering = parse_row(text).map_err(|m| CatalogError::new(line, m))?;
        let key = (
            offering.cloud,
            offering.instance_type.clone(),
            offering.region.clone(),
            offering.gpu_model.clone(),
            offering.gpu_count,
        );
        if !seen.insert(key) {
            return Err(CatalogError::new(
                line,
                format!(
                    "duplicate row for {} {} in {} with {} x {}",
                    offering.cloud,
                    offering.instance_type,
                    offering.region,
                    offering.gpu_count,
                    offering.gpu_model
                ),
            ));
        }
        offerings.push(offering);
    }
    if offerings.is_empty() {
        return Err(CatalogError::new(1, "the table has no rows"));
    }
    Ok(offerings)
}

fn parse_row(text: &str) -> Result<Offering, String> {
    // The table is written without quoting; a quote means someone introduced a
    // value this simple splitter would mangle.
    if text.contains('"') {
        return Err("quoted fields are not supported".to_string());
    }
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    // Destructuring (not indexing) keeps the column order in one place and
    // cannot panic on a short row.
    let [cloud, instance_type, gpu_model, gpu_count, gpu_memory_gb, vcpus, memory_gb, region, ondemand, spot, accel] =
        fields.as_slice()
    else {
        return Err(format!("expected {FIELDS} fields, found {}", fields.len()));
    };
    let cloud: CloudKind = cloud.parse()?;
    let spot_usd_hour = if spot.is_empty() {
        None
    } else {
        Some(positive_f64("spot_usd_hour", spot)?)
    };
    let gcp_accelerator_type = if accel.is_empty() {
        None
    } else if cloud == CloudKind::Gcp {
        Some(accel.to_string())
    } else {
        return Err(format!(
            "gcp_accelerator_type {accel:?} set on a non-gcp ({cloud}) row"
        ));
    };
    Ok(Offering {
        cloud,
        instance_type: non_empty("instance_type", instance_type)?,
        gpu_model: non_empty("gpu_model", gpu_model)?,
        gpu_count: positive_u32("gpu_count", gpu_count)?,
        gpu_memory_gb: positive_u32("gpu_memory_gb", gpu_memory_gb)?,
        vcpus: positive_u32("vcpus", vcpus)?,
        memory_gb: positive_f64("memory_gb", memory_gb)?,
        region: non_empty("region", region)?,
        ondemand_usd_hour: positive_f64("ondemand_usd_hour", ondemand)?,
        spot_usd_hour,
        gcp_accelerator_type,
    })
}

fn non_empty(column: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{column} is empty"))
    } else {
        Ok(value.to_string())
    }
}

fn positive_u32(column: &str, value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{column} {value:?} is not a positive whole number")),
    }
}

/// Prices and sizes must be finite and above zero: a zero price would make the
/// cheapest-offering choice silently pick a broken row.
fn positive_f64(column: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{column} {value:?} is not a positive number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "aws,g4dn.xlarge,T4,1,16,4,16,us-east-1,0.526,0.2,";

    fn table(rows: &[&str]) -> String {
        let mut s = String::from(HEADER);
        for r in rows {
            s.push('\n');
            s.push_str(r);
        }
        s.push('\n');
        s
    }

    #[test]
    fn embedded_table_parses() {
        let rows = parse_offerings(EMBEDDED_CSV).unwrap();
        assert_eq!(rows.len(), 240);
        for cloud in CloudKind::ALL {
            assert!(rows.iter().any(|o| o.cloud == cloud), "no rows for {cloud}");
        }
        assert_eq!(
            rows.iter().filter(|o| o.cloud == CloudKind::Aws).count(),
            102
        );
        assert_eq!(
            rows.iter().filter(|o| o.cloud == CloudKind::Gcp).count(),
            102
        );
        assert_eq!(
            rows.iter().filter(|o| o.cloud == CloudKind::Azure).count(),
            36
        );
    }

    #[test]
    fn embedded_table_has_no_duplicates() {
        // (cloud, type, region) alone repeats only for GCP N1 hosts, which take
        // several accelerator shapes; everything else is one row per type+region.
        let rows = parse_offerings(EMBEDDED_CSV).unwrap();
        let mut full = HashSet::new();
        let mut by_type: std::collections::HashMap<_, Vec<&Offering>> = Default::default();
        for o in &rows {
            assert!(full.insert((
                o.cloud,
                &o.instance_type,
                &o.region,
                &o.gpu_model,
                o.gpu_count
            )));
            by_type
                .entry((o.cloud, &o.instance_type, &o.region))
                .or_default()
                .push(o);
        }
        for ((cloud, t, _), group) in by_type {
            if group.len() > 1 {
                assert_eq!(cloud, CloudKind::Gcp, "{t} repeats");
                assert!(t.starts_with("n1-"), "{t} repeats");
                assert!(group.iter().all(|o| o.gcp_accelerator_type.is_some()));
            }
        }
    }

    #[test]
    fn embedded_table_known_row() {
        let rows = parse_offerings(EMBEDDED_CSV).unwrap();
        let p4d = rows
            .iter()
            .find(|o| o.instance_type == "p4d.24xlarge" && o.region == "us-east-1")
            .unwrap();
        assert_eq!(p4d.cloud, CloudKind::Aws);
        assert_eq!((p4d.gpu_model.as_str(), p4d.gpu_count), ("A100", 8));
        assert_eq!(p4d.gpu_memory_gb, 40);
        assert_eq!(p4d.vcpus, 96);
        assert_eq!(p4d.memory_gb, 1152.0);
        assert_eq!(p4d.ondemand_usd_hour, 21.957642);
        assert_eq!(p4d.spot_usd_hour, Some(2.4655));
        assert_eq!(p4d.gcp_accelerator_type, None);

        let p5 = rows
            .iter()
            .find(|o| o.instance_type == "p5.4xlarge" && o.region == "us-east-1")
            .unwrap();
        assert_eq!(p5.spot_usd_hour, None);
        assert_eq!(p5.price(true), None);
        assert_eq!(p5.price(false), Some(6.88));

        let n1 = rows
            .iter()
            .find(|o| {
                o.instance_type == "n1-standard-4" && o.region == "us-central1" && o.gpu_count == 2
            })
            .unwrap();
        assert_eq!(n1.gcp_accelerator_type.as_deref(), Some("nvidia-tesla-t4"));
    }

    #[test]
    fn parses_a_minimal_table_with_crlf() {
        let csv = table(&[ROW]).replace('\n', "\r\n");
        let rows = parse_offerings(&csv).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].spot_usd_hour, Some(0.2));
        assert_eq!(rows[0].gcp_accelerator_type, None);
    }

    #[test]
    fn rejects_malformed_tables() {
        let cases: &[(String, usize, &str)] = &[
            (String::new(), 1, "empty"),
            (HEADER.to_string(), 1, "no rows"),
            (format!("cloud,x\n{ROW}"), 1, "header"),
            (table(&["aws,g4dn.xlarge,T4,1"]), 2, "expected 11 fields"),
            (table(&[&ROW.replace("aws", "ibm")]), 2, "unknown cloud"),
            (table(&[&ROW.replace(",T4,1,", ",T4,0,")]), 2, "gpu_count"),
            (
                table(&[&ROW.replace("0.526", "free")]),
                2,
                "ondemand_usd_hour",
            ),
            (table(&[&ROW.replace("0.526", "0")]), 2, "ondemand_usd_hour"),
            (table(&[&ROW.replace(",0.2,", ",NaN,")]), 2, "spot_usd_hour"),
            (table(&[&ROW.replace("T4", "")]), 2, "gpu_model is empty"),
            (
                table(&[&format!("{ROW}nvidia-tesla-t4")]),
                2,
                "non-gcp (aws)",
            ),
            (table(&[&ROW.replace("T4", "\"T4\"")]), 2, "quoted"),
            (table(&[ROW, ROW]), 3, "duplicate"),
        ];
        for (csv, line, needle) in cases {
            let err = parse_offerings(csv).unwrap_err();
            assert_eq!(err.line, *line, "{csv:?}: {err}");
            assert!(err.to_string().contains(needle), "{csv:?}: {err}");
        }
    }
}
