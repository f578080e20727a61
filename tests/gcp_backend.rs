//! The Google Cloud backend through the `Cloud` trait against the fake Compute
//! Engine server (`aienv_fakes::gce::FakeGce`), which speaks the real REST wire
//! format to the real google-cloud-compute-v1 client.

use std::collections::BTreeMap;
use std::time::Duration;

use aienv::cloud::gcp::{GcpCloud, GcpConfig, IMAGE_FAMILIES};
use aienv::cloud::retry::RetryPolicy;
use aienv::cloud::{Cloud, ErrorKind};
use aienv::spec::{Leftovers, MachineState, ObservedWorkstation, WorkstationSpec};
use aienv_fakes::gce::FakeGce;
use ipnet::IpNet;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "aienv-test";
const REGION: &str = "us-central1";
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGTVk4nAlBoVNQ4fCjB+TL/sh9IIanafqdtXOxzRVyt3 test";
/// An image the fake serves; alias resolution has its own test.
const UBUNTU_IMAGE: &str = "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20260320";

async fn cloud_with(fake: &FakeGce, zone: Option<&str>) -> GcpCloud {
    GcpCloud::new(GcpConfig {
        project: Some(PROJECT.into()),
        region: Some(REGION.into()),
        zone: zone.map(str::to_owned),
        credentials: None,
        endpoint: Some(fake.endpoint()),
    })
    .await
    .unwrap_or_else(|e| panic!("GcpCloud::new: {e}"))
    // Quick retries: these tests inject faults and must not sleep for long.
    .with_retry_policy(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    })
}

async fn cloud(fake: &FakeGce) -> GcpCloud {
    cloud_with(fake, None).await
}

/// A fake whose operations finish on the first poll (the default of two polls
/// is exercised by `operations_are_polled_until_done`).
async fn fake() -> FakeGce {
    let fake = FakeGce::start().await;
    fake.set_operation_polls(1);
    fake
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

/// An N1 + T4 workstation.
fn spec(name: &str) -> WorkstationSpec {
    WorkstationSpec {
        name: name.into(),
        region: REGION.into(),
        zone: None,
        instance_type: "n1-standard-8".into(),
        gpu_model: "T4".into(),
        gpu_count: 1,
        accelerator_type: Some("nvidia-tesla-t4".into()),
        image_id: UBUNTU_IMAGE.into(),
        root_disk_gb: 100,
        data_disk_gb: 0,
        spot: false,
        running: true,
        public_ip: true,
        allowed_cidrs: vec![net("203.0.113.0/24")],
        ports: vec![22, 8888],
        ssh_public_key: Some(SSH_KEY.into()),
        subnet_id: None,
        auto_stop_idle_minutes: 30,
        user_data: Some("echo hello".into()),
        tags: map(&[("Team", "ML Platform"), ("env", "dev")]),
        meta: map(&[("aienv-gpu", "t4"), ("aienv-image", "ubuntu")]),
    }
}

/// An A2 workstation: GPUs built into the machine type.
fn a2_spec(name: &str) -> WorkstationSpec {
    WorkstationSpec {
        instance_type: "a2-highgpu-1g".into(),
        gpu_model: "A100".into(),
        accelerator_type: None,
        ..spec(name)
    }
}

/// A G2 workstation (one L4 built in).
fn g2_spec(name: &str) -> WorkstationSpec {
    WorkstationSpec {
        instance_type: "g2-standard-8".into(),
        gpu_model: "L4".into(),
        accelerator_type: None,
        ..spec(name)
    }
}

async fn create(cloud: &GcpCloud, s: &WorkstationSpec) -> ObservedWorkstation {
    match cloud.create_workstation(s, &CancellationToken::new()).await {
        Ok(o) => o,
        Err(f) => panic!(
            "create {}: {} (leftovers {:?}, undo errors {:?})",
            s.name, f.error, f.leftovers, f.undo_errors
        ),
    }
}

async fn read(cloud: &GcpCloud, locator: &str) -> ObservedWorkstation {
    match cloud.read_workstation(locator).await {
        Ok(Some(o)) => o,
        Ok(None) => panic!("{locator} is gone"),
        Err(e) => panic!("read {locator}: {e}"),
    }
}

async fn delete(cloud: &GcpCloud, obs: &ObservedWorkstation) {
    if let Err(e) = cloud
        .delete_workstation(obs, &CancellationToken::new())
        .await
    {
        panic!("delete {}: {e}", obs.name);
    }
}

fn instance_json(fake: &FakeGce, name: &str) -> Value {
    fake.instance(name)
        .unwrap_or_else(|| panic!("the fake has no instance {name}"))
}

fn metadata_of(inst: &Value) -> BTreeMap<String, String> {
    inst["metadata"]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    Some((
                        i["key"].as_str()?.to_owned(),
                        i["value"].as_str().unwrap_or_default().to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn firewall_names(fake: &FakeGce) -> Vec<String> {
    let mut names: Vec<String> = fake
        .firewalls()
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn lifecycle_through_the_cloud_trait() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = spec("life");
    s.data_disk_gb = 50;
    s.allowed_cidrs = vec![net("203.0.113.0/24"), net("198.51.100.0/24")];

    let obs = create(&cloud, &s).await;
    assert_eq!(obs.locator, format!("{PROJECT}/us-central1-a/life"));
    assert_eq!(obs.name, "life");
    assert_eq!(obs.region, REGION);
    assert_eq!(obs.zone, "us-central1-a");
    assert_eq!(
        obs.instance_id,
        format!("projects/{PROJECT}/zones/us-central1-a/instances/life")
    );
    assert_eq!(obs.instance_type, "n1-standard-8");
    assert_eq!(obs.image_id, UBUNTU_IMAGE);
    assert_eq!(obs.state, MachineState::Running);
    assert!(!obs.spot);
    assert!(obs.has_public_ip);
    assert!(obs.public_ip.is_some());
    assert!(obs.private_ip.is_some());
    assert_eq!(
        obs.firewall_id.as_deref(),
        Some(format!("projects/{PROJECT}/global/firewalls/aienv-life").as_str())
    );
    assert_eq!(obs.ports, vec![22, 8888]);
    assert_eq!(
        obs.allowed_cidrs,
        vec![net("198.51.100.0/24"), net("203.0.113.0/24")]
    );
    assert_eq!(obs.root_disk_gb, 100);
    assert_eq!(obs.data_disk_gb, 50);
    assert_eq!(
        obs.data_disk_id.as_deref(),
        Some(format!("projects/{PROJECT}/zones/us-central1-a/disks/life-data").as_str())
    );
    assert_eq!(obs.auto_stop_idle_minutes, 30);
    // The original spelling, although the labels are sanitised.
    assert_eq!(obs.tags, s.tags);
    assert_eq!(obs.meta.get("aienv-gpu").map(String::as_str), Some("t4"));
    assert_eq!(obs.meta.get("aienv-name").map(String::as_str), Some("life"));
    assert_eq!(obs.ssh_key_name, None);

    // What Compute Engine got.
    let inst = instance_json(&fake, "life");
    assert_eq!(inst["labels"]["team"], "ml_platform");
    assert_eq!(inst["labels"]["aienv-name"], "life");
    assert_eq!(inst["tags"]["items"][0], "aienv-life");
    let md = metadata_of(&inst);
    assert_eq!(
        md.get("ssh-keys").map(String::as_str),
        Some(format!("ubuntu:{SSH_KEY}").as_str())
    );
    assert_eq!(
        md.get("aienv-auto-stop-idle-minutes").map(String::as_str),
        Some("30")
    );
    assert!(md
        .get("startup-script")
        .is_some_and(|s| s.contains("echo hello") && s.contains("aienv-idle.timer")));
    assert_eq!(firewall_names(&fake), vec!["aienv-life"]);
    assert_eq!(fake.disks().len(), 2);

    // Read agrees with create.
    let again = read(&cloud, &obs.locator).await;
    assert_eq!(again, obs);

    // Update in place: tags, rules, ports, auto-stop, disk growth, stop.
    let mut s2 = s.clone();
    s2.tags = map(&[("Team", "Infra")]);
    s2.allowed_cidrs = vec![net("198.51.100.7/32")];
    s2.ports = vec![22];
    s2.auto_stop_idle_minutes = 60;
    s2.root_disk_gb = 150;
    s2.data_disk_gb = 80;
    s2.running = false;
    let obs2 = cloud
        .update_workstation(&obs, &s2, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(obs2.tags, s2.tags);
    assert_eq!(obs2.allowed_cidrs, vec![net("198.51.100.7/32")]);
    assert_eq!(obs2.ports, vec![22]);
    assert_eq!(obs2.auto_stop_idle_minutes, 60);
    assert_eq!(obs2.root_disk_gb, 150);
    assert_eq!(obs2.data_disk_gb, 80);
    assert_eq!(obs2.state, MachineState::Stopped);
    assert!(
        obs2.has_public_ip,
        "a stopped instance keeps its access config"
    );
    assert_eq!(firewall_names(&fake), vec!["aienv-life"]);
    let inst = instance_json(&fake, "life");
    assert_eq!(inst["labels"]["team"], "infra");
    assert!(inst["labels"].get("env").is_none());

    // Machine type: stop → setMachineType → start.
    let mut s3 = s2.clone();
    s3.instance_type = "n1-standard-16".into();
    s3.running = true;
    let obs3 = cloud
        .update_workstation(&obs2, &s3, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("resize: {e}"));
    assert_eq!(obs3.instance_type, "n1-standard-16");
    assert_eq!(obs3.state, MachineState::Running);
    assert_eq!(fake.calls("instances.setMachineType"), 1);

    delete(&cloud, &obs3).await;
    assert!(fake.is_empty(), "left: {:?}", fake.requests());
    assert_eq!(cloud.read_workstation(&obs.locator).await.ok(), Some(None));
}

#[tokio::test]
async fn n1_sends_accelerators_and_a2_does_not() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;

    let n1 = create(&cloud, &spec("n1-box")).await;
    let inst = instance_json(&fake, "n1-box");
    let acc = &inst["guestAccelerators"][0];
    assert!(acc["acceleratorType"]
        .as_str()
        .is_some_and(|t| t.ends_with("/acceleratorTypes/nvidia-tesla-t4")));
    assert_eq!(acc["acceleratorCount"], 1);
    assert_eq!(inst["scheduling"]["onHostMaintenance"], "TERMINATE");
    assert_eq!(inst["scheduling"]["automaticRestart"], true);

    // The fake, like Compute Engine, refuses guestAccelerators on A2: that the
    // create succeeds shows none were sent. (A GET lists the built-in A100
    // there, as the real API does.)
    let a2 = create(&cloud, &a2_spec("a2-box")).await;
    let inst = instance_json(&fake, "a2-box");
    assert_eq!(inst["scheduling"]["onHostMaintenance"], "TERMINATE");
    assert_eq!(a2.instance_type, "a2-highgpu-1g");

    // An update of an A2 does not touch its built-in GPUs (no stop, no
    // setMachineResources).
    let mut s = a2_spec("a2-box");
    s.auto_stop_idle_minutes = 90;
    let a2 = cloud
        .update_workstation(&a2, &s, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("update a2: {e}"));
    assert_eq!(a2.auto_stop_idle_minutes, 90);
    assert_eq!(a2.state, MachineState::Running);
    assert_eq!(fake.calls("instances.stop"), 0);
    assert_eq!(fake.calls("instances.setMachineResources"), 0);

    delete(&cloud, &n1).await;
    delete(&cloud, &a2).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn switching_between_attached_and_built_in_gpus() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let n1 = create(&cloud, &spec("switch")).await;
    // N1 + T4 → G2 (L4 built in): detach the T4 first, then change the type.
    let g2 = cloud
        .update_workstation(&n1, &g2_spec("switch"), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("to g2: {e}"));
    assert_eq!(g2.instance_type, "g2-standard-8");
    assert_eq!(g2.state, MachineState::Running);
    let methods = fake.methods();
    let detach = methods
        .iter()
        .position(|m| m == "instances.setMachineResources");
    let retype = methods.iter().position(|m| m == "instances.setMachineType");
    assert!(
        matches!((detach, retype), (Some(d), Some(r)) if d < r),
        "{methods:?}"
    );
    // And back: type first, then attach the T4.
    fake.clear_requests();
    let back = cloud
        .update_workstation(&g2, &spec("switch"), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("to n1: {e}"));
    assert_eq!(back.instance_type, "n1-standard-8");
    let inst = instance_json(&fake, "switch");
    assert!(inst["guestAccelerators"][0]["acceleratorType"]
        .as_str()
        .is_some_and(|t| t.ends_with("/nvidia-tesla-t4")));
    delete(&cloud, &back).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn spot_scheduling_fields() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = a2_spec("spot-box");
    s.spot = true;
    let obs = create(&cloud, &s).await;
    assert!(obs.spot);
    let sched = &instance_json(&fake, "spot-box")["scheduling"];
    assert_eq!(sched["provisioningModel"], "SPOT");
    assert_eq!(sched["instanceTerminationAction"], "STOP");
    assert_eq!(sched["automaticRestart"], false);
    assert_eq!(sched["onHostMaintenance"], "TERMINATE");
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn async_quota_failure_is_a_clear_error_and_leaves_nothing() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    fake.fail_next_operation("instances.insert", "QUOTA_EXCEEDED", "");
    let mut s = spec("quota-box");
    s.data_disk_gb = 20;
    let failure = match cloud
        .create_workstation(&s, &CancellationToken::new())
        .await
    {
        Ok(o) => panic!("create must fail, got {o:?}"),
        Err(f) => f,
    };
    assert_eq!(failure.error.kind, ErrorKind::Quota, "{}", failure.error);
    assert_eq!(failure.error.code.as_deref(), Some("QUOTA_EXCEEDED"));
    assert!(!failure.error.message.is_empty());
    assert!(failure.leftovers.is_empty(), "{:?}", failure.leftovers);
    assert!(failure.undo_errors.is_empty(), "{:?}", failure.undo_errors);
    assert!(fake.is_empty(), "left behind: {:?}", fake.requests());
}

#[tokio::test]
async fn async_stockout_is_a_capacity_error() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    fake.fail_next_operation("instances.insert", "ZONE_RESOURCE_POOL_EXHAUSTED", "");
    let failure = match cloud
        .create_workstation(&a2_spec("stockout"), &CancellationToken::new())
        .await
    {
        Ok(o) => panic!("create must fail, got {o:?}"),
        Err(f) => f,
    };
    assert_eq!(failure.error.kind, ErrorKind::Capacity, "{}", failure.error);
    assert_eq!(
        failure.error.code.as_deref(),
        Some("ZONE_RESOURCE_POOL_EXHAUSTED")
    );
    assert!(failure
        .error
        .message
        .contains("a2-highgpu-1g in us-central1-a"));
    assert!(failure.leftovers.is_empty());
    assert!(fake.is_empty());
}

#[tokio::test]
async fn sync_429_is_retried_with_the_same_request_id() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    fake.fail_next_request("instances.insert", 429);
    let obs = create(&cloud, &spec("retry-box")).await;
    assert_eq!(fake.calls("instances.insert"), 2);
    assert_eq!(fake.instances().len(), 1);
    let ids: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/instances?"))
        .filter_map(|r| {
            r.split(['?', '&'])
                .find_map(|p| p.strip_prefix("requestId="))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 2, "{:?}", fake.requests());
    assert_eq!(ids[0], ids[1], "a retry must reuse the requestId");
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn ipv6_ranges_get_their_own_rule() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = spec("dual");
    s.allowed_cidrs = vec![net("203.0.113.0/24"), net("2001:db8::/32")];
    let obs = create(&cloud, &s).await;
    assert_eq!(firewall_names(&fake), vec!["aienv-dual", "aienv-dual-v6"]);
    assert_eq!(
        obs.allowed_cidrs,
        vec![net("203.0.113.0/24"), net("2001:db8::/32")]
    );
    // Dropping the IPv6 range deletes its rule.
    let mut v4 = s.clone();
    v4.allowed_cidrs = vec![net("203.0.113.0/24")];
    let obs = cloud
        .update_workstation(&obs, &v4, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(firewall_names(&fake), vec!["aienv-dual"]);
    assert_eq!(obs.allowed_cidrs, vec![net("203.0.113.0/24")]);
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn sync_5xx_is_retried() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    fake.fail_requests("firewalls.insert", 503, 2);
    fake.fail_next_request("zoneOperations.get", 500);
    let obs = create(&cloud, &spec("flaky")).await;
    assert_eq!(fake.calls("firewalls.insert"), 3);
    assert_eq!(firewall_names(&fake), vec!["aienv-flaky"]);
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn bad_credentials_fail_on_first_use_not_at_configure() {
    let fake = fake().await;
    let cloud = GcpCloud::new(GcpConfig {
        project: Some(PROJECT.into()),
        region: Some(REGION.into()),
        zone: None,
        credentials: Some(r#"{"type": "service_account", "private_key": "SECRET"#.into()),
        endpoint: Some(fake.endpoint()),
    })
    .await
    .unwrap_or_else(|e| panic!("configure must not fail: {e}"));
    let e = cloud.resolve_image(REGION, "ubuntu").await.err();
    let Some(e) = e else {
        panic!("unusable credentials must fail");
    };
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.message.contains("SECRET"));
    assert!(!format!("{cloud:?}").contains("SECRET"));
    assert_eq!(fake.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn operations_are_polled_until_done() {
    let fake = FakeGce::start().await;
    fake.set_operation_polls(3);
    let cloud = cloud(&fake).await;
    let mut s = spec("polls");
    s.allowed_cidrs = vec![];
    let obs = create(&cloud, &s).await;
    assert!(fake.calls("zoneOperations.get") >= 3);
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn no_allowed_cidrs_means_no_firewall_rule() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = spec("closed");
    s.allowed_cidrs = vec![];
    let obs = create(&cloud, &s).await;
    assert!(fake.firewalls().is_empty());
    assert_eq!(obs.firewall_id, None);
    assert!(obs.allowed_cidrs.is_empty());

    // Opening it later creates the rule; closing it again deletes it.
    let mut open = s.clone();
    open.allowed_cidrs = vec![net("203.0.113.0/24")];
    let obs = cloud
        .update_workstation(&obs, &open, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(firewall_names(&fake), vec!["aienv-closed"]);
    assert_eq!(obs.allowed_cidrs, vec![net("203.0.113.0/24")]);
    let obs = cloud
        .update_workstation(&obs, &s, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("close: {e}"));
    assert!(fake.firewalls().is_empty());
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn created_stopped_and_without_public_ip() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = spec("quiet");
    s.running = false;
    s.public_ip = false;
    let obs = create(&cloud, &s).await;
    assert_eq!(obs.state, MachineState::Stopped);
    assert!(!obs.has_public_ip);
    assert_eq!(obs.public_ip, None);
    let inst = instance_json(&fake, "quiet");
    assert_eq!(inst["status"], "TERMINATED");
    assert!(inst["networkInterfaces"][0]
        .get("accessConfigs")
        .and_then(|a| a.as_array())
        .is_none_or(|a| a.is_empty()));
    delete(&cloud, &obs).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn drift_shows_in_read() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let obs = create(&cloud, &spec("drifty")).await;

    assert!(fake.set_instance_labels_out_of_band(
        "drifty",
        &[
            ("aienv-name", "drifty"),
            ("aienv-kind", "workstation"),
            ("team", "changed"),
        ],
    ));
    assert!(fake.patch_firewall_out_of_band(
        "aienv-drifty",
        serde_json::json!({"sourceRanges": ["0.0.0.0/0"]}),
    ));
    assert!(fake.stop_instance_out_of_band("drifty"));
    let now = read(&cloud, &obs.locator).await;
    assert_eq!(now.tags, map(&[("team", "changed")]));
    assert_eq!(now.allowed_cidrs, vec![net("0.0.0.0/0")]);
    assert_eq!(now.state, MachineState::Stopped);

    // An update repairs it.
    let fixed = cloud
        .update_workstation(&now, &spec("drifty"), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(fixed.tags, spec("drifty").tags);
    assert_eq!(fixed.allowed_cidrs, vec![net("203.0.113.0/24")]);
    assert_eq!(fixed.state, MachineState::Running);

    // Deleted out of band: read says gone.
    assert!(fake.delete_instance_out_of_band("drifty"));
    assert_eq!(cloud.read_workstation(&obs.locator).await.ok(), Some(None));
    delete(&cloud, &fixed).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn import_ids_and_bad_locators() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let obs = create(&cloud, &spec("importme")).await;
    // hashicorp/google's id format reads the same workstation.
    let by_path = read(&cloud, &obs.instance_id).await;
    assert_eq!(by_path, obs);
    for bad in ["us-east-1/i-0123456789abcdef0", "nope", "p/zone/Box"] {
        let e = cloud.read_workstation(bad).await.err().map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::InvalidInput), "{bad}");
    }
    assert_eq!(
        cloud
            .read_workstation(&format!("{PROJECT}/us-central1-a/nothing-here"))
            .await
            .ok(),
        Some(None)
    );
    delete(&cloud, &obs).await;
}

#[tokio::test]
async fn zone_choice() {
    let fake = fake().await;
    // The provider zone wins when it is in the region and offers the shape.
    let cloud = cloud_with(&fake, Some("us-central1-f")).await;
    let n1 = create(&cloud, &spec("in-f")).await;
    assert_eq!(n1.zone, "us-central1-f");
    // us-central1-f has no L4: the first zone (by name) that has one.
    let g2 = create(&cloud, &g2_spec("not-in-f")).await;
    assert_eq!(g2.zone, "us-central1-a");
    // An explicit zone that lacks the shape is refused before anything exists.
    let mut s = g2_spec("wrong-zone");
    s.zone = Some("us-central1-f".into());
    let failure = cloud
        .create_workstation(&s, &CancellationToken::new())
        .await
        .err();
    assert_eq!(
        failure.map(|f| (f.error.kind, f.leftovers.is_empty())),
        Some((ErrorKind::InvalidInput, true))
    );
    assert_eq!(cloud.default_region().as_deref(), Some(REGION));
    delete(&cloud, &n1).await;
    delete(&cloud, &g2).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn subnet_id_in_either_spelling() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let link = fake.create_subnetwork(PROJECT, REGION, "ml-net", "ml-subnet", "10.20.0.0/24");
    let mut s = spec("on-subnet");
    s.subnet_id = Some(link.clone());
    let obs = create(&cloud, &s).await;
    // Reported as the user wrote it.
    assert_eq!(obs.subnet_id.as_deref(), Some(link.as_str()));
    let rule = fake
        .firewalls()
        .into_iter()
        .find(|f| f["name"] == "aienv-on-subnet")
        .unwrap_or_else(|| panic!("no rule"));
    assert!(rule["network"]
        .as_str()
        .is_some_and(|n| n.ends_with("/global/networks/ml-net")));
    delete(&cloud, &obs).await;

    let mut s = spec("on-path");
    s.subnet_id = Some(format!(
        "projects/{PROJECT}/regions/{REGION}/subnetworks/ml-subnet"
    ));
    let obs = create(&cloud, &s).await;
    assert_eq!(obs.subnet_id, s.subnet_id);
    delete(&cloud, &obs).await;

    let mut s = spec("other-region");
    s.subnet_id = Some(format!(
        "projects/{PROJECT}/regions/us-east1/subnetworks/ml-subnet"
    ));
    let e = cloud
        .create_workstation(&s, &CancellationToken::new())
        .await
        .err()
        .map(|f| f.error.kind);
    assert_eq!(e, Some(ErrorKind::InvalidInput));
    assert!(fake.is_empty());
}

#[tokio::test]
async fn orphans_of_an_earlier_workstation_are_swept() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let obs = create(&cloud, &spec("phoenix")).await;
    // The instance disappears; its firewall rule stays behind.
    assert!(fake.delete_instance_out_of_band("phoenix"));
    assert_eq!(firewall_names(&fake), vec!["aienv-phoenix"]);
    let again = create(&cloud, &spec("phoenix")).await;
    assert_eq!(again.name, obs.name);
    assert_eq!(firewall_names(&fake), vec!["aienv-phoenix"]);
    delete(&cloud, &again).await;
    assert!(fake.is_empty());
}

#[tokio::test]
async fn leftovers_are_deleted() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let mut s = spec("left");
    s.data_disk_gb = 10;
    let obs = create(&cloud, &s).await;
    let leftovers = Leftovers {
        instance_id: Some(obs.instance_id.clone()),
        firewall_id: obs.firewall_id.clone(),
        ssh_key_name: None,
        data_disk_id: obs.data_disk_id.clone(),
    };
    cloud
        .delete_leftovers(REGION, &leftovers, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("delete_leftovers: {e}"));
    assert!(fake.is_empty());
}

#[tokio::test]
async fn image_aliases_resolve_to_family_images() {
    let fake = fake().await;
    let cloud = cloud(&fake).await;
    let ubuntu = cloud
        .resolve_image(REGION, "ubuntu")
        .await
        .unwrap_or_else(|e| panic!("ubuntu: {e}"));
    assert!(ubuntu
        .id
        .starts_with("projects/ubuntu-os-cloud/global/images/ubuntu-2204"));
    assert_eq!(ubuntu.ssh_user, "ubuntu");
    let raw = cloud
        .resolve_image(REGION, UBUNTU_IMAGE)
        .await
        .unwrap_or_else(|e| panic!("raw: {e}"));
    assert_eq!(raw.id, UBUNTU_IMAGE);
    let e = cloud
        .resolve_image(
            REGION,
            "projects/ubuntu-os-cloud/global/images/no-such-image",
        )
        .await
        .err()
        .map(|e| e.kind);
    assert_eq!(e, Some(ErrorKind::NotFound));
    let e = cloud
        .resolve_image(REGION, "ami-0123")
        .await
        .err()
        .map(|e| e.kind);
    assert_eq!(e, Some(ErrorKind::InvalidInput));
    for (alias, project, family) in IMAGE_FAMILIES {
        let img = cloud
            .resolve_image(REGION, alias)
            .await
            .unwrap_or_else(|e| panic!("{alias} ({project}/{family}): {e}"));
        assert!(
            img.id
                .starts_with(&format!("projects/{project}/global/images/")),
            "{alias}: {}",
            img.id
        );
        assert_eq!(img.ssh_user, "ubuntu", "{alias}");
    }
}

#[tokio::test]
async fn cancelled_create_is_undone() {
    let fake = std::sync::Arc::new(FakeGce::start().await);
    // Operations do not finish while the create waits, so it is cancelled
    // mid-wait; then they finish again, for the undo.
    fake.set_operation_polls(1000);
    let cloud = cloud(&fake).await;
    let cancel = CancellationToken::new();
    let (c2, f2) = (cancel.clone(), fake.clone());
    let timer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        c2.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        f2.set_operation_polls(0);
    });
    let failure = cloud
        .create_workstation(&spec("cancelled"), &cancel)
        .await
        .err();
    let _ = timer.await;
    let Some(failure) = failure else {
        panic!("a cancelled create must fail");
    };
    assert_eq!(
        failure.error.kind,
        ErrorKind::Cancelled,
        "{}",
        failure.error
    );
    assert!(failure.leftovers.is_empty(), "{:?}", failure.leftovers);
    assert!(fake.is_empty(), "left behind: {:?}", fake.requests());
}
