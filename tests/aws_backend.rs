//! The AWS backend through the `Cloud` trait against a real moto EC2 server
//! (and, for fault injection, the loopback fault proxy in front of it).

mod support;

use std::collections::BTreeMap;
use std::sync::Once;
use std::time::Duration;

use aienv::cloud::aws::{AwsCloud, AwsConfig};
use aienv::cloud::retry::RetryPolicy;
use aienv::cloud::{Cloud, ErrorKind};
use aienv::spec::{MachineState, ObservedWorkstation, WorkstationSpec};
use aws_sdk_ec2::types::{HttpTokensState, InstanceMetadataTagsState, VolumeType};
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use support::ec2::{client, inventory};
use support::fault_proxy::FaultProxy;
use support::moto::MotoServer;

const REGION: &str = "us-east-1";
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGTVk4nAlBoVNQ4fCjB+TL/sh9IIanafqdtXOxzRVyt3 test";
/// Newest x86_64 PyTorch DLAMI in tests/fixtures/moto-amis.json.
const PYTORCH_AMI: &str = "ami-0a7e1c0de5f1e0002";

/// Static test credentials for the SDK's default chain, set once per process
/// before any client exists (std's env lock makes this safe against readers).
fn test_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

async fn cloud(endpoint: &str) -> AwsCloud {
    test_credentials();
    AwsCloud::new(AwsConfig {
        region: Some(REGION.into()),
        profile: None,
        endpoint: Some(endpoint.into()),
    })
    .await
    .unwrap_or_else(|e| panic!("AwsCloud::new: {e}"))
    // Quick retries: these tests inject faults and must not sleep for long.
    .with_retry_policy(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    })
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("test CIDR {s}: {e}"))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spec(name: &str) -> WorkstationSpec {
    WorkstationSpec {
        name: name.into(),
        region: REGION.into(),
        zone: None,
        instance_type: "g5.xlarge".into(),
        gpu_model: "A10G".into(),
        gpu_count: 1,
        accelerator_type: None,
        image_id: PYTORCH_AMI.into(),
        root_disk_gb: 100,
        data_disk_gb: 50,
        spot: false,
        running: true,
        public_ip: true,
        allowed_cidrs: vec![net("10.0.0.0/8"), net("2001:db8::/32")],
        ports: vec![22, 8888],
        ssh_public_key: Some(SSH_KEY.into()),
        subnet_id: None,
        auto_stop_idle_minutes: 60,
        user_data: Some("echo hello > /tmp/hello".into()),
        tags: map(&[("team", "ml"), ("owner", "ana"), ("cost-center", "42")]),
        meta: map(&[("aienv-gpu", "a10g"), ("aienv-image", "pytorch")]),
    }
}

/// The observation must say what the spec asked for.
fn assert_matches(obs: &ObservedWorkstation, s: &WorkstationSpec, running: bool) {
    assert_eq!(obs.name, s.name);
    assert_eq!(obs.region, s.region);
    assert_eq!(obs.locator, format!("{}/{}", s.region, obs.instance_id));
    assert_eq!(obs.instance_type, s.instance_type);
    assert_eq!(obs.image_id, s.image_id);
    let want_state = if running {
        MachineState::Running
    } else {
        MachineState::Stopped
    };
    assert_eq!(obs.state, want_state);
    assert_eq!(obs.spot, s.spot);
    assert_eq!(obs.has_public_ip, s.public_ip);
    assert_eq!(obs.public_ip.is_some(), s.public_ip && running, "{obs:?}");
    assert!(obs.private_ip.is_some());
    assert!(obs.firewall_id.is_some());
    let mut ports = s.ports.clone();
    ports.sort();
    assert_eq!(obs.ports, ports);
    let mut cidrs = s.allowed_cidrs.clone();
    cidrs.sort();
    assert_eq!(obs.allowed_cidrs, cidrs);
    assert_eq!(obs.root_disk_gb, s.root_disk_gb);
    assert_eq!(obs.data_disk_gb, s.data_disk_gb);
    assert_eq!(obs.data_disk_id.is_some(), s.data_disk_gb > 0);
    assert!(obs.subnet_id.is_some());
    assert_eq!(obs.auto_stop_idle_minutes, s.auto_stop_idle_minutes);
    assert_eq!(obs.tags, s.tags);
    for (k, v) in &s.meta {
        assert_eq!(obs.meta.get(k), Some(v), "meta {k}");
    }
    assert_eq!(obs.meta.get("aienv-name"), Some(&s.name));
    assert_eq!(
        obs.meta.get("aienv-kind").map(String::as_str),
        Some("workstation")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_update_delete_leaves_nothing() {
    let moto = MotoServer::start().await;
    let aws = cloud(&moto.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let cancel = CancellationToken::new();

    assert_eq!(aws.default_region().as_deref(), Some(REGION));
    let image = aws
        .resolve_image(REGION, "pytorch")
        .await
        .unwrap_or_else(|e| panic!("resolve pytorch: {e}"));
    assert_eq!(image.id, PYTORCH_AMI);
    assert_eq!(image.ssh_user, "ubuntu");

    // Create.
    let s = spec("crud");
    let created = aws
        .create_workstation(&s, &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {} (undo errors {:?})", f.error, f.undo_errors));
    assert_matches(&created, &s, true);
    assert_eq!(created.zone, "us-east-1a", "first zone offering g5.xlarge");
    let key = created.ssh_key_name.clone().unwrap_or_default();
    assert!(key.starts_with("aienv-crud-"), "{key}");

    // What EC2 holds, seen from outside.
    let inst = support::ec2::instance(&ec2, &created.instance_id).await;
    let md = inst.metadata_options();
    assert_eq!(
        md.and_then(|m| m.http_tokens()),
        Some(&HttpTokensState::Required)
    );
    assert_eq!(
        md.and_then(|m| m.instance_metadata_tags()),
        Some(&InstanceMetadataTagsState::Enabled)
    );
    let tags = support::ec2::tags(&inst);
    assert_eq!(
        tags.get("aienv-auto-stop-idle-minutes").map(String::as_str),
        Some("60")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("ml"));
    let group_id = created.firewall_id.clone().unwrap_or_default();
    let group = support::ec2::security_group(&ec2, &group_id).await;
    let group_tags = support::ec2::tag_map(group.tags());
    assert_eq!(
        group_tags.get("aienv-kind").map(String::as_str),
        Some("workstation-firewall")
    );
    assert!(group
        .group_name()
        .is_some_and(|n| n.starts_with("aienv-crud-")));
    let vols = ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(&created.instance_id)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeVolumes: {e}"));
    assert_eq!(vols.volumes().len(), 2);
    for v in vols.volumes() {
        assert_eq!(v.volume_type(), Some(&VolumeType::Gp3));
        assert_eq!(v.encrypted(), Some(true));
        let vt = support::ec2::tag_map(v.tags());
        assert_eq!(
            vt.get("aienv-kind").map(String::as_str),
            Some("workstation-disk")
        );
    }
    let keys = ec2
        .describe_key_pairs()
        .key_names(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeKeyPairs: {e}"));
    let key_tags = keys
        .key_pairs()
        .first()
        .map(|k| support::ec2::tag_map(k.tags()))
        .unwrap_or_default();
    assert_eq!(
        key_tags.get("aienv-kind").map(String::as_str),
        Some("workstation-key")
    );

    // Read matches, in three calls (instance, groups, both volumes).
    let before = aws.calls_made();
    let read = aws
        .read_workstation(&created.locator)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(aws.calls_made() - before, 3);
    assert_eq!(read.as_ref(), Some(&created));

    // Update: type, rules, tags, auto-stop, disks, stop.
    let mut d = s.clone();
    d.instance_type = "g5.2xlarge".into();
    d.ports = vec![22, 443];
    d.allowed_cidrs = vec![
        net("10.0.0.0/8"),
        net("192.168.0.0/16"),
        net("2001:db8::/32"),
    ];
    d.tags = map(&[("team", "research"), ("owner", "ana"), ("project", "llm")]);
    d.running = false;
    d.root_disk_gb = 120;
    d.data_disk_gb = 80;
    d.auto_stop_idle_minutes = 30;
    let updated = aws
        .update_workstation(&created, &d, &cancel)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_matches(&updated, &d, false);
    assert_eq!(updated.instance_id, created.instance_id);
    assert_eq!(updated.firewall_id, created.firewall_id);
    assert_eq!(updated.data_disk_id, created.data_disk_id);
    // Tags went to every part, not only the instance.
    let group = support::ec2::security_group(&ec2, &group_id).await;
    let group_tags = support::ec2::tag_map(group.tags());
    assert_eq!(group_tags.get("project").map(String::as_str), Some("llm"));
    assert!(!group_tags.contains_key("cost-center"));
    let keys = ec2
        .describe_key_pairs()
        .key_names(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeKeyPairs: {e}"));
    let key_tags = keys
        .key_pairs()
        .first()
        .map(|k| support::ec2::tag_map(k.tags()))
        .unwrap_or_default();
    assert_eq!(key_tags.get("team").map(String::as_str), Some("research"));
    assert!(!key_tags.contains_key("cost-center"));
    let inst = support::ec2::instance(&ec2, &created.instance_id).await;
    assert_eq!(
        support::ec2::tags(&inst)
            .get("aienv-auto-stop-idle-minutes")
            .map(String::as_str),
        Some("30")
    );
    let read = aws
        .read_workstation(&created.locator)
        .await
        .unwrap_or_else(|e| panic!("read after update: {e}"));
    assert_eq!(read.as_ref(), Some(&updated));

    // Start again: same public-ip answer as before the stop.
    let mut up = d.clone();
    up.running = true;
    let started = aws
        .update_workstation(&updated, &up, &cancel)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    assert_matches(&started, &up, true);

    // Delete: nothing left.
    aws.delete_workstation(&started, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
    let gone = aws
        .read_workstation(&created.locator)
        .await
        .unwrap_or_else(|e| panic!("read after delete: {e}"));
    assert_eq!(gone, None);
    // Deleting again is fine: every part is already gone.
    aws.delete_workstation(&started, &cancel)
        .await
        .unwrap_or_else(|e| panic!("second delete: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_disk_added_in_place_goes_with_the_instance() {
    let moto = MotoServer::start().await;
    let aws = cloud(&moto.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let cancel = CancellationToken::new();

    let mut s = spec("adddisk");
    s.data_disk_gb = 0;
    s.ssh_public_key = None;
    s.public_ip = false;
    let created = aws
        .create_workstation(&s, &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {}", f.error));
    assert_matches(&created, &s, true);
    assert_eq!(created.ssh_key_name, None);

    let mut d = s.clone();
    d.data_disk_gb = 20;
    let updated = aws
        .update_workstation(&created, &d, &cancel)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_matches(&updated, &d, true);
    let inst = support::ec2::instance(&ec2, &created.instance_id).await;
    let data = inst
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some("/dev/sdf"))
        .and_then(|m| m.ebs());
    assert_eq!(data.and_then(|e| e.delete_on_termination()), Some(true));

    // Shrinking is a replacement, never an update.
    let mut shrink = d.clone();
    shrink.data_disk_gb = 10;
    let err = aws
        .update_workstation(&updated, &shrink, &cancel)
        .await
        .err();
    assert_eq!(err.map(|e| e.kind), Some(ErrorKind::InvalidInput));

    aws.delete_workstation(&updated, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_drift_is_seen_and_repaired() {
    let moto = MotoServer::start().await;
    let aws = cloud(&moto.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let cancel = CancellationToken::new();

    let mut s = spec("drift");
    s.data_disk_gb = 0;
    let created = aws
        .create_workstation(&s, &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {}", f.error));
    let group_id = created.firewall_id.clone().unwrap_or_default();

    // Someone revokes one rule: the observation no longer matches the spec.
    ec2.revoke_security_group_ingress()
        .group_id(&group_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("10.0.0.0/8")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("revoke: {e}"));
    let drifted = aws
        .read_workstation(&created.locator)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .unwrap_or_else(|| panic!("workstation vanished"));
    assert_ne!(
        (drifted.ports.clone(), drifted.allowed_cidrs.clone()),
        (created.ports.clone(), created.allowed_cidrs.clone())
    );
    let repaired = aws
        .update_workstation(&drifted, &s, &cancel)
        .await
        .unwrap_or_else(|e| panic!("repair rules: {e}"));
    assert_matches(&repaired, &s, true);

    // Someone deletes the group (moto allows it while in use; EC2 would not
    // until it is detached): update makes and attaches a new one.
    ec2.delete_security_group()
        .group_id(&group_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete group: {e}"));
    let no_group = aws
        .read_workstation(&created.locator)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .unwrap_or_else(|| panic!("workstation vanished"));
    assert_eq!(no_group.firewall_id, None);
    assert!(no_group.ports.is_empty());
    let regrouped = aws
        .update_workstation(&no_group, &s, &cancel)
        .await
        .unwrap_or_else(|e| panic!("new group: {e}"));
    assert_matches(&regrouped, &s, true);
    assert_ne!(regrouped.firewall_id.as_deref(), Some(group_id.as_str()));

    aws.delete_workstation(&regrouped, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_instances_failure_leaves_nothing_behind() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let aws = cloud(&proxy.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let aws_message = "We currently do not have sufficient g5.xlarge capacity in the Availability \
Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. \
You can currently get g5.xlarge capacity by not specifying an Availability Zone in your request or \
choosing us-east-1b, us-east-1c, us-east-1d, us-east-1f.";
    proxy.fail_nth(
        "RunInstances",
        1,
        500,
        "InsufficientInstanceCapacity",
        aws_message,
    );

    let failure = aws
        .create_workstation(&spec("nocap"), &CancellationToken::new())
        .await
        .err()
        .unwrap_or_else(|| panic!("create succeeded despite the injected fault"));
    assert_eq!(failure.error.kind, ErrorKind::Capacity);
    assert!(!failure.error.retryable);
    assert_eq!(
        failure.error.code.as_deref(),
        Some("InsufficientInstanceCapacity")
    );
    assert!(
        failure.error.message.starts_with(
            "AWS has no capacity for g5.xlarge in us-east-1a right now (InsufficientInstanceCapacity)"
        ),
        "{}",
        failure.error.message
    );
    assert!(failure.error.message.contains(aws_message));
    assert!(failure.leftovers.is_empty(), "{:?}", failure.leftovers);
    assert!(failure.undo_errors.is_empty(), "{:?}", failure.undo_errors);
    // Capacity is not retried; the undo removed key and group.
    assert_eq!(proxy.calls("RunInstances"), 1);
    assert_eq!(proxy.calls("DeleteKeyPair"), 1);
    assert_eq!(proxy.calls("DeleteSecurityGroup"), 1);
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_after_launch_terminates_the_instance() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let aws = cloud(&proxy.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    proxy.fail_all(
        "StopInstances",
        403,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
    );

    let mut s = spec("nostop");
    s.running = false;
    let failure = aws
        .create_workstation(&s, &CancellationToken::new())
        .await
        .err()
        .unwrap_or_else(|| panic!("create succeeded despite the injected fault"));
    assert_eq!(failure.error.kind, ErrorKind::Auth);
    assert!(failure.error.message.contains("ec2:StopInstances"));
    assert!(failure.leftovers.is_empty(), "{:?}", failure.leftovers);
    assert!(failure.undo_errors.is_empty(), "{:?}", failure.undo_errors);
    assert_eq!(proxy.calls("TerminateInstances"), 1);
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_create_undoes_its_steps() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let aws = cloud(&proxy.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    // Slow polls after the launch, so the cancel lands while waiting for "running".
    proxy.set_action_latency("DescribeInstances", Duration::from_millis(800));

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let s = spec("cancel");
    let create = aws.create_workstation(&s, &cancel);
    // Cancel once the first poll after the launch is in flight: the launch has
    // answered (so the instance id is known) and the create is waiting. (Were the
    // cancel to hit RunInstances itself, the undo would look the launch up by its
    // ClientToken, a filter moto does not implement.)
    let canceller = async {
        while proxy.calls("DescribeInstances") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        trigger.cancel();
    };
    let (result, ()) = tokio::join!(create, canceller);
    let failure = result
        .err()
        .unwrap_or_else(|| panic!("create finished despite the cancel"));
    assert_eq!(failure.error.kind, ErrorKind::Cancelled);
    assert!(failure.leftovers.is_empty(), "{:?}", failure.leftovers);
    assert!(failure.undo_errors.is_empty(), "{:?}", failure.undo_errors);
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

/// Spot workstations: persistent requests that stop on interruption. (moto
/// records only the lifecycle; it creates no spot request to cancel.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_workstation_round_trip() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let aws = cloud(&proxy.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let cancel = CancellationToken::new();
    let mut s = spec("spot");
    s.spot = true;
    s.running = false;
    let created = aws
        .create_workstation(&s, &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {}", f.error));
    assert_matches(&created, &s, false);
    assert!(created.spot);

    // Starting needs capacity too; the error names type and zone.
    proxy.fail_next(
        "StartInstances",
        500,
        "InsufficientInstanceCapacity",
        "There is no Spot capacity available that matches your request.",
    );
    let mut up = s.clone();
    up.running = true;
    let err = aws
        .update_workstation(&created, &up, &cancel)
        .await
        .err()
        .unwrap_or_else(|| panic!("start succeeded despite the injected fault"));
    assert_eq!(err.kind, ErrorKind::Capacity);
    assert!(
        err.message
            .starts_with("AWS has no capacity for g5.xlarge in us-east-1a right now"),
        "{}",
        err.message
    );
    let started = aws
        .update_workstation(&created, &up, &cancel)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    assert_matches(&started, &up, true);

    aws.delete_workstation(&started, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_deleted() {
    let moto = MotoServer::start().await;
    let aws = cloud(&moto.endpoint()).await;
    let ec2 = client(&moto.endpoint());
    let cancel = CancellationToken::new();
    let created = aws
        .create_workstation(&spec("left"), &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {}", f.error));
    let leftovers = aienv::spec::Leftovers {
        instance_id: Some(created.instance_id.clone()),
        firewall_id: created.firewall_id.clone(),
        ssh_key_name: created.ssh_key_name.clone(),
        data_disk_id: created.data_disk_id.clone(),
    };
    aws.delete_leftovers(REGION, &leftovers, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete_leftovers: {e}"));
    let inv = inventory(&ec2).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_of_missing_things() {
    let moto = MotoServer::start().await;
    let aws = cloud(&moto.endpoint()).await;

    let none = aws
        .read_workstation("us-east-1/i-0123456789abcdef0")
        .await
        .unwrap_or_else(|e| panic!("read of a missing instance: {e}"));
    assert_eq!(none, None);
    let bad = aws.read_workstation("us-east-1:i-0123").await.err();
    assert_eq!(bad.map(|e| e.kind), Some(ErrorKind::InvalidInput));

    let missing = aws
        .resolve_image(REGION, "ami-0123456789abcdef0")
        .await
        .err();
    assert_eq!(missing.map(|e| e.kind), Some(ErrorKind::NotFound));
    let bogus = aws.resolve_image(REGION, "windows").await.err();
    assert_eq!(bogus.map(|e| e.kind), Some(ErrorKind::InvalidInput));
    for (alias, id) in [
        ("tensorflow", "ami-0a7e1c0de5f1e0012"),
        ("cuda", "ami-0a7e1c0de5f1e0022"),
        ("ubuntu", "ami-0a7e1c0de5f1e0032"),
        (PYTORCH_AMI, PYTORCH_AMI),
    ] {
        let img = aws
            .resolve_image(REGION, alias)
            .await
            .unwrap_or_else(|e| panic!("resolve {alias}: {e}"));
        assert_eq!(img.id, id, "{alias}");
        assert_eq!(img.ssh_user, "ubuntu");
    }

    // A zone that conflicts with the subnet is refused before anything is made.
    let subnets = client(&moto.endpoint())
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("availability-zone")
                .values("us-east-1b")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeSubnets: {e}"));
    let subnet = subnets
        .subnets()
        .first()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_string();
    let mut s = spec("conflict");
    s.subnet_id = Some(subnet.clone());
    s.zone = Some("us-east-1a".into());
    let failure = aws
        .create_workstation(&s, &CancellationToken::new())
        .await
        .err()
        .unwrap_or_else(|| panic!("conflicting zone accepted"));
    assert_eq!(failure.error.kind, ErrorKind::InvalidInput);
    assert!(failure.error.message.contains(&subnet));
    assert!(failure.error.message.contains("us-east-1b"));
    let inv = inventory(&client(&moto.endpoint())).await;
    assert!(inv.is_empty(), "left behind: {inv:?}");
}

/// `AWS_ENDPOINT_URL_EC2` is honoured when no endpoint is configured (the SDK
/// reads service-specific endpoint variables itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_from_environment() {
    let moto = MotoServer::start().await;
    test_credentials();
    // Only this test reads the variable: every other test passes an explicit
    // endpoint, which takes precedence over it.
    std::env::set_var("AWS_ENDPOINT_URL_EC2", moto.endpoint());
    let aws = AwsCloud::new(AwsConfig {
        region: Some(REGION.into()),
        ..AwsConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("AwsCloud::new: {e}"));
    // The client for the region (and so its endpoint) is made on first use.
    let img = aws.resolve_image(REGION, "ubuntu").await;
    std::env::remove_var("AWS_ENDPOINT_URL_EC2");
    let img = img.unwrap_or_else(|e| panic!("resolve via AWS_ENDPOINT_URL_EC2: {e}"));
    assert_eq!(img.id, "ami-0a7e1c0de5f1e0032");
    assert!(aws.calls_made() >= 1);
}

/// One call where one call serves: moto answers every state at once, so each
/// action of a create or delete appears exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_batched() {
    let moto = MotoServer::start().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let aws = cloud(&proxy.endpoint()).await;
    let cancel = CancellationToken::new();
    let created = aws
        .create_workstation(&spec("calls"), &cancel)
        .await
        .unwrap_or_else(|f| panic!("create: {}", f.error));
    assert_eq!(
        proxy.actions(),
        [
            "DescribeImages",
            "DescribeInstanceTypeOfferings",
            "DescribeSubnets",
            // Orphan sweep: parts of an earlier workstation of this name.
            "DescribeInstances",
            "DescribeSecurityGroups",
            "DescribeKeyPairs",
            "DescribeVolumes",
            "CreateSecurityGroup",
            "AuthorizeSecurityGroupIngress",
            "ImportKeyPair",
            "RunInstances",
            "DescribeInstances",
            "DescribeSecurityGroups",
            "DescribeVolumes",
        ]
    );
    assert_eq!(aws.calls_made(), proxy.total_calls() as u64);
    let before = proxy.total_calls();
    aws.delete_workstation(&created, &cancel)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(
        proxy.actions()[before..],
        [
            "DescribeInstances",
            "TerminateInstances",
            "DescribeInstances",
            "DescribeVolumes",
            "DeleteKeyPair",
            "DeleteSecurityGroup",
        ]
    );
}
