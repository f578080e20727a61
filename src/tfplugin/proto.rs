//! Generated protobuf/gRPC types (see `build.rs` and `proto/`).
//!
//! * [`tfplugin6`]: Terraform plugin protocol 6.0 (`tfplugin6.Provider`).
//! * [`plugin`]: go-plugin's side services, `plugin.GRPCController` and
//!   `plugin.GRPCStdio`.

/// Terraform plugin protocol 6.0: messages plus the `Provider` service
/// (`provider_server` / `provider_client`).
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    missing_docs,
    unreachable_pub,
    rustdoc::all
)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's `GRPCController` (shutdown) and `GRPCStdio` (stdout/stderr
/// forwarding) services.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    missing_docs,
    unreachable_pub,
    rustdoc::all
)]
pub mod plugin {
    tonic::include_proto!("plugin");
}
