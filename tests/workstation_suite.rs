//! The behavior suite for `aienv_gpu_workstation`: the same scenarios, with the
//! same HCL apart from the provider block, run against every cloud's emulator
//! through the real Terraform CLI. After each scenario we ask the emulator what
//! is left.

mod support;

use support::hcl::{s, workstation, ADDR};

use support::clouds::CloudUnderTest;

/// The configuration after the first in-place update: more CIDRs, more tags.
fn updated(extra: &str) -> String {
    workstation(&format!(
        "  tags = {{ project = \"llm\", stage = \"dev\" }}\n{extra}"
    ))
    .replace(
        "allowed_cidrs  = [\"203.0.113.0/24\"]",
        "allowed_cidrs  = [\"203.0.113.0/24\", \"198.51.100.7/32\"]",
    )
}

#[track_caller]
fn assert_empty_plan(c: &dyn CloudUnderTest, why: &str) {
    let plan = c.ws().plan();
    assert_eq!(plan.exit_code, 0, "{why}: expected an empty plan: {plan:?}");
}

fn lifecycle(c: &dyn CloudUnderTest) {
    c.write(&workstation("  tags = { project = \"llm\" }"));
    c.ws().init().expect_ok();

    // The plan shows the instance type and the hourly cost before anything exists.
    let plan = c.ws().plan();
    assert!(plan.has_changes(), "{plan:?}");
    assert!(plan.stdout.contains(c.t4_type()), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains(&format!("hourly_cost_usd        = {}", c.t4_cost())),
        "{}",
        plan.stdout
    );
    let calls_before = c.api_calls();

    // Create.
    c.ws().apply().expect_ok();
    assert!(c.api_calls() > calls_before);
    let v = c.ws().resource_values(ADDR);
    assert!(s(&v, "id").starts_with(c.id_prefix()), "{v}");
    assert_eq!(s(&v, "instance_type"), c.t4_type());
    assert_eq!(s(&v, "gpu_model"), "T4");
    assert_eq!(v["gpu_count"], 1);
    assert_eq!(s(&v, "state"), "running");
    assert_eq!(v["tags_all"]["team"], "ml");
    assert_eq!(v["tags_all"]["project"], "llm");
    assert!(!s(&v, "firewall_id").is_empty(), "{v}");
    assert!(!s(&v, "data_disk_id").is_empty(), "{v}");
    let ip = s(&v, "public_ip_address").to_string();
    assert!(!ip.is_empty(), "{v}");
    assert!(s(&v, "ssh_command").ends_with(&format!("@{ip}")), "{v}");
    assert_eq!(s(&v, "jupyter_url"), format!("http://{ip}:8888"));
    assert_eq!(s(&v, "tensorboard_url"), format!("http://{ip}:6006"));
    assert_eq!(c.machine_state(&v), "running");
    let id = s(&v, "id").to_string();
    let instance_id = s(&v, "instance_id").to_string();
    assert_empty_plan(c, "after create");

    // In place: CIDRs and tags.
    c.write(&updated(""));
    let plan = c.ws().plan();
    assert!(
        plan.has_changes() && plan.stdout.contains("updated in-place"),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("must be replaced"), "{plan:?}");
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(
        s(&v, "instance_id"),
        instance_id,
        "an update must not replace"
    );
    assert_eq!(v["allowed_cidrs"][1], "198.51.100.7/32");
    assert_eq!(v["tags"]["stage"], "dev");
    assert_empty_plan(c, "after cidrs/tags update");

    // In place: instance type (stop, resize, start).
    c.write(&updated(&format!(
        "  instance_type = \"{}\"",
        c.bigger_t4_type()
    )));
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(s(&v, "instance_id"), instance_id);
    assert_eq!(s(&v, "instance_type"), c.bigger_t4_type());
    assert_eq!(c.machine_type(&v), c.bigger_t4_type());
    assert_eq!(c.machine_state(&v), "running");
    assert_empty_plan(c, "after resize");

    // running = false stops it (and back to the catalog's type), true starts it.
    c.write(&updated("  running = false"));
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(s(&v, "state"), "stopped");
    assert_eq!(s(&v, "instance_type"), c.t4_type());
    assert_eq!(c.machine_state(&v), "stopped");
    assert_empty_plan(c, "while stopped");
    c.write(&updated(""));
    let plan = c.ws().plan();
    assert!(
        plan.has_changes() && !plan.stdout.contains("must be replaced"),
        "a start, not a replacement: {plan:?}"
    );
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(c.machine_state(&v), "running");
    assert_empty_plan(c, "after start");

    // Import: forget it, import by id, and the plan is empty again.
    c.ws().state_rm(ADDR).expect_ok();
    c.ws().import(ADDR, &id).expect_ok();
    let plan = c.ws().plan();
    // `state rm` also dropped the outputs, so only they may show as new.
    assert!(
        plan.exit_code == 0
            || (plan.exit_code == 2
                && !plan
                    .stdout
                    .contains("Terraform will perform the following actions")),
        "import must give an empty plan: {plan:?}"
    );
    c.ws().apply().expect_ok();
    assert_empty_plan(c, "after import");

    // Out-of-band drift: rules revoked and a tag changed show as a diff; apply repairs.
    let v = c.ws().resource_values(ADDR);
    c.revoke_ingress_out_of_band(&v);
    c.set_tag_out_of_band(&v, "stage", "hacked");
    let plan = c.ws().plan();
    assert!(
        plan.has_changes()
            && plan.stdout.contains("allowed_cidrs")
            && plan.stdout.contains("hacked"),
        "{plan:?}"
    );
    c.ws().apply().expect_ok();
    assert_empty_plan(c, "after repairing drift");

    // Out-of-band resize: the plan shows the type going back, in place.
    let v = c.ws().resource_values(ADDR);
    c.change_type_out_of_band(&v, c.bigger_t4_type());
    let plan = c.ws().plan();
    assert!(
        plan.has_changes()
            && plan.stdout.contains(c.bigger_t4_type())
            && !plan.stdout.contains("must be replaced"),
        "{plan:?}"
    );
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(c.machine_type(&v), c.t4_type());
    assert_empty_plan(c, "after undoing the resize");

    // Out-of-band terminate: the plan proposes to create it again.
    let v = c.ws().resource_values(ADDR);
    c.terminate_out_of_band(&v);
    let plan = c.ws().plan();
    assert!(
        plan.has_changes() && plan.stdout.contains("will be created"),
        "{plan:?}"
    );

    // Creating it again also sweeps the terminated machine's orphaned parts
    // (found by their aienv-name tag/label); destroy then leaves nothing.
    c.ws().apply().expect_ok();
    c.ws().destroy().expect_ok();
    c.assert_nothing_left();
    c.assert_no_provider_process();
}

fn create_then_destroy(c: &dyn CloudUnderTest) {
    c.write(&workstation(""));
    c.ws().init().expect_ok();
    c.ws().apply().expect_ok();
    assert!(
        !c.leftovers().is_empty(),
        "the workstation exists in the emulator"
    );
    c.ws().destroy().expect_ok();
    c.assert_nothing_left();
    c.assert_no_provider_process();
}

fn bad_inputs(c: &dyn CloudUnderTest) {
    c.write(&workstation(""));
    c.ws().init().expect_ok();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad cidr",
            "allowed_cidrs = [\"10.0.0.300/8\"]",
            &["Invalid allowed_cidrs", "not a CIDR"],
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
            "gpu = \"T4:3\"",
            &["No matching GPU offering", "3 × T4"],
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
            "instance_type = \"no-such-type\"",
            &["Invalid instance_type", "no-such-type"],
        ),
        (
            "cloud not there yet",
            "cloud = \"azure\"",
            &["not supported yet"],
        ),
        (
            "auto stop too long",
            "auto_stop_idle_minutes = 20000",
            &["Invalid auto_stop_idle_minutes"],
        ),
        (
            "data disk too big",
            "data_disk_gb = 70000",
            &["Invalid data_disk_gb"],
        ),
        (
            "reserved tag",
            "tags = { \"aienv-name\" = \"x\" }",
            &["Invalid tags", "reserved"],
        ),
        // Refused by the cloud's own rules: on AWS a space in a key (instance
        // tags in metadata), on GCE `Team` colliding with the default tag `team`.
        (
            "tag the cloud refuses",
            "tags = { \"Team\" = \"x\", \"my team\" = \"y\" }",
            &["Invalid tags"],
        ),
    ];
    for (label, line, expected) in cases {
        let key = line.split('=').next().unwrap_or_default().trim();
        // Replace the default line of the same attribute rather than set it twice.
        let hcl: String = workstation(&format!("  {line}"))
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                let same_key = l.starts_with("  ")
                    && !l.starts_with("   ")
                    && t.split('=').next().map(str::trim) == Some(key);
                !(same_key && t != line.trim())
            })
            .collect::<Vec<_>>()
            .join("\n");
        c.write(&hcl);
        let before = c.api_calls();
        let plan = c.ws().plan();
        assert_eq!(
            plan.exit_code, 1,
            "{label}: expected a plan error: {plan:?}"
        );
        let text = format!("{}\n{}", plan.stdout, plan.stderr);
        for e in *expected {
            assert!(text.contains(e), "{label}: {e:?} missing in:\n{text}");
        }
        // Terraform quotes the configuration line our attribute path points at.
        assert!(
            text.contains(&format!(": {}", line.trim()))
                || text.contains(&format!(":   {}", line.trim())),
            "{label}: the error does not point at `{line}`:\n{text}"
        );
        assert_eq!(c.api_calls(), before, "{label}: a cloud API call was made");
    }
    // Jupyter open to the world is legal but warned about.
    c.write(&workstation("").replace("[\"203.0.113.0/24\"]", "[\"0.0.0.0/0\"]"));
    let plan = c.ws().plan();
    assert_eq!(plan.exit_code, 2, "{plan:?}");
    assert!(
        format!("{}{}", plan.stdout, plan.stderr).contains("Jupyter is open to the internet"),
        "{plan:?}"
    );
    c.assert_nothing_left();
}

fn failed_create_leaves_nothing(c: &dyn CloudUnderTest) {
    c.write(&workstation(""));
    c.ws().init().expect_ok();
    let code = c.fail_next_machine_create();
    let out = c.ws().apply().expect_err();
    let text = out.combined();
    assert!(text.contains(code), "{text}");
    assert!(
        c.firewall_creates() >= 1,
        "the firewall was created before the machine failed"
    );
    c.assert_nothing_left();
    let state = c.ws().state_json();
    assert!(
        state.pointer("/values/root_module/resources").is_none(),
        "nothing recorded: {state}"
    );
    c.assert_no_provider_process();
}

fn spot_machine(c: &dyn CloudUnderTest) {
    c.write(&workstation("  spot = true"));
    c.ws().init().expect_ok();
    let plan = c.ws().plan();
    assert!(
        plan.stdout
            .contains(&format!("hourly_cost_usd        = {}", c.t4_spot_cost())),
        "the plan shows the spot price: {}",
        plan.stdout
    );
    c.ws().apply().expect_ok();
    let v = c.ws().resource_values(ADDR);
    assert_eq!(v["spot"], true);
    assert!(c.machine_is_spot(&v), "{v}");
    assert_empty_plan(c, "spot after create");
    // Spot cannot be switched in place.
    c.write(&workstation("  spot = false"));
    let plan = c.ws().plan();
    assert!(plan.stdout.contains("must be replaced"), "{plan:?}");
    let out = c.ws().apply().expect_ok();
    assert!(
        out.stdout.contains("1 added, 0 changed, 1 destroyed"),
        "{out:?}"
    );
    let after = c.ws().resource_values(ADDR);
    assert_eq!(after["spot"], false);
    assert!(!c.machine_is_spot(&after));
    assert_empty_plan(c, "after the replacement");
    c.ws().destroy().expect_ok();
    c.assert_nothing_left();
}

macro_rules! suite {
    ($cloud:ident, $make:expr) => {
        mod $cloud {
            use super::*;

            #[test]
            fn full_lifecycle() {
                lifecycle(&$make);
            }

            #[test]
            fn create_then_destroy_leaves_nothing() {
                create_then_destroy(&$make);
            }

            #[test]
            fn bad_inputs_fail_at_plan_naming_the_attribute_without_any_cloud_call() {
                bad_inputs(&$make);
            }

            #[test]
            fn spot_uses_spot_capacity_and_price() {
                spot_machine(&$make);
            }

            #[test]
            fn failed_machine_create_leaves_nothing_behind() {
                failed_create_leaves_nothing(&$make);
            }
        }
    };
}

suite!(aws, support::clouds::Aws::new());
suite!(gcp, support::clouds::Gcp::new());
