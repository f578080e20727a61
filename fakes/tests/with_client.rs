//! Drives the fake with the real `google-cloud-compute-v1` client, the one the
//! gcp backend uses: if the client can parse every answer and sees the same
//! errors it would see from Google, the fake is faithful where it matters.

use std::time::Duration;

use aienv_fakes::gce::FakeGce;
use google_cloud_compute_v1::client::{Firewalls, GlobalOperations, Instances, ZoneOperations};
use google_cloud_compute_v1::model::{
    self, AcceleratorConfig, AccessConfig, AttachedDisk, AttachedDiskInitializeParams, Instance,
    InstancesSetLabelsRequest, InstancesSetMachineTypeRequest, NetworkInterface, Scheduling,
};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;

const PROJECT: &str = "aienv-test";
const ZONE: &str = "us-central1-a";

fn creds() -> google_cloud_auth::credentials::Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}

async fn instances(fake: &FakeGce) -> Instances {
    Instances::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds())
        // Pollers wait 1s between polls by default; the fake is instant.
        .with_polling_backoff_policy(
            ExponentialBackoffBuilder::new()
                .with_initial_delay(Duration::from_millis(5))
                .with_maximum_delay(Duration::from_millis(20))
                .build()
                .expect("valid backoff"),
        )
        .build()
        .await
        .expect("instances client")
}

async fn zone_ops(fake: &FakeGce) -> ZoneOperations {
    ZoneOperations::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds())
        .build()
        .await
        .expect("zone operations client")
}

/// Polls a zonal operation the way the backend does, recording each status.
async fn wait_zone_op(
    ops: &ZoneOperations,
    op: &model::Operation,
) -> (model::Operation, Vec<String>) {
    let name = op.name.clone().expect("operation name");
    let mut seen = vec![format!("{:?}", op.status)];
    for _ in 0..20 {
        let cur = ops
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_operation(name.clone())
            .send()
            .await
            .expect("zoneOperations.get");
        seen.push(format!("{:?}", cur.status));
        if cur.status == Some(model::operation::Status::Done) {
            return (cur, seen);
        }
    }
    panic!("operation {name} never finished: {seen:?}");
}

fn workstation(name: &str, machine: &str) -> Instance {
    Instance::new()
        .set_name(name)
        .set_machine_type(format!("zones/{ZONE}/machineTypes/{machine}"))
        .set_labels([("aienv-id", name)])
        .set_disks([AttachedDisk::new()
            .set_boot(true)
            .set_auto_delete(true)
            .set_initialize_params(
                AttachedDiskInitializeParams::new()
                    .set_source_image(
                        "projects/deeplearning-platform-release/global/images/family/pytorch-latest-cu121-debian-11",
                    )
                    .set_disk_size_gb(100)
                    .set_disk_type(format!("zones/{ZONE}/diskTypes/pd-balanced")),
            )])
        .set_network_interfaces([NetworkInterface::new()
            .set_network("global/networks/default")
            .set_access_configs([AccessConfig::new().set_name("External NAT")])])
}

fn t4() -> AcceleratorConfig {
    AcceleratorConfig::new()
        .set_accelerator_type(format!(
            "projects/{PROJECT}/zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4"
        ))
        .set_accelerator_count(1)
}

fn terminate() -> Scheduling {
    Scheduling::new().set_on_host_maintenance(model::scheduling::OnHostMaintenance::Terminate)
}

async fn get(client: &Instances, name: &str) -> Instance {
    client
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance(name)
        .send()
        .await
        .expect("instances.get")
}

#[tokio::test]
async fn full_lifecycle_with_the_real_client() {
    let fake = FakeGce::start().await;
    let client = instances(&fake).await;
    let ops = zone_ops(&fake).await;

    // insert → PENDING, then RUNNING, then DONE over polls.
    let body = workstation("ws-1", "n1-standard-8")
        .set_guest_accelerators([t4()])
        .set_scheduling(terminate());
    let op = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_request_id("6f1c7c1e-1f7a-4c1e-9c55-3f8d2a0b9e11")
        .set_body(body.clone())
        .send()
        .await
        .expect("instances.insert");
    assert_eq!(op.status, Some(model::operation::Status::Pending));
    assert_eq!(op.operation_type.as_deref(), Some("insert"));
    assert!(op
        .target_link
        .as_deref()
        .unwrap()
        .ends_with("/zones/us-central1-a/instances/ws-1"));
    assert!(op.target_id.is_some());

    // A retried insert with the same requestId returns the same operation.
    let again = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_request_id("6f1c7c1e-1f7a-4c1e-9c55-3f8d2a0b9e11")
        .set_body(body)
        .send()
        .await
        .expect("retried insert");
    assert_eq!(again.name, op.name);

    let (done, seen) = wait_zone_op(&ops, &op).await;
    assert!(done.error.is_none(), "{done:?}");
    assert_eq!(seen.first().map(String::as_str), Some("Some(Pending)"));
    assert!(seen.iter().any(|s| s == "Some(Running)"), "{seen:?}");
    assert_eq!(fake.calls("instances.insert"), 2);
    assert_eq!(fake.instances().len(), 1);

    let inst = get(&client, "ws-1").await;
    assert_eq!(inst.status, Some(model::instance::Status::Running));
    assert!(inst.id.is_some());
    assert!(inst
        .machine_type
        .as_deref()
        .unwrap()
        .ends_with("/machineTypes/n1-standard-8"));
    assert_eq!(inst.guest_accelerators.len(), 1);
    assert_eq!(
        inst.labels.get("aienv-id").map(String::as_str),
        Some("ws-1")
    );
    let nic = &inst.network_interfaces[0];
    assert!(nic.network_ip.is_some());
    assert!(nic.access_configs[0].nat_ip.is_some());
    assert_eq!(inst.disks[0].disk_size_gb, Some(100));
    assert_eq!(inst.disks[0].boot, Some(true));

    // setMachineType needs a stopped instance: the real error first.
    let err = client
        .set_machine_type()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .set_body(
            InstancesSetMachineTypeRequest::new()
                .set_machine_type(format!("zones/{ZONE}/machineTypes/n1-standard-16")),
        )
        .send()
        .await
        .expect_err("running instance");
    assert_eq!(err.http_status_code(), Some(400));
    assert!(err
        .status()
        .unwrap()
        .message
        .contains("Instance should be in the STOPPED state"));

    // stop → TERMINATED, external IP released.
    let op = client
        .stop()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .send()
        .await
        .expect("stop");
    assert_eq!(
        get(&client, "ws-1").await.status,
        Some(model::instance::Status::Stopping)
    );
    let (done, _) = wait_zone_op(&ops, &op).await;
    assert!(done.error.is_none());
    let stopped = get(&client, "ws-1").await;
    assert_eq!(stopped.status, Some(model::instance::Status::Terminated));
    assert!(stopped.network_interfaces[0].access_configs[0]
        .nat_ip
        .is_none());

    // setMachineType while TERMINATED.
    let op = client
        .set_machine_type()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .set_body(
            InstancesSetMachineTypeRequest::new()
                .set_machine_type(format!("zones/{ZONE}/machineTypes/n1-standard-16")),
        )
        .send()
        .await
        .expect("setMachineType");
    wait_zone_op(&ops, &op).await;
    assert!(get(&client, "ws-1")
        .await
        .machine_type
        .unwrap()
        .ends_with("/n1-standard-16"));

    // start → RUNNING again with a new external IP.
    let op = client
        .start()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .send()
        .await
        .expect("start");
    let (done, _) = wait_zone_op(&ops, &op).await;
    assert!(done.error.is_none());
    let running = get(&client, "ws-1").await;
    assert_eq!(running.status, Some(model::instance::Status::Running));
    assert!(running.network_interfaces[0].access_configs[0]
        .nat_ip
        .is_some());

    // setLabels: a stale fingerprint is a 412, the current one works.
    let stale = client
        .set_labels()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .set_body(
            InstancesSetLabelsRequest::new()
                .set_labels([("owner", "team-a")])
                .set_label_fingerprint(bytes::Bytes::from_static(b"stale!!!")),
        )
        .send()
        .await
        .expect_err("stale fingerprint");
    assert_eq!(stale.http_status_code(), Some(412));
    let fp = running
        .label_fingerprint
        .clone()
        .expect("label fingerprint");
    let op = client
        .set_labels()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .set_body(
            InstancesSetLabelsRequest::new()
                .set_labels([("aienv-id", "ws-1"), ("owner", "team-a")])
                .set_label_fingerprint(fp.clone()),
        )
        .send()
        .await
        .expect("setLabels");
    wait_zone_op(&ops, &op).await;
    let labelled = get(&client, "ws-1").await;
    assert_eq!(
        labelled.labels.get("owner").map(String::as_str),
        Some("team-a")
    );
    assert_ne!(labelled.label_fingerprint, Some(fp));

    // A filtered list, as the backend finds its instance by label.
    let page = client
        .list()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_filter("labels.aienv-id = \"ws-1\"")
        .send()
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);

    // aggregatedList by name, as the backend looks for orphans: every zone is
    // a scope, the empty ones carry the NO_RESULTS_ON_PAGE warning.
    let agg = client
        .aggregated_list()
        .set_project(PROJECT)
        .set_filter("name = \"ws-1\"")
        .send()
        .await
        .expect("aggregatedList");
    let found: Vec<&str> = agg
        .items
        .values()
        .flat_map(|scoped| scoped.instances.iter())
        .filter_map(|i| i.name.as_deref())
        .collect();
    assert_eq!(found, vec!["ws-1"]);
    assert!(agg.items["zones/us-east1-b"].warning.is_some());

    // delete → gone, boot disk (auto-delete) with it.
    let op = client
        .delete()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .send()
        .await
        .expect("delete");
    wait_zone_op(&ops, &op).await;
    let gone = client
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("ws-1")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(gone.http_status_code(), Some(404));
    assert_eq!(
        gone.status().unwrap().code,
        google_cloud_gax::error::rpc::Code::NotFound
    );
    assert!(fake.is_empty());
}

#[tokio::test]
async fn async_quota_failure_shows_in_the_done_operation() {
    let fake = FakeGce::start().await;
    let client = instances(&fake).await;
    let ops = zone_ops(&fake).await;
    fake.fail_next_operation(
        "insert",
        "QUOTA_EXCEEDED",
        "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
    );

    let body = workstation("ws-q", "n1-standard-8")
        .set_guest_accelerators([t4()])
        .set_scheduling(terminate());
    let op = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(body)
        .send()
        .await
        .expect("the HTTP call itself succeeds");
    let (done, _) = wait_zone_op(&ops, &op).await;
    let err = done.error.expect("operation error");
    assert_eq!(err.errors[0].code.as_deref(), Some("QUOTA_EXCEEDED"));
    assert!(err.errors[0]
        .message
        .as_deref()
        .unwrap()
        .contains("NVIDIA_T4_GPUS"));
    assert_eq!(done.http_error_status_code, Some(403));
    assert_eq!(done.http_error_message.as_deref(), Some("FORBIDDEN"));
    assert!(fake.is_empty(), "a failed insert leaves nothing behind");

    // The client's own poller returns Ok for an operation that ended DONE
    // with an error: the caller must look at `error` itself.
    use google_cloud_lro::Poller as _;
    fake.fail_next_operation("insert", "ZONE_RESOURCE_POOL_EXHAUSTED", "");
    let done = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(workstation("ws-z", "g2-standard-8").set_scheduling(terminate()))
        .poller()
        .until_done()
        .await
        .expect("the poller reports the finished operation");
    let err = done.error.expect("stockout in the operation");
    assert_eq!(
        err.errors[0].code.as_deref(),
        Some("ZONE_RESOURCE_POOL_EXHAUSTED")
    );
    assert!(err.errors[0]
        .message
        .as_deref()
        .unwrap()
        .contains("does not have enough resources available"));
    assert_eq!(done.http_error_status_code, Some(503));
    assert!(fake.is_empty());
}

#[tokio::test]
async fn gpu_without_terminate_and_a2_with_accelerators_are_refused() {
    let fake = FakeGce::start().await;
    let client = instances(&fake).await;

    let err = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(workstation("ws-g", "n1-standard-8").set_guest_accelerators([t4()]))
        .send()
        .await
        .expect_err("live migration with a GPU");
    assert_eq!(err.http_status_code(), Some(400));
    let status = err.status().expect("status");
    assert_eq!(
        status.code,
        google_cloud_gax::error::rpc::Code::InvalidArgument
    );
    assert_eq!(
        status.message,
        "Instances with guest accelerators do not support live migration."
    );

    let err = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(
            workstation("ws-a2", "a2-highgpu-1g")
                .set_scheduling(terminate())
                .set_guest_accelerators([AcceleratorConfig::new()
                    .set_accelerator_type(format!(
                        "zones/{ZONE}/acceleratorTypes/nvidia-tesla-a100"
                    ))
                    .set_accelerator_count(1)]),
        )
        .send()
        .await
        .expect_err("accelerators on A2");
    assert_eq!(err.http_status_code(), Some(400));
    assert!(err
        .status()
        .unwrap()
        .message
        .contains("features are not compatible"));

    // A2 without guestAccelerators but with TERMINATE is fine, and reports its
    // built-in GPU.
    fake.set_operation_polls(0);
    let op = client
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(workstation("ws-a2", "a2-highgpu-1g").set_scheduling(terminate()))
        .send()
        .await
        .expect("a2 insert");
    assert_eq!(op.status, Some(model::operation::Status::Done));
    let inst = get(&client, "ws-a2").await;
    assert!(inst.guest_accelerators[0]
        .accelerator_type
        .as_deref()
        .unwrap()
        .ends_with("/acceleratorTypes/nvidia-tesla-a100"));
    assert_eq!(fake.instances().len(), 1);
}

#[tokio::test]
async fn injected_throttling_and_global_firewall_operations() {
    let fake = FakeGce::start().await;
    let firewalls = Firewalls::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds())
        // The default retry policy would retry the 429/503 we inject.
        .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
        .build()
        .await
        .expect("firewalls client");
    let gops = GlobalOperations::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds())
        .build()
        .await
        .expect("global operations client");

    fake.fail_next_request("firewalls.insert", 429);
    let rule = model::Firewall::new()
        .set_name("ws-1-ingress")
        .set_target_tags(["aienv-ws-1"])
        .set_allowed([model::firewall::Allowed::new()
            .set_ip_protocol("tcp")
            .set_ports(["22", "8888"])]);
    let err = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(rule.clone())
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.http_status_code(), Some(429));
    assert_eq!(
        err.status().unwrap().code,
        google_cloud_gax::error::rpc::Code::ResourceExhausted
    );

    let op = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(rule)
        .send()
        .await
        .expect("insert");
    assert!(op.zone.is_none());
    let name = op.name.clone().unwrap();
    let mut done = op;
    for _ in 0..5 {
        done = gops
            .get()
            .set_project(PROJECT)
            .set_operation(name.clone())
            .send()
            .await
            .expect("globalOperations.get");
        if done.status == Some(model::operation::Status::Done) {
            break;
        }
    }
    assert_eq!(done.status, Some(model::operation::Status::Done));
    let fw = firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("ws-1-ingress")
        .send()
        .await
        .expect("get");
    // No source given on an ingress rule: the API defaults to anywhere.
    assert_eq!(fw.source_ranges, vec!["0.0.0.0/0".to_string()]);
    assert_eq!(
        fw.allowed[0].ports,
        vec!["22".to_string(), "8888".to_string()]
    );
    assert_eq!(fake.calls("firewalls.insert"), 2);
    assert_eq!(fake.firewalls().len(), 1);
}
