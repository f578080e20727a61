//! Google Cloud backend (Compute Engine via google-cloud-compute-v1).
//!
//! One file per job, like the AWS backend: `client` (the wrapper every call goes
//! through), `errors` (Google errors → `CloudError`), `operations` (waiting for
//! Operations and checking their `error`), `images` (image aliases → image
//! families), `network` (zone, network, subnetwork and resource paths),
//! `firewall` (the workstation's firewall rules), `labels` (tags ↔ GCE labels),
//! `workstation` (create/read/update/delete) and `orphans` (parts of an earlier
//! workstation of the same name whose instance is gone).
//!
//! Ids: the resource id is `gcp/{project}/{zone}/{name}`; `instance_id`,
//! `firewall_id` and `data_disk_id` are the relative resource paths
//! (`projects/P/zones/Z/instances/N`, `projects/P/global/firewalls/N`,
//! `projects/P/zones/Z/disks/N`), the same strings hashicorp/google uses as ids.

mod client;
mod errors;
mod firewall;
mod images;
mod labels;
mod network;
mod operations;
mod orphans;
mod workstation;

pub use images::IMAGE_FAMILIES;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Cloud, CloudError, CreateFailure, ErrorKind};
use crate::spec::{CloudKind, Leftovers, ObservedWorkstation, ResolvedImage, WorkstationSpec};

use client::Gce;

/// Provider-level Google Cloud settings.
///
/// `GcpCloud::new` fills every unset field from the environment, first match wins:
/// - `project`: `GOOGLE_PROJECT`, `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT`,
///   `CLOUDSDK_CORE_PROJECT`; failing those, the `project_id` of the service
///   account key given as `credentials` (read on first use);
/// - `region`: `GOOGLE_REGION`, `GCLOUD_REGION`, `CLOUDSDK_COMPUTE_REGION`;
/// - `zone`: `GOOGLE_ZONE`, `GCLOUD_ZONE`, `CLOUDSDK_COMPUTE_ZONE`;
/// - `credentials`: `GOOGLE_CREDENTIALS`, `GOOGLE_CLOUD_KEYFILE_JSON`,
///   `GCLOUD_KEYFILE_JSON` (JSON contents or a path, as for the attribute).
///   Without any, Application Default Credentials are used, which read
///   `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's ADC file, then the
///   metadata server;
/// - `endpoint`: `GOOGLE_COMPUTE_CUSTOM_ENDPOINT`.
///
/// These are the variable names hashicorp/google reads, so an environment set
/// up for it works unchanged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GcpConfig {
    pub project: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    /// Service account key (or other external-account JSON): the contents, or
    /// a path to the file. Sensitive: never logged, never in an error message.
    pub credentials: Option<String>,
    /// Compute Engine endpoint override, e.g. `http://127.0.0.1:8089` for a
    /// local emulator. With a plain-http endpoint and no `credentials`, calls
    /// are sent without credentials (a Google token must never travel over
    /// plain HTTP, and an emulator does not check one).
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("project", &self.project)
            .field("region", &self.region)
            .field("zone", &self.zone)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl GcpConfig {
    /// Fill unset fields from the environment (see the type's documentation).
    pub fn with_env_fallbacks(self) -> GcpConfig {
        GcpConfig {
            project: non_empty(self.project).or_else(|| {
                env_first(&[
                    "GOOGLE_PROJECT",
                    "GOOGLE_CLOUD_PROJECT",
                    "GCLOUD_PROJECT",
                    "CLOUDSDK_CORE_PROJECT",
                ])
            }),
            region: non_empty(self.region).or_else(|| {
                env_first(&["GOOGLE_REGION", "GCLOUD_REGION", "CLOUDSDK_COMPUTE_REGION"])
            }),
            zone: non_empty(self.zone)
                .or_else(|| env_first(&["GOOGLE_ZONE", "GCLOUD_ZONE", "CLOUDSDK_COMPUTE_ZONE"])),
            // Not trimmed: JSON contents are passed through as given.
            credentials: self
                .credentials
                .filter(|c| !c.trim().is_empty())
                .or_else(|| {
                    [
                        "GOOGLE_CREDENTIALS",
                        "GOOGLE_CLOUD_KEYFILE_JSON",
                        "GCLOUD_KEYFILE_JSON",
                    ]
                    .iter()
                    .filter_map(|n| std::env::var(n).ok())
                    .find(|v| !v.trim().is_empty())
                }),
            endpoint: non_empty(self.endpoint)
                .or_else(|| env_first(&["GOOGLE_COMPUTE_CUSTOM_ENDPOINT"])),
        }
    }
}

/// The Google Cloud backend. Creating it makes no call and reads no
/// credentials: a configuration that only uses AWS must not fail because
/// Google credentials are missing. The clients (and credentials) are built on
/// the first call; problems surface there as `ErrorKind::Auth`.
pub struct GcpCloud {
    cfg: GcpConfig,
    policy: RetryPolicy,
    gce: OnceCell<Arc<Gce>>,
}

impl std::fmt::Debug for GcpCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpCloud")
            .field("cfg", &self.cfg)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GcpCloud {
    /// Take the settings (with environment fallbacks). Cheap: no network, no
    /// credential lookup. Fails only for an endpoint that is not an http(s) URL.
    pub async fn new(cfg: GcpConfig) -> Result<GcpCloud, CloudError> {
        let cfg = cfg.with_env_fallbacks();
        if let Some(endpoint) = &cfg.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(CloudError::new(
                    ErrorKind::InvalidInput,
                    "configure Google Cloud",
                    format!("endpoint {endpoint:?} must be an http:// or https:// URL"),
                ));
            }
        }
        Ok(GcpCloud {
            cfg,
            policy: RetryPolicy::default(),
            gce: OnceCell::new(),
        })
    }

    /// Replace the retry policy (tests use a fast one). Call it right after `new`.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> GcpCloud {
        self.policy = policy;
        self
    }

    /// The settings in effect (after environment fallbacks).
    pub fn config(&self) -> &GcpConfig {
        &self.cfg
    }

    /// Compute Engine requests sent so far (each retry attempt and each
    /// operation poll counts).
    pub fn calls_made(&self) -> u64 {
        self.gce.get().map(|g| g.calls_made()).unwrap_or(0)
    }

    /// The clients, built on first use.
    async fn gce(&self) -> Result<Arc<Gce>, CloudError> {
        self.gce
            .get_or_try_init(|| async { Gce::connect(&self.cfg, self.policy).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The provider zone, if it lies in `region`.
    fn provider_zone_in(&self, region: &str) -> Option<&str> {
        self.cfg
            .zone
            .as_deref()
            .filter(|z| network::region_of_zone(z) == region)
    }
}

#[async_trait]
impl Cloud for GcpCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Gcp
    }

    /// The provider region, else the region of the provider zone.
    /// Tags become labels (lowercase, limited alphabet): two tags that become
    /// the same label would silently lose one, so that is refused at plan.
    fn check_tags(
        &self,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), (String, String)> {
        let mut seen: std::collections::BTreeMap<String, &String> =
            std::collections::BTreeMap::new();
        for key in tags.keys() {
            let label = labels::sanitize_key(key);
            if let Some(other) = seen.insert(label.clone(), key) {
                return Err((key.clone(), format!(
                    "tags {other:?} and {key:?} both become the Google Cloud label key {label:?}; rename one of them."
                )));
            }
        }
        Ok(())
    }

    fn default_region(&self) -> Option<String> {
        self.cfg.region.clone().or_else(|| {
            self.cfg
                .zone
                .as_deref()
                .map(|z| network::region_of_zone(z).to_owned())
        })
    }

    /// Images are global on Compute Engine: `region` is not used.
    async fn resolve_image(&self, _region: &str, image: &str) -> Result<ResolvedImage, CloudError> {
        let gce = self.gce().await?;
        images::resolve_image(&gce, image, &CancellationToken::new()).await
    }

    async fn create_workstation(
        &self,
        spec: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CreateFailure> {
        let gce = self.gce().await?;
        let provider_zone = self.provider_zone_in(&spec.region);
        workstation::create(&gce, spec, provider_zone, cancel).await
    }

    async fn read_workstation(
        &self,
        locator: &str,
    ) -> Result<Option<ObservedWorkstation>, CloudError> {
        let target = workstation::parse_locator(locator)?;
        let gce = self.gce().await?;
        workstation::read(&gce, &target, &CancellationToken::new()).await
    }

    async fn delete_leftovers(
        &self,
        _region: &str,
        leftovers: &Leftovers,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError> {
        if leftovers.is_empty() {
            return Ok(());
        }
        let gce = self.gce().await?;
        workstation::delete_leftovers(&gce, leftovers, cancel).await
    }

    async fn update_workstation(
        &self,
        current: &ObservedWorkstation,
        desired: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CloudError> {
        let gce = self.gce().await?;
        workstation::update(&gce, current, desired, cancel).await
    }

    async fn delete_workstation(
        &self,
        current: &ObservedWorkstation,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError> {
        let gce = self.gce().await?;
        workstation::delete(&gce, current, cancel).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let cfg = GcpConfig {
            project: Some("p".into()),
            credentials: Some(r#"{"type":"service_account","private_key":"SECRET"}"#.into()),
            ..Default::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("SECRET"));
        assert!(shown.contains("<redacted>"));
    }

    #[tokio::test]
    async fn new_is_cheap_and_needs_no_credentials() {
        let cloud = GcpCloud::new(GcpConfig {
            project: Some("p".into()),
            region: None,
            zone: Some("europe-west4-a".into()),
            credentials: None,
            endpoint: None,
        })
        .await;
        let Ok(cloud) = cloud else {
            panic!("new must not fail without credentials");
        };
        assert_eq!(cloud.calls_made(), 0);
        // The region of the provider zone, unless a region is configured (in
        // the environment of whoever runs the tests).
        if std::env::var("GOOGLE_REGION").is_err()
            && std::env::var("GCLOUD_REGION").is_err()
            && std::env::var("CLOUDSDK_COMPUTE_REGION").is_err()
        {
            assert_eq!(cloud.default_region().as_deref(), Some("europe-west4"));
        }
    }

    #[tokio::test]
    async fn endpoint_must_be_a_url() {
        let e = GcpCloud::new(GcpConfig {
            endpoint: Some("localhost:8080".into()),
            ..Default::default()
        })
        .await
        .err()
        .map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::InvalidInput));
    }
}
