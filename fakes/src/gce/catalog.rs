//! The read-only world every project sees: zones, machine types, accelerator
//! types and public images. Shapes follow the real API (sizes from the public
//! machine-type tables); availability differs by zone on purpose so tests can
//! hit "not in this zone" errors.

use serde_json::{json, Value};

use super::util::{global_path, link, region_link, zonal_path, zone_link, zone_path};

pub const ZONES: &[&str] = &[
    "us-central1-a",
    "us-central1-b",
    "us-central1-c",
    "us-central1-f",
    "us-east1-b",
    "us-east1-c",
    "us-east1-d",
    "us-east4-a",
    "us-east4-b",
    "us-east4-c",
    "europe-west4-a",
    "europe-west4-b",
    "europe-west4-c",
];

/// Region → the IP range of its subnetwork in the auto-mode `default` network
/// (the real auto-mode ranges).
pub const REGIONS: &[(&str, &str)] = &[
    ("us-central1", "10.128.0.0/20"),
    ("us-east1", "10.142.0.0/20"),
    ("us-east4", "10.150.0.0/20"),
    ("europe-west4", "10.164.0.0/20"),
];

pub struct AcceleratorInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub max_cards: u32,
}

pub const ACCELERATORS: &[AcceleratorInfo] = &[
    AcceleratorInfo {
        name: "nvidia-tesla-t4",
        description: "NVIDIA T4",
        max_cards: 4,
    },
    AcceleratorInfo {
        name: "nvidia-tesla-v100",
        description: "NVIDIA V100",
        max_cards: 8,
    },
    AcceleratorInfo {
        name: "nvidia-l4",
        description: "NVIDIA L4",
        max_cards: 8,
    },
    AcceleratorInfo {
        name: "nvidia-tesla-a100",
        description: "NVIDIA A100 40GB",
        max_cards: 16,
    },
    AcceleratorInfo {
        name: "nvidia-a100-80gb",
        description: "NVIDIA A100 80GB",
        max_cards: 8,
    },
    AcceleratorInfo {
        name: "nvidia-h100-80gb",
        description: "NVIDIA H100 80GB",
        max_cards: 8,
    },
];

/// Which accelerators each zone offers.
pub fn zone_accelerators(zone: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &[
        "nvidia-tesla-t4",
        "nvidia-tesla-v100",
        "nvidia-l4",
        "nvidia-tesla-a100",
        "nvidia-a100-80gb",
        "nvidia-h100-80gb",
    ];
    match zone {
        "us-central1-a" | "us-central1-c" | "europe-west4-a" => ALL,
        "us-central1-b" | "europe-west4-b" => &[
            "nvidia-tesla-t4",
            "nvidia-tesla-v100",
            "nvidia-l4",
            "nvidia-tesla-a100",
            "nvidia-h100-80gb",
        ],
        "us-central1-f" => &["nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-a100"],
        "us-east1-c" | "europe-west4-c" => &[
            "nvidia-tesla-t4",
            "nvidia-tesla-v100",
            "nvidia-l4",
            "nvidia-h100-80gb",
        ],
        "us-east4-a" | "us-east4-c" => &[
            "nvidia-tesla-t4",
            "nvidia-l4",
            "nvidia-a100-80gb",
            "nvidia-h100-80gb",
        ],
        "us-east1-b" | "us-east1-d" | "us-east4-b" => &["nvidia-tesla-t4", "nvidia-l4"],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MachineTypeInfo {
    pub name: &'static str,
    pub cpus: u32,
    pub memory_mb: u64,
    /// Built-in GPUs (A2/A3/G2): type and count.
    pub gpus: Option<(&'static str, u32)>,
}

const fn mt(
    name: &'static str,
    cpus: u32,
    memory_mb: u64,
    gpus: Option<(&'static str, u32)>,
) -> MachineTypeInfo {
    MachineTypeInfo {
        name,
        cpus,
        memory_mb,
        gpus,
    }
}

pub const MACHINE_TYPES: &[MachineTypeInfo] = &[
    mt("e2-standard-2", 2, 8192, None),
    mt("n1-standard-4", 4, 15360, None),
    mt("n1-standard-8", 8, 30720, None),
    mt("n1-standard-16", 16, 61440, None),
    mt("n1-standard-32", 32, 122_880, None),
    mt("n1-standard-64", 64, 245_760, None),
    mt("a2-highgpu-1g", 12, 87_040, Some(("nvidia-tesla-a100", 1))),
    mt("a2-highgpu-2g", 24, 174_080, Some(("nvidia-tesla-a100", 2))),
    mt("a2-highgpu-4g", 48, 348_160, Some(("nvidia-tesla-a100", 4))),
    mt("a2-highgpu-8g", 96, 696_320, Some(("nvidia-tesla-a100", 8))),
    mt(
        "a2-megagpu-16g",
        96,
        1_392_640,
        Some(("nvidia-tesla-a100", 16)),
    ),
    mt("a2-ultragpu-1g", 12, 174_080, Some(("nvidia-a100-80gb", 1))),
    mt("a2-ultragpu-2g", 24, 348_160, Some(("nvidia-a100-80gb", 2))),
    mt("a2-ultragpu-4g", 48, 696_320, Some(("nvidia-a100-80gb", 4))),
    mt(
        "a2-ultragpu-8g",
        96,
        1_392_640,
        Some(("nvidia-a100-80gb", 8)),
    ),
    mt(
        "a3-highgpu-8g",
        208,
        1_916_928,
        Some(("nvidia-h100-80gb", 8)),
    ),
    mt("g2-standard-4", 4, 16_384, Some(("nvidia-l4", 1))),
    mt("g2-standard-8", 8, 32_768, Some(("nvidia-l4", 1))),
    mt("g2-standard-12", 12, 49_152, Some(("nvidia-l4", 1))),
    mt("g2-standard-16", 16, 65_536, Some(("nvidia-l4", 1))),
    mt("g2-standard-24", 24, 98_304, Some(("nvidia-l4", 2))),
    mt("g2-standard-32", 32, 131_072, Some(("nvidia-l4", 1))),
    mt("g2-standard-48", 48, 196_608, Some(("nvidia-l4", 4))),
    mt("g2-standard-96", 96, 393_216, Some(("nvidia-l4", 8))),
];

pub fn zone_exists(zone: &str) -> bool {
    ZONES.contains(&zone)
}

pub fn region_exists(region: &str) -> bool {
    REGIONS.iter().any(|(r, _)| *r == region)
}

/// The machine type if it is offered in `zone` (GPU shapes only where their
/// GPU is).
pub fn machine_type(zone: &str, name: &str) -> Option<MachineTypeInfo> {
    let info = MACHINE_TYPES.iter().find(|m| m.name == name)?;
    match info.gpus {
        Some((gpu, _)) if !zone_accelerators(zone).contains(&gpu) => None,
        _ => Some(*info),
    }
}

pub fn accelerator(zone: &str, name: &str) -> Option<&'static AcceleratorInfo> {
    if !zone_accelerators(zone).contains(&name) {
        return None;
    }
    ACCELERATORS.iter().find(|a| a.name == name)
}

/// A stable id per catalog object so repeated reads agree.
fn stable_id(s: &str) -> String {
    // FNV-1a, folded into the 19-digit range real ids have.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (1_000_000_000_000_000_000 + h % 8_000_000_000_000_000_000).to_string()
}

pub fn zone_json(project: &str, zone: &str) -> Value {
    let region = super::util::region_of_zone(zone);
    json!({
        "kind": "compute#zone",
        "id": stable_id(zone),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": region_link(project, region),
        "selfLink": zone_link(project, zone),
        "availableCpuPlatforms": [
            "Intel Sapphire Rapids", "Intel Ice Lake", "Intel Cascade Lake",
            "Intel Skylake", "Intel Broadwell", "Intel Haswell", "AMD Milan"
        ],
        "supportsPzs": false
    })
}

pub fn region_json(project: &str, region: &str) -> Value {
    let zones: Vec<String> = ZONES
        .iter()
        .filter(|z| super::util::region_of_zone(z) == region)
        .map(|z| zone_link(project, z))
        .collect();
    json!({
        "kind": "compute#region",
        "id": stable_id(region),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": region,
        "description": region,
        "status": "UP",
        "zones": zones,
        "selfLink": region_link(project, region),
        "supportsPzs": false
    })
}

pub fn machine_type_json(project: &str, zone: &str, m: &MachineTypeInfo) -> Value {
    let mut v = json!({
        "kind": "compute#machineType",
        "id": stable_id(m.name),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": m.name,
        "description": format!("{} vCPUs, {} GB RAM", m.cpus, m.memory_mb / 1024),
        "guestCpus": m.cpus,
        "memoryMb": m.memory_mb,
        "imageSpaceGb": 0,
        "maximumPersistentDisks": 128,
        "maximumPersistentDisksSizeGb": "263168",
        "zone": zone,
        "selfLink": link(&zonal_path(project, zone, "machineTypes", m.name)),
        "isSharedCpu": false,
        "architecture": "X86_64"
    });
    if let Some((gpu, count)) = m.gpus {
        v["accelerators"] =
            json!([{ "guestAcceleratorType": gpu, "guestAcceleratorCount": count }]);
    }
    v
}

pub fn accelerator_json(project: &str, zone: &str, a: &AcceleratorInfo) -> Value {
    json!({
        "kind": "compute#acceleratorType",
        "id": stable_id(a.name),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": a.name,
        "description": a.description,
        "zone": zone_link(project, zone),
        "selfLink": link(&zonal_path(project, zone, "acceleratorTypes", a.name)),
        "maximumCardsPerInstance": a.max_cards
    })
}

pub struct ImageInfo {
    pub project: &'static str,
    pub name: &'static str,
    pub family: &'static str,
    pub created: &'static str,
    pub disk_size_gb: i64,
    pub deprecated_by: Option<&'static str>,
}

const fn img(
    project: &'static str,
    name: &'static str,
    family: &'static str,
    created: &'static str,
    disk_size_gb: i64,
    deprecated_by: Option<&'static str>,
) -> ImageInfo {
    ImageInfo {
        project,
        name,
        family,
        created,
        disk_size_gb,
        deprecated_by,
    }
}

const DL: &str = "deeplearning-platform-release";

/// Public images: the current Deep Learning VM families (Ubuntu, NVIDIA 580
/// driver), the older `*-latest-cu121-debian-11` ones, Ubuntu and Debian. Each
/// family has at least two images; the pytorch Ubuntu 22.04 family also has a
/// newer DEPRECATED one, which `getFromFamily` must skip like the real API.
pub const IMAGES: &[ImageInfo] = &[
    img(
        DL,
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260311",
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580",
        "2026-03-11T10:12:44.181-07:00",
        50,
        None,
    ),
    img(
        DL,
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260416",
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580",
        "2026-04-16T09:31:07.552-07:00",
        50,
        None,
    ),
    img(
        DL,
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260501",
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580",
        "2026-05-01T08:03:19.930-07:00",
        50,
        Some("pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260416"),
    ),
    img(
        DL,
        "common-cu129-ubuntu-2204-nvidia-580-v20260311",
        "common-cu129-ubuntu-2204-nvidia-580",
        "2026-03-11T10:02:51.004-07:00",
        50,
        None,
    ),
    img(
        DL,
        "common-cu129-ubuntu-2204-nvidia-580-v20260416",
        "common-cu129-ubuntu-2204-nvidia-580",
        "2026-04-16T09:20:33.418-07:00",
        50,
        None,
    ),
    img(
        DL,
        "pytorch-2-9-cu129-ubuntu-2404-nvidia-580-v20260416",
        "pytorch-2-9-cu129-ubuntu-2404-nvidia-580",
        "2026-04-16T09:44:12.771-07:00",
        50,
        None,
    ),
    img(
        DL,
        "common-cu129-ubuntu-2404-nvidia-580-v20260416",
        "common-cu129-ubuntu-2404-nvidia-580",
        "2026-04-16T09:38:55.126-07:00",
        50,
        None,
    ),
    img(
        DL,
        "c0-deeplearning-common-cu124-v20250325-debian-11-py310",
        "common-cu124-debian-11-py310",
        "2025-03-25T11:47:02.663-07:00",
        50,
        None,
    ),
    img(
        DL,
        "pytorch-latest-cu121-v20240312-debian-11",
        "pytorch-latest-cu121-debian-11",
        "2024-03-12T10:15:04.113-07:00",
        50,
        None,
    ),
    img(
        DL,
        "pytorch-latest-cu121-v20240417-debian-11",
        "pytorch-latest-cu121-debian-11",
        "2024-04-17T09:02:51.520-07:00",
        50,
        None,
    ),
    img(
        DL,
        "tf-latest-cu121-v20240312-debian-11",
        "tf-latest-cu121-debian-11",
        "2024-03-12T10:20:41.870-07:00",
        50,
        None,
    ),
    img(
        DL,
        "tf-latest-cu121-v20240417-debian-11",
        "tf-latest-cu121-debian-11",
        "2024-04-17T09:10:03.245-07:00",
        50,
        None,
    ),
    img(
        DL,
        "common-cu121-v20240312-debian-11",
        "common-cu121-debian-11",
        "2024-03-12T10:05:33.301-07:00",
        50,
        None,
    ),
    img(
        DL,
        "common-cu121-v20240417-debian-11",
        "common-cu121-debian-11",
        "2024-04-17T08:58:19.777-07:00",
        50,
        None,
    ),
    img(
        "ubuntu-os-cloud",
        "ubuntu-2204-jammy-v20240319",
        "ubuntu-2204-lts",
        "2024-03-19T12:31:45.322-07:00",
        10,
        None,
    ),
    img(
        "ubuntu-os-cloud",
        "ubuntu-2204-jammy-v20240501",
        "ubuntu-2204-lts",
        "2024-05-01T11:02:12.908-07:00",
        10,
        None,
    ),
    img(
        "ubuntu-os-cloud",
        "ubuntu-2204-jammy-v20250112",
        "ubuntu-2204-lts",
        "2025-01-12T12:31:45.322-08:00",
        10,
        None,
    ),
    img(
        "ubuntu-os-cloud",
        "ubuntu-2204-jammy-v20260320",
        "ubuntu-2204-lts",
        "2026-03-20T11:02:12.908-07:00",
        10,
        None,
    ),
    img(
        "ubuntu-os-cloud",
        "ubuntu-2404-noble-amd64-v20260320",
        "ubuntu-2404-lts-amd64",
        "2026-03-20T11:15:40.117-07:00",
        10,
        None,
    ),
    img(
        "debian-cloud",
        "debian-12-bookworm-v20260310",
        "debian-12",
        "2026-03-10T16:30:11.561-07:00",
        10,
        None,
    ),
    img(
        "debian-cloud",
        "debian-12-bookworm-v20260414",
        "debian-12",
        "2026-04-14T16:28:54.117-07:00",
        10,
        None,
    ),
];

pub fn image(project: &str, name: &str) -> Option<&'static ImageInfo> {
    IMAGES
        .iter()
        .find(|i| i.project == project && i.name == name)
}

/// The newest non-deprecated image of a family, as `images.getFromFamily`.
pub fn image_from_family(project: &str, family: &str) -> Option<&'static ImageInfo> {
    IMAGES
        .iter()
        .filter(|i| i.project == project && i.family == family && i.deprecated_by.is_none())
        .max_by(|a, b| a.created.cmp(b.created))
}

pub fn images_of(project: &str) -> impl Iterator<Item = &'static ImageInfo> + '_ {
    IMAGES.iter().filter(move |i| i.project == project)
}

pub fn image_json(i: &ImageInfo) -> Value {
    let mut v = json!({
        "kind": "compute#image",
        "id": stable_id(i.name),
        "creationTimestamp": i.created,
        "name": i.name,
        "description": format!("{} image built on {}", i.family, &i.created[..10]),
        "sourceType": "RAW",
        "status": "READY",
        "archiveSizeBytes": (i.disk_size_gb * 1_073_741_824 / 5).to_string(),
        "diskSizeGb": i.disk_size_gb.to_string(),
        "family": i.family,
        "selfLink": link(&global_path(i.project, "images", i.name)),
        "labelFingerprint": super::util::EMPTY_FINGERPRINT,
        "guestOsFeatures": [
            {"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "UEFI_COMPATIBLE"},
            {"type": "GVNIC"}, {"type": "SEV_CAPABLE"}
        ],
        "storageLocations": ["us", "eu", "asia"],
        "architecture": "X86_64"
    });
    if let Some(rep) = i.deprecated_by {
        v["deprecated"] = json!({
            "state": "DEPRECATED",
            "replacement": link(&global_path(i.project, "images", rep))
        });
    }
    v
}

/// Valid persistent disk types.
pub const DISK_TYPES: &[&str] = &[
    "pd-standard",
    "pd-balanced",
    "pd-ssd",
    "pd-extreme",
    "hyperdisk-balanced",
];

pub fn disk_type_link(project: &str, zone: &str, t: &str) -> String {
    link(&format!("{}/diskTypes/{t}", zone_path(project, zone)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_resolve_to_the_newest_live_image() {
        let i = image_from_family(DL, "pytorch-2-9-cu129-ubuntu-2204-nvidia-580").unwrap();
        assert_eq!(i.name, "pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260416");
        let i = image_from_family(DL, "pytorch-latest-cu121-debian-11").unwrap();
        assert_eq!(i.name, "pytorch-latest-cu121-v20240417-debian-11");
        let u = image_from_family("ubuntu-os-cloud", "ubuntu-2204-lts").unwrap();
        assert_eq!(u.name, "ubuntu-2204-jammy-v20260320");
        // A deprecated image can still be read by name.
        assert!(image(DL, "pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260501").is_some());
        assert!(image_from_family(DL, "nope").is_none());
    }

    #[test]
    fn gpu_shapes_only_where_their_gpu_is() {
        assert!(machine_type("us-central1-a", "a2-highgpu-1g").is_some());
        assert!(machine_type("us-east1-b", "a2-highgpu-1g").is_none());
        assert!(machine_type("us-east1-b", "g2-standard-8").is_some());
        assert!(machine_type("us-central1-f", "n1-standard-8").is_some());
        assert!(accelerator("us-central1-f", "nvidia-l4").is_none());
        assert!(accelerator("us-central1-a", "nvidia-tesla-t4").is_some());
    }
}
