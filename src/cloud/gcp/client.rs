//! The one wrapper every Compute Engine call goes through: credentials and client
//! construction, logging, error mapping, retry and call counting live here so the
//! rest of the backend only says what to call.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use google_cloud_auth::credentials::{
    anonymous, external_account, impersonated, service_account, user_account, Credentials,
};
use google_cloud_compute_v1::client::{
    AcceleratorTypes, Disks, Firewalls, GlobalOperations, Images, Instances, MachineTypes,
    Subnetworks, ZoneOperations, Zones,
};
use google_cloud_compute_v1::model::Operation;
use google_cloud_gax::retry_policy::NeverRetry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::errors::{from_gax, ErrorContext};
use super::GcpConfig;
use crate::cloud::retry::RetryPolicy;
use crate::cloud::{CloudError, ErrorKind};

/// Per-attempt timeout: Compute Engine answers within seconds (long work
/// happens in Operations we poll).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The Compute Engine clients for one project, with our retry policy.
pub(crate) struct Gce {
    project: String,
    policy: RetryPolicy,
    calls: AtomicU64,
    pub(crate) instances: Instances,
    pub(crate) firewalls: Firewalls,
    pub(crate) disks: Disks,
    pub(crate) zone_operations: ZoneOperations,
    pub(crate) global_operations: GlobalOperations,
    pub(crate) images: Images,
    pub(crate) machine_types: MachineTypes,
    pub(crate) accelerator_types: AcceleratorTypes,
    pub(crate) zones: Zones,
    pub(crate) subnetworks: Subnetworks,
}

impl std::fmt::Debug for Gce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gce")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// Build one client: our endpoint and credentials, and no retries of its own
/// (our `RetryPolicy` is the single retry policy; two layers would multiply
/// attempts and hide throttling from our logs).
macro_rules! build_client {
    ($client:ty, $creds:expr, $endpoint:expr) => {{
        let mut b = <$client>::builder()
            .with_credentials($creds.clone())
            .with_retry_policy(NeverRetry)
            .with_attempt_timeout(ATTEMPT_TIMEOUT);
        if let Some(e) = $endpoint {
            b = b.with_endpoint(e);
        }
        b.build().await.map_err(|e| {
            CloudError::new(
                ErrorKind::Auth,
                "connect to Compute Engine",
                format!("could not set up the Compute Engine client: {e}"),
            )
        })?
    }};
}

impl Gce {
    /// Resolve project and credentials and build the clients. No API call is
    /// made here; a bad key is reported now, a refused one on the first call.
    pub(crate) async fn connect(cfg: &GcpConfig, policy: RetryPolicy) -> Result<Gce, CloudError> {
        let key = match cfg.credentials.as_deref() {
            Some(c) => Some(load_key(c)?),
            None => None,
        };
        let project = cfg
            .project
            .clone()
            .or_else(|| {
                key.as_ref()
                    .and_then(|k| k.get("project_id"))
                    .and_then(|p| p.as_str())
                    .map(str::to_owned)
            })
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::InvalidInput,
                    "configure Google Cloud",
                    "no Google Cloud project: set project in the provider's gcp block, or \
GOOGLE_PROJECT",
                )
            })?;
        let plain_http = cfg
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let creds = match key {
            Some(key) => credentials_from_key(key)?,
            // A local emulator: no token (it would travel in clear text).
            None if plain_http => anonymous::Builder::new().build(),
            None => google_cloud_auth::credentials::Builder::default()
                // Known up front, so building a client does not ask the
                // metadata server for it.
                .with_universe_domain("googleapis.com")
                .build()
                .map_err(|e| {
                    CloudError::new(
                        ErrorKind::Auth,
                        "load Google Cloud credentials",
                        format!("could not load Application Default Credentials: {e}"),
                    )
                })?,
        };
        // hashicorp/google's GOOGLE_COMPUTE_CUSTOM_ENDPOINT includes the
        // `/compute/v1/` path the client adds itself.
        let endpoint = cfg.endpoint.as_deref().map(api_root);
        tracing::debug!(project = %project, endpoint = ?endpoint, "building Compute Engine clients");
        Ok(Gce {
            instances: build_client!(Instances, creds, endpoint.clone()),
            firewalls: build_client!(Firewalls, creds, endpoint.clone()),
            disks: build_client!(Disks, creds, endpoint.clone()),
            zone_operations: build_client!(ZoneOperations, creds, endpoint.clone()),
            global_operations: build_client!(GlobalOperations, creds, endpoint.clone()),
            images: build_client!(Images, creds, endpoint.clone()),
            machine_types: build_client!(MachineTypes, creds, endpoint.clone()),
            accelerator_types: build_client!(AcceleratorTypes, creds, endpoint.clone()),
            zones: build_client!(Zones, creds, endpoint.clone()),
            subnetworks: build_client!(Subnetworks, creds, endpoint),
            project,
            policy,
            calls: AtomicU64::new(0),
        })
    }

    /// The provider's project.
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// HTTP requests sent so far (each retry attempt and each poll counts).
    pub(crate) fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Count a request that `call` does not see (a read inside a `call` closure).
    pub(crate) fn note_extra_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Send one request with the retry policy. `f` builds and sends the request;
    /// it is called again for each attempt, so mutations must reuse one
    /// `requestId` across calls of `f`.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        ctx: &ErrorContext<'_>,
        cancel: &CancellationToken,
        mut f: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        let span = tracing::debug_span!("gce", operation);
        self.policy
            .run(operation, cancel, || {
                let fut = f();
                async move {
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let result = fut.await;
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    match result {
                        Ok(v) => {
                            tracing::debug!(operation, elapsed_ms, outcome = "ok", "GCE call");
                            Ok(v)
                        }
                        Err(err) => {
                            let e = from_gax(operation, ctx, &err);
                            tracing::debug!(
                                operation,
                                elapsed_ms,
                                outcome = "error",
                                code = e.code.as_deref().unwrap_or(""),
                                kind = ?e.kind,
                                retryable = e.retryable,
                                message = %e.message,
                                "GCE call"
                            );
                            Err(e)
                        }
                    }
                }
            })
            .instrument(span)
            .await
    }

    /// A mutation: send it (with retries; `f` must reuse one requestId), then
    /// wait for its Operation and fail if the Operation finished with an error.
    pub(crate) async fn mutate<F, Fut>(
        &self,
        operation: &'static str,
        ctx: &ErrorContext<'_>,
        cancel: &CancellationToken,
        f: F,
    ) -> Result<Operation, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<Operation>>,
    {
        let op = self.call(operation, ctx, cancel, f).await?;
        super::operations::wait(self, op, operation, ctx, cancel).await
    }
}

/// A fresh requestId (a random version-4 UUID) for one logical mutation.
/// Compute Engine remembers it for a while and answers a repeated request with
/// the first one's Operation, so a retried insert cannot create twice.
pub(crate) fn request_id() -> String {
    let hi = fastrand::u64(..);
    let lo = fastrand::u64(..);
    // Version 4 (random) and the RFC 4122 variant bits.
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The credentials attribute: JSON contents, or a path to them. Errors name the
/// path (not secret) but never echo the contents.
fn load_key(credentials: &str) -> Result<serde_json::Value, CloudError> {
    let trimmed = credentials.trim();
    let bad = |why: String| CloudError::new(ErrorKind::Auth, "load Google Cloud credentials", why);
    let contents = if trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        let path = expand_home(trimmed);
        std::fs::read_to_string(&path).map_err(|e| {
            bad(format!(
                "credentials is neither JSON key contents nor a readable file ({}: {e})",
                path.display()
            ))
        })?
    };
    let key: serde_json::Value = serde_json::from_str(&contents).map_err(|e| {
        // serde's message gives line and column only, never the text.
        bad(format!(
            "the credentials are not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !key.is_object() {
        return Err(bad("the credentials JSON is not an object".to_owned()));
    }
    Ok(key)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Credentials from a key file's JSON, by its `type`.
fn credentials_from_key(key: serde_json::Value) -> Result<Credentials, CloudError> {
    let kind = key
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    let built = match kind.as_str() {
        "service_account" => service_account::Builder::new(key).build(),
        "authorized_user" => user_account::Builder::new(key).build(),
        "external_account" => external_account::Builder::new(key).build(),
        "impersonated_service_account" => impersonated::Builder::new(key).build(),
        "" => {
            return Err(CloudError::new(
                ErrorKind::Auth,
                "load Google Cloud credentials",
                "the credentials JSON has no \"type\": expected a service account key",
            ))
        }
        other => {
            return Err(CloudError::new(
                ErrorKind::Auth,
                "load Google Cloud credentials",
                format!(
                    "credentials of type {other:?} are not supported: use a service account key \
(type service_account), authorized_user, external_account or impersonated_service_account"
                ),
            ))
        }
    };
    built.map_err(|e| {
        CloudError::new(
            ErrorKind::Auth,
            "load Google Cloud credentials",
            format!("the {kind} credentials are not usable: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids_and_differ() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(
            parts[3].chars().next(),
            Some('8' | '9' | 'a' | 'b')
        ));
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn key_errors_never_echo_the_contents() {
        let secret = r#"{"type": "service_account", "private_key": "-----BEGIN SECRET"#;
        let e = load_key(secret).err().map(|e| (e.kind, e.message));
        let Some((kind, message)) = e else {
            panic!("malformed JSON must fail");
        };
        assert_eq!(kind, ErrorKind::Auth);
        assert!(!message.contains("SECRET"), "{message}");

        let e = credentials_from_key(
            serde_json::json!({"type": "gdch_service_account", "private_key": "SECRET"}),
        );
        let message = e.err().map(|e| e.message).unwrap_or_default();
        assert!(message.contains("not supported"));
        assert!(!message.contains("SECRET"));
    }

    #[test]
    fn missing_key_file_is_auth_error() {
        let e = load_key("/nonexistent/aienv-key.json")
            .err()
            .map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::Auth));
    }

    #[tokio::test]
    async fn connect_needs_a_project() {
        let cfg = GcpConfig {
            project: None,
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        // `connect` sees the settings after `GcpCloud::new` applied the
        // environment: a project still missing here is an error.
        let e = Gce::connect(&cfg, RetryPolicy::default())
            .await
            .err()
            .map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::InvalidInput));
    }

    #[tokio::test]
    async fn connect_to_an_emulator_needs_no_credentials() {
        let cfg = GcpConfig {
            project: Some("p".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let gce = Gce::connect(&cfg, RetryPolicy::default()).await;
        assert!(gce.is_ok(), "{:?}", gce.err());
    }
}

/// The API root for an endpoint given with or without the `/compute/v1/` path.
pub(crate) fn api_root(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    e.strip_suffix("/compute/v1").unwrap_or(e).to_string()
}

#[cfg(test)]
mod endpoint_tests {
    use super::api_root;

    #[test]
    fn compute_v1_suffix_is_dropped() {
        assert_eq!(
            api_root("https://compute.googleapis.com/compute/v1/"),
            "https://compute.googleapis.com"
        );
        assert_eq!(api_root("http://127.0.0.1:8089"), "http://127.0.0.1:8089");
        assert_eq!(api_root("http://127.0.0.1:8089/"), "http://127.0.0.1:8089");
    }
}
