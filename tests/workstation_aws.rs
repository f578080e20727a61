//! Acceptance tests for `aienv_gpu_workstation` on AWS: the real Terraform CLI
//! drives the provider binary, which talks to a real moto EC2 server through
//! the loopback fault proxy. After each scenario we ask moto what is left.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::ec2;
use support::fault_proxy::FaultProxy;
use support::moto::MotoServer;
use support::processes;
use support::terraform::{Workspace, MARKER_ENV};

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-aienv");
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWMvMYeYuaSIZey9Llmi901jvbPlR1IvE56UOAMkoSf dev@aienv-test";
const ADDR: &str = "aienv_gpu_workstation.dev";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One isolated AWS: a moto server, the fault proxy in front of it, and a
/// terraform workspace whose provider talks to the proxy.
struct Aws {
    moto: MotoServer,
    proxy: FaultProxy,
    ws: Workspace,
    rt: tokio::runtime::Runtime,
}

impl Aws {
    fn new() -> Aws {
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

    fn write(&self, resource_hcl: &str) {
        self.ws
            .write_main(&format!("{}\n{}", self.provider_block(), resource_hcl));
    }

    fn client(&self) -> aws_sdk_ec2::Client {
        ec2::client(&self.moto.endpoint())
    }

    fn inventory(&self) -> ec2::Inventory {
        let c = self.client();
        self.rt.block_on(ec2::inventory(&c))
    }

    fn assert_nothing_left(&self) {
        let inv = self.inventory();
        assert!(inv.is_empty(), "resources leaked in moto: {inv:?}");
    }

    fn assert_no_provider_process(&self) {
        let left = processes::wait_until_none(std::time::Duration::from_secs(5), || {
            processes::running_provider_processes_with_env(
                Path::new(PROVIDER_BIN),
                MARKER_ENV,
                &self.ws.marker(),
            )
        });
        assert!(
            left.is_empty(),
            "provider processes still running after terraform exited: {left:?}"
        );
    }
}

fn workstation(extra: &str) -> String {
    format!(
        r#"
resource "aienv_gpu_workstation" "dev" {{
  name           = "dev-box"
  gpu            = "T4"
  ssh_public_key = "{SSH_KEY}"
  allowed_cidrs  = ["203.0.113.0/24"]
  data_disk_gb   = 100
{extra}
}}

output "ssh"  {{ value = aienv_gpu_workstation.dev.ssh_command }}
output "cost" {{ value = aienv_gpu_workstation.dev.hourly_cost_usd }}
"#
    )
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn full_lifecycle_against_moto() {
    let aws = Aws::new();
    aws.write(&workstation("  tags = { project = \"llm\" }"));
    aws.ws.init().expect_ok();

    // The plan shows the instance type and the hourly cost before anything exists.
    let plan = aws.ws.plan();
    assert!(plan.has_changes(), "{plan:?}");
    assert!(plan.stdout.contains("g4dn.xlarge"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("hourly_cost_usd") && plan.stdout.contains("0.526"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("image_id") && plan.stdout.contains("ami-"),
        "{}",
        plan.stdout
    );

    // Create.
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert!(s(&v, "id").starts_with("aws/us-east-1/i-"), "{v}");
    assert_eq!(s(&v, "instance_type"), "g4dn.xlarge");
    assert_eq!(s(&v, "gpu_model"), "T4");
    assert_eq!(s(&v, "state"), "running");
    assert_eq!(v["tags_all"]["team"], "ml");
    assert_eq!(v["tags_all"]["project"], "llm");
    assert!(s(&v, "firewall_id").starts_with("sg-"), "{v}");
    assert!(s(&v, "data_disk_id").starts_with("vol-"), "{v}");
    let ip = s(&v, "public_ip_address").to_string();
    assert!(!ip.is_empty(), "{v}");
    assert_eq!(s(&v, "ssh_command"), format!("ssh ubuntu@{ip}"));
    assert_eq!(s(&v, "jupyter_url"), format!("http://{ip}:8888"));
    assert_eq!(s(&v, "tensorboard_url"), format!("http://{ip}:6006"));
    let instance_id = s(&v, "instance_id").to_string();
    let group_id = s(&v, "firewall_id").to_string();

    // What moto has: IMDSv2, tags, the group's rules.
    let c = aws.client();
    let inst = aws.rt.block_on(ec2::instance(&c, &instance_id));
    let md = inst
        .metadata_options()
        .cloned()
        .unwrap_or_else(|| panic!("no metadata options: {inst:?}"));
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    let tags = ec2::tags(&inst);
    assert_eq!(tags.get("aienv-name").map(String::as_str), Some("dev-box"));
    assert_eq!(tags.get("team").map(String::as_str), Some("ml"));
    let sg = aws.rt.block_on(ec2::security_group(&c, &group_id));
    let mut ports: Vec<i32> = sg
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![22, 6006, 8888]);
    for p in sg.ip_permissions() {
        let cidrs: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
        assert_eq!(cidrs, vec!["203.0.113.0/24"]);
    }

    // No-op plan.
    let plan = aws.ws.plan();
    assert_eq!(plan.exit_code, 0, "expected an empty plan: {plan:?}");

    // In-place update: CIDRs and tags.
    let base = workstation("  tags = { project = \"llm\", stage = \"dev\" }").replace(
        "allowed_cidrs  = [\"203.0.113.0/24\"]",
        "allowed_cidrs  = [\"203.0.113.0/24\", \"2001:db8::/32\"]",
    );
    aws.write(&base);
    let plan = aws.ws.plan();
    assert!(
        plan.has_changes() && plan.stdout.contains("updated in-place"),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("must be replaced"), "{plan:?}");
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert_eq!(s(&v, "instance_id"), instance_id, "update must not replace");
    let sg = aws.rt.block_on(ec2::security_group(&c, &group_id));
    assert!(
        sg.ip_permissions().iter().all(|p| p
            .ipv6_ranges()
            .iter()
            .any(|r| r.cidr_ipv6() == Some("2001:db8::/32"))),
        "{sg:?}"
    );
    let inst = aws.rt.block_on(ec2::instance(&c, &instance_id));
    assert_eq!(
        ec2::tags(&inst).get("stage").map(String::as_str),
        Some("dev")
    );
    assert_eq!(aws.ws.plan().exit_code, 0);

    // In place: instance type (stop, resize, start), then running = false / true.
    aws.write(&base.replace(
        "gpu            = \"T4\"",
        "gpu            = \"T4\"\n  instance_type  = \"g4dn.2xlarge\"",
    ));
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert_eq!(s(&v, "instance_id"), instance_id);
    assert_eq!(s(&v, "instance_type"), "g4dn.2xlarge");
    let inst = aws.rt.block_on(ec2::instance(&c, &instance_id));
    assert_eq!(
        inst.instance_type().map(|t| t.as_str()),
        Some("g4dn.2xlarge")
    );
    assert_eq!(ec2::state_name(&inst), "running");
    assert_eq!(aws.ws.plan().exit_code, 0);

    aws.write(&base.replace(
        "gpu            = \"T4\"",
        "gpu            = \"T4\"\n  running        = false",
    ));
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert_eq!(s(&v, "state"), "stopped");
    assert_eq!(
        s(&v, "instance_type"),
        "g4dn.xlarge",
        "back to the catalog's choice"
    );
    assert_eq!(
        ec2::state_name(&aws.rt.block_on(ec2::instance(&c, &instance_id))),
        "stopped"
    );
    assert_eq!(aws.ws.plan().exit_code, 0);

    aws.write(&base);
    let plan = aws.ws.plan();
    assert!(
        plan.has_changes() && !plan.stdout.contains("must be replaced"),
        "a start, not a replacement: {plan:?}"
    );
    aws.ws.apply().expect_ok();
    assert_eq!(
        ec2::state_name(&aws.rt.block_on(ec2::instance(&c, &instance_id))),
        "running"
    );
    assert_eq!(aws.ws.plan().exit_code, 0);

    // Import: forget it, import by id, and the plan is empty again.
    let id = s(&aws.ws.resource_values(ADDR), "id").to_string();
    aws.ws.state_rm(ADDR).expect_ok();
    aws.ws.import(ADDR, &id).expect_ok();
    let plan = aws.ws.plan();
    // `state rm` also dropped the outputs, so only they may show as new.
    assert!(
        plan.exit_code == 0
            || (plan.exit_code == 2
                && !plan
                    .stdout
                    .contains("Terraform will perform the following actions")),
        "import must give an empty plan: {plan:?}"
    );
    aws.ws.apply().expect_ok();
    assert_eq!(aws.ws.plan().exit_code, 0);

    // Out-of-band drift: rules revoked and a tag changed show as a diff, and apply repairs them.
    aws.rt.block_on(ec2::revoke_all_ingress(&c, &group_id));
    aws.rt
        .block_on(ec2::set_tag(&c, &instance_id, "stage", "hacked"));
    let plan = aws.ws.plan();
    assert!(
        plan.has_changes()
            && plan.stdout.contains("allowed_cidrs")
            && plan.stdout.contains("hacked"),
        "{plan:?}"
    );
    aws.ws.apply().expect_ok();
    assert_eq!(aws.ws.plan().exit_code, 0);

    // Out-of-band terminate: the plan proposes to create it again.
    aws.rt.block_on(ec2::terminate(&c, &instance_id));
    let plan = aws.ws.plan();
    assert!(
        plan.has_changes() && plan.stdout.contains("will be created"),
        "{plan:?}"
    );

    // Creating it again also sweeps the terminated machine's orphaned group, key
    // and disk (found by their aienv-name tag); destroy then leaves nothing.
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert_ne!(s(&v, "instance_id"), instance_id);
    aws.ws.destroy().expect_ok();
    aws.assert_nothing_left();
    aws.assert_no_provider_process();
}

#[test]
fn create_then_destroy_leaves_nothing() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    aws.ws.apply().expect_ok();
    assert!(!aws.inventory().is_empty());
    aws.ws.destroy().expect_ok();
    aws.assert_nothing_left();
    aws.assert_no_provider_process();
}

#[test]
fn bad_inputs_fail_at_plan_naming_the_attribute_without_any_cloud_call() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "allowed_cidrs",
            "allowed_cidrs = [\"10.0.0.300/8\"]",
            &["Invalid allowed_cidrs", "allowed_cidrs", "not a CIDR"],
        ),
        (
            "port 0",
            "ports = [22, 0]",
            &["Invalid ports", "0 is not a port"],
        ),
        (
            "duplicate port",
            "ports = [22, 8888, 22]",
            &["Invalid ports", "port 22 is listed twice"],
        ),
        ("unknown gpu", "gpu = \"Z80\"", &["Invalid gpu", "Z80"]),
        (
            "impossible count",
            "gpu = \"A100:3\"",
            &["No matching GPU offering", "3 × A100", "A100:8"],
        ),
        (
            "uppercase name",
            "name = \"DevBox\"",
            &["Invalid name", "DevBox"],
        ),
        (
            "malformed ssh key",
            "ssh_public_key = \"ssh-ed25519 not-base64!!\"",
            &["Invalid ssh_public_key"],
        ),
        (
            "tiny root disk",
            "root_disk_gb = 10",
            &["Invalid root_disk_gb", "between 30 and 16384"],
        ),
        (
            "unknown image alias",
            "image = \"pytorhc\"",
            &[
                "Invalid image",
                "pytorhc",
                "pytorch, tensorflow, cuda, ubuntu",
            ],
        ),
        (
            "type without the gpu",
            "instance_type = \"p4d.24xlarge\"",
            &["Invalid instance_type", "p4d.24xlarge carries 8 × A100"],
        ),
        (
            "cloud not there yet",
            "cloud = \"gcp\"",
            &["not supported yet"],
        ),
        (
            "auto stop too long",
            "auto_stop_idle_minutes = 20000",
            &["Invalid auto_stop_idle_minutes"],
        ),
    ];
    for (label, line, expected) in cases {
        let key = line.split('=').next().unwrap_or_default().trim();
        let hcl = workstation(&format!("  {line}"));
        // Replace the default of the same attribute rather than set it twice.
        let hcl = hcl
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t.starts_with(key)
                    && t != line.trim()
                    && l.starts_with("  ")
                    && !l.starts_with("   ")
                    && t.split('=').next().map(str::trim) == Some(key))
            })
            .collect::<Vec<_>>()
            .join("\n");
        aws.write(&hcl);
        let before = aws.proxy.total_calls();
        let plan = aws.ws.plan();
        assert_eq!(
            plan.exit_code, 1,
            "{label}: expected a plan error: {plan:?}"
        );
        let text = format!("{}\n{}", plan.stdout, plan.stderr);
        for e in *expected {
            assert!(text.contains(e), "{label}: {e:?} missing in:\n{text}");
        }
        // Terraform quotes the configuration line our attribute path points at.
        let snippet = format!(": {}", line.trim());
        assert!(
            text.contains(&snippet) || text.contains(&format!(":   {}", line.trim())),
            "{label}: the error does not point at `{line}`:\n{text}"
        );
        assert_eq!(
            aws.proxy.total_calls(),
            before,
            "{label}: a cloud API call was made: {:?}",
            aws.proxy.actions()
        );
    }
    // Jupyter open to the world is legal but warned about.
    aws.write(&workstation("").replace("[\"203.0.113.0/24\"]", "[\"0.0.0.0/0\"]"));
    let plan = aws.ws.plan();
    assert_eq!(plan.exit_code, 2, "{plan:?}");
    assert!(
        format!("{}{}", plan.stdout, plan.stderr).contains("Jupyter is open to the internet"),
        "{plan:?}"
    );
    aws.assert_nothing_left();
}

#[test]
fn failed_run_instances_leaves_nothing_behind() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    aws.proxy.fail_nth(
        "RunInstances",
        1,
        500,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient g4dn.xlarge capacity in the Availability Zone you requested (us-east-1a).",
    );
    let out = aws.ws.apply().expect_err();
    let text = out.combined();
    assert!(text.contains("InsufficientInstanceCapacity"), "{text}");
    assert!(
        text.contains("do not have sufficient g4dn.xlarge capacity"),
        "{text}"
    );
    assert!(
        aws.proxy.calls("CreateSecurityGroup") >= 1,
        "the group was created first"
    );
    aws.assert_nothing_left();
    // Nothing was recorded in state either.
    let state = aws.ws.state_json();
    assert!(
        state.pointer("/values/root_module/resources").is_none(),
        "{state}"
    );
    aws.assert_no_provider_process();
}

#[test]
fn throttling_is_retried() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    aws.proxy.fail_nth(
        "RunInstances",
        1,
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
    );
    aws.proxy.fail_nth(
        "DescribeInstances",
        1,
        500,
        "InternalError",
        "An internal error has occurred.",
    );
    aws.ws.apply().expect_ok();
    assert!(
        aws.proxy.calls("RunInstances") >= 2,
        "{:?}",
        aws.proxy.actions()
    );
    aws.ws.destroy().expect_ok();
    aws.assert_nothing_left();
}

#[test]
fn disks_grow_and_auto_stop_change_in_place_while_foreign_rules_survive() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    let instance_id = s(&v, "instance_id").to_string();
    let group_id = s(&v, "firewall_id").to_string();

    // A rule someone added with hashicorp/aws on our group: not ours, left alone.
    let c = aws.client();
    aws.rt
        .block_on(
            c.authorize_security_group_ingress()
                .group_id(&group_id)
                .ip_permissions(
                    aws_sdk_ec2::types::IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(5432)
                        .to_port(5432)
                        .ip_ranges(
                            aws_sdk_ec2::types::IpRange::builder()
                                .cidr_ip("10.0.0.0/8")
                                .description("postgres from the VPC")
                                .build(),
                        )
                        .build(),
                )
                .send(),
        )
        .expect("authorize a foreign rule");
    assert_eq!(aws.ws.plan().exit_code, 0, "a foreign rule is not drift");

    aws.write(
        &workstation("  root_disk_gb = 300\n  auto_stop_idle_minutes = 45")
            .replace("data_disk_gb   = 100", "data_disk_gb   = 150"),
    );
    let plan = aws.ws.plan();
    assert!(
        plan.has_changes() && !plan.stdout.contains("must be replaced"),
        "{plan:?}"
    );
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert_eq!(s(&v, "instance_id"), instance_id);
    assert_eq!(v["root_disk_gb"], 300);
    assert_eq!(v["data_disk_gb"], 150);
    assert_eq!(v["auto_stop_idle_minutes"], 45);
    let inst = aws.rt.block_on(ec2::instance(&c, &instance_id));
    assert_eq!(
        ec2::tags(&inst)
            .get("aienv-auto-stop-idle-minutes")
            .map(String::as_str),
        Some("45")
    );
    let sg = aws.rt.block_on(ec2::security_group(&c, &group_id));
    assert!(
        sg.ip_permissions()
            .iter()
            .any(|p| p.from_port() == Some(5432)),
        "the foreign rule was removed: {sg:?}"
    );
    assert_eq!(aws.ws.plan().exit_code, 0);

    // Shrinking a disk cannot happen in place: the plan says replace.
    aws.write(
        &workstation("  root_disk_gb = 250\n  auto_stop_idle_minutes = 45")
            .replace("data_disk_gb   = 100", "data_disk_gb   = 150"),
    );
    let plan = aws.ws.plan();
    assert!(
        plan.stdout.contains("must be replaced") && plan.stdout.contains("forces replacement"),
        "{plan:?}"
    );

    // The group still holds the foreign rule: revoke it so destroy can delete it
    // the way hashicorp/aws would (moto has no DependencyViolation to model that).
    aws.ws.destroy().expect_ok();
    let inv = aws.inventory();
    assert!(
        inv.instances_alive.is_empty() && inv.volumes.is_empty() && inv.key_pairs.is_empty(),
        "{inv:?}"
    );
}

#[test]
fn interrupting_an_apply_cancels_the_create_and_cleans_up() {
    let aws = Aws::new();
    aws.write(&workstation(""));
    aws.ws.init().expect_ok();
    // Every instance poll takes a while, so the apply is still waiting when the
    // user presses Ctrl-C.
    aws.proxy
        .set_action_latency("DescribeInstances", std::time::Duration::from_secs(2));
    let child = aws
        .ws
        .command(&["apply", "-auto-approve", "-no-color", "-input=false"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn terraform apply");
    let started = std::time::Instant::now();
    while aws.proxy.calls("RunInstances") == 0
        && started.elapsed() < std::time::Duration::from_secs(120)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        aws.proxy.calls("RunInstances"),
        1,
        "the apply never launched: {:?}",
        aws.proxy.actions()
    );
    // Ctrl-C in a terminal signals the whole process group: terraform and provider.
    let pgid = child.id() as i32;
    let status = Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait for terraform");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "an interrupted apply must fail: {text}"
    );
    assert!(
        text.contains("Cancelled") || text.contains("cancelled"),
        "{text}"
    );
    aws.proxy
        .set_action_latency("DescribeInstances", std::time::Duration::ZERO);
    aws.assert_nothing_left();
    let state = aws.ws.state_json();
    assert!(
        state.pointer("/values/root_module/resources").is_none(),
        "nothing recorded: {state}"
    );
    aws.assert_no_provider_process();
}
