//! Diagnostics with attribute paths: the one shape every error and warning takes
//! on its way back to Terraform.

use super::proto::tfplugin6 as pb;
use super::value::PathStep;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub path: Vec<PathStep>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            path: Vec::new(),
        }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(summary, detail)
        }
    }

    /// Attach the path of the attribute this is about.
    pub fn at(mut self, path: Vec<PathStep>) -> Self {
        self.path = path;
        self
    }

    pub fn at_attr(self, name: &str) -> Self {
        self.at(vec![PathStep::Attr(name.to_string())])
    }

    pub fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error as i32,
                Severity::Warning => pb::diagnostic::Severity::Warning as i32,
            },
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: if self.path.is_empty() {
                None
            } else {
                Some(path_to_proto(&self.path))
            },
        }
    }
}

pub fn path_to_proto(path: &[PathStep]) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attr(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

/// A list of diagnostics; errors make the RPC fail in Terraform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_path_maps_to_protocol_steps() {
        let d = Diagnostic::error("Invalid port", "0 is not a port")
            .at(vec![PathStep::Attr("ports".into()), PathStep::Index(1)]);
        let p = d.to_proto();
        assert_eq!(p.severity, pb::diagnostic::Severity::Error as i32);
        let steps = p.attribute.map(|a| a.steps).unwrap_or_default();
        assert_eq!(steps.len(), 2);
        let mut ds = Diagnostics::new();
        ds.push(Diagnostic::warning("w", ""));
        assert!(!ds.has_errors());
        ds.push(d);
        assert!(ds.has_errors());
    }
}
