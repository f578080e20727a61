//! One trait for every cloud. A backend knows nothing about Terraform; it gets
//! validated, resolved specs and reports what it observed.

pub mod bootstrap;
pub mod retry;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "gcp")]
pub mod gcp;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::spec::{CloudKind, Leftovers, ObservedWorkstation, ResolvedImage, WorkstationSpec};

/// What went wrong, in terms a user and the retry policy can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    /// The cloud has no capacity for this shape here right now.
    Capacity,
    /// An account quota or limit stops this.
    Quota,
    /// Rate limited; a retry later helps.
    Throttled,
    /// The cloud rejected a value we sent.
    InvalidInput,
    /// Credentials missing, expired or not allowed.
    Auth,
    /// The object is in a state that forbids this now (in use, exists already...).
    Conflict,
    /// StopProvider or a caller cancelled the operation.
    Cancelled,
    /// A bounded wait ran out.
    Timeout,
    /// A feature this backend does not offer.
    Unsupported,
    /// Anything else, including 5xx and transport errors.
    Unexpected,
}

impl ErrorKind {
    /// Short words for the first part of a diagnostic summary.
    pub fn summary(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Capacity => "No capacity",
            ErrorKind::Quota => "Quota exceeded",
            ErrorKind::Throttled => "Rate limited",
            ErrorKind::InvalidInput => "Rejected by the cloud",
            ErrorKind::Auth => "Not authorised",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Timeout => "Timed out",
            ErrorKind::Unsupported => "Not supported",
            ErrorKind::Unexpected => "Cloud API error",
        }
    }
}

/// A typed cloud error: kind, whether a retry can help, the operation, the
/// cloud's own error code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudError {
    pub kind: ErrorKind,
    pub retryable: bool,
    /// The API action, e.g. `RunInstances`.
    pub operation: String,
    /// The cloud's error code, e.g. `InsufficientInstanceCapacity`.
    pub code: Option<String>,
    pub message: String,
    /// Server-requested delay before a retry (Retry-After).
    pub retry_after: Option<Duration>,
}

impl CloudError {
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Throttled);
        CloudError {
            kind,
            retryable,
            operation: operation.into(),
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn cancelled(operation: impl Into<String>) -> Self {
        CloudError::new(
            ErrorKind::Cancelled,
            operation,
            "cancelled: Terraform asked the provider to stop",
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CloudError {}

/// A create that failed part-way. `leftovers` is what still exists after the
/// backend tried to undo its steps (empty when the undo worked).
#[derive(Debug, Clone)]
pub struct CreateFailure {
    pub error: CloudError,
    pub leftovers: Leftovers,
    /// The errors of undo steps that failed, if any.
    pub undo_errors: Vec<CloudError>,
}

impl From<CloudError> for CreateFailure {
    fn from(error: CloudError) -> Self {
        CreateFailure {
            error,
            leftovers: Leftovers::default(),
            undo_errors: Vec::new(),
        }
    }
}

/// The contract every cloud backend fulfils.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// Which cloud this is.
    fn kind(&self) -> CloudKind;

    /// The region configured for this backend (provider block or environment).
    ///
    /// Behavior: never makes a call; None when nothing is configured.
    fn default_region(&self) -> Option<String>;

    /// Check the final tags (provider defaults merged with the resource's)
    /// against this cloud's rules, at plan time and without any call.
    ///
    /// Behavior: `Err((key, sentence))` for the first tag the cloud would refuse
    /// or mangle beyond recognition; the default accepts everything.
    fn check_tags(&self, _tags: &BTreeMap<String, String>) -> Result<(), (String, String)> {
        Ok(())
    }

    /// Resolve an image alias (`pytorch`, `tensorflow`, `cuda`, `ubuntu`) or a raw
    /// image id to a concrete image in `region`.
    ///
    /// Behavior: read-only; aliases pick the newest matching public image; a raw id
    /// must exist, else `NotFound`.
    async fn resolve_image(&self, region: &str, image: &str) -> Result<ResolvedImage, CloudError>;

    /// Create a workstation and wait until it reaches the desired running state.
    ///
    /// Behavior: every step has an undo; on failure the backend undoes what it did
    /// and returns `CreateFailure` with whatever could not be removed. Honours
    /// `cancel` (stops waiting, undoes, returns `Cancelled`).
    async fn create_workstation(
        &self,
        spec: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CreateFailure>;

    /// Read a workstation by locator (the id without the `cloud/` prefix).
    ///
    /// Behavior: `Ok(None)` when the instance is gone or terminated; the parts found
    /// are reported as they are in the cloud (drift shows as a diff).
    async fn read_workstation(
        &self,
        locator: &str,
    ) -> Result<Option<ObservedWorkstation>, CloudError>;

    /// Find what a failed create left behind (from `Leftovers` kept in state) so it
    /// can be destroyed. Returns a partial observation naming those parts.
    async fn delete_leftovers(
        &self,
        region: &str,
        leftovers: &Leftovers,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError>;

    /// Converge an existing workstation to `desired` in place (type via stop/modify/
    /// start, running, firewall rules, tags, disk growth, auto-stop threshold).
    ///
    /// Behavior: only changes what differs; returns the new observation.
    async fn update_workstation(
        &self,
        current: &ObservedWorkstation,
        desired: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CloudError>;

    /// Delete the instance, its data disk, firewall and key, and wait until they
    /// are gone. Behavior: parts already gone are not an error.
    async fn delete_workstation(
        &self,
        current: &ObservedWorkstation,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError>;
}

/// Refuse, before any call, an update only a replacement can make. The plan
/// already turns these into replacements; this guards every backend against a
/// wrong call. `same_id` compares two spellings of one cloud id (a Google Cloud
/// self-link and its relative path name the same image or subnetwork).
pub fn check_in_place(
    current: &ObservedWorkstation,
    desired: &WorkstationSpec,
    same_id: &dyn Fn(&str, &str) -> bool,
) -> Result<(), CloudError> {
    let refuse = |what: String| {
        Err(CloudError::new(
            ErrorKind::InvalidInput,
            "update workstation",
            format!("{what} cannot be changed in place; the workstation must be replaced"),
        ))
    };
    if desired.region != current.region {
        return refuse(format!("region ({} → {})", current.region, desired.region));
    }
    if desired.spot != current.spot {
        return refuse("spot".to_string());
    }
    if !same_id(&desired.image_id, &current.image_id) {
        return refuse(format!(
            "image ({} → {})",
            current.image_id, desired.image_id
        ));
    }
    if let Some(zone) = desired
        .zone
        .as_deref()
        .filter(|z| !z.is_empty() && *z != current.zone)
    {
        return refuse(format!("zone ({} → {zone})", current.zone));
    }
    if let Some(subnet) = desired
        .subnet_id
        .as_deref()
        .filter(|s| !s.is_empty() && !current.subnet_id.as_deref().is_some_and(|c| same_id(c, s)))
    {
        return refuse(format!("subnet ({:?} → {subnet})", current.subnet_id));
    }
    if desired.root_disk_gb < current.root_disk_gb {
        return refuse(format!(
            "root disk shrink ({} → {} GB)",
            current.root_disk_gb, desired.root_disk_gb
        ));
    }
    if desired.data_disk_gb < current.data_disk_gb {
        return refuse(format!(
            "data disk shrink or removal ({} → {} GB)",
            current.data_disk_gb, desired.data_disk_gb
        ));
    }
    Ok(())
}
