//! The user's `gpu = "MODEL[:COUNT]"` value, parsed against the models the
//! catalog knows.

use std::fmt;
use std::str::FromStr;

use super::offerings::CatalogError;

/// Largest GPU count accepted in a spec. No offering has more than 16 today; the
/// bound only stops absurd values early with a clear message.
pub const MAX_GPU_COUNT: u32 = 64;

/// A GPU request: `count` GPUs of one model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GpuSpec {
    /// Canonical spelling as in the table, e.g. `A100-80GB`.
    pub model: String,
    pub count: u32,
}

/// Why a `gpu` value was rejected. Display is the text the Terraform user reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuSpecError {
    #[error("gpu is empty: expected MODEL or MODEL:COUNT, e.g. \"T4\" or \"A100:8\"")]
    Empty,
    #[error("unknown GPU model {model:?}; known models: {}", known.join(", "))]
    UnknownModel { model: String, known: Vec<String> },
    #[error("invalid gpu {input:?}: {reason}")]
    BadCount { input: String, reason: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl GpuSpec {
    /// Parses `MODEL` (one GPU) or `MODEL:COUNT`, matching MODEL case-insensitively
    /// against `models` and returning the canonical spelling. Kept separate from
    /// `FromStr` so callers holding a catalog (and tests) need no global state.
    pub fn parse_with_models(input: &str, models: &[&str]) -> Result<Self, GpuSpecError> {
        let trimmed = input.trim();
        let (model_part, count_part) = match trimmed.split_once(':') {
            Some((m, c)) => (m.trim(), Some(c.trim())),
            None => (trimmed, None),
        };
        if model_part.is_empty() {
            return Err(GpuSpecError::Empty);
        }
        let model = models
            .iter()
            .find(|m| m.eq_ignore_ascii_case(model_part))
            .ok_or_else(|| GpuSpecError::UnknownModel {
                model: model_part.to_string(),
                known: models.iter().map(|m| m.to_string()).collect(),
            })?;
        let count = match count_part {
            None => 1,
            Some(c) => parse_count(c).map_err(|reason| GpuSpecError::BadCount {
                input: input.to_string(),
                reason,
            })?,
        };
        Ok(GpuSpec {
            model: model.to_string(),
            count,
        })
    }
}

fn parse_count(c: &str) -> Result<u32, String> {
    if c.contains(':') {
        return Err("expected MODEL or MODEL:COUNT, with one ':' at most".to_string());
    }
    // Only plain digits: `str::parse` would also take "+8".
    if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "GPU count {c:?} is not a whole number between 1 and {MAX_GPU_COUNT}"
        ));
    }
    match c.parse::<u32>() {
        Ok(n) if (1..=MAX_GPU_COUNT).contains(&n) => Ok(n),
        _ => Err(format!(
            "GPU count {c} is out of range: expected 1 to {MAX_GPU_COUNT}"
        )),
    }
}

impl FromStr for GpuSpec {
    type Err = GpuSpecError;

    /// Parses against the built-in catalog's models.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let catalog = super::catalog()?;
        Self::parse_with_models(s, &catalog.models())
    }
}

impl fmt::Display for GpuSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.model, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: [&str; 4] = ["A10G", "A100", "A100-80GB", "T4"];

    fn spec(model: &str, count: u32) -> GpuSpec {
        GpuSpec {
            model: model.to_string(),
            count,
        }
    }

    #[test]
    fn parses_model_and_count() {
        let parse = |s| GpuSpec::parse_with_models(s, &MODELS).unwrap();
        assert_eq!(parse("T4"), spec("T4", 1));
        assert_eq!(parse("t4"), spec("T4", 1));
        assert_eq!(parse("a10g:4"), spec("A10G", 4));
        assert_eq!(parse("A100-80GB:8"), spec("A100-80GB", 8));
        assert_eq!(parse("a100-80gb:8"), spec("A100-80GB", 8));
        assert_eq!(parse("A100"), spec("A100", 1));
        assert_eq!(parse(" A100 : 8 "), spec("A100", 8));
        assert_eq!(parse("T4:64"), spec("T4", 64));
    }

    #[test]
    fn parses_against_the_embedded_catalog() {
        assert_eq!("H100:8".parse::<GpuSpec>().unwrap(), spec("H100", 8));
        assert_eq!(
            "h100-nvl:2".parse::<GpuSpec>().unwrap(),
            spec("H100-NVL", 2)
        );
        assert_eq!("l40s".parse::<GpuSpec>().unwrap(), spec("L40S", 1));
    }

    #[test]
    fn display_round_trips() {
        let s = spec("A100-80GB", 8);
        assert_eq!(s.to_string(), "A100-80GB:8");
        assert_eq!(s.to_string().parse::<GpuSpec>().unwrap(), s);
    }

    #[test]
    fn rejects_empty() {
        for s in ["", "   ", ":8"] {
            let err = GpuSpec::parse_with_models(s, &MODELS).unwrap_err();
            assert_eq!(err, GpuSpecError::Empty, "{s:?}");
            assert!(err.to_string().contains("MODEL:COUNT"));
        }
    }

    #[test]
    fn rejects_unknown_model_and_lists_known() {
        let err = GpuSpec::parse_with_models("A200:8", &MODELS).unwrap_err();
        assert!(matches!(err, GpuSpecError::UnknownModel { ref model, .. } if model == "A200"));
        let msg = err.to_string();
        assert!(msg.contains("\"A200\""), "{msg}");
        assert!(msg.contains("A10G, A100, A100-80GB, T4"), "{msg}");

        // Against the real table the list names every model.
        let msg = "RTX4090".parse::<GpuSpec>().unwrap_err().to_string();
        for m in ["T4", "A100-80GB", "H100", "B200"] {
            assert!(msg.contains(m), "{msg}");
        }
    }

    #[test]
    fn rejects_bad_counts() {
        for (s, needle) in [
            ("A100:0", "out of range"),
            ("A100:65", "out of range"),
            ("A100:99999999999", "out of range"),
            ("A100:x", "not a whole number"),
            ("A100:", "not a whole number"),
            ("A100:+8", "not a whole number"),
            ("A100:-1", "not a whole number"),
            ("A100:1.5", "not a whole number"),
            ("A100:8:1", "one ':' at most"),
        ] {
            let err = GpuSpec::parse_with_models(s, &MODELS).unwrap_err();
            assert!(matches!(err, GpuSpecError::BadCount { .. }), "{s}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{s}: {msg}");
            assert!(msg.contains(s), "{s}: {msg}");
        }
    }
}
