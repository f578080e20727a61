//! Image resolution: aliases to the newest image of a public image family, raw
//! image paths checked for existence, and the login user of an image.

use google_cloud_compute_v1::model::Image;
use tokio_util::sync::CancellationToken;

use super::client::Gce;
use super::errors::ErrorContext;
use super::network::{last_segment, relative};
use crate::cloud::{CloudError, ErrorKind};
use crate::spec::{ResolvedImage, IMAGE_ALIASES};

/// Image project of Google's Deep Learning VM images.
pub const DL_PROJECT: &str = "deeplearning-platform-release";

/// Alias → (image project, image family), resolved with `images.getFromFamily`.
///
/// From Google's "Choose an image" page for Deep Learning VM Images: the current
/// families are `pytorch-2-9-cu129-…` and the CUDA base `common-cu129-…`, each on
/// Ubuntu 22.04 and 24.04 with NVIDIA driver 580 preinstalled (Debian images are
/// deprecated). We take Ubuntu 22.04, like the AWS backend's Deep Learning AMIs.
/// Google no longer publishes TensorFlow images (all deprecated; the last family
/// reaches end of availability in July 2026), so `tensorflow` is the CUDA base
/// image, on which `pip install tensorflow[and-cuda]` runs against the installed
/// driver.
pub const IMAGE_FAMILIES: [(&str, &str, &str); 4] = [
    (
        "pytorch",
        DL_PROJECT,
        "pytorch-2-9-cu129-ubuntu-2204-nvidia-580",
    ),
    (
        "tensorflow",
        DL_PROJECT,
        "common-cu129-ubuntu-2204-nvidia-580",
    ),
    ("cuda", DL_PROJECT, "common-cu129-ubuntu-2204-nvidia-580"),
    ("ubuntu", "ubuntu-os-cloud", "ubuntu-2204-lts"),
];

/// Long-lived family names tried, in order, when the current family is not
/// served (older projects' mirrors, private image copies, other emulators).
const FALLBACK_FAMILIES: [(&str, &str); 3] = [
    ("pytorch", "pytorch-latest-gpu"),
    ("tensorflow", "tf-latest-gpu"),
    ("cuda", "common-cu121-debian-11"),
];

fn family_of(alias: &str) -> Option<(&'static str, &'static str)> {
    IMAGE_FAMILIES
        .iter()
        .find(|(a, _, _)| *a == alias)
        .map(|(_, p, f)| (*p, *f))
}

/// Every family to try for an alias: the current one first.
fn families_of(alias: &str) -> Vec<(&'static str, &'static str)> {
    let Some((project, family)) = family_of(alias) else {
        return Vec::new();
    };
    let mut out = vec![(project, family)];
    out.extend(
        FALLBACK_FAMILIES
            .iter()
            .filter(|(a, _)| *a == alias)
            .map(|(_, f)| (project, *f)),
    );
    out
}

/// What a raw image reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw<'a> {
    Image { project: &'a str, name: &'a str },
    Family { project: &'a str, family: &'a str },
}

/// `projects/P/global/images/NAME`, `projects/P/global/images/family/F`, or a
/// selfLink ending so.
fn parse_raw(image: &str) -> Option<Raw<'_>> {
    let parts: Vec<&str> = relative(image).trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["projects", project, "global", "images", "family", family]
            if !project.is_empty() && !family.is_empty() =>
        {
            Some(Raw::Family { project, family })
        }
        ["projects", project, "global", "images", name]
            if !project.is_empty() && !name.is_empty() =>
        {
            Some(Raw::Image { project, name })
        }
        _ => None,
    }
}

/// The login user we create through the `ssh-keys` metadata. Compute Engine
/// has no built-in login user: the guest agent creates the account named there.
/// `ubuntu` on Ubuntu images (every current Deep Learning VM image and the
/// Ubuntu alias), as on AWS; `jupyter` on the older non-Ubuntu Deep Learning VM
/// images, whose notebooks and samples belong to that user; `ubuntu` elsewhere.
/// Takes an image path or name, so create (which has only `image_id`) and
/// `resolve_image` agree.
pub(crate) fn ssh_user(image: &str) -> &'static str {
    let path = relative(image);
    let name = last_segment(path).to_ascii_lowercase();
    if name.contains("ubuntu") {
        return "ubuntu";
    }
    if path.starts_with(&format!("projects/{DL_PROJECT}/")) {
        return "jupyter";
    }
    "ubuntu"
}

/// Resolve an alias or raw image reference to a concrete, usable image.
pub(crate) async fn resolve_image(
    gce: &Gce,
    image: &str,
    cancel: &CancellationToken,
) -> Result<ResolvedImage, CloudError> {
    let image = image.trim();
    let ctx = ErrorContext::none();
    let (found, asked) = if family_of(image).is_some() {
        let mut result = None;
        let mut last_err = None;
        for (project, family) in families_of(image) {
            let got = gce
                .call("images.getFromFamily", &ctx, cancel, || {
                    gce.images
                        .get_from_family()
                        .set_project(project)
                        .set_family(family)
                        .send()
                })
                .await;
            match got {
                Ok(found) => {
                    result = Some((
                        found,
                        format!("projects/{project}/global/images/family/{family}"),
                    ));
                    break;
                }
                Err(e) if e.is_not_found() => {
                    last_err = Some(not_found_as(
                        e,
                        format!(
                            "no image in family {family} of project {project} (alias {image:?})"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        match result {
            Some(r) => r,
            None => {
                return Err(last_err.unwrap_or_else(|| {
                    CloudError::new(
                        ErrorKind::NotFound,
                        "images.getFromFamily",
                        format!("no image for alias {image:?}"),
                    )
                }))
            }
        }
    } else {
        match parse_raw(image) {
            Some(Raw::Family { project, family }) => {
                let found = gce
                    .call("images.getFromFamily", &ctx, cancel, || {
                        gce.images
                            .get_from_family()
                            .set_project(project)
                            .set_family(family)
                            .send()
                    })
                    .await
                    .map_err(|e| not_found_as(e, format!("image family {family} does not exist in project {project} or is not visible to this account")))?;
                (found, image.to_owned())
            }
            Some(Raw::Image { project, name }) => {
                let found = gce
                    .call("images.get", &ctx, cancel, || {
                        gce.images
                            .get()
                            .set_project(project)
                            .set_image(name)
                            .send()
                    })
                    .await
                    .map_err(|e| not_found_as(e, format!("image {name} does not exist in project {project} or is not visible to this account")))?;
                (found, image.to_owned())
            }
            None => {
                return Err(CloudError::new(
                    ErrorKind::InvalidInput,
                    "images.get",
                    format!(
                        "image {image:?} is neither an alias ({}) nor a Compute Engine image \
(projects/PROJECT/global/images/NAME or projects/PROJECT/global/images/family/FAMILY)",
                        IMAGE_ALIASES.join(", ")
                    ),
                ))
            }
        }
    };
    usable(&found, &asked)
}

fn not_found_as(e: CloudError, message: String) -> CloudError {
    if e.is_not_found() {
        let mut out = CloudError::new(ErrorKind::NotFound, e.operation.clone(), message);
        out.code = e.code;
        out
    } else {
        e
    }
}

/// The image as a `ResolvedImage`, if it can boot a new instance.
fn usable(img: &Image, asked: &str) -> Result<ResolvedImage, CloudError> {
    let path = img
        .self_link
        .as_deref()
        .map(relative)
        .filter(|p| p.starts_with("projects/"))
        .map(str::to_owned)
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::Unexpected,
                "images.get",
                format!("Compute Engine returned image {asked} without a selfLink"),
            )
        })?;
    let name = img
        .name
        .clone()
        .unwrap_or_else(|| last_segment(&path).to_owned());
    if let Some(status) = img.status.as_ref().and_then(|s| s.name()) {
        if status != "READY" {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "images.get",
                format!("image {path} is {status}, not READY"),
            ));
        }
    }
    if let Some(state) = img
        .deprecated
        .as_ref()
        .and_then(|d| d.state.as_ref())
        .and_then(|s| s.name())
    {
        if matches!(state, "OBSOLETE" | "DELETED") {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "images.get",
                format!("image {path} is {state} and can no longer create disks"),
            ));
        }
    }
    Ok(ResolvedImage {
        ssh_user: ssh_user(&path).to_owned(),
        id: path,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_family_comes_first_then_long_lived_ones() {
        let f = families_of("pytorch");
        assert_eq!(f[0].1, "pytorch-2-9-cu129-ubuntu-2204-nvidia-580");
        assert_eq!(f.last().map(|x| x.1), Some("pytorch-latest-gpu"));
        assert_eq!(families_of("ubuntu").len(), 1);
        assert!(families_of("nope").is_empty());
    }

    #[test]
    fn every_alias_has_a_family() {
        for alias in IMAGE_ALIASES {
            assert!(family_of(alias).is_some(), "{alias}");
        }
        assert_eq!(
            family_of("ubuntu"),
            Some(("ubuntu-os-cloud", "ubuntu-2204-lts"))
        );
        assert_eq!(family_of("projects/p/global/images/x"), None);
    }

    #[test]
    fn raw_references() {
        assert_eq!(
            parse_raw("projects/p/global/images/my-image"),
            Some(Raw::Image {
                project: "p",
                name: "my-image"
            })
        );
        assert_eq!(
            parse_raw("https://www.googleapis.com/compute/v1/projects/p/global/images/my-image"),
            Some(Raw::Image {
                project: "p",
                name: "my-image"
            })
        );
        assert_eq!(
            parse_raw("projects/deeplearning-platform-release/global/images/family/common-cu129-ubuntu-2204-nvidia-580"),
            Some(Raw::Family {
                project: "deeplearning-platform-release",
                family: "common-cu129-ubuntu-2204-nvidia-580"
            })
        );
        for bad in [
            "ami-0123",
            "global/images/x",
            "projects/p/images/x",
            "projects//global/images/x",
        ] {
            assert_eq!(parse_raw(bad), None, "{bad}");
        }
    }

    #[test]
    fn ssh_user_by_image() {
        assert_eq!(
            ssh_user("projects/deeplearning-platform-release/global/images/pytorch-2-9-cu129-ubuntu-2204-nvidia-580-v20260416"),
            "ubuntu"
        );
        assert_eq!(
            ssh_user("https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20250112"),
            "ubuntu"
        );
        assert_eq!(
            ssh_user("projects/deeplearning-platform-release/global/images/c0-deeplearning-common-cu124-v20250325-debian-11-py310"),
            "jupyter"
        );
        assert_eq!(
            ssh_user("projects/p/global/images/my-rocky-image"),
            "ubuntu"
        );
    }

    fn image(link: &str, status: &str) -> Image {
        let mut img = Image::new();
        img.self_link = Some(link.to_owned());
        img.name = Some(last_segment(link).to_owned());
        img.status = Some(status.into());
        img
    }

    #[test]
    fn resolved_id_is_the_relative_path() {
        let img = image(
            "https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20250112",
            "READY",
        );
        let r = usable(&img, "ubuntu");
        assert_eq!(
            r.ok(),
            Some(ResolvedImage {
                id: "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20250112".into(),
                name: "ubuntu-2204-jammy-v20250112".into(),
                ssh_user: "ubuntu".into(),
            })
        );
        let pending = image("projects/p/global/images/x", "PENDING");
        assert_eq!(
            usable(&pending, "x").err().map(|e| e.kind),
            Some(ErrorKind::InvalidInput)
        );
    }
}
