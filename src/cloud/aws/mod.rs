//! AWS backend (EC2 via aws-sdk-ec2).
//!
//! One file per job: `client` (the wrapper every call goes through), `errors`
//! (SDK error → `CloudError`), `images` (AMI aliases), `network` (zone/subnet),
//! `firewall` (security group), `workstation` (create/read/update/delete),
//! `orphans` (parts of an earlier workstation of the same name whose instance is gone).

mod client;
mod errors;
mod firewall;
mod images;
mod network;
mod orphans;
mod workstation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio_util::sync::CancellationToken;

use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Cloud, CloudError, CreateFailure, ErrorKind};
use crate::spec::{CloudKind, Leftovers, ObservedWorkstation, ResolvedImage, WorkstationSpec};

use client::Ec2;

/// Provider-level AWS settings; anything unset comes from the SDK's default chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConfig {
    /// Default region; else `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile.
    pub region: Option<String>,
    /// Named profile from the shared config/credentials files.
    pub profile: Option<String>,
    /// EC2 endpoint override (e.g. a local emulator). Without it the SDK also
    /// honours `AWS_ENDPOINT_URL_EC2` and `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
}

/// The AWS backend. Cheap to share; EC2 clients are created per region on first use.
pub struct AwsCloud {
    sdk: SdkConfig,
    policy: RetryPolicy,
    clients: Mutex<HashMap<String, Arc<Ec2>>>,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud")
            .field("region", &self.sdk.region())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Connect timeout: an endpoint that does not accept a connection in 10 s is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-attempt timeout: EC2 answers within seconds; RunInstances with many block
/// devices can take tens of seconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

impl AwsCloud {
    /// Load the SDK configuration once (credentials chain, profile, region,
    /// endpoint). Makes no call: credentials are resolved on the first request.
    pub async fn new(cfg: AwsConfig) -> Result<AwsCloud, CloudError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Our RetryPolicy is the single retry policy: SDK retries on top of it
            // would multiply attempts and hide throttling from our logs.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(profile) = cfg.profile.as_deref().filter(|p| !p.is_empty()) {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = cfg.region.as_deref().filter(|r| !r.is_empty()) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(endpoint) = cfg.endpoint.as_deref().filter(|e| !e.is_empty()) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(CloudError::new(
                    ErrorKind::InvalidInput,
                    "configure AWS",
                    format!("endpoint {endpoint:?} must be an http:// or https:// URL"),
                ));
            }
            // Set on the shared config it takes precedence over the
            // AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL environment variables, which
            // the EC2 client reads itself when nothing is set here.
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        Ok(AwsCloud {
            sdk,
            policy: RetryPolicy::default(),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Replace the retry policy (tests use a fast one). Applies to clients
    /// created afterwards, so call it right after `new`.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> AwsCloud {
        self.policy = policy;
        self
    }

    /// EC2 requests sent so far, over all regions (each retry attempt counts).
    pub fn calls_made(&self) -> u64 {
        match self.clients.lock() {
            Ok(clients) => clients.values().map(|c| c.calls_made()).sum(),
            Err(poisoned) => poisoned.get_ref().values().map(|c| c.calls_made()).sum(),
        }
    }

    /// The EC2 client for `region`, created on first use.
    fn ec2(&self, region: &str) -> Result<Arc<Ec2>, CloudError> {
        if region.is_empty() {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "select AWS region",
                "no AWS region: set region on the resource or provider, or AWS_REGION",
            ));
        }
        // A poisoned lock only means another thread panicked while inserting; the
        // map itself is still a valid cache.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(region) {
            return Ok(c.clone());
        }
        let conf = aws_sdk_ec2::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()))
            .build();
        let client = Arc::new(Ec2::new(
            aws_sdk_ec2::Client::from_conf(conf),
            region.to_owned(),
            self.policy,
        ));
        clients.insert(region.to_owned(), client.clone());
        Ok(client)
    }
}

#[async_trait]
impl Cloud for AwsCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Aws
    }

    fn default_region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.as_ref().to_owned())
    }

    /// Instance tags are readable from instance metadata (the idle watcher needs
    /// that), and then EC2 refuses keys outside this alphabet at launch.
    fn check_tags(
        &self,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), (String, String)> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+-=.,_:@".contains(c);
        for key in tags.keys() {
            if !key.chars().all(allowed) {
                return Err((key.clone(), format!(
                    "tag key {key:?} is not allowed on AWS: with instance tags in instance metadata, keys may only \
                     contain letters, digits and + - = . , _ : @ (no spaces or /)."
                )));
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return Err((
                    key.clone(),
                    format!("tag key {key:?} is not allowed: the aws: prefix is reserved by AWS."),
                ));
            }
        }
        Ok(())
    }

    async fn resolve_image(&self, region: &str, image: &str) -> Result<ResolvedImage, CloudError> {
        let ec2 = self.ec2(region)?;
        images::resolve_image(&ec2, image, &CancellationToken::new()).await
    }

    async fn create_workstation(
        &self,
        spec: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CreateFailure> {
        let ec2 = self.ec2(&spec.region)?;
        workstation::create(&ec2, spec, cancel).await
    }

    async fn read_workstation(
        &self,
        locator: &str,
    ) -> Result<Option<ObservedWorkstation>, CloudError> {
        let (region, _) = workstation::parse_locator(locator)?;
        let ec2 = self.ec2(region)?;
        workstation::read(&ec2, locator, &CancellationToken::new()).await
    }

    async fn delete_leftovers(
        &self,
        region: &str,
        leftovers: &Leftovers,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError> {
        if leftovers.is_empty() {
            return Ok(());
        }
        let ec2 = self.ec2(region)?;
        workstation::delete_leftovers(&ec2, leftovers, cancel).await
    }

    async fn update_workstation(
        &self,
        current: &ObservedWorkstation,
        desired: &WorkstationSpec,
        cancel: &CancellationToken,
    ) -> Result<ObservedWorkstation, CloudError> {
        let ec2 = self.ec2(&current.region)?;
        workstation::update(&ec2, current, desired, cancel).await
    }

    async fn delete_workstation(
        &self,
        current: &ObservedWorkstation,
        cancel: &CancellationToken,
    ) -> Result<(), CloudError> {
        let ec2 = self.ec2(&current.region)?;
        workstation::delete(&ec2, current, cancel).await
    }
}
