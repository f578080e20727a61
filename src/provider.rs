//! The `aienv` provider: its schema, its configuration, and the cloud clients
//! it builds from it. Dispatches resource and data source calls by type name.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::cloud::{Cloud, CloudError};
use crate::data_sources::gpu_offerings;
use crate::resources::gpu_workstation;
use crate::spec::CloudKind;
use crate::spec::ResolvedImage;
use crate::tfplugin::schema::{Attribute, Block, NestedBlock, Nesting, Schema};
use crate::tfplugin::server::{
    ApplyRequest, PlanRequest, PlanResponse, PluginProvider, StateResponse,
};
use crate::tfplugin::{Diagnostic, Diagnostics, PathStep, Type, Value};

pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/aienv/aienv";

/// What the provider was configured with, and the clients built from it.
pub struct Clients {
    pub default_cloud: Option<CloudKind>,
    pub default_tags: BTreeMap<String, String>,
    /// The provider configuration the backends are built from.
    config: Value,
    /// Backends are built on first use: a configuration that only uses Google
    /// Cloud never loads the AWS SDK chain (which may probe instance metadata
    /// for a region), and vice versa.
    clouds: BTreeMap<CloudKind, tokio::sync::OnceCell<Arc<dyn Cloud>>>,
    /// Image resolutions of this provider process (one Terraform command): a
    /// plan of 50 workstations with the same alias asks the cloud once.
    images: std::sync::Mutex<BTreeMap<ImageKey, Arc<tokio::sync::OnceCell<ResolvedImage>>>>,
}

type ImageKey = (CloudKind, String, String);

impl Clients {
    pub fn new(
        default_cloud: Option<CloudKind>,
        default_tags: BTreeMap<String, String>,
        config: Value,
    ) -> Self {
        Clients {
            default_cloud,
            default_tags,
            config,
            clouds: CloudKind::ALL
                .iter()
                .map(|k| (*k, tokio::sync::OnceCell::new()))
                .collect(),
            images: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Resolve an image once per process and (cloud, region, image); concurrent
    /// plans of the same image wait for the one call. Failures are not cached.
    pub async fn resolve_image(
        &self,
        cloud: CloudKind,
        backend: &dyn Cloud,
        region: &str,
        image: &str,
    ) -> Result<ResolvedImage, CloudError> {
        let cell = {
            let mut map = match self.images.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            map.entry((cloud, region.to_string(), image.to_string()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| backend.resolve_image(region, image))
            .await
            .cloned()
    }

    /// The backend for `kind` (built on first use), or the sentence a user
    /// reads when it cannot be had.
    pub async fn cloud(&self, kind: CloudKind) -> Result<Arc<dyn Cloud>, String> {
        let cell = self
            .clouds
            .get(&kind)
            .ok_or_else(|| format!("no backend slot for {kind}"))?;
        cell.get_or_try_init(|| build_backend(kind, &self.config))
            .await
            .cloned()
    }
}

#[derive(Default)]
pub struct AienvProvider {
    clients: RwLock<Option<Arc<Clients>>>,
}

impl AienvProvider {
    pub fn new() -> Self {
        Self::default()
    }

    async fn clients(&self) -> Result<Arc<Clients>, Diagnostics> {
        self.clients.read().await.clone().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform called the aienv provider before configuring it. This is a bug in the provider or Terraform.",
            )
            .into()
        })
    }
}

fn opt_str(name: &'static str, description: &str) -> Attribute {
    Attribute::optional(name, Type::String, description)
}

pub fn provider_schema() -> Schema {
    Schema {
        version: 0,
        block: Block {
            description: "Configures where `aienv` resources go: the default cloud, tags merged into every \
resource, and credentials/locations for AWS, Google Cloud and Azure. Settings left out fall back to the \
environment variables the official providers read, so Terraform Cloud workspace variables are enough."
                .into(),
            attributes: vec![
                opt_str("default_cloud", "Cloud used when a resource does not set `cloud`: `aws`, `gcp` or `azure`.").default("aws"),
                Attribute::optional("default_tags", Type::Map(Box::new(Type::String)), "Tags merged under every resource's own `tags` (the resource's value wins)."),
            ],
            blocks: vec![
                NestedBlock {
                    name: "aws",
                    nesting: Nesting::Single,
                    max_items: 1,
                    block: Block {
                        description: "AWS settings. Credentials come from the AWS SDK default chain (environment, shared config/profile, SSO, instance role).".into(),
                        attributes: vec![
                            opt_str("region", "Default region. Falls back to `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's region."),
                            opt_str("profile", "Shared config/credentials profile. Falls back to `AWS_PROFILE`."),
                            opt_str("endpoint", "EC2 endpoint URL (emulators, VPC endpoints). Falls back to `AWS_ENDPOINT_URL_EC2`, then `AWS_ENDPOINT_URL`."),
                        ],
                        blocks: vec![],
                    },
                },
                NestedBlock {
                    name: "gcp",
                    nesting: Nesting::Single,
                    max_items: 1,
                    block: Block {
                        description: "Google Cloud settings. Credentials: `credentials`, else `GOOGLE_CREDENTIALS`, else Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, the metadata server); with a plain-http `endpoint` (an emulator) calls are anonymous.".into(),
                        attributes: vec![
                            opt_str("project", "Project id. Falls back to `GOOGLE_PROJECT`, `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT`, `CLOUDSDK_CORE_PROJECT`, then the key's `project_id`."),
                            opt_str("region", "Default region. Falls back to `GOOGLE_REGION`, `GCLOUD_REGION`, `CLOUDSDK_COMPUTE_REGION`, then the region of `zone`."),
                            opt_str("zone", "Default zone. Falls back to `GOOGLE_ZONE`, `GCLOUD_ZONE`, `CLOUDSDK_COMPUTE_ZONE`."),
                            opt_str("credentials", "Service account key JSON (contents or path). Falls back to `GOOGLE_CREDENTIALS`, `GOOGLE_APPLICATION_CREDENTIALS`, then Application Default Credentials.").sensitive(),
                            opt_str("endpoint", "Compute Engine API root (emulators, private endpoints), with or without `/compute/v1/`. Falls back to `GOOGLE_COMPUTE_CUSTOM_ENDPOINT`."),
                        ],
                        blocks: vec![],
                    },
                },
                NestedBlock {
                    name: "azure",
                    nesting: Nesting::Single,
                    max_items: 1,
                    block: Block {
                        description: "Azure settings (accepted now; workstations on Azure arrive in a later release).".into(),
                        attributes: vec![
                            opt_str("subscription_id", "Subscription id. Falls back to `ARM_SUBSCRIPTION_ID`."),
                            opt_str("tenant_id", "Tenant id. Falls back to `ARM_TENANT_ID`."),
                            opt_str("client_id", "Service principal client id. Falls back to `ARM_CLIENT_ID`."),
                            opt_str("client_secret", "Service principal secret. Falls back to `ARM_CLIENT_SECRET`.").sensitive(),
                            opt_str("location", "Default location, e.g. `eastus`."),
                            opt_str("resource_group", "Resource group for created resources."),
                            opt_str("endpoint", "Azure Resource Manager endpoint (emulators, sovereign clouds)."),
                            opt_str("authority_host", "Microsoft Entra authority host for tokens."),
                        ],
                        blocks: vec![],
                    },
                },
            ],
        },
    }
}

fn attr_path(steps: &[&str]) -> Vec<PathStep> {
    steps
        .iter()
        .map(|s| PathStep::Attr((*s).to_string()))
        .collect()
}

fn validate_endpoint(config: &Value, block: &str, diags: &mut Diagnostics) {
    if let Some(url) = config.attr(block).attr("endpoint").as_str() {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            diags.push(
                Diagnostic::error(
                    "Invalid endpoint",
                    format!("{url:?} is not an http(s) URL, e.g. \"https://ec2.us-east-1.amazonaws.com\"."),
                )
                .at(attr_path(&[block, "endpoint"])),
            );
        }
    }
}

fn validate_config(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if let Some(c) = config.attr("default_cloud").as_str() {
        if let Err(e) = c.parse::<CloudKind>() {
            diags.push(Diagnostic::error("Invalid default_cloud", e).at_attr("default_cloud"));
        }
    }
    for block in ["aws", "gcp", "azure"] {
        validate_endpoint(config, block, &mut diags);
    }
    if let Some(tags) = config.attr("default_tags").as_map() {
        let tags: BTreeMap<String, String> = tags
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect();
        if let Err((key, msg)) = crate::resources::validate::tags(&tags) {
            diags.push(Diagnostic::error("Invalid default_tags", msg).at(vec![
                PathStep::Attr("default_tags".into()),
                PathStep::Key(key),
            ]));
        }
    }
    diags
}

/// A known string from the config block, or the first environment variable set.
fn setting(config: &Value, block: &str, attr: &str, env: &[&str]) -> Option<String> {
    config
        .attr(block)
        .attr(attr)
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            env.iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        })
}

#[cfg(feature = "aws")]
async fn aws_backend(config: &Value) -> Result<Arc<dyn Cloud>, crate::cloud::CloudError> {
    use crate::cloud::aws::{AwsCloud, AwsConfig};
    let cfg = AwsConfig {
        region: setting(config, "aws", "region", &[]),
        profile: setting(config, "aws", "profile", &[]),
        endpoint: setting(config, "aws", "endpoint", &[]),
    };
    Ok(Arc::new(AwsCloud::new(cfg).await?))
}

#[cfg(feature = "gcp")]
async fn gcp_backend(config: &Value) -> Result<Arc<dyn Cloud>, crate::cloud::CloudError> {
    use crate::cloud::gcp::{GcpCloud, GcpConfig};
    // Environment fallbacks (GOOGLE_*) are applied by the backend itself.
    let cfg = GcpConfig {
        project: setting(config, "gcp", "project", &[]),
        region: setting(config, "gcp", "region", &[]),
        zone: setting(config, "gcp", "zone", &[]),
        credentials: setting(config, "gcp", "credentials", &[]),
        endpoint: setting(config, "gcp", "endpoint", &[]),
    };
    Ok(Arc::new(GcpCloud::new(cfg).await?))
}

/// Build one backend from the provider configuration.
async fn build_backend(kind: CloudKind, config: &Value) -> Result<Arc<dyn Cloud>, String> {
    let _ = config;
    match kind {
        #[cfg(feature = "aws")]
        CloudKind::Aws => aws_backend(config)
            .await
            .map_err(|e| format!("could not set up AWS: {e}")),
        #[cfg(feature = "gcp")]
        CloudKind::Gcp => gcp_backend(config)
            .await
            .map_err(|e| format!("could not set up Google Cloud: {e}")),
        #[allow(unreachable_patterns)]
        CloudKind::Aws => {
            Err("the AWS backend is not available in this build of the provider.".to_string())
        }
        #[allow(unreachable_patterns)]
        CloudKind::Gcp => Err(
            "the Google Cloud backend is not available in this build of the provider.".to_string(),
        ),
        CloudKind::Azure => Err(
            "cloud = \"azure\" is not supported yet: this release of the aienv provider creates \
             workstations on AWS and Google Cloud (Azure is coming in a later release)."
                .to_string(),
        ),
    }
}

#[async_trait]
impl PluginProvider for AienvProvider {
    fn provider_schema(&self) -> Schema {
        provider_schema()
    }

    fn resource_schemas(&self) -> Vec<(&'static str, Schema)> {
        vec![(gpu_workstation::TYPE_NAME, gpu_workstation::schema())]
    }

    fn data_source_schemas(&self) -> Vec<(&'static str, Schema)> {
        vec![(gpu_offerings::TYPE_NAME, gpu_offerings::schema())]
    }

    async fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        validate_config(config)
    }

    async fn configure(&self, config: &Value) -> Diagnostics {
        let mut diags = validate_config(config);
        if diags.has_errors() {
            return diags;
        }
        if !config.is_known_fully() {
            diags.push(Diagnostic::error(
                "Provider configuration not known yet",
                "The aienv provider configuration depends on values that are only known after apply. \
                 Use values known at plan time (variables, data sources), or apply the resources it depends on first.",
            ));
            return diags;
        }
        let default_cloud = config
            .attr("default_cloud")
            .as_str()
            .and_then(|c| c.parse::<CloudKind>().ok());
        let default_tags = config
            .attr("default_tags")
            .as_map()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        *self.clients.write().await = Some(Arc::new(Clients::new(
            default_cloud,
            default_tags,
            config.clone(),
        )));
        diags
    }

    async fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        match type_name {
            gpu_workstation::TYPE_NAME => gpu_workstation::validate(config),
            other => unknown_type(other),
        }
    }

    async fn validate_data_source_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        match type_name {
            gpu_offerings::TYPE_NAME => gpu_offerings::validate(config),
            other => unknown_type(other),
        }
    }

    async fn upgrade_resource_state(
        &self,
        type_name: &str,
        version: i64,
        state: Value,
    ) -> StateResponse {
        match type_name {
            gpu_workstation::TYPE_NAME => gpu_workstation::upgrade(version, state),
            other => StateResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }

    async fn read_resource(
        &self,
        type_name: &str,
        state: Value,
        private: Vec<u8>,
        cancel: CancellationToken,
    ) -> StateResponse {
        let clients = match self.clients().await {
            Ok(c) => c,
            Err(d) => {
                return StateResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        match type_name {
            gpu_workstation::TYPE_NAME => {
                gpu_workstation::read(&clients, state, private, &cancel).await
            }
            other => StateResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }

    async fn plan_resource_change(
        &self,
        type_name: &str,
        req: PlanRequest,
        cancel: CancellationToken,
    ) -> PlanResponse {
        let clients = match self.clients().await {
            Ok(c) => c,
            Err(d) => {
                return PlanResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        match type_name {
            gpu_workstation::TYPE_NAME => gpu_workstation::plan(&clients, req, &cancel).await,
            other => PlanResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }

    async fn apply_resource_change(
        &self,
        type_name: &str,
        req: ApplyRequest,
        cancel: CancellationToken,
    ) -> StateResponse {
        let clients = match self.clients().await {
            Ok(c) => c,
            Err(d) => {
                return StateResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        match type_name {
            gpu_workstation::TYPE_NAME => gpu_workstation::apply(&clients, req, &cancel).await,
            other => StateResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }

    async fn import_resource_state(
        &self,
        type_name: &str,
        id: &str,
        cancel: CancellationToken,
    ) -> StateResponse {
        let clients = match self.clients().await {
            Ok(c) => c,
            Err(d) => {
                return StateResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        match type_name {
            gpu_workstation::TYPE_NAME => gpu_workstation::import(&clients, id, &cancel).await,
            other => StateResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }

    async fn read_data_source(
        &self,
        type_name: &str,
        config: Value,
        _cancel: CancellationToken,
    ) -> StateResponse {
        let default_cloud = self
            .clients
            .read()
            .await
            .as_ref()
            .and_then(|c| c.default_cloud);
        match type_name {
            gpu_offerings::TYPE_NAME => gpu_offerings::read(config, default_cloud),
            other => StateResponse {
                diagnostics: unknown_type(other),
                ..Default::default()
            },
        }
    }
}

fn unknown_type(name: &str) -> Diagnostics {
    Diagnostic::error(
        "Unknown type",
        format!("The aienv provider has no type {name:?}."),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sensitive() {
        let s = provider_schema();
        for (block, attr) in [("gcp", "credentials"), ("azure", "client_secret")] {
            let b = s.block.blocks.iter().find(|b| b.name == block);
            let a = b.and_then(|b| b.block.attribute(attr));
            assert!(a.is_some_and(|a| a.sensitive), "{block}.{attr}");
        }
    }

    #[test]
    fn bad_default_cloud_and_endpoint_are_errors_with_paths() {
        let config = Value::object([
            ("default_cloud", Value::from("oracle")),
            ("aws", Value::object([("endpoint", Value::from("ftp://x"))])),
        ]);
        let d = validate_config(&config);
        assert_eq!(d.0.len(), 2);
        assert_eq!(d.0[0].path, attr_path(&["default_cloud"]));
        assert_eq!(d.0[1].path, attr_path(&["aws", "endpoint"]));
    }
}
