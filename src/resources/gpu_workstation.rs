//! Resource `aienv_gpu_workstation`: one GPU VM for development. Schema, plan
//! rules (all validation and resolution happen here, before anything is
//! created), and CRUD that hands cloud-neutral specs to a `Cloud` backend.

use std::collections::BTreeMap;

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::validate;
use crate::catalog::{catalog, GpuSpec, Resolution};
use crate::cloud::{CloudError, ErrorKind};
use crate::provider::Clients;
use crate::spec::{
    CloudKind, Leftovers, MachineState, ObservedWorkstation, WorkstationSpec, IMAGE_ALIASES,
};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::server::{ApplyRequest, PlanRequest, PlanResponse, StateResponse};
use crate::tfplugin::value::Number;
use crate::tfplugin::{Diagnostic, Diagnostics, PathStep, Type, Value};

pub const TYPE_NAME: &str = "aienv_gpu_workstation";
pub const SCHEMA_VERSION: i64 = 0;

const DEFAULT_IMAGE: &str = "pytorch";
const DEFAULT_ROOT_DISK_GB: u32 = 200;
const DEFAULT_PORTS: [u16; 3] = [22, 8888, 6006];
const JUPYTER_PORT: u16 = 8888;
const TENSORBOARD_PORT: u16 = 6006;

/// Bookkeeping tags: the user's own spelling of inputs the cloud cannot report
/// back, so `terraform import` reproduces the configuration exactly.
pub const META_GPU: &str = "aienv-gpu";
pub const META_IMAGE: &str = "aienv-image";
pub const META_SSH_KEY: &str = "aienv-ssh-public-key";
/// The user's order of `ports` and `allowed_cidrs`: clouds keep rules unordered.
pub const META_PORTS: &str = "aienv-ports";
pub const META_CIDRS: &str = "aienv-cidrs";
/// Longest bookkeeping value every cloud stores (AWS tag values: 256).
const META_MAX_LEN: usize = 256;

fn list_of(t: Type) -> Type {
    Type::List(Box::new(t))
}

pub fn schema() -> Schema {
    let s = || Type::String;
    Schema {
        version: SCHEMA_VERSION,
        block: Block {
            description: "A GPU machine for development: a deep-learning image, disks, SSH/Jupyter/TensorBoard \
reachable only from `allowed_cidrs`, optional spot pricing, stop/start and auto-stop when idle. The instance type \
and hourly cost are chosen from `gpu` and shown in the plan."
                .into(),
            attributes: vec![
                Attribute::computed("id", s(), "`aws/<region>/<instance id>` or `gcp/<project>/<zone>/<name>`; `terraform import` takes the same string."),
                Attribute::required("name", s(), "Name of the workstation and of its cloud objects: lowercase letters, digits and hyphens, 2–40 characters, starting with a letter.").forces_replacement(),
                Attribute::optional_computed("cloud", s(), "`aws`, `gcp` or `azure`. Defaults to the provider's `default_cloud`.").forces_replacement(),
                Attribute::required("gpu", s(), "GPU model and count, `MODEL` or `MODEL:COUNT` (case-insensitive), e.g. `T4`, `A10G:4`, `A100-80GB:8`. Resolves to the cheapest instance type with exactly that GPU in the region. Changing it resizes in place (stop, resize, start)."),
                Attribute::optional_computed("instance_type", s(), "Instance type; chosen from `gpu` when not set. When set, it must carry exactly the `gpu`. Changes in place (stop, resize, start)."),
                Attribute::optional_computed("region", s(), "Region. Defaults to the provider's region for the cloud.").forces_replacement(),
                Attribute::optional_computed("zone", s(), "Zone. Defaults to the zone of `subnet_id` (AWS) or the provider's zone (Google Cloud), else the first zone of the region offering the instance type. Setting a different zone replaces the machine."),
                Attribute::optional_computed("image", s(), "`pytorch`, `tensorflow` or `cuda` (the newest matching deep-learning image with NVIDIA drivers), `ubuntu` (plain Ubuntu 22.04, no drivers), or a raw image id. Aliases resolve at plan for new machines; an existing machine keeps its image.").forces_replacement().default(DEFAULT_IMAGE),
                Attribute::optional_computed("root_disk_gb", Type::Number, "Root disk size in GB, 30–16384. Grows in place; shrinking replaces.").default("200"),
                Attribute::optional_computed("data_disk_gb", Type::Number, "Extra data disk in GB, 0–65536 (0 = none). Added or grown in place; removing or shrinking replaces.").default("0"),
                Attribute::optional_computed("spot", Type::Bool, "Use spot capacity (cheaper, can be interrupted; an interrupted machine stops).").forces_replacement().default("false"),
                Attribute::optional_computed("running", Type::Bool, "Whether the machine runs. `false` stops it: a stopped machine costs only its disks.").default("true"),
                Attribute::optional_computed("public_ip", Type::Bool, "Give the machine a public IP address.").forces_replacement().default("true"),
                Attribute::optional_computed("allowed_cidrs", list_of(s()), "IPv4/IPv6 CIDR blocks allowed to reach `ports`. Empty: no inbound access.").default("[]"),
                Attribute::optional_computed("ports", list_of(Type::Number), "TCP ports opened to `allowed_cidrs`, each 1–65535, unique.").default("[22, 8888, 6006]"),
                Attribute::optional("ssh_public_key", s(), "OpenSSH public key installed for the login user.").forces_replacement(),
                Attribute::optional_computed("subnet_id", s(), "Existing subnet to place the machine in: `aws_subnet.x.id` on AWS; a `google_compute_subnetwork` self link or `projects/P/regions/R/subnetworks/S` on Google Cloud. Defaults to the default network's subnet. Setting a different subnet replaces the machine."),
                Attribute::optional_computed("auto_stop_idle_minutes", Type::Number, "Stop the machine after this many idle minutes (no GPU use, no login, no Jupyter kernel), 0–10080; 0 = off. Changes in place without a restart.").default("0"),
                Attribute::optional("user_data", s(), "Shell script run once as root on the first boot, after the provider's bootstrap.").forces_replacement(),
                Attribute::optional("tags", Type::Map(Box::new(s())), "Tags for the machine and its parts: AWS tags; on Google Cloud labels (sanitised to label rules, the original spelling kept in instance metadata)."),
                Attribute::computed("tags_all", Type::Map(Box::new(s())), "`tags` merged over the provider's `default_tags`."),
                Attribute::computed("instance_id", s(), "The cloud's instance id."),
                Attribute::computed("image_id", s(), "The resolved image id."),
                Attribute::computed("public_ip_address", s(), "Public IP address (null without `public_ip` or while stopped)."),
                Attribute::computed("private_ip", s(), "Private IP address."),
                Attribute::computed("firewall_id", s(), "The firewall guarding the machine: the AWS security group id (rules added to it by other tools are left alone), or the Google Cloud firewall rule path (null while `allowed_cidrs` is empty: no rule, no ingress)."),
                Attribute::computed("data_disk_id", s(), "The data disk's id, if any."),
                Attribute::computed("ssh_key_name", s(), "The cloud key pair created from `ssh_public_key`, if any."),
                Attribute::computed("gpu_model", s(), "GPU model, e.g. `A100-80GB`."),
                Attribute::computed("gpu_count", Type::Number, "Number of GPUs."),
                Attribute::computed("gpu_memory_gb", Type::Number, "Memory per GPU in GB."),
                Attribute::computed("hourly_cost_usd", Type::Number, "Catalog price per hour in USD while running (spot price when `spot = true`)."),
                Attribute::computed("ssh_user", s(), "Login user of the image."),
                Attribute::computed("ssh_command", s(), "`ssh <user>@<address>` for the machine (public address, else private); null unless port 22 is in `ports`."),
                Attribute::computed("jupyter_url", s(), "Jupyter URL, when port 8888 is open and there is a public IP."),
                Attribute::computed("tensorboard_url", s(), "TensorBoard URL, when port 6006 is open and there is a public IP."),
                Attribute::computed("state", s(), "Machine state: `pending`, `running`, `stopping`, `stopped`."),
            ],
            blocks: vec![],
        },
    }
}

fn at(name: &str) -> Vec<PathStep> {
    vec![PathStep::Attr(name.to_string())]
}

/// Parsed configuration. `None` means null or not known yet.
#[derive(Debug, Default, Clone)]
struct Input {
    name: Option<String>,
    cloud: Option<CloudKind>,
    gpu: Option<GpuSpec>,
    instance_type: Option<String>,
    region: Option<String>,
    zone: Option<String>,
    image: Option<String>,
    root_disk_gb: Option<u32>,
    data_disk_gb: Option<u32>,
    spot: Option<bool>,
    running: Option<bool>,
    public_ip: Option<bool>,
    allowed_cidrs: Option<Vec<IpNet>>,
    ports: Option<Vec<u16>>,
    ssh_public_key: Option<String>,
    subnet_id: Option<String>,
    auto_stop_idle_minutes: Option<u32>,
    user_data: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

fn err(diags: &mut Diagnostics, attr: &str, summary: &str, detail: impl Into<String>) {
    diags.push(Diagnostic::error(summary, detail).at(at(attr)));
}

fn number_attr(
    config: &Value,
    attr: &str,
    min: u32,
    max: u32,
    diags: &mut Diagnostics,
) -> Option<u32> {
    match config.attr(attr) {
        Value::Number(n) => match validate::whole_in_range(n, min, max) {
            Ok(v) => Some(v),
            Err(e) => {
                err(diags, attr, &format!("Invalid {attr}"), e);
                None
            }
        },
        _ => None,
    }
}

/// A raw image id of the given cloud (when known), else any cloud's.
fn looks_like_image_id(cloud: Option<CloudKind>, image: &str) -> bool {
    let aws = image.strip_prefix("ami-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17)
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    let gcp = image.contains("/global/images/");
    let azure = image.starts_with("/subscriptions/") || image.split(':').count() == 4;
    match cloud {
        Some(CloudKind::Aws) => aws,
        Some(CloudKind::Gcp) => gcp,
        Some(CloudKind::Azure) => azure,
        None => aws || gcp || azure,
    }
}

fn image_error(cloud: Option<CloudKind>, image: &str) -> String {
    let raw = match cloud {
        Some(CloudKind::Aws) => "an AWS AMI id (ami- followed by 8 or 17 hex digits)",
        Some(CloudKind::Gcp) => "a Compute Engine image (projects/P/global/images/NAME)",
        Some(CloudKind::Azure) => {
            "an Azure image (publisher:offer:sku:version or a /subscriptions/... id)"
        }
        None => "a raw image id of the chosen cloud (e.g. ami-0123456789abcdef0)",
    };
    format!(
        "{image:?} is neither an image alias ({}) nor {raw}.",
        IMAGE_ALIASES.join(", ")
    )
}

/// Parse and check every known input. Errors carry the attribute path; no cloud call.
fn parse_input(config: &Value, diags: &mut Diagnostics) -> Input {
    let mut input = Input::default();
    if let Some(n) = config.attr("name").as_str() {
        match validate::name(n) {
            Ok(()) => input.name = Some(n.to_string()),
            Err(e) => err(diags, "name", "Invalid name", e),
        }
    }
    if let Some(c) = config.attr("cloud").as_str() {
        match c.parse::<CloudKind>() {
            Ok(k) => input.cloud = Some(k),
            Err(e) => err(diags, "cloud", "Invalid cloud", e),
        }
    }
    if let Some(g) = config.attr("gpu").as_str() {
        match catalog() {
            Ok(cat) => match GpuSpec::parse_with_models(g, &cat.models()) {
                Ok(spec) => input.gpu = Some(spec),
                Err(e) => err(diags, "gpu", "Invalid gpu", e.to_string()),
            },
            Err(e) => err(diags, "gpu", "GPU catalog unavailable", e.to_string()),
        }
    }
    input.instance_type = config.attr("instance_type").as_str().map(str::to_string);
    if input
        .instance_type
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        err(
            diags,
            "instance_type",
            "Invalid instance_type",
            "must not be empty; leave it out to choose from gpu.",
        );
    }
    input.region = config.attr("region").as_str().map(str::to_string);
    input.zone = config.attr("zone").as_str().map(str::to_string);
    for attr in ["region", "zone", "subnet_id"] {
        if config
            .attr(attr)
            .as_str()
            .is_some_and(|v| v.trim().is_empty())
        {
            err(
                diags,
                attr,
                &format!("Invalid {attr}"),
                "must not be empty; leave it out for the default.",
            );
        }
    }
    if let Some(i) = config.attr("image").as_str() {
        if IMAGE_ALIASES.contains(&i) || looks_like_image_id(input.cloud, i) {
            input.image = Some(i.to_string());
        } else {
            err(diags, "image", "Invalid image", image_error(input.cloud, i));
        }
    }
    input.root_disk_gb = number_attr(config, "root_disk_gb", 30, 16384, diags);
    input.data_disk_gb = number_attr(config, "data_disk_gb", 0, 65536, diags);
    input.auto_stop_idle_minutes = number_attr(config, "auto_stop_idle_minutes", 0, 10080, diags);
    input.spot = config.attr("spot").as_bool();
    input.running = config.attr("running").as_bool();
    input.public_ip = config.attr("public_ip").as_bool();
    if let Some(list) = config.attr("allowed_cidrs").as_list() {
        let mut cidrs = Vec::new();
        let mut known = true;
        for (i, v) in list.iter().enumerate() {
            match v {
                Value::String(s) => match validate::cidr(s) {
                    Ok(net) => cidrs.push(net),
                    Err(e) => diags.push(Diagnostic::error("Invalid allowed_cidrs", e).at(vec![
                        PathStep::Attr("allowed_cidrs".into()),
                        PathStep::Index(i as i64),
                    ])),
                },
                Value::Null => diags.push(
                    Diagnostic::error("Invalid allowed_cidrs", "a CIDR block must not be null.")
                        .at(vec![
                            PathStep::Attr("allowed_cidrs".into()),
                            PathStep::Index(i as i64),
                        ]),
                ),
                _ => known = false,
            }
        }
        if known {
            input.allowed_cidrs = Some(cidrs);
        }
    }
    if let Some(list) = config.attr("ports").as_list() {
        let mut ports: Vec<u16> = Vec::new();
        let mut known = true;
        for (i, v) in list.iter().enumerate() {
            let path = vec![PathStep::Attr("ports".into()), PathStep::Index(i as i64)];
            match v {
                Value::Number(n) => {
                    let parsed = if n.is_integer() {
                        validate::port(n.to_i64().unwrap_or(-1))
                    } else {
                        Err(format!("{n} is not a whole number."))
                    };
                    match parsed {
                        Ok(p) if ports.contains(&p) => diags.push(
                            Diagnostic::error(
                                "Invalid ports",
                                format!("port {p} is listed twice."),
                            )
                            .at(path),
                        ),
                        Ok(p) => ports.push(p),
                        Err(e) => diags.push(Diagnostic::error("Invalid ports", e).at(path)),
                    }
                }
                Value::Null => diags
                    .push(Diagnostic::error("Invalid ports", "a port must not be null.").at(path)),
                _ => known = false,
            }
        }
        if known {
            input.ports = Some(ports);
        }
    }
    if let Some(k) = config.attr("ssh_public_key").as_str() {
        match validate::ssh_public_key(k) {
            Ok(()) => input.ssh_public_key = Some(k.trim().to_string()),
            Err(e) => err(diags, "ssh_public_key", "Invalid ssh_public_key", e),
        }
    }
    input.subnet_id = config.attr("subnet_id").as_str().map(str::to_string);
    input.user_data = config.attr("user_data").as_str().map(str::to_string);
    if input
        .user_data
        .as_deref()
        .is_some_and(|u| u.len() > 16 * 1024 - 4096)
    {
        err(diags, "user_data", "Invalid user_data", "the script is too long: with the provider's bootstrap it must fit the 16 KiB user-data limit (at most 12 KiB).");
    }
    if let Some(m) = config.attr("tags").as_map() {
        if m.values().all(Value::is_known) {
            let tags: BTreeMap<String, String> = m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect();
            match validate::tags(&tags) {
                Ok(()) => input.tags = Some(tags),
                Err((key, msg)) => diags.push(
                    Diagnostic::error("Invalid tags", msg)
                        .at(vec![PathStep::Attr("tags".into()), PathStep::Key(key)]),
                ),
            }
        }
    }
    // Jupyter has no auth by default on many images: opening it to the world is
    // almost always a mistake, but a legal one.
    let open_to_world = input
        .allowed_cidrs
        .as_ref()
        .is_some_and(|c| c.iter().any(|n| n.prefix_len() == 0));
    let ports = input
        .ports
        .clone()
        .unwrap_or_else(|| DEFAULT_PORTS.to_vec());
    if open_to_world && ports.contains(&JUPYTER_PORT) {
        diags.push(
            Diagnostic::warning(
                "Jupyter is open to the internet",
                "allowed_cidrs contains a /0 block and ports contains 8888: anyone on the internet can reach Jupyter. \
                 Prefer your own address range (e.g. \"203.0.113.7/32\") or an SSH tunnel.",
            )
            .at(at("allowed_cidrs")),
        );
    }
    input
}

pub fn validate(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    parse_input(config, &mut diags);
    diags
}

fn num(n: u32) -> Value {
    Value::Number(Number::from(n))
}

fn money(v: f64) -> Value {
    Number::from_f64_shortest(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn str_list(items: impl IntoIterator<Item = String>) -> Value {
    Value::List(items.into_iter().map(Value::String).collect())
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn map_of_strings(v: &Value) -> BTreeMap<String, String> {
    v.as_map()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The URLs and command derived from the address and ports.
fn access_values(
    ssh_user: Option<&str>,
    public: Option<&str>,
    private: Option<&str>,
    ports: &[u16],
) -> [(&'static str, Value); 3] {
    let addr = public.or(private);
    let ssh = match (ssh_user, addr) {
        (Some(u), Some(a)) if ports.contains(&22) => Value::String(format!("ssh {u}@{a}")),
        _ => Value::Null,
    };
    let url = |port: u16| match public {
        Some(ip) if ports.contains(&port) => Value::String(format!("http://{ip}:{port}")),
        _ => Value::Null,
    };
    [
        ("ssh_command", ssh),
        ("jupyter_url", url(JUPYTER_PORT)),
        ("tensorboard_url", url(TENSORBOARD_PORT)),
    ]
}

fn effective_cloud(input: &Input, config: &Value, clients: &Clients) -> Option<CloudKind> {
    if config.attr("cloud").is_unknown() {
        return None;
    }
    Some(
        input
            .cloud
            .or(clients.default_cloud)
            .unwrap_or(CloudKind::Aws),
    )
}

fn put(m: &mut BTreeMap<String, Value>, k: &str, v: Value) {
    m.insert(k.to_string(), v);
}

fn plan_error(d: Diagnostics) -> PlanResponse {
    PlanResponse {
        diagnostics: d,
        ..Default::default()
    }
}

fn gpu_spec_string(spec: &GpuSpec) -> String {
    if spec.count == 1 {
        spec.model.clone()
    } else {
        spec.to_string()
    }
}

pub async fn plan(
    clients: &Clients,
    req: PlanRequest,
    _cancel: &CancellationToken,
) -> PlanResponse {
    if req.proposed_new_state.is_null() {
        return PlanResponse {
            planned_state: Value::Null,
            ..Default::default()
        };
    }
    let config = &req.config;
    let prior = &req.prior_state;
    let creating = prior.is_null();
    let mut diags = Diagnostics::new();
    let input = parse_input(config, &mut diags);
    if diags.has_errors() {
        return plan_error(diags);
    }

    let mut planned: BTreeMap<String, Value> = match config {
        Value::Object(m) => m.clone(),
        _ => BTreeMap::new(),
    };

    // Defaults for optional inputs the configuration leaves out.
    let cloud = effective_cloud(&input, config, clients);
    put(
        &mut planned,
        "cloud",
        cloud
            .map(|c| Value::from(c.as_str()))
            .unwrap_or(Value::Unknown),
    );
    let defaults: [(&str, Value); 9] = [
        ("image", Value::from(DEFAULT_IMAGE)),
        ("root_disk_gb", num(DEFAULT_ROOT_DISK_GB)),
        ("data_disk_gb", num(0)),
        ("spot", Value::Bool(false)),
        ("running", Value::Bool(true)),
        ("public_ip", Value::Bool(true)),
        ("allowed_cidrs", Value::List(vec![])),
        (
            "ports",
            Value::List(DEFAULT_PORTS.iter().map(|p| num(u32::from(*p))).collect()),
        ),
        ("auto_stop_idle_minutes", num(0)),
    ];
    for (k, v) in defaults {
        if config.attr(k).is_null() {
            put(&mut planned, k, v);
        }
    }

    let backend = match cloud {
        Some(c) => match clients.cloud(c).await {
            Ok(b) => Some(b),
            Err(e) => {
                err(&mut diags, "cloud", "Cloud unavailable", e);
                return plan_error(diags);
            }
        },
        None => None,
    };

    // Region: configuration, else what the resource already has, else the provider's.
    let region = if config.attr("region").is_unknown() {
        None
    } else if let Some(r) = &input.region {
        Some(r.clone())
    } else if let Some(r) = prior.attr("region").as_str() {
        Some(r.to_string())
    } else if let Some(b) = &backend {
        match b.default_region() {
            Some(r) => Some(r),
            None => {
                err(&mut diags, "region", "No region", match cloud {
                    Some(CloudKind::Gcp) => "set region on the resource, or a default for Google Cloud in the provider block (gcp { region = \"us-central1\" }) or GOOGLE_REGION.".to_string(),
                    Some(CloudKind::Azure) => "set region on the resource, or azure { location = \"eastus\" } in the provider block.".to_string(),
                    _ => "set region on the resource, or a default for AWS in the provider block (aws { region = \"us-east-1\" }) or AWS_REGION.".to_string(),
                });
                return plan_error(diags);
            }
        }
    } else {
        None
    };
    put(
        &mut planned,
        "region",
        region.clone().map(Value::String).unwrap_or(Value::Unknown),
    );

    // Zone and subnet: configuration, else kept from the existing machine, else chosen at create.
    for attr in ["zone", "subnet_id"] {
        if config.attr(attr).is_null() {
            let v = if creating {
                Value::Unknown
            } else {
                prior.attr(attr).clone()
            };
            put(&mut planned, attr, v);
        }
    }

    // GPU → instance type and price, from the catalog (no cloud call).
    let spot = config
        .attr("spot")
        .as_bool()
        .or(if config.attr("spot").is_unknown() {
            None
        } else {
            Some(false)
        });
    let mut resolution: Option<Resolution> = None;
    let instance_type_known = !config.attr("instance_type").is_unknown();
    if let (Some(cloud), Some(region), Some(gpu), Some(spot), true) = (
        cloud,
        region.as_deref(),
        input.gpu.as_ref(),
        spot,
        instance_type_known,
    ) {
        match catalog() {
            Ok(cat) => {
                match cat.resolve(cloud, region, gpu, input.instance_type.as_deref(), spot) {
                    Ok(r) => resolution = Some(r),
                    Err(e) => {
                        let summary = if e.attribute == "instance_type" {
                            "Invalid instance_type"
                        } else {
                            "No matching GPU offering"
                        };
                        err(&mut diags, e.attribute, summary, e.message.clone());
                    }
                }
            }
            Err(e) => err(&mut diags, "gpu", "GPU catalog unavailable", e.to_string()),
        }
    }
    if diags.has_errors() {
        return plan_error(diags);
    }
    match &resolution {
        Some(r) => {
            let o = &r.offering;
            put(
                &mut planned,
                "instance_type",
                Value::from(o.instance_type.as_str()),
            );
            put(&mut planned, "gpu_model", Value::from(o.gpu_model.as_str()));
            put(&mut planned, "gpu_count", num(o.gpu_count));
            put(&mut planned, "gpu_memory_gb", num(o.gpu_memory_gb));
            put(&mut planned, "hourly_cost_usd", money(r.hourly_cost_usd));
        }
        None => {
            if config.attr("instance_type").is_null() {
                put(&mut planned, "instance_type", Value::Unknown);
            }
            for k in ["gpu_model", "gpu_count", "gpu_memory_gb", "hourly_cost_usd"] {
                put(&mut planned, k, Value::Unknown);
            }
        }
    }

    // Tags: the provider's default tags under the resource's own.
    if config.attr("tags").is_known_fully() {
        let mut all = clients.default_tags.clone();
        all.extend(map_of_strings(config.attr("tags")));
        if let Some(Err((key, msg))) = backend.as_ref().map(|b| b.check_tags(&all)) {
            diags.push(
                Diagnostic::error("Invalid tags", msg)
                    .at(vec![PathStep::Attr("tags".into()), PathStep::Key(key)]),
            );
            return plan_error(diags);
        }
        put(&mut planned, "tags_all", string_map(&all));
    } else {
        put(&mut planned, "tags_all", Value::Unknown);
    }

    // Image: keep what the machine runs unless `image` itself changed; resolve
    // aliases to the newest image only for new machines (a new DLAMI release
    // must not replace running workstations).
    let image = planned
        .get("image")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let keep_image = !creating
        && image.is_some()
        && prior.attr("image").as_str() == image.as_deref()
        && prior.attr("image_id").as_str().is_some();
    if keep_image {
        put(&mut planned, "image_id", prior.attr("image_id").clone());
        put(&mut planned, "ssh_user", prior.attr("ssh_user").clone());
    } else if let (Some(b), Some(region), Some(image)) =
        (&backend, region.as_deref(), image.as_deref())
    {
        match clients
            .resolve_image(cloud.unwrap_or(CloudKind::Aws), b.as_ref(), region, image)
            .await
        {
            Ok(img) => {
                put(&mut planned, "image_id", Value::String(img.id));
                put(&mut planned, "ssh_user", Value::String(img.ssh_user));
            }
            Err(e) => {
                let summary = if e.kind == ErrorKind::NotFound {
                    "Image not found"
                } else {
                    "Could not resolve image"
                };
                err(
                    &mut diags,
                    "image",
                    summary,
                    format!("image {image:?} in {region}: {e}"),
                );
                return plan_error(diags);
            }
        }
    } else {
        put(&mut planned, "image_id", Value::Unknown);
        put(&mut planned, "ssh_user", Value::Unknown);
    }

    let running = planned.get("running").and_then(Value::as_bool);
    let public_ip = planned.get("public_ip").and_then(Value::as_bool);
    put(
        &mut planned,
        "state",
        match running {
            Some(true) => Value::from("running"),
            Some(false) => Value::from("stopped"),
            None => Value::Unknown,
        },
    );

    let mut requires_replace = Vec::new();
    if creating {
        for k in [
            "id",
            "instance_id",
            "firewall_id",
            "private_ip",
            "ssh_command",
            "jupyter_url",
            "tensorboard_url",
        ] {
            put(&mut planned, k, Value::Unknown);
        }
        put(
            &mut planned,
            "public_ip_address",
            if public_ip == Some(false) || running == Some(false) {
                Value::Null
            } else {
                Value::Unknown
            },
        );
        let data_disk = planned.get("data_disk_gb").cloned().unwrap_or(Value::Null);
        put(
            &mut planned,
            "data_disk_id",
            if data_disk.as_i64() == Some(0) {
                Value::Null
            } else {
                Value::Unknown
            },
        );
        put(
            &mut planned,
            "ssh_key_name",
            if config.attr("ssh_public_key").is_null() {
                Value::Null
            } else {
                Value::Unknown
            },
        );
    } else {
        for k in [
            "id",
            "instance_id",
            "firewall_id",
            "private_ip",
            "public_ip_address",
            "data_disk_id",
            "ssh_key_name",
            "ssh_command",
            "jupyter_url",
            "tensorboard_url",
        ] {
            put(&mut planned, k, prior.attr(k).clone());
        }
        // Replacement: inputs that cannot change on an existing machine.
        let changed = |k: &str, planned: &BTreeMap<String, Value>| {
            planned.get(k).cloned().unwrap_or(Value::Null) != *prior.attr(k)
        };
        for k in [
            "name",
            "cloud",
            "region",
            "image",
            "spot",
            "public_ip",
            "ssh_public_key",
            "user_data",
        ] {
            if changed(k, &planned) {
                requires_replace.push(at(k));
            }
        }
        for k in ["zone", "subnet_id"] {
            if !config.attr(k).is_null() && changed(k, &planned) {
                requires_replace.push(at(k));
            }
        }
        for k in ["root_disk_gb", "data_disk_gb"] {
            let new = planned.get(k).and_then(Value::as_number).cloned();
            let old = prior.attr(k).as_number().cloned();
            match (new, old) {
                (Some(n), Some(o)) if n < o => requires_replace.push(at(k)),
                (None, _) => requires_replace.push(at(k)),
                _ => {}
            }
        }
        // What an in-place update changes among the computed values.
        let restart = changed("instance_type", &planned) || changed("running", &planned);
        if restart {
            let has_public = public_ip == Some(true) && running == Some(true);
            put(
                &mut planned,
                "public_ip_address",
                if has_public {
                    Value::Unknown
                } else {
                    Value::Null
                },
            );
        }
        if prior.attr("data_disk_gb").as_i64() == Some(0)
            && planned.get("data_disk_gb").and_then(Value::as_i64) != Some(0)
        {
            put(&mut planned, "data_disk_id", Value::Unknown);
        }
        // A firewall that vanished out of band is made anew (GCE has none at all
        // while there are no sources to allow).
        let wants_firewall = planned
            .get("allowed_cidrs")
            .and_then(Value::as_list)
            .is_none_or(|l| !l.is_empty());
        if prior.attr("firewall_id").is_null() && wants_firewall {
            put(&mut planned, "firewall_id", Value::Unknown);
        }
        let ports: Option<Vec<u16>> = planned.get("ports").and_then(Value::as_list).map(|l| {
            l.iter()
                .filter_map(|v| v.as_i64().and_then(|p| u16::try_from(p).ok()))
                .collect()
        });
        let public = planned
            .get("public_ip_address")
            .cloned()
            .unwrap_or(Value::Null);
        let private = prior.attr("private_ip").clone();
        let ssh_user = planned.get("ssh_user").cloned().unwrap_or(Value::Null);
        match ports {
            Some(ports) if public.is_known() && private.is_known() && ssh_user.is_known() => {
                for (k, v) in
                    access_values(ssh_user.as_str(), public.as_str(), private.as_str(), &ports)
                {
                    put(&mut planned, k, v);
                }
            }
            _ => {
                for k in ["ssh_command", "jupyter_url", "tensorboard_url"] {
                    put(&mut planned, k, Value::Unknown);
                }
            }
        }
    }

    PlanResponse {
        planned_state: Value::Object(planned),
        requires_replace,
        planned_private: Vec::new(),
        diagnostics: diags,
    }
}

/// The catalog's separately attached accelerator for the planned machine type.
fn accelerator_type(planned: &Value) -> Option<String> {
    let cloud: CloudKind = planned.attr("cloud").as_str()?.parse().ok()?;
    let region = planned.attr("region").as_str()?;
    let instance_type = planned.attr("instance_type").as_str()?;
    let model = planned.attr("gpu_model").as_str()?;
    let count = planned.attr("gpu_count").as_number()?.to_u32()?;
    catalog().ok()?.offerings().iter().find_map(|o| {
        (o.cloud == cloud
            && o.region == region
            && o.instance_type == instance_type
            && o.gpu_model == model
            && o.gpu_count == count)
            .then(|| o.gcp_accelerator_type.clone())
            .flatten()
    })
}

/// The backend spec from a fully planned state (every input known by now).
fn spec_from_planned(planned: &Value) -> Result<WorkstationSpec, Diagnostics> {
    let s = |k: &str| planned.attr(k).as_str().map(str::to_string);
    let n = |k: &str| planned.attr(k).as_number().and_then(|n| n.to_u32());
    let missing = |k: &str| -> Diagnostics {
        Diagnostic::error(
            "Incomplete plan",
            format!("{k} is not known at apply time. This is a bug in the provider."),
        )
        .at(at(k))
        .into()
    };
    let mut tags = map_of_strings(planned.attr("tags_all"));
    tags.retain(|k, _| !k.starts_with("aienv-"));
    let allowed_cidrs = planned
        .attr("allowed_cidrs")
        .as_list()
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_str().and_then(|c| validate::cidr(c).ok()))
        .collect();
    let ports = planned
        .attr("ports")
        .as_list()
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_i64().and_then(|p| validate::port(p).ok()))
        .collect();
    let mut meta = BTreeMap::new();
    if let Some(g) = s("gpu") {
        meta.insert(META_GPU.to_string(), g);
    }
    if let Some(i) = s("image") {
        meta.insert(META_IMAGE.to_string(), i);
    }
    if let Some(k) = s("ssh_public_key").filter(|k| k.len() <= META_MAX_LEN) {
        meta.insert(META_SSH_KEY.to_string(), k);
    }
    let joined = |k: &str| -> String {
        planned
            .attr(k)
            .as_list()
            .unwrap_or(&[])
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.as_number().map(|n| n.to_string()).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    for (key, attr) in [(META_PORTS, "ports"), (META_CIDRS, "allowed_cidrs")] {
        let v = joined(attr);
        if v.len() <= META_MAX_LEN {
            meta.insert(key.to_string(), v);
        }
    }
    Ok(WorkstationSpec {
        name: s("name").ok_or_else(|| missing("name"))?,
        region: s("region").ok_or_else(|| missing("region"))?,
        zone: s("zone"),
        instance_type: s("instance_type").ok_or_else(|| missing("instance_type"))?,
        gpu_model: s("gpu_model").ok_or_else(|| missing("gpu_model"))?,
        gpu_count: n("gpu_count").ok_or_else(|| missing("gpu_count"))?,
        accelerator_type: accelerator_type(planned),
        image_id: s("image_id").ok_or_else(|| missing("image_id"))?,
        root_disk_gb: n("root_disk_gb").ok_or_else(|| missing("root_disk_gb"))?,
        data_disk_gb: n("data_disk_gb").unwrap_or(0),
        spot: planned.attr("spot").as_bool().unwrap_or(false),
        running: planned.attr("running").as_bool().unwrap_or(true),
        public_ip: planned.attr("public_ip").as_bool().unwrap_or(true),
        allowed_cidrs,
        ports,
        ssh_public_key: s("ssh_public_key"),
        subnet_id: s("subnet_id"),
        auto_stop_idle_minutes: n("auto_stop_idle_minutes").unwrap_or(0),
        user_data: s("user_data"),
        tags,
        meta,
    })
}

fn cidr_strings(c: &[IpNet]) -> Value {
    str_list(c.iter().map(|n| n.to_string()))
}

fn port_values(p: &[u16]) -> Value {
    Value::List(p.iter().map(|p| num(u32::from(*p))).collect())
}

/// Keep the user's spelling and order of a list when it holds the same set.
fn same_set_or_observed(previous: &Value, observed: Value) -> Value {
    let as_set = |v: &Value| -> Option<std::collections::BTreeSet<String>> {
        v.as_list().map(|l| {
            l.iter()
                .map(|x| match x {
                    Value::String(s) => validate::cidr(s)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|_| s.clone()),
                    Value::Number(n) => n.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
    };
    match (as_set(previous), as_set(&observed)) {
        (Some(a), Some(b)) if a == b => previous.clone(),
        _ => observed,
    }
}

/// State from what the cloud reports, keeping the inputs it cannot report.
fn state_from(
    base: &Value,
    obs: &ObservedWorkstation,
    default_tags: &BTreeMap<String, String>,
    cloud: CloudKind,
) -> Value {
    let mut m: BTreeMap<String, Value> = match base {
        Value::Object(m) => m.clone(),
        _ => BTreeMap::new(),
    };
    put(
        &mut m,
        "id",
        Value::String(format!("{}/{}", cloud.as_str(), obs.locator)),
    );
    put(&mut m, "cloud", Value::from(cloud.as_str()));
    put(&mut m, "name", Value::String(obs.name.clone()));
    put(
        &mut m,
        "instance_id",
        Value::String(obs.instance_id.clone()),
    );
    put(
        &mut m,
        "instance_type",
        Value::String(obs.instance_type.clone()),
    );
    put(&mut m, "region", Value::String(obs.region.clone()));
    put(&mut m, "zone", Value::String(obs.zone.clone()));
    put(&mut m, "image_id", Value::String(obs.image_id.clone()));
    put(&mut m, "root_disk_gb", num(obs.root_disk_gb));
    put(&mut m, "data_disk_gb", num(obs.data_disk_gb));
    put(
        &mut m,
        "data_disk_id",
        obs.data_disk_id
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(&mut m, "spot", Value::Bool(obs.spot));
    let running = matches!(obs.state, MachineState::Running | MachineState::Pending);
    put(&mut m, "running", Value::Bool(running));
    put(&mut m, "state", Value::from(obs.state.as_str()));
    put(&mut m, "public_ip", Value::Bool(obs.has_public_ip));
    put(
        &mut m,
        "public_ip_address",
        obs.public_ip
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(
        &mut m,
        "private_ip",
        obs.private_ip
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(
        &mut m,
        "firewall_id",
        obs.firewall_id
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(
        &mut m,
        "allowed_cidrs",
        same_set_or_observed(base.attr("allowed_cidrs"), cidr_strings(&obs.allowed_cidrs)),
    );
    // Without sources there are no rules to read ports from: keep what was set.
    let ports = match base.attr("ports") {
        known @ Value::List(_) if obs.allowed_cidrs.is_empty() => known.clone(),
        prior => same_set_or_observed(prior, port_values(&obs.ports)),
    };
    put(&mut m, "ports", ports);
    put(
        &mut m,
        "subnet_id",
        obs.subnet_id
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(
        &mut m,
        "ssh_key_name",
        obs.ssh_key_name
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put(
        &mut m,
        "auto_stop_idle_minutes",
        num(obs.auto_stop_idle_minutes),
    );

    // Tags: tags_all is what the cloud has; `tags` is that minus the provider's
    // default tags, unless the user set the key on the resource itself.
    let prior_tags = map_of_strings(base.attr("tags"));
    let mut tags = BTreeMap::new();
    for (k, v) in &obs.tags {
        let from_defaults = default_tags.get(k) == Some(v) && !prior_tags.contains_key(k);
        if !from_defaults {
            tags.insert(k.clone(), v.clone());
        }
    }
    put(&mut m, "tags_all", string_map(&obs.tags));
    if tags.is_empty() && base.attr("tags").is_null() {
        put(&mut m, "tags", Value::Null);
    } else {
        put(&mut m, "tags", string_map(&tags));
    }

    // GPU facts follow the instance type actually running.
    if let Ok(cat) = catalog() {
        if let Some(o) = cat.offerings().iter().find(|o| {
            o.cloud == cloud && o.region == obs.region && o.instance_type == obs.instance_type
        }) {
            put(&mut m, "gpu_model", Value::String(o.gpu_model.clone()));
            put(&mut m, "gpu_count", num(o.gpu_count));
            put(&mut m, "gpu_memory_gb", num(o.gpu_memory_gb));
            let price = o.price(obs.spot).unwrap_or(o.ondemand_usd_hour);
            put(&mut m, "hourly_cost_usd", money(price));
        }
    }
    let ports: Vec<u16> = m
        .get("ports")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_i64().and_then(|p| u16::try_from(p).ok()))
        .collect();
    let ssh_user = m
        .get("ssh_user")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    for (k, v) in access_values(
        ssh_user.as_deref(),
        obs.public_ip.as_deref(),
        obs.private_ip.as_deref(),
        &ports,
    ) {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

fn cloud_of(state: &Value) -> CloudKind {
    state
        .attr("cloud")
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CloudKind::Aws)
}

/// `<cloud>/<locator>` → (cloud, locator).
fn split_id(id: &str) -> Option<(CloudKind, &str)> {
    let (cloud, rest) = id.split_once('/')?;
    let cloud = cloud.parse().ok()?;
    (!rest.is_empty()).then_some((cloud, rest))
}

fn cloud_diag(summary_prefix: &str, e: &CloudError) -> Diagnostic {
    Diagnostic::error(
        format!("{summary_prefix}: {}", e.kind.summary()),
        e.to_string(),
    )
}

fn leftovers_of(state: &Value) -> Leftovers {
    let s = |k: &str| state.attr(k).as_str().map(str::to_string);
    Leftovers {
        instance_id: s("instance_id"),
        firewall_id: s("firewall_id"),
        ssh_key_name: s("ssh_key_name"),
        data_disk_id: s("data_disk_id"),
    }
}

pub async fn apply(
    clients: &Clients,
    req: ApplyRequest,
    cancel: &CancellationToken,
) -> StateResponse {
    if req.planned_state.is_null() {
        return destroy(clients, &req.prior_state, cancel).await;
    }
    let cloud = cloud_of(&req.planned_state);
    let backend = match clients.cloud(cloud).await {
        Ok(b) => b,
        Err(e) => {
            return StateResponse {
                diagnostics: Diagnostic::error("Cloud unavailable", e)
                    .at(at("cloud"))
                    .into(),
                ..Default::default()
            }
        }
    };
    let spec = match spec_from_planned(&req.planned_state) {
        Ok(s) => s,
        Err(d) => {
            return StateResponse {
                diagnostics: d,
                ..Default::default()
            }
        }
    };
    if req.prior_state.is_null() {
        tracing::info!(name = %spec.name, instance_type = %spec.instance_type, region = %spec.region, "creating workstation");
        match backend.create_workstation(&spec, cancel).await {
            Ok(obs) => StateResponse {
                new_state: state_from(&req.planned_state, &obs, &clients.default_tags, cloud),
                ..Default::default()
            },
            Err(failure) => {
                let mut diags: Diagnostics =
                    cloud_diag("Could not create the workstation", &failure.error).into();
                if failure.leftovers.is_empty() {
                    return StateResponse {
                        diagnostics: diags,
                        ..Default::default()
                    };
                }
                // Undo failed: record what exists so `terraform destroy` removes it.
                let undo: Vec<String> = failure.undo_errors.iter().map(|e| e.to_string()).collect();
                diags.push(Diagnostic::error(
                    "Cleanup after the failed create did not finish",
                    format!(
                        "These objects still exist and are recorded in the state (the resource is tainted), so the next \
                         apply or `terraform destroy` removes them: {:?}. Cleanup errors: {}",
                        failure.leftovers,
                        undo.join("; ")
                    ),
                ));
                let mut m: BTreeMap<String, Value> = match req.planned_state.unknowns_to_null() {
                    Value::Object(m) => m,
                    _ => BTreeMap::new(),
                };
                let l = &failure.leftovers;
                let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
                m.insert(
                    "id".into(),
                    Value::String(format!(
                        "{}/{}/{}",
                        cloud.as_str(),
                        spec.region,
                        l.instance_id.as_deref().unwrap_or("incomplete")
                    )),
                );
                m.insert("instance_id".into(), opt(&l.instance_id));
                m.insert("firewall_id".into(), opt(&l.firewall_id));
                m.insert("ssh_key_name".into(), opt(&l.ssh_key_name));
                m.insert("data_disk_id".into(), opt(&l.data_disk_id));
                StateResponse {
                    new_state: Value::Object(m),
                    diagnostics: diags,
                    ..Default::default()
                }
            }
        }
    } else {
        let Some(id) = req.prior_state.attr("id").as_str() else {
            return StateResponse {
                diagnostics: Diagnostic::error("Missing id", "The prior state has no id.").into(),
                ..Default::default()
            };
        };
        let Some((_, locator)) = split_id(id) else {
            return StateResponse {
                diagnostics: Diagnostic::error(
                    "Invalid id",
                    format!("{id:?} is not a workstation id."),
                )
                .into(),
                ..Default::default()
            };
        };
        let current = match backend.read_workstation(locator).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return StateResponse {
                    diagnostics: Diagnostic::error(
                        "Workstation is gone",
                        format!(
                            "{id} no longer exists; run terraform plan again to create it anew."
                        ),
                    )
                    .into(),
                    ..Default::default()
                }
            }
            Err(e) => {
                return StateResponse {
                    diagnostics: cloud_diag("Could not read the workstation", &e).into(),
                    ..Default::default()
                }
            }
        };
        match backend.update_workstation(&current, &spec, cancel).await {
            Ok(obs) => StateResponse {
                new_state: state_from(&req.planned_state, &obs, &clients.default_tags, cloud),
                ..Default::default()
            },
            Err(e) => {
                // Keep state true to the cloud after a partial update.
                let state = match backend.read_workstation(locator).await {
                    Ok(Some(obs)) => {
                        state_from(&req.prior_state, &obs, &clients.default_tags, cloud)
                    }
                    _ => req.prior_state.clone(),
                };
                StateResponse {
                    new_state: state,
                    diagnostics: cloud_diag("Could not update the workstation", &e).into(),
                    ..Default::default()
                }
            }
        }
    }
}

async fn destroy(clients: &Clients, prior: &Value, cancel: &CancellationToken) -> StateResponse {
    let cloud = cloud_of(prior);
    let backend = match clients.cloud(cloud).await {
        Ok(b) => b,
        Err(e) => {
            return StateResponse {
                new_state: prior.clone(),
                diagnostics: Diagnostic::error("Cloud unavailable", e).into(),
                ..Default::default()
            }
        }
    };
    let region = prior
        .attr("region")
        .as_str()
        .unwrap_or_default()
        .to_string();
    let locator = prior
        .attr("id")
        .as_str()
        .and_then(split_id)
        .map(|(_, l)| l.to_string());
    let observed = match (&locator, prior.attr("instance_id").is_null()) {
        (Some(l), false) => match backend.read_workstation(l).await {
            Ok(o) => o,
            Err(e) => {
                return StateResponse {
                    new_state: prior.clone(),
                    diagnostics: cloud_diag("Could not read the workstation", &e).into(),
                    ..Default::default()
                }
            }
        },
        _ => None,
    };
    let result = match observed {
        Some(obs) => backend.delete_workstation(&obs, cancel).await,
        None => {
            backend
                .delete_leftovers(&region, &leftovers_of(prior), cancel)
                .await
        }
    };
    match result {
        Ok(()) => StateResponse {
            new_state: Value::Null,
            ..Default::default()
        },
        Err(e) => StateResponse {
            new_state: prior.clone(),
            diagnostics: cloud_diag("Could not delete the workstation", &e).into(),
            ..Default::default()
        },
    }
}

pub async fn read(
    clients: &Clients,
    state: Value,
    private: Vec<u8>,
    _cancel: &CancellationToken,
) -> StateResponse {
    if state.is_null() {
        return StateResponse::default();
    }
    let cloud = cloud_of(&state);
    let backend = match clients.cloud(cloud).await {
        Ok(b) => b,
        Err(e) => {
            return StateResponse {
                new_state: state,
                diagnostics: Diagnostic::error("Cloud unavailable", e).into(),
                private,
            }
        }
    };
    let Some(locator) = state
        .attr("id")
        .as_str()
        .and_then(split_id)
        .map(|(_, l)| l.to_string())
    else {
        return StateResponse {
            new_state: state,
            private,
            ..Default::default()
        };
    };
    if state.attr("instance_id").is_null() {
        // Leftovers of a failed create: keep them in state until destroyed.
        let l = leftovers_of(&state);
        return StateResponse {
            new_state: if l.is_empty() { Value::Null } else { state },
            private,
            ..Default::default()
        };
    }
    match backend.read_workstation(&locator).await {
        Ok(Some(obs)) => StateResponse {
            new_state: state_from(&state, &obs, &clients.default_tags, cloud),
            private,
            ..Default::default()
        },
        Ok(None) => {
            tracing::info!(id = %locator, "workstation is gone; removing it from state");
            StateResponse {
                new_state: Value::Null,
                private,
                ..Default::default()
            }
        }
        Err(e) => StateResponse {
            new_state: state,
            diagnostics: cloud_diag("Could not read the workstation", &e).into(),
            private,
        },
    }
}

pub async fn import(clients: &Clients, id: &str, _cancel: &CancellationToken) -> StateResponse {
    let bad_id = || {
        StateResponse {
        diagnostics: Diagnostic::error(
            "Invalid import id",
            format!("{id:?} is not a workstation id: use aws/<region>/<instance id> (e.g. aws/us-east-1/i-0123456789abcdef0) or gcp/<project>/<zone>/<name> (e.g. gcp/my-project/us-central1-a/dev-box)."),
        )
        .into(),
        ..Default::default()
    }
    };
    let Some((cloud, locator)) = split_id(id) else {
        return bad_id();
    };
    let backend = match clients.cloud(cloud).await {
        Ok(b) => b,
        Err(e) => {
            return StateResponse {
                diagnostics: Diagnostic::error("Cloud unavailable", e).into(),
                ..Default::default()
            }
        }
    };
    let obs = match backend.read_workstation(locator).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            return StateResponse {
                diagnostics: Diagnostic::error(
                    "Cannot import a missing workstation",
                    format!("{id} does not exist (or is terminated)."),
                )
                .into(),
                ..Default::default()
            }
        }
        Err(e) if e.kind == ErrorKind::InvalidInput => return bad_id(),
        Err(e) => {
            return StateResponse {
                diagnostics: cloud_diag("Could not read the workstation", &e).into(),
                ..Default::default()
            }
        }
    };
    if obs.name.is_empty() {
        return StateResponse {
            diagnostics: Diagnostic::error("Not an aienv workstation", format!("{id} has no aienv-name tag: only machines created by this provider can be imported.")).into(),
            ..Default::default()
        };
    }
    let image = obs
        .meta
        .get(META_IMAGE)
        .cloned()
        .unwrap_or_else(|| obs.image_id.clone());
    let ssh_user = match backend.resolve_image(&obs.region, &obs.image_id).await {
        Ok(img) => Value::String(img.ssh_user),
        Err(_) => Value::from("ubuntu"),
    };
    let gpu = obs.meta.get(META_GPU).cloned().or_else(|| {
        catalog().ok().and_then(|cat| {
            cat.offerings()
                .iter()
                .find(|o| {
                    o.cloud == cloud
                        && o.region == obs.region
                        && o.instance_type == obs.instance_type
                })
                .map(|o| {
                    gpu_spec_string(&GpuSpec {
                        model: o.gpu_model.clone(),
                        count: o.gpu_count,
                    })
                })
        })
    });
    // The cloud reports rules unordered: the order the user wrote is kept in
    // bookkeeping and used when it still describes the same rules.
    let ordered = |key: &str, parse: &dyn Fn(&str) -> Option<Value>| -> Value {
        obs.meta
            .get(key)
            .map(|v| {
                Value::List(
                    v.split(',')
                        .filter(|p| !p.is_empty())
                        .filter_map(parse)
                        .collect(),
                )
            })
            .unwrap_or(Value::Null)
    };
    let ports = ordered(META_PORTS, &|p| p.parse::<u32>().ok().map(num));
    let cidrs = ordered(META_CIDRS, &|c| Some(Value::from(c)));
    let base = Value::object([
        ("ports", ports),
        ("allowed_cidrs", cidrs),
        ("gpu", gpu.map(Value::String).unwrap_or(Value::Null)),
        ("image", Value::String(image)),
        (
            "ssh_public_key",
            obs.meta
                .get(META_SSH_KEY)
                .cloned()
                .map(Value::String)
                .unwrap_or(Value::Null),
        ),
        ("ssh_user", ssh_user),
        ("user_data", Value::Null),
        ("tags", Value::Null),
    ]);
    StateResponse {
        new_state: state_from(&base, &obs, &clients.default_tags, cloud),
        ..Default::default()
    }
}

pub fn upgrade(version: i64, state: Value) -> StateResponse {
    if version > SCHEMA_VERSION {
        return StateResponse {
            diagnostics: Diagnostic::error(
                "State from a newer provider",
                format!("This state was written by a newer aienv provider (schema version {version}); upgrade the provider."),
            )
            .into(),
            ..Default::default()
        };
    }
    StateResponse {
        new_state: state,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: Vec<(&str, Value)>) -> Value {
        Value::object(pairs)
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .filter(|d| d.severity == crate::tfplugin::diag::Severity::Error)
            .map(|d| crate::tfplugin::value::format_path(&d.path))
            .collect()
    }

    fn base() -> Vec<(&'static str, Value)> {
        vec![("name", Value::from("dev-box")), ("gpu", Value::from("T4"))]
    }

    #[test]
    fn valid_minimal_config_has_no_diagnostics() {
        assert!(validate(&config(base())).0.is_empty());
    }

    #[test]
    fn each_bad_input_names_its_attribute() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("name", Value::from("DevBox"), "name"),
            ("gpu", Value::from("Z80"), "gpu"),
            ("gpu", Value::from("T4:0"), "gpu"),
            ("cloud", Value::from("oracle"), "cloud"),
            ("root_disk_gb", Value::from(10), "root_disk_gb"),
            ("data_disk_gb", Value::from(70000), "data_disk_gb"),
            (
                "auto_stop_idle_minutes",
                Value::from(10081),
                "auto_stop_idle_minutes",
            ),
            ("image", Value::from("pytorhc"), "image"),
            (
                "ssh_public_key",
                Value::from("ssh-rsa nope"),
                "ssh_public_key",
            ),
            (
                "allowed_cidrs",
                Value::List(vec![Value::from("10.0.0.0/8"), Value::from("1.2.3.4/33")]),
                "allowed_cidrs[1]",
            ),
            ("ports", Value::List(vec![Value::from(0)]), "ports[0]"),
            (
                "ports",
                Value::List(vec![Value::from(22), Value::from(22)]),
                "ports[1]",
            ),
            (
                "tags",
                Value::map([("aienv-name", Value::from("x"))]),
                "tags[\"aienv-name\"]",
            ),
        ];
        for (attr, value, path) in cases {
            let mut c = base();
            c.retain(|(k, _)| *k != attr);
            c.push((attr, value));
            let d = validate(&config(c));
            assert_eq!(paths(&d), vec![path.to_string()], "{attr}: {d:?}");
        }
    }

    #[test]
    fn unknown_values_are_not_validated_yet() {
        let mut c = base();
        c.push(("allowed_cidrs", Value::Unknown));
        c.push(("subnet_id", Value::Unknown));
        assert!(validate(&config(c)).0.is_empty());
    }

    #[test]
    fn jupyter_open_to_the_world_warns() {
        let mut c = base();
        c.push(("allowed_cidrs", Value::List(vec![Value::from("0.0.0.0/0")])));
        let d = validate(&config(c));
        assert!(!d.has_errors());
        assert_eq!(d.0.len(), 1);
        assert!(d.0[0].summary.contains("Jupyter"));
    }

    #[test]
    fn image_ids_by_cloud() {
        assert!(looks_like_image_id(
            Some(CloudKind::Aws),
            "ami-0123456789abcdef0"
        ));
        assert!(looks_like_image_id(Some(CloudKind::Aws), "ami-12345678"));
        assert!(!looks_like_image_id(Some(CloudKind::Aws), "ami-xyz"));
        assert!(!looks_like_image_id(
            Some(CloudKind::Aws),
            "projects/p/global/images/x"
        ));
        assert!(looks_like_image_id(
            Some(CloudKind::Gcp),
            "projects/p/global/images/x"
        ));
    }

    #[test]
    fn ids_split_into_cloud_and_locator() {
        assert_eq!(
            split_id("aws/us-east-1/i-0abc"),
            Some((CloudKind::Aws, "us-east-1/i-0abc"))
        );
        assert_eq!(split_id("aws/"), None);
        assert_eq!(split_id("nope"), None);
        assert_eq!(split_id("ibm/x"), None);
    }

    #[test]
    fn access_values_follow_ports_and_addresses() {
        let [ssh, jup, tb] = access_values(
            Some("ubuntu"),
            Some("1.2.3.4"),
            Some("10.0.0.1"),
            &[22, 8888],
        );
        assert_eq!(ssh.1, Value::from("ssh ubuntu@1.2.3.4"));
        assert_eq!(jup.1, Value::from("http://1.2.3.4:8888"));
        assert_eq!(tb.1, Value::Null);
        let [ssh, jup, _] = access_values(Some("ubuntu"), None, Some("10.0.0.1"), &[22, 8888]);
        assert_eq!(ssh.1, Value::from("ssh ubuntu@10.0.0.1"));
        assert_eq!(jup.1, Value::Null);
    }
}
