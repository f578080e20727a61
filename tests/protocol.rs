//! The plugin-protocol layer seen from outside: run by hand, debug/reattach
//! mode with the real Terraform, hclog lines under TF_LOG, and no Rust
//! backtrace in user-facing output.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::terraform::Workspace;

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-aienv");
const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

const OFFERINGS_HCL: &str = r#"
terraform {
  required_providers {
    aienv = { source = "aienv/aienv" }
  }
}
provider "aienv" {
  aws { region = "us-east-1" }
}
data "aienv_gpu_offerings" "h100" {
  cloud = "aws"
  gpu   = "H100:8"
}
output "cheapest" { value = data.aienv_gpu_offerings.h100.offerings[0].instance_type }
output "big"      { value = 1180591620717411303424 }
"#;

#[test]
fn run_by_hand_it_says_it_is_a_plugin_and_exits_1() {
    let out = Command::new(PROVIDER_BIN)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("This binary is a plugin for Terraform"),
        "{text}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout, where go-plugin expects the handshake"
    );
}

#[test]
fn refuses_protocol_versions_it_does_not_speak() {
    let out = Command::new(PROVIDER_BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .output()
        .expect("run the provider binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("speaks only version 6"));
}

#[test]
fn handshake_line_has_the_go_plugin_shape_and_respects_the_port_range() {
    let mut child = Command::new(PROVIDER_BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_MIN_PORT", "41000")
        .env("PLUGIN_MAX_PORT", "41999")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn provider");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read handshake");
    let _ = child.kill();
    let _ = child.wait();
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert_eq!(&parts[..3], &["1", "6", "tcp"]);
    let port: u16 = parts[3]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        parts[3].starts_with("127.0.0.1:") && (41000..=41999).contains(&port),
        "{line}"
    );
    assert_eq!(parts[4], "grpc");
    assert_eq!(parts[5], "", "no certificate without PLUGIN_CLIENT_CERT");
}

#[test]
fn terraform_drives_the_provider_over_automtls_and_logs_in_hclog_form() {
    let mut ws = Workspace::new(Path::new(PROVIDER_BIN));
    let log = ws.enable_tf_log("debug");
    ws.env("RUST_BACKTRACE", "1");
    ws.write_main(OFFERINGS_HCL);
    ws.init().expect_ok();
    ws.apply().expect_ok();
    assert_eq!(ws.output_json("cheapest"), "p5.48xlarge");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // go-plugin re-logs our JSON lines with their own level and message.
    assert!(
        text.contains("plugin server listening"),
        "no provider line in the TF_LOG output"
    );
    assert!(
        text.contains("tls=true"),
        "Terraform should have used AutoMTLS"
    );
    assert!(!text.contains("panicked at"), "provider panicked");
}

#[test]
fn errors_never_carry_a_rust_backtrace() {
    let mut ws = Workspace::new(Path::new(PROVIDER_BIN));
    ws.env("RUST_BACKTRACE", "full");
    ws.write_main(&OFFERINGS_HCL.replace("H100:8", "NOPE:1"));
    ws.init().expect_ok();
    let out = ws.apply().expect_err();
    let text = out.combined();
    assert!(text.contains("Invalid gpu"), "{text}");
    assert!(
        !text.contains("stack backtrace") && !text.contains("RUST_BACKTRACE"),
        "{text}"
    );
}

#[test]
fn debug_mode_prints_reattach_and_serves_terraform() {
    let mut child = Command::new(PROVIDER_BIN)
        .arg("--debug")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn provider in debug mode");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let started = Instant::now();
    let mut reattach = None;
    let mut line = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS=") {
            reattach = Some(rest.trim_matches('\'').to_string());
            break;
        }
    }
    let reattach = reattach.expect("a TF_REATTACH_PROVIDERS line");
    let json: serde_json::Value = serde_json::from_str(&reattach).expect("reattach JSON");
    assert_eq!(
        json["registry.terraform.io/aienv/aienv"]["ProtocolVersion"],
        6
    );

    let mut ws = Workspace::new(Path::new(PROVIDER_BIN));
    ws.env("TF_REATTACH_PROVIDERS", &reattach);
    ws.write_main(OFFERINGS_HCL);
    ws.init().expect_ok();
    ws.apply().expect_ok();
    assert_eq!(ws.output_json("cheapest"), "p5.48xlarge");
    // Terraform's Shutdown does not stop a debug-mode provider: it is still there.
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "debug provider exited"
    );
    let _ = child.kill();
    let _ = child.wait();
}

mod service {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use aienv::provider::AienvProvider;
    use aienv::resources::gpu_workstation;
    use aienv::tfplugin::proto::tfplugin6 as pb;
    use aienv::tfplugin::server::ProviderService;
    use aienv::tfplugin::value::{encode_msgpack, Type, Value};
    use pb::provider_server::Provider;
    use tonic::Request;

    fn validate_req(msgpack: Vec<u8>) -> Request<pb::validate_resource_config::Request> {
        Request::new(pb::validate_resource_config::Request {
            type_name: gpu_workstation::TYPE_NAME.to_string(),
            config: Some(pb::DynamicValue {
                msgpack,
                json: Vec::new(),
            }),
        })
    }

    #[tokio::test]
    async fn any_bytes_become_diagnostics_never_a_panic() {
        let svc = ProviderService::new(Arc::new(AienvProvider::new()));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..1500usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x & 0xff) as u8
                })
                .collect();
            let resp = svc.validate_resource_config(validate_req(bytes)).await;
            assert!(resp.is_ok(), "the RPC itself must not fail");
        }
    }

    #[tokio::test]
    async fn a_wrongly_typed_value_is_reported_at_its_path() {
        let svc = ProviderService::new(Arc::new(AienvProvider::new()));
        let Type::Object(mut attrs) = gpu_workstation::schema().value_type() else {
            panic!("schema type is an object")
        };
        attrs.insert("root_disk_gb".into(), Type::Bool);
        let mut values: BTreeMap<String, Value> = BTreeMap::new();
        values.insert("name".into(), Value::from("dev"));
        values.insert("root_disk_gb".into(), Value::Bool(true));
        let bytes = encode_msgpack(&Value::Object(values), &Type::Object(attrs)).expect("encode");
        let resp = svc
            .validate_resource_config(validate_req(bytes))
            .await
            .expect("rpc")
            .into_inner();
        let d = resp.diagnostics.first().expect("a diagnostic");
        assert_eq!(d.severity, pb::diagnostic::Severity::Error as i32);
        let step = d
            .attribute
            .as_ref()
            .and_then(|a| a.steps.first())
            .and_then(|s| s.selector.clone());
        assert_eq!(
            step,
            Some(pb::attribute_path::step::Selector::AttributeName(
                "root_disk_gb".into()
            ))
        );
    }

    #[tokio::test]
    async fn big_and_fractional_numbers_round_trip_through_the_protocol() {
        // 2^70 and 1.5 survive msgpack decode + encode exactly (not i64-only).
        let ty = Type::object([("n", Type::Number), ("f", Type::Number)]);
        let v = Value::object([
            (
                "n",
                Value::Number("1180591620717411303424".parse().expect("num")),
            ),
            ("f", Value::Number("1.5".parse().expect("num"))),
        ]);
        let bytes = encode_msgpack(&v, &ty).expect("encode");
        let back = aienv::tfplugin::value::decode_msgpack(&bytes, &ty).expect("decode");
        assert_eq!(back, v);
        assert_eq!(
            back.attr("n").as_number().map(|n| n.to_string()),
            Some("1180591620717411303424".into())
        );
    }
}
