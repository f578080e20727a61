//! Build script: generates Rust code for the Terraform plugin protocol 6.0
//! (`proto/tfplugin6.proto`) and for go-plugin's side services
//! (`proto/grpc_controller.proto`, `proto/grpc_stdio.proto`).
//!
//! protoc and the well-known-type protos (google/protobuf/empty.proto) come
//! from `protoc-bin-vendored`, so nothing has to be installed on the machine.

use std::path::PathBuf;

/// The .proto files to compile, relative to the proto directory.
const PROTOS: [&str; 3] = [
    "tfplugin6.proto",
    "grpc_controller.proto",
    "grpc_stdio.proto",
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| {
            panic!("build.rs: CARGO_MANIFEST_DIR is not set; run through cargo")
        }));
    let proto_dir = manifest_dir.join("proto");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_dir.join(proto).display());
    }

    let protoc_path = protoc_bin_vendored::protoc_bin_path().unwrap_or_else(|e| {
        panic!("build.rs: no vendored protoc binary for this platform (protoc-bin-vendored): {e}")
    });
    let wkt_include = protoc_bin_vendored::include_path().unwrap_or_else(|e| {
        panic!("build.rs: no vendored protobuf include directory (protoc-bin-vendored): {e}")
    });
    assert!(
        wkt_include.join("google/protobuf/empty.proto").is_file(),
        "build.rs: vendored include directory {} lacks google/protobuf/empty.proto",
        wkt_include.display()
    );

    // Point prost-build at the vendored protoc explicitly, which is what
    // setting PROTOC would do, without mutating the process environment.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc_path);

    let proto_files: Vec<PathBuf> = PROTOS.iter().map(|p| proto_dir.join(p)).collect();
    let includes = [proto_dir.clone(), wkt_include];

    tonic_prost_build::configure()
        .build_server(true)
        // Clients are generated too: tests drive the provider over gRPC.
        .build_client(true)
        // No `Client::connect()` helper: it needs tonic's `channel` feature,
        // which the crate does not enable. Clients are built with
        // `XClient::new(any_grpc_service)` instead.
        .build_transport(false)
        .compile_with_config(config, &proto_files, &includes)
        .unwrap_or_else(|e| {
            panic!(
                "build.rs: compiling {} with protoc {} failed: {e}",
                proto_dir.display(),
                protoc_path.display()
            )
        });
}
