//! One interface over each cloud's emulator, so the workstation scenarios are
//! written once and run against every cloud (moto for AWS, our fake for GCE).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::ec2;
use super::fault_proxy::FaultProxy;
use super::hcl::s;
use super::moto::MotoServer;
use super::processes;
use super::terraform::{Workspace, MARKER_ENV};

pub const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-aienv");

/// What the scenarios need from a cloud under test.
pub trait CloudUnderTest {
    fn ws(&self) -> &Workspace;
    /// `terraform` + `provider` blocks pointing at the emulator.
    fn provider_block(&self) -> String;
    /// What `gpu = "T4"` resolves to in the test region, and its $/h.
    fn t4_type(&self) -> &'static str;
    fn t4_cost(&self) -> f64;
    /// Another type with one T4, for in-place resizes.
    fn bigger_t4_type(&self) -> &'static str;
    /// The id every workstation of this cloud starts with.
    fn id_prefix(&self) -> &'static str;
    /// Empty when the emulator holds nothing the tests created; else what is left.
    fn leftovers(&self) -> String;
    /// Cloud API calls seen so far.
    fn api_calls(&self) -> usize;
    /// The machine's state in the cloud, in our words: running / stopped / gone.
    fn machine_state(&self, values: &Value) -> String;
    fn machine_type(&self, values: &Value) -> String;
    /// Whether the cloud runs the machine on spot capacity.
    fn machine_is_spot(&self, values: &Value) -> bool;
    /// The T4 spot price in the test region.
    fn t4_spot_cost(&self) -> f64;
    fn terminate_out_of_band(&self, values: &Value);
    fn revoke_ingress_out_of_band(&self, values: &Value);
    fn set_tag_out_of_band(&self, values: &Value, key: &str, value: &str);
    /// Change the machine type behind the provider's back.
    fn change_type_out_of_band(&self, values: &Value, machine_type: &str);
    /// Make the next machine create fail for lack of capacity; returns the
    /// cloud's error code the user must see.
    fn fail_next_machine_create(&self) -> &'static str;
    /// Firewall creations seen so far (to prove a failure came after them).
    fn firewall_creates(&self) -> usize;

    fn write(&self, resource_hcl: &str) {
        self.ws()
            .write_main(&format!("{}\n{}", self.provider_block(), resource_hcl));
    }

    fn assert_nothing_left(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "resources leaked in the emulator: {left}");
    }

    fn assert_no_provider_process(&self) {
        let ws = self.ws();
        let left = processes::wait_until_none(Duration::from_secs(5), || {
            processes::running_provider_processes_with_env(
                Path::new(PROVIDER_BIN),
                MARKER_ENV,
                &ws.marker(),
            )
        });
        assert!(
            left.is_empty(),
            "provider processes still running after terraform exited: {left:?}"
        );
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// AWS: a moto server, the fault proxy in front of it, a terraform workspace.
pub struct Aws {
    pub moto: MotoServer,
    pub proxy: FaultProxy,
    pub ws: Workspace,
    pub rt: tokio::runtime::Runtime,
}

impl Aws {
    pub fn new() -> Aws {
        let moto = MotoServer::start_blocking();
        let proxy = FaultProxy::start_blocking(&moto.endpoint());
        let ws = Workspace::new(Path::new(PROVIDER_BIN));
        Aws {
            moto,
            proxy,
            ws,
            rt: rt(),
        }
    }

    pub fn client(&self) -> aws_sdk_ec2::Client {
        ec2::client(&self.moto.endpoint())
    }

    pub fn inventory(&self) -> ec2::Inventory {
        let c = self.client();
        self.rt.block_on(ec2::inventory(&c))
    }
}

impl CloudUnderTest for Aws {
    fn ws(&self) -> &Workspace {
        &self.ws
    }

    fn provider_block(&self) -> String {
        format!(
            r#"
terraform {{
  required_providers {{
    aienv = {{ source = "aienv/aienv" }}
  }}
}}

provider "aienv" {{
  default_tags = {{ team = "ml" }}
  aws {{
    region   = "us-east-1"
    endpoint = "{}"
  }}
}}
"#,
            self.proxy.endpoint()
        )
    }

    fn t4_type(&self) -> &'static str {
        "g4dn.xlarge"
    }
    fn t4_cost(&self) -> f64 {
        0.526
    }
    fn bigger_t4_type(&self) -> &'static str {
        "g4dn.2xlarge"
    }
    fn id_prefix(&self) -> &'static str {
        "aws/us-east-1/i-"
    }

    fn leftovers(&self) -> String {
        let inv = self.inventory();
        if inv.is_empty() {
            String::new()
        } else {
            format!("{inv:?}")
        }
    }

    fn api_calls(&self) -> usize {
        self.proxy.total_calls()
    }

    fn machine_state(&self, values: &Value) -> String {
        let c = self.client();
        let inst = self
            .rt
            .block_on(ec2::instance(&c, s(values, "instance_id")));
        ec2::state_name(&inst)
    }

    fn machine_type(&self, values: &Value) -> String {
        let c = self.client();
        let inst = self
            .rt
            .block_on(ec2::instance(&c, s(values, "instance_id")));
        inst.instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default()
    }

    fn machine_is_spot(&self, values: &Value) -> bool {
        let c = self.client();
        let inst = self
            .rt
            .block_on(ec2::instance(&c, s(values, "instance_id")));
        inst.instance_lifecycle().map(|l| l.as_str()) == Some("spot")
    }

    fn t4_spot_cost(&self) -> f64 {
        0.2
    }

    fn terminate_out_of_band(&self, values: &Value) {
        let c = self.client();
        self.rt
            .block_on(ec2::terminate(&c, s(values, "instance_id")));
    }

    fn revoke_ingress_out_of_band(&self, values: &Value) {
        let c = self.client();
        self.rt
            .block_on(ec2::revoke_all_ingress(&c, s(values, "firewall_id")));
    }

    fn set_tag_out_of_band(&self, values: &Value, key: &str, value: &str) {
        let c = self.client();
        self.rt
            .block_on(ec2::set_tag(&c, s(values, "instance_id"), key, value));
    }

    fn change_type_out_of_band(&self, values: &Value, machine_type: &str) {
        let c = self.client();
        self.rt.block_on(ec2::modify_instance_type(
            &c,
            s(values, "instance_id"),
            machine_type,
        ));
    }

    fn fail_next_machine_create(&self) -> &'static str {
        self.proxy.fail_nth(
            "RunInstances",
            self.proxy.calls("RunInstances") + 1,
            500,
            "InsufficientInstanceCapacity",
            "We currently do not have sufficient g4dn.xlarge capacity in the Availability Zone you requested (us-east-1a).",
        );
        "InsufficientInstanceCapacity"
    }

    fn firewall_creates(&self) -> usize {
        self.proxy.calls("CreateSecurityGroup")
    }
}

/// Google Cloud: our fake Compute Engine server (in-process) and a workspace.
pub struct Gcp {
    pub fake: aienv_fakes::gce::FakeGce,
    pub ws: Workspace,
}

pub const GCP_PROJECT: &str = "aienv-test";

impl Gcp {
    pub fn new() -> Gcp {
        Gcp {
            fake: aienv_fakes::gce::FakeGce::start_blocking(),
            ws: Workspace::new(Path::new(PROVIDER_BIN)),
        }
    }

    fn instance_of(&self, values: &Value) -> Value {
        self.fake.instance(s(values, "name")).unwrap_or(Value::Null)
    }

    fn our_firewalls(&self, values: &Value) -> Vec<String> {
        let prefix = format!("aienv-{}", s(values, "name"));
        self.fake
            .firewalls()
            .iter()
            .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_string))
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }
}

fn last_segment(v: &Value) -> String {
    v.as_str()
        .and_then(|s| s.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

impl CloudUnderTest for Gcp {
    fn ws(&self) -> &Workspace {
        &self.ws
    }

    fn provider_block(&self) -> String {
        format!(
            r#"
terraform {{
  required_providers {{
    aienv = {{ source = "aienv/aienv" }}
  }}
}}

provider "aienv" {{
  default_cloud = "gcp"
  default_tags  = {{ team = "ml" }}
  gcp {{
    project  = "{GCP_PROJECT}"
    region   = "us-central1"
    endpoint = "{}"
  }}
}}
"#,
            self.fake.endpoint()
        )
    }

    fn t4_type(&self) -> &'static str {
        "n1-standard-4"
    }
    fn t4_cost(&self) -> f64 {
        0.54
    }
    fn t4_spot_cost(&self) -> f64 {
        0.22723
    }
    fn bigger_t4_type(&self) -> &'static str {
        "n1-standard-8"
    }
    fn id_prefix(&self) -> &'static str {
        "gcp/aienv-test/us-central1-"
    }

    fn leftovers(&self) -> String {
        if self.fake.is_empty() {
            return String::new();
        }
        let names = |items: Vec<Value>| -> Vec<String> {
            items
                .iter()
                .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        format!(
            "instances {:?}, disks {:?}, firewalls {:?}",
            names(self.fake.instances()),
            names(self.fake.disks()),
            names(self.fake.firewalls())
        )
    }

    fn api_calls(&self) -> usize {
        self.fake.requests().len()
    }

    fn machine_state(&self, values: &Value) -> String {
        match self
            .instance_of(values)
            .get("status")
            .and_then(Value::as_str)
        {
            Some("RUNNING") => "running".into(),
            Some("TERMINATED") | Some("STOPPED") => "stopped".into(),
            Some(other) => other.to_ascii_lowercase(),
            None => "gone".into(),
        }
    }

    fn machine_type(&self, values: &Value) -> String {
        last_segment(&self.instance_of(values)["machineType"])
    }

    fn machine_is_spot(&self, values: &Value) -> bool {
        let i = self.instance_of(values);
        i["scheduling"]["provisioningModel"] == "SPOT"
            && i["scheduling"]["instanceTerminationAction"] == "STOP"
    }

    fn terminate_out_of_band(&self, values: &Value) {
        assert!(self.fake.delete_instance_out_of_band(s(values, "name")));
    }

    fn revoke_ingress_out_of_band(&self, values: &Value) {
        let rules = self.our_firewalls(values);
        assert!(!rules.is_empty(), "no firewall rule to revoke");
        for r in rules {
            self.fake.delete_firewall_out_of_band(&r);
        }
    }

    fn set_tag_out_of_band(&self, values: &Value, key: &str, value: &str) {
        let inst = self.instance_of(values);
        let mut labels: Vec<(String, String)> = inst["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .filter(|(k, _)| k != key)
                    .collect()
            })
            .unwrap_or_default();
        labels.push((key.to_string(), value.to_string()));
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(self
            .fake
            .set_instance_labels_out_of_band(s(values, "name"), &pairs));
    }

    fn change_type_out_of_band(&self, values: &Value, machine_type: &str) {
        assert!(self
            .fake
            .set_instance_machine_type_out_of_band(s(values, "name"), machine_type));
    }

    fn fail_next_machine_create(&self) -> &'static str {
        self.fake.fail_next_operation(
            "instances.insert",
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "The zone 'projects/aienv-test/zones/us-central1-a' does not have enough resources available to fulfill the request. Try a different zone, or try again later.",
        );
        "ZONE_RESOURCE_POOL_EXHAUSTED"
    }

    fn firewall_creates(&self) -> usize {
        self.fake.calls("firewalls.insert")
    }
}
