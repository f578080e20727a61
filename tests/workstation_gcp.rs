//! Google Cloud specifics of `aienv_gpu_workstation` (the cloud-neutral
//! scenarios are in workstation_suite.rs), through the real Terraform CLI
//! against our fake Compute Engine server: failures that arrive in a DONE
//! operation, accelerators attached to N1 but never to A2, label rules,
//! subnetworks from hashicorp/google.

mod support;

use support::hcl::{s, ADDR};

use serde_json::Value;
use support::clouds::{CloudUnderTest, Gcp, GCP_PROJECT};

fn workstation(gpu: &str, extra: &str) -> String {
    format!(
        r#"
resource "aienv_gpu_workstation" "dev" {{
  name          = "dev-box"
  gpu           = "{gpu}"
  allowed_cidrs = ["203.0.113.0/24"]
{extra}
}}
"#
    )
}

#[test]
fn quota_exceeded_in_a_done_operation_is_an_error_and_nothing_is_left() {
    let gcp = Gcp::new();
    gcp.write(&workstation("T4", ""));
    gcp.ws.init().expect_ok();
    gcp.fake.fail_next_operation(
        "instances.insert",
        "QUOTA_EXCEEDED",
        "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
    );
    let out = gcp.ws.apply().expect_err();
    let text = out.combined();
    assert!(text.contains("QUOTA_EXCEEDED"), "{text}");
    assert!(
        text.contains("NVIDIA_T4_GPUS"),
        "the cloud's own words: {text}"
    );
    assert!(text.contains("Quota exceeded"), "{text}");
    assert!(gcp.fake.calls("instances.insert") >= 1);
    gcp.assert_nothing_left();
    let state = gcp.ws.state_json();
    assert!(
        state.pointer("/values/root_module/resources").is_none(),
        "{state}"
    );
}

#[test]
fn n1_gets_attached_t4_and_a2_keeps_its_built_in_gpus() {
    let gcp = Gcp::new();
    gcp.write(&workstation("T4", ""));
    gcp.ws.init().expect_ok();
    gcp.ws.apply().expect_ok();
    let inst = gcp.fake.instance("dev-box").expect("instance");
    assert!(
        inst["machineType"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/n1-standard-4"),
        "{inst}"
    );
    let acc = &inst["guestAccelerators"][0];
    assert!(
        acc["acceleratorType"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/nvidia-tesla-t4"),
        "{inst}"
    );
    assert_eq!(acc["acceleratorCount"], 1);
    assert_eq!(
        inst["scheduling"]["onHostMaintenance"], "TERMINATE",
        "GPUs cannot live-migrate"
    );
    // The firewall targets the machine by its network tag.
    let tags = inst["tags"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fw = gcp.fake.firewalls();
    assert_eq!(fw.len(), 1, "{fw:?}");
    assert_eq!(fw[0]["targetTags"][0], tags[0], "{fw:?}");
    assert_eq!(fw[0]["sourceRanges"][0], "203.0.113.0/24");
    gcp.ws.destroy().expect_ok();
    gcp.assert_nothing_left();

    // A2 has its A100 built in: sending guestAccelerators would be refused by
    // the API, so a successful create shows we did not.
    gcp.write(&workstation("A100", ""));
    gcp.ws.apply().expect_ok();
    let v = gcp.ws.resource_values(ADDR);
    assert_eq!(s(&v, "instance_type"), "a2-highgpu-1g");
    let inst = gcp.fake.instance("dev-box").expect("instance");
    assert_eq!(inst["scheduling"]["onHostMaintenance"], "TERMINATE");
    gcp.ws.destroy().expect_ok();
    gcp.assert_nothing_left();
}

#[test]
fn no_allowed_cidrs_means_no_ingress_rule_at_all() {
    // GCE would read a rule without sources as 0.0.0.0/0.
    let gcp = Gcp::new();
    gcp.write(&workstation("T4", "").replace("  allowed_cidrs = [\"203.0.113.0/24\"]\n", ""));
    gcp.ws.init().expect_ok();
    gcp.ws.apply().expect_ok();
    assert!(
        gcp.fake.firewalls().is_empty(),
        "{:?}",
        gcp.fake.firewalls()
    );
    assert_eq!(gcp.ws.plan().exit_code, 0);
    gcp.ws.destroy().expect_ok();
    gcp.assert_nothing_left();
}

#[test]
fn tags_become_valid_labels_without_a_perpetual_diff() {
    let gcp = Gcp::new();
    gcp.write(&workstation(
        "T4",
        "  tags = { Project = \"LLM Ops\", \"cost-center\" = \"4711\" }",
    ));
    gcp.ws.init().expect_ok();
    gcp.ws.apply().expect_ok();
    let inst = gcp.fake.instance("dev-box").expect("instance");
    let labels = inst["labels"].as_object().cloned().unwrap_or_default();
    for (k, v) in &labels {
        let ok = |x: &str| {
            x.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        assert!(
            ok(k) && ok(v.as_str().unwrap_or_default()),
            "label {k}={v} breaks GCE label rules"
        );
    }
    assert_eq!(
        labels.get("aienv-name").and_then(Value::as_str),
        Some("dev-box")
    );
    let v = gcp.ws.resource_values(ADDR);
    assert_eq!(
        v["tags"]["Project"], "LLM Ops",
        "state keeps the user's spelling"
    );
    assert_eq!(
        gcp.ws.plan().exit_code,
        0,
        "no perpetual diff from sanitised labels"
    );
    gcp.ws.destroy().expect_ok();
    gcp.assert_nothing_left();
}

#[test]
fn subnetwork_from_hashicorp_google_is_used() {
    let gcp = Gcp::new();
    let link = gcp.fake.create_subnetwork(
        GCP_PROJECT,
        "us-central1",
        "default",
        "ml-subnet",
        "10.20.0.0/24",
    );
    let short = format!("projects/{GCP_PROJECT}/regions/us-central1/subnetworks/ml-subnet");
    for subnet in [link.as_str(), short.as_str()] {
        gcp.write(&workstation("T4", &format!("  subnet_id = \"{subnet}\"")));
        gcp.ws.init().expect_ok();
        gcp.ws.apply().expect_ok();
        let inst = gcp.fake.instance("dev-box").expect("instance");
        let used = inst["networkInterfaces"][0]["subnetwork"]
            .as_str()
            .unwrap_or_default();
        assert!(
            used.ends_with("/regions/us-central1/subnetworks/ml-subnet"),
            "{inst}"
        );
        assert!(
            inst["networkInterfaces"][0]["networkIP"]
                .as_str()
                .unwrap_or_default()
                .starts_with("10.20.0."),
            "{inst}"
        );
        assert_eq!(gcp.ws.plan().exit_code, 0, "{subnet}");
        gcp.ws.destroy().expect_ok();
        gcp.assert_nothing_left();
    }
}

/// Terraform Cloud workspaces pass settings as environment variables only; the
/// endpoint variable of hashicorp/google includes `/compute/v1/`.
#[test]
fn environment_variables_alone_configure_google_cloud() {
    let mut gcp = Gcp::new();
    let endpoint = format!("{}/compute/v1/", gcp.fake.endpoint());
    gcp.ws.env("GOOGLE_PROJECT", GCP_PROJECT);
    gcp.ws.env("GOOGLE_REGION", "us-central1");
    gcp.ws.env("GOOGLE_COMPUTE_CUSTOM_ENDPOINT", &endpoint);
    gcp.ws.write_main(
        r#"
terraform {
  required_providers {
    aienv = { source = "aienv/aienv" }
  }
}

provider "aienv" {}

resource "aienv_gpu_workstation" "dev" {
  name  = "env-box"
  cloud = "gcp"
  gpu   = "T4"
}
"#,
    );
    gcp.ws.init().expect_ok();
    gcp.ws.apply().expect_ok();
    let v = gcp.ws.resource_values(ADDR);
    assert!(
        s(&v, "id").starts_with("gcp/aienv-test/us-central1-"),
        "{v}"
    );
    assert!(gcp.fake.instance("env-box").is_some());
    gcp.ws.destroy().expect_ok();
    gcp.assert_nothing_left();
}
