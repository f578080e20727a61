//! terraform-provider-aienv: GPU workstations and training clusters on AWS,
//! Google Cloud and Azure, declared in Terraform.

pub mod catalog;
pub mod cloud;
pub mod data_sources;
pub mod docs;
pub mod provider;
pub mod resources;
pub mod spec;
pub mod tfplugin;

use std::process::ExitCode;
use std::sync::Arc;

/// Run the plugin binary: `--debug` serves for a user to attach Terraform to;
/// otherwise Terraform started us and the handshake decides.
pub fn run_plugin(args: Vec<String>) -> ExitCode {
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");
    if args.iter().any(|a| a == "--version" || a == "-v") {
        println!("terraform-provider-aienv {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = tfplugin::handshake::check_environment(debug) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    tfplugin::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("terraform-provider-aienv: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = tfplugin::handshake::ServeOptions {
        debug,
        provider_address: provider::PROVIDER_ADDRESS.to_string(),
    };
    match runtime.block_on(tfplugin::handshake::serve(
        Arc::new(provider::AienvProvider::new()),
        opts,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` keeps the cause chain and never prints a backtrace.
            tracing::error!("provider stopped: {e:#}");
            eprintln!("terraform-provider-aienv: {e:#}");
            ExitCode::from(1)
        }
    }
}
