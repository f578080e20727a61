//! AWS-specific acceptance tests for `aienv_gpu_workstation` (the cloud-neutral
//! scenarios are in workstation_suite.rs): what EC2 holds after a create, rules
//! from other tools, throttling, Ctrl-C. Real Terraform CLI, real moto EC2
//! server, the loopback fault proxy between them.

mod support;

use support::hcl::{s, workstation, ADDR};

use std::process::Command;

use support::clouds::{Aws, CloudUnderTest};
use support::ec2;

#[test]
fn ec2_holds_what_the_plan_promised() {
    let aws = Aws::new();
    aws.write(&workstation("  tags = { project = \"llm\" }"));
    aws.ws.init().expect_ok();
    let plan = aws.ws.plan();
    assert!(
        plan.stdout.contains("image_id") && plan.stdout.contains("ami-0a7e1c0de5f1e0002"),
        "newest x86 PyTorch DLAMI: {}",
        plan.stdout
    );
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    let instance_id = s(&v, "instance_id").to_string();
    let group_id = s(&v, "firewall_id").to_string();
    assert!(
        group_id.starts_with("sg-") && s(&v, "data_disk_id").starts_with("vol-"),
        "{v}"
    );
    assert_eq!(s(&v, "ssh_user"), "ubuntu");

    let c = aws.client();
    let inst = aws.rt.block_on(ec2::instance(&c, &instance_id));
    let md = inst
        .metadata_options()
        .cloned()
        .unwrap_or_else(|| panic!("no metadata options: {inst:?}"));
    assert_eq!(
        md.http_tokens().map(|t| t.as_str()),
        Some("required"),
        "IMDSv2 required"
    );
    assert_eq!(
        md.instance_metadata_tags().map(|t| t.as_str()),
        Some("enabled"),
        "tags readable by the idle watcher"
    );
    assert_eq!(inst.image_id(), Some("ami-0a7e1c0de5f1e0002"));
    let tags = ec2::tags(&inst);
    assert_eq!(tags.get("aienv-name").map(String::as_str), Some("dev-box"));
    assert_eq!(
        tags.get("aienv-auto-stop-idle-minutes").map(String::as_str),
        Some("0")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("ml"));
    assert_eq!(tags.get("project").map(String::as_str), Some("llm"));
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

    // IPv6 sources land in Ipv6Ranges of the same rules.
    aws.write(&workstation("  tags = { project = \"llm\" }").replace(
        "allowed_cidrs  = [\"203.0.113.0/24\"]",
        "allowed_cidrs  = [\"203.0.113.0/24\", \"2001:db8::/32\"]",
    ));
    aws.ws.apply().expect_ok();
    let sg = aws.rt.block_on(ec2::security_group(&c, &group_id));
    assert!(
        sg.ip_permissions().iter().all(|p| p
            .ipv6_ranges()
            .iter()
            .any(|r| r.cidr_ipv6() == Some("2001:db8::/32"))),
        "{sg:?}"
    );
    assert_eq!(aws.ws.plan().exit_code, 0);
    aws.ws.destroy().expect_ok();
    aws.assert_nothing_left();
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

#[test]
fn a_plan_of_many_workstations_looks_the_image_up_once() {
    let aws = Aws::new();
    aws.write(
        r#"
resource "aienv_gpu_workstation" "team" {
  count = 5
  name  = "ws-${count.index}"
  gpu   = "T4"
}
"#,
    );
    aws.ws.init().expect_ok();
    let plan = aws.ws.plan();
    assert!(plan.has_changes(), "{plan:?}");
    assert_eq!(
        aws.proxy.calls("DescribeImages"),
        1,
        "{:?}",
        aws.proxy.actions()
    );
    assert_eq!(
        aws.proxy.total_calls(),
        1,
        "nothing but the image lookup at plan: {:?}",
        aws.proxy.actions()
    );
}

/// Terraform Cloud workspaces pass settings as environment variables only.
#[test]
fn environment_variables_alone_configure_aws() {
    let mut aws = Aws::new();
    let endpoint = aws.proxy.endpoint();
    // AWS_REGION and the credentials are already in the workspace environment.
    aws.ws.env("AWS_ENDPOINT_URL_EC2", &endpoint);
    aws.ws.write_main(
        r#"
terraform {
  required_providers {
    aienv = { source = "aienv/aienv" }
  }
}

provider "aienv" {}

resource "aienv_gpu_workstation" "dev" {
  name = "env-box"
  gpu  = "T4"
}
"#,
    );
    aws.ws.init().expect_ok();
    aws.ws.apply().expect_ok();
    let v = aws.ws.resource_values(ADDR);
    assert!(s(&v, "id").starts_with("aws/us-east-1/i-"), "{v}");
    assert!(
        aws.proxy.calls("RunInstances") == 1,
        "the calls went to AWS_ENDPOINT_URL_EC2"
    );
    aws.ws.destroy().expect_ok();
    aws.assert_nothing_left();
}
