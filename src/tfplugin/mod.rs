//! Our Terraform plugin protocol 6 layer: go-plugin handshake with AutoMTLS,
//! the tfplugin6 gRPC service, the schema-driven value codec, diagnostics and
//! hclog-compatible logging. Knows nothing about clouds.

pub mod diag;
pub mod handshake;
pub mod logging;
pub mod proto;
pub mod schema;
pub mod server;
pub mod value;

pub use diag::{Diagnostic, Diagnostics};
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema};
pub use server::{ApplyRequest, PlanRequest, PlanResponse, PluginProvider, StateResponse};
pub use value::{PathStep, Type, Value};
