//! Self-tests of the test-support library against the real tools (moto, terraform).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceType, IpPermission, IpRange};
use support::fault_proxy::FaultProxy;
use support::moto::MotoServer;
use support::terraform::Workspace;
use support::{ec2, processes, tools};

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-aienv");

const DLAMI_OWNER: &str = "898082745236";
const CANONICAL_OWNER: &str = "099720109477";

#[test]
fn tools_and_fixture_are_in_place() {
    assert!(tools::terraform_bin().is_file());
    assert!(tools::moto_server_bin().is_file());
    let text = std::fs::read_to_string(tools::moto_amis_fixture()).expect("read the AMI fixture");
    let amis: serde_json::Value = serde_json::from_str(&text).expect("the AMI fixture is JSON");
    assert_eq!(amis.as_array().map(Vec::len), Some(9), "{amis:#}");
}

/// Resolves an alias the way the backend does: owner + name pattern + x86_64 + available,
/// newest CreationDate wins.
async fn newest_image(
    client: &aws_sdk_ec2::Client,
    owner: &str,
    pattern: &str,
) -> (String, String) {
    let out = client
        .describe_images()
        .owners(owner)
        .filters(Filter::builder().name("name").values(pattern).build())
        .filters(
            Filter::builder()
                .name("architecture")
                .values("x86_64")
                .build(),
        )
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .expect("DescribeImages");
    let mut images = out.images().to_vec();
    assert_eq!(
        images.len(),
        2,
        "two dated x86_64 versions for {pattern}: {images:#?}"
    );
    images.sort_by(|a, b| a.creation_date().cmp(&b.creation_date()));
    let newest = images.last().expect("an image");
    (
        newest.image_id().unwrap_or_default().to_string(),
        newest.name().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn moto_serves_fixture_amis_in_every_region_and_dies_on_drop() {
    let moto = MotoServer::start().await;
    let pid = moto.pid();
    for region in ["us-east-1", "eu-west-1"] {
        let client = ec2::client_in(&moto.endpoint(), region);
        let cases = [
            (
                DLAMI_OWNER,
                "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *",
                "ami-0a7e1c0de5f1e0002",
            ),
            (
                DLAMI_OWNER,
                "Deep Learning OSS Nvidia Driver AMI GPU TensorFlow * (Ubuntu 22.04) *",
                "ami-0a7e1c0de5f1e0012",
            ),
            (
                DLAMI_OWNER,
                "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
                "ami-0a7e1c0de5f1e0022",
            ),
            (
                CANONICAL_OWNER,
                "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
                "ami-0a7e1c0de5f1e0032",
            ),
        ];
        for (owner, pattern, want) in cases {
            let (id, name) = newest_image(&client, owner, pattern).await;
            assert_eq!(id, want, "{region}: newest for {pattern} was {name}");
        }
        // The arm64 decoy matches the PyTorch name pattern and is the newest of all.
        let all = client
            .describe_images()
            .owners(DLAMI_OWNER)
            .filters(
                Filter::builder()
                    .name("name")
                    .values("Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *")
                    .build(),
            )
            .send()
            .await
            .expect("DescribeImages without architecture filter");
        let newest = all
            .images()
            .iter()
            .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
            .expect("images");
        assert_eq!(newest.image_id(), Some("ami-0a7e1c0de5f1e00a1"));
        assert_eq!(newest.architecture().map(|a| a.as_str()), Some("arm64"));
        // MOTO_AMIS_PATH replaces moto's default AMIs: only the fixture is there.
        let every = client
            .describe_images()
            .send()
            .await
            .expect("DescribeImages");
        assert_eq!(every.images().len(), 9);
    }
    drop(moto);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "moto_server {pid} still exists after drop"
    );
}

#[tokio::test]
async fn proxy_passes_calls_through_and_counts_them() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let client = ec2::client(&proxy.endpoint());
    let regions = client
        .describe_regions()
        .send()
        .await
        .expect("DescribeRegions through the proxy");
    assert!(regions
        .regions()
        .iter()
        .any(|r| r.region_name() == Some("us-east-1")));
    client
        .describe_images()
        .image_ids("ami-0a7e1c0de5f1e0001")
        .send()
        .await
        .expect("DescribeImages through the proxy");
    // A real moto error is relayed unchanged (status and code).
    let err = client
        .describe_images()
        .image_ids("ami-00000000000000000")
        .send()
        .await
        .expect_err("unknown AMI");
    assert_eq!(err.code(), Some("InvalidAMIID.NotFound"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    assert_eq!(proxy.calls("DescribeRegions"), 1);
    assert_eq!(proxy.calls("DescribeImages"), 2);
    assert_eq!(proxy.calls("RunInstances"), 0);
    assert_eq!(proxy.total_calls(), 3);
    assert_eq!(
        proxy.actions(),
        vec!["DescribeRegions", "DescribeImages", "DescribeImages"]
    );
    assert_eq!(proxy.injected_faults(), 0);
}

#[tokio::test]
async fn proxy_fail_nth_run_instances_reaches_the_sdk_then_next_call_passes() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let client = ec2::client(&proxy.endpoint());
    let message = "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you requested (us-east-1a).";
    proxy.fail_nth(
        "RunInstances",
        1,
        500,
        "InsufficientInstanceCapacity",
        message,
    );

    let run = || {
        client
            .run_instances()
            .image_id("ami-0a7e1c0de5f1e0002")
            .instance_type(InstanceType::G5Xlarge)
            .min_count(1)
            .max_count(1)
            .send()
    };
    let err = run().await.expect_err("the first RunInstances is faulted");
    assert_eq!(err.code(), Some("InsufficientInstanceCapacity"), "{err:?}");
    assert_eq!(err.message(), Some(message));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(
        ec2::inventory(&client).await.instances_alive.is_empty(),
        "a faulted call must not reach moto"
    );

    let out = run().await.expect("the second RunInstances passes");
    let id = out.instances()[0]
        .instance_id()
        .expect("instance id")
        .to_string();
    assert_eq!(proxy.calls("RunInstances"), 2);
    assert_eq!(proxy.injected_faults(), 1);
    assert_eq!(ec2::inventory(&client).await.instances_alive, vec![id]);
}

#[tokio::test]
async fn proxy_fail_all_clear_and_latency() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let client = ec2::client(&proxy.endpoint());
    proxy.fail_all(
        "DescribeVpcs",
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
    );
    for _ in 0..2 {
        let err = client.describe_vpcs().send().await.expect_err("faulted");
        assert_eq!(err.code(), Some("RequestLimitExceeded"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    }
    proxy.fail_next(
        "DescribeVpcs",
        500,
        "InternalError",
        "An internal error has occurred",
    );
    proxy.clear_faults();
    client.describe_vpcs().send().await.expect("faults cleared");
    proxy.fail_next(
        "DescribeVpcs",
        500,
        "InternalError",
        "An internal error has occurred",
    );
    let err = client.describe_vpcs().send().await.expect_err("fail_next");
    assert_eq!(err.code(), Some("InternalError"));
    client
        .describe_vpcs()
        .send()
        .await
        .expect("only the next call failed");
    assert_eq!(proxy.calls("DescribeVpcs"), 5);

    proxy.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    client.describe_regions().send().await.expect("slow call");
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.set_latency(Duration::ZERO);
}

/// The proxy has its own runtime: plain sync code can use it. The action is also taken
/// from the query string of a GET.
#[test]
fn proxy_works_from_sync_code_with_query_string_actions() {
    let moto = MotoServer::start_blocking();
    let proxy = FaultProxy::start_blocking(&moto.endpoint());
    proxy.fail_nth(
        "DescribeAvailabilityZones",
        2,
        500,
        "InternalError",
        "boom & <bang>",
    );
    let port = proxy
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("proxy port");
    let get = |path: &str| -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    };
    let path = "/?Action=DescribeAvailabilityZones&Version=2016-11-15";
    let first = get(path);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("us-east-1a"), "{first}");
    let second = get(path);
    assert!(second.starts_with("HTTP/1.1 500"), "{second}");
    assert!(
        second.contains("<Response><Errors><Error><Code>InternalError</Code><Message>boom &amp; &lt;bang&gt;</Message></Error></Errors><RequestID>"),
        "{second}"
    );
    assert_eq!(proxy.calls("DescribeAvailabilityZones"), 2);
}

#[tokio::test]
async fn inventory_and_drift_helpers() {
    let moto = MotoServer::start().await;
    let client = ec2::client(&moto.endpoint());
    let empty = ec2::inventory(&client).await;
    assert!(empty.is_empty(), "{empty:?}");
    assert_eq!(format!("{empty:?}"), "Inventory { empty }");

    let sg = client
        .create_security_group()
        .group_name("selftest")
        .description("selftest")
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .expect("group id")
        .to_string();
    client
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("203.0.113.0/24").build())
                .build(),
        )
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");
    client
        .create_key_pair()
        .key_name("selftest-key")
        .send()
        .await
        .expect("CreateKeyPair");
    let run = client
        .run_instances()
        .image_id("ami-0a7e1c0de5f1e0032")
        .instance_type(InstanceType::T3Micro)
        .key_name("selftest-key")
        .security_group_ids(&sg)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances");
    let id = run.instances()[0].instance_id().expect("id").to_string();

    let inv = ec2::inventory(&client).await;
    assert_eq!(inv.instances_alive, vec![id.clone()]);
    assert_eq!(inv.security_groups, vec![sg.clone()]);
    assert_eq!(inv.key_pairs, vec!["selftest-key".to_string()]);
    assert_eq!(inv.volumes.len(), 1, "the root volume: {inv:?}");
    assert!(format!("{inv:?}").contains(&id));

    ec2::set_tag(&client, &id, "owner", "someone-else").await;
    let instance = ec2::instance(&client, &id).await;
    assert_eq!(
        ec2::tags(&instance).get("owner").map(String::as_str),
        Some("someone-else")
    );
    ec2::modify_instance_type(&client, &id, "g5.2xlarge").await;
    let instance = ec2::instance(&client, &id).await;
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("g5.2xlarge")
    );
    assert_eq!(ec2::state_name(&instance), "running");
    assert_eq!(ec2::revoke_all_ingress(&client, &sg).await, 1);
    assert!(ec2::security_group(&client, &sg)
        .await
        .ip_permissions()
        .is_empty());

    ec2::terminate(&client, &id).await;
    assert_eq!(
        ec2::state_name(&ec2::instance(&client, &id).await),
        "terminated"
    );
    client
        .delete_security_group()
        .group_id(&sg)
        .send()
        .await
        .expect("DeleteSecurityGroup");
    client
        .delete_key_pair()
        .key_name("selftest-key")
        .send()
        .await
        .expect("DeleteKeyPair");
    let after = ec2::inventory(&client).await;
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn workspace_runs_real_terraform_without_provider() {
    let ws = Workspace::new(Path::new(PROVIDER_BIN));
    ws.write_main("output \"x\" {\n  value = 1\n}\n");
    ws.init().expect_ok();
    let applied = ws.apply().expect_ok();
    assert!(applied.stdout.contains("Apply complete!"), "{applied:?}");
    assert_eq!(ws.output_json("x"), serde_json::json!(1));
    assert_eq!(
        ws.state_json().pointer("/values/outputs/x/value"),
        Some(&serde_json::json!(1))
    );
    ws.plan().expect_no_changes();
    ws.write_main("output \"x\" {\n  value = 2\n}\n");
    ws.plan().expect_changes();
    let plan = ws.plan_json();
    assert!(plan.get("output_changes").is_some(), "{plan:#}");
    ws.write_main("output \"x\" {\n  value = nope\n}\n");
    let broken = ws.plan().expect_error();
    assert!(broken.stderr.contains("Error"), "{broken:?}");
    ws.write_main("output \"x\" {\n  value = 1\n}\n");
    ws.destroy().expect_ok();
    ws.output("x").expect_err();
}

#[test]
fn workspace_installs_provider_from_plugin_dir() {
    let ws = Workspace::new(Path::new(PROVIDER_BIN));
    // A hard link (or copy) of the binary under test, not a symlink.
    let installed = std::fs::read(ws.plugin_binary_path()).expect("plugin binary");
    let built = std::fs::read(ws.provider_bin()).expect("provider binary");
    assert!(installed == built, "the plugin dir holds another binary");
    ws.write_main(
        r#"terraform {
  required_providers {
    aienv = {
      source  = "aienv/aienv"
      version = "0.1.0"
    }
  }
}
"#,
    );
    let init = ws.init().expect_ok();
    assert!(
        init.stdout.contains("Installing aienv/aienv v0.1.0"),
        "{init:?}"
    );
    let lock = std::fs::read_to_string(ws.dir().join(".terraform.lock.hcl")).expect("lock file");
    assert!(lock.contains("registry.terraform.io/aienv/aienv"), "{lock}");
}

#[test]
fn workspace_command_timeout_fails_the_test() {
    let mut ws = Workspace::new(Path::new(PROVIDER_BIN));
    ws.set_timeout(Duration::from_millis(1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ws.run(&["version"])));
    let panic = result.expect_err("a command over its time limit fails the test");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("`terraform version` timed out"),
        "{message}"
    );
}

#[test]
fn processes_are_found_by_executable_and_environment() {
    let me = std::env::current_exe().expect("current exe");
    assert!(processes::running_provider_processes(&me).contains(&std::process::id()));

    let sleep = Path::new("/bin/sleep");
    let marker = format!("selftest-{}", std::process::id());
    let mut child = std::process::Command::new(sleep)
        .arg("30")
        .env("AIENV_TEST_WORKSPACE", &marker)
        .spawn()
        .expect("spawn sleep");
    let found =
        processes::running_provider_processes_with_env(sleep, "AIENV_TEST_WORKSPACE", &marker);
    assert_eq!(found, vec![child.id()]);
    child.kill().expect("kill sleep");
    child.wait().expect("reap sleep");
    let left = processes::wait_until_none(Duration::from_secs(5), || {
        processes::running_provider_processes_with_env(sleep, "AIENV_TEST_WORKSPACE", &marker)
    });
    assert!(left.is_empty(), "{left:?}");
}
