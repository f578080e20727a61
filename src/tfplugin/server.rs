//! The tfplugin6 gRPC service: decodes DynamicValues against the schemas, calls
//! the provider, encodes results, and turns every failure (including a panic)
//! into a diagnostic. It knows nothing about clouds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::diag::{Diagnostic, Diagnostics};
use super::proto::tfplugin6 as pb;
use super::schema::Schema;
use super::value::{self, PathStep, Type, Value};

/// What the plan step of a resource gets.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub prior_state: Value,
    pub proposed_new_state: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanResponse {
    pub planned_state: Value,
    pub requires_replace: Vec<Vec<PathStep>>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub prior_state: Value,
    pub planned_state: Value,
    pub config: Value,
    pub planned_private: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct StateResponse {
    /// Null means "gone" (read) or "destroyed" (apply).
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// The provider as the protocol layer sees it.
#[async_trait]
pub trait PluginProvider: Send + Sync + 'static {
    fn provider_schema(&self) -> Schema;
    fn resource_schemas(&self) -> Vec<(&'static str, Schema)>;
    fn data_source_schemas(&self) -> Vec<(&'static str, Schema)>;

    async fn validate_provider_config(&self, config: &Value) -> Diagnostics;
    async fn configure(&self, config: &Value) -> Diagnostics;
    async fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics;
    async fn validate_data_source_config(&self, type_name: &str, config: &Value) -> Diagnostics;
    /// `state` is the stored state decoded with the current schema type; `version`
    /// is the schema version it was written with.
    async fn upgrade_resource_state(
        &self,
        type_name: &str,
        version: i64,
        state: Value,
    ) -> StateResponse;
    async fn read_resource(
        &self,
        type_name: &str,
        state: Value,
        private: Vec<u8>,
        cancel: CancellationToken,
    ) -> StateResponse;
    async fn plan_resource_change(
        &self,
        type_name: &str,
        req: PlanRequest,
        cancel: CancellationToken,
    ) -> PlanResponse;
    async fn apply_resource_change(
        &self,
        type_name: &str,
        req: ApplyRequest,
        cancel: CancellationToken,
    ) -> StateResponse;
    async fn import_resource_state(
        &self,
        type_name: &str,
        id: &str,
        cancel: CancellationToken,
    ) -> StateResponse;
    async fn read_data_source(
        &self,
        type_name: &str,
        config: Value,
        cancel: CancellationToken,
    ) -> StateResponse;
}

/// The gRPC service wrapping a `PluginProvider`.
pub struct ProviderService<P: PluginProvider> {
    provider: Arc<P>,
    resource_types: HashMap<&'static str, Type>,
    data_source_types: HashMap<&'static str, Type>,
    provider_type: Type,
    /// Cancelled by StopProvider; in-flight operations hold a clone.
    stop: Arc<Mutex<CancellationToken>>,
}

impl<P: PluginProvider> ProviderService<P> {
    pub fn new(provider: Arc<P>) -> Self {
        let resource_types = provider
            .resource_schemas()
            .into_iter()
            .map(|(n, s)| (n, s.value_type()))
            .collect();
        let data_source_types = provider
            .data_source_schemas()
            .into_iter()
            .map(|(n, s)| (n, s.value_type()))
            .collect();
        let provider_type = provider.provider_schema().value_type();
        ProviderService {
            provider,
            resource_types,
            data_source_types,
            provider_type,
            stop: Arc::new(Mutex::new(CancellationToken::new())),
        }
    }

    fn cancel_token(&self) -> CancellationToken {
        match self.stop.lock() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn resource_type(&self, name: &str) -> Result<&Type, Diagnostics> {
        self.resource_types
            .get(name)
            .ok_or_else(|| unknown_type("resource", name))
    }

    fn data_source_type(&self, name: &str) -> Result<&Type, Diagnostics> {
        self.data_source_types
            .get(name)
            .ok_or_else(|| unknown_type("data source", name))
    }
}

fn unknown_type(kind: &str, name: &str) -> Diagnostics {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!("This provider has no {kind} type {name:?}."),
    )
    .into()
}

/// Decode a DynamicValue (msgpack, or JSON from older callers) against `ty`.
/// A missing value decodes as null.
pub fn decode_dynamic(
    dv: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let result = if !dv.msgpack.is_empty() {
        value::decode_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        value::decode_json(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    result.map_err(|e| {
        Diagnostic::error(
            format!("Invalid {what} sent by Terraform"),
            format!("The provider could not decode the {what}: {e}"),
        )
        .at(e.path.clone())
        .into()
    })
}

pub fn encode_dynamic(v: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostics> {
    value::encode_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                format!("Provider produced an invalid {what}"),
                format!("This is a bug in the provider: {e}"),
            )
            .at(e.path.clone())
            .into()
        })
}

/// Run a handler in its own task so a panic becomes a diagnostic instead of a
/// dropped connection (and Terraform's "plugin crashed" with a Rust backtrace).
async fn guarded<T, F>(what: &'static str, fut: F) -> Result<T, Diagnostics>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::error!(rpc = what, error = %e, "provider handler failed");
            Err(Diagnostic::error(
                "Internal provider error",
                format!(
                    "The provider failed while handling {what}. This is a bug; please report it \
                     with the TF_LOG=debug output."
                ),
            )
            .into())
        }
    }
}

fn diags_only(d: Diagnostics) -> Vec<pb::Diagnostic> {
    d.to_proto()
}

#[tonic::async_trait]
impl<P: PluginProvider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        let p = &self.provider;
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(p.provider_schema().to_proto()),
            resource_schemas: p
                .resource_schemas()
                .into_iter()
                .map(|(n, s)| (n.to_string(), s.to_proto()))
                .collect(),
            data_source_schemas: p
                .data_source_schemas()
                .into_iter()
                .map(|(n, s)| (n.to_string(), s.to_proto()))
                .collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let diagnostics = match decode_dynamic(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Err(d) => d,
            Ok(config) => {
                let p = self.provider.clone();
                guarded("ValidateProviderConfig", async move {
                    p.validate_provider_config(&config).await
                })
                .await
                .unwrap_or_else(|d| d)
            }
        };
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diags_only(diagnostics),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diagnostics = match self
            .resource_type(&req.type_name)
            .and_then(|ty| decode_dynamic(req.config.as_ref(), ty, "resource configuration"))
        {
            Err(d) => d,
            Ok(config) => {
                let p = self.provider.clone();
                let t = req.type_name.clone();
                guarded("ValidateResourceConfig", async move {
                    p.validate_resource_config(&t, &config).await
                })
                .await
                .unwrap_or_else(|d| d)
            }
        };
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diags_only(diagnostics),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diagnostics = match self
            .data_source_type(&req.type_name)
            .and_then(|ty| decode_dynamic(req.config.as_ref(), ty, "data source configuration"))
        {
            Err(d) => d,
            Ok(config) => {
                let p = self.provider.clone();
                let t = req.type_name.clone();
                guarded("ValidateDataResourceConfig", async move {
                    p.validate_data_source_config(&t, &config).await
                })
                .await
                .unwrap_or_else(|d| d)
            }
        };
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diags_only(diagnostics),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let ty = match self.resource_type(&req.type_name) {
            Ok(t) => t.clone(),
            Err(d) => {
                return Ok(Response::new(pb::upgrade_resource_state::Response {
                    upgraded_state: None,
                    diagnostics: d.to_proto(),
                }))
            }
        };
        let raw = req.raw_state.unwrap_or_default();
        if raw.json.is_empty() {
            let d: Diagnostics = Diagnostic::error(
                "Unsupported state format",
                "The stored state has no JSON form (legacy flatmap state is not supported by this provider).",
            )
            .into();
            return Ok(Response::new(pb::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics: d.to_proto(),
            }));
        }
        let state = match value::decode_json(&raw.json, &ty) {
            Ok(v) => v,
            Err(e) => {
                let d: Diagnostics = Diagnostic::error(
                    "Invalid stored state",
                    format!("The stored state of this resource could not be read: {e}"),
                )
                .at(e.path.clone())
                .into();
                return Ok(Response::new(pb::upgrade_resource_state::Response {
                    upgraded_state: None,
                    diagnostics: d.to_proto(),
                }));
            }
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let version = req.version;
        let out = guarded("UpgradeResourceState", async move {
            p.upgrade_resource_state(&t, version, state).await
        })
        .await
        .unwrap_or_else(|d| StateResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let upgraded_state = match encode_dynamic(&out.new_state, &ty, "upgraded state") {
            Ok(dv) => Some(dv),
            Err(d) => {
                diagnostics.extend(d);
                None
            }
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = request.into_inner();
        let diagnostics = match decode_dynamic(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Err(d) => d,
            Ok(config) => {
                let p = self.provider.clone();
                guarded(
                    "ConfigureProvider",
                    async move { p.configure(&config).await },
                )
                .await
                .unwrap_or_else(|d| d)
            }
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diags_only(diagnostics),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = request.into_inner();
        let ty = match self.resource_type(&req.type_name) {
            Ok(t) => t.clone(),
            Err(d) => return Ok(Response::new(read_error(d))),
        };
        let state = match decode_dynamic(req.current_state.as_ref(), &ty, "current state") {
            Ok(v) => v,
            Err(d) => return Ok(Response::new(read_error(d))),
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let cancel = self.cancel_token();
        let private = req.private;
        let out = guarded("ReadResource", async move {
            p.read_resource(&t, state, private, cancel).await
        })
        .await
        .unwrap_or_else(|d| StateResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let new_state = match encode_dynamic(&out.new_state, &ty, "state") {
            Ok(dv) => Some(dv),
            Err(d) => {
                diagnostics.extend(d);
                None
            }
        };
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: diagnostics.to_proto(),
            private: out.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let ty = match self.resource_type(&req.type_name) {
            Ok(t) => t.clone(),
            Err(d) => return Ok(Response::new(plan_error(d))),
        };
        let decoded = (|| {
            Ok::<_, Diagnostics>(PlanRequest {
                prior_state: decode_dynamic(req.prior_state.as_ref(), &ty, "prior state")?,
                proposed_new_state: decode_dynamic(
                    req.proposed_new_state.as_ref(),
                    &ty,
                    "proposed new state",
                )?,
                config: decode_dynamic(req.config.as_ref(), &ty, "configuration")?,
                prior_private: req.prior_private.clone(),
            })
        })();
        let plan_req = match decoded {
            Ok(r) => r,
            Err(d) => return Ok(Response::new(plan_error(d))),
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let cancel = self.cancel_token();
        let out = guarded("PlanResourceChange", async move {
            p.plan_resource_change(&t, plan_req, cancel).await
        })
        .await
        .unwrap_or_else(|d| PlanResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let planned_state = if diagnostics.has_errors() {
            None
        } else {
            match encode_dynamic(&out.planned_state, &ty, "planned state") {
                Ok(dv) => Some(dv),
                Err(d) => {
                    diagnostics.extend(d);
                    None
                }
            }
        };
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state,
            requires_replace: out
                .requires_replace
                .iter()
                .map(|p| super::diag::path_to_proto(p))
                .collect(),
            planned_private: out.planned_private,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        let ty = match self.resource_type(&req.type_name) {
            Ok(t) => t.clone(),
            Err(d) => return Ok(Response::new(apply_error(d))),
        };
        let decoded = (|| {
            Ok::<_, Diagnostics>(ApplyRequest {
                prior_state: decode_dynamic(req.prior_state.as_ref(), &ty, "prior state")?,
                planned_state: decode_dynamic(req.planned_state.as_ref(), &ty, "planned state")?,
                config: decode_dynamic(req.config.as_ref(), &ty, "configuration")?,
                planned_private: req.planned_private.clone(),
            })
        })();
        let apply_req = match decoded {
            Ok(r) => r,
            Err(d) => return Ok(Response::new(apply_error(d))),
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let cancel = self.cancel_token();
        let out = guarded("ApplyResourceChange", async move {
            p.apply_resource_change(&t, apply_req, cancel).await
        })
        .await
        .unwrap_or_else(|d| StateResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let new_state = match encode_dynamic(&out.new_state, &ty, "new state") {
            Ok(dv) => Some(dv),
            Err(d) => {
                diagnostics.extend(d);
                None
            }
        };
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: out.private,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let ty = match self.resource_type(&req.type_name) {
            Ok(t) => t.clone(),
            Err(d) => {
                return Ok(Response::new(pb::import_resource_state::Response {
                    imported_resources: Vec::new(),
                    diagnostics: d.to_proto(),
                }))
            }
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let id = req.id.clone();
        let cancel = self.cancel_token();
        let out = guarded("ImportResourceState", async move {
            p.import_resource_state(&t, &id, cancel).await
        })
        .await
        .unwrap_or_else(|d| StateResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let mut imported_resources = Vec::new();
        if !diagnostics.has_errors() && !out.new_state.is_null() {
            match encode_dynamic(&out.new_state, &ty, "imported state") {
                Ok(dv) => imported_resources.push(pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(dv),
                    private: out.private,
                }),
                Err(d) => diagnostics.extend(d),
            }
        }
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let result = self.data_source_type(&req.type_name).and_then(|ty| {
            Ok((
                ty.clone(),
                decode_dynamic(req.config.as_ref(), ty, "data source configuration")?,
            ))
        });
        let (ty, config) = match result {
            Ok(v) => v,
            Err(d) => {
                return Ok(Response::new(pb::read_data_source::Response {
                    state: None,
                    diagnostics: d.to_proto(),
                }))
            }
        };
        let p = self.provider.clone();
        let t = req.type_name.clone();
        let cancel = self.cancel_token();
        let out = guarded("ReadDataSource", async move {
            p.read_data_source(&t, config, cancel).await
        })
        .await
        .unwrap_or_else(|d| StateResponse {
            diagnostics: d,
            ..Default::default()
        });
        let mut diagnostics = out.diagnostics;
        let state = if diagnostics.has_errors() {
            None
        } else {
            match encode_dynamic(&out.new_state, &ty, "data source state") {
                Ok(dv) => Some(dv),
                Err(d) => {
                    diagnostics.extend(d);
                    None
                }
            }
        };
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("StopProvider: cancelling in-flight operations");
        let mut guard = match self.stop.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.cancel();
        *guard = CancellationToken::new();
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

fn read_error(d: Diagnostics) -> pb::read_resource::Response {
    pb::read_resource::Response {
        new_state: None,
        diagnostics: d.to_proto(),
        private: Vec::new(),
    }
}

fn plan_error(d: Diagnostics) -> pb::plan_resource_change::Response {
    pb::plan_resource_change::Response {
        planned_state: None,
        requires_replace: Vec::new(),
        planned_private: Vec::new(),
        diagnostics: d.to_proto(),
    }
}

fn apply_error(d: Diagnostics) -> pb::apply_resource_change::Response {
    pb::apply_resource_change::Response {
        new_state: None,
        private: Vec::new(),
        diagnostics: d.to_proto(),
    }
}
