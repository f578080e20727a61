//! AMI resolution: image aliases to the newest matching public AMI, raw `ami-` ids
//! checked for existence, and the facts about an image a launch needs.

use aws_sdk_ec2::types::{Filter, Image};
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use crate::cloud::{CloudError, ErrorKind};
use crate::spec::{ResolvedImage, IMAGE_ALIASES};

/// Where an alias comes from: the AMI owner account and a name pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AliasQuery {
    owner: &'static str,
    name_pattern: &'static str,
}

/// AWS Deep Learning AMIs (the "Deep Learning OSS Nvidia Driver" family ships the
/// open NVIDIA driver that current GPU types need) and Canonical's Ubuntu images.
const DLAMI_OWNER: &str = "898082745236";
const CANONICAL_OWNER: &str = "099720109477";

fn alias_query(alias: &str) -> Option<AliasQuery> {
    let (owner, name_pattern) = match alias {
        "pytorch" => (
            DLAMI_OWNER,
            "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *",
        ),
        "tensorflow" => (
            DLAMI_OWNER,
            "Deep Learning OSS Nvidia Driver AMI GPU TensorFlow * (Ubuntu 22.04) *",
        ),
        "cuda" => (
            DLAMI_OWNER,
            "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
        ),
        "ubuntu" => (
            CANONICAL_OWNER,
            "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
        ),
        _ => return None,
    };
    Some(AliasQuery {
        owner,
        name_pattern,
    })
}

/// An image with what a launch needs beyond its id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageInfo {
    pub resolved: ResolvedImage,
    /// Device name of the root volume (`/dev/sda1` on Ubuntu, `/dev/xvda` on
    /// Amazon Linux): the root block device mapping must use exactly this name,
    /// else EC2 adds a second volume instead of resizing the root one.
    pub root_device_name: String,
}

/// Resolve an alias or raw AMI id in the client's region.
pub(crate) async fn resolve_image(
    ec2: &Ec2,
    image: &str,
    cancel: &CancellationToken,
) -> Result<ResolvedImage, CloudError> {
    Ok(describe(ec2, image, cancel).await?.resolved)
}

/// Like `resolve_image`, also returning the root device name.
pub(crate) async fn describe(
    ec2: &Ec2,
    image: &str,
    cancel: &CancellationToken,
) -> Result<ImageInfo, CloudError> {
    let image = image.trim();
    if let Some(q) = alias_query(image) {
        let found = ec2
            .call("DescribeImages", cancel, || {
                ec2.sdk()
                    .describe_images()
                    .owners(q.owner)
                    .filters(filter("name", q.name_pattern))
                    .filters(filter("architecture", "x86_64"))
                    .filters(filter("state", "available"))
                    .send()
            })
            .await?;
        let newest = newest(found.images()).ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "DescribeImages",
                format!(
                    "no available image for alias {image:?} in {} (owner {}, name {:?})",
                    ec2.region(),
                    q.owner,
                    q.name_pattern
                ),
            )
        })?;
        return info(newest, image);
    }
    if !image.starts_with("ami-") {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "DescribeImages",
            format!(
                "image {image:?} is neither an alias ({}) nor an AMI id (ami-...)",
                IMAGE_ALIASES.join(", ")
            ),
        ));
    }
    let found = ec2
        .call("DescribeImages", cancel, || {
            ec2.sdk().describe_images().image_ids(image).send()
        })
        .await?;
    // EC2 answers InvalidAMIID.NotFound for unknown ids, but an image that is not
    // shared with this account can also come back as an empty list.
    let img = found
        .images()
        .iter()
        .find(|i| i.image_id() == Some(image))
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "DescribeImages",
                format!(
                    "image {image} does not exist in {} or is not visible to this account",
                    ec2.region()
                ),
            )
        })?;
    if let Some(state) = img.state() {
        if state.as_str() != "available" {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeImages",
                format!(
                    "image {image} is {} in {}, not available",
                    state.as_str(),
                    ec2.region()
                ),
            ));
        }
    }
    info(img, image)
}

fn info(img: &Image, asked: &str) -> Result<ImageInfo, CloudError> {
    let id = img.image_id().ok_or_else(|| {
        CloudError::new(
            ErrorKind::Unexpected,
            "DescribeImages",
            format!("EC2 returned an image without an id for {asked:?}"),
        )
    })?;
    let name = img.name().unwrap_or_default().to_owned();
    Ok(ImageInfo {
        resolved: ResolvedImage {
            id: id.to_owned(),
            ssh_user: ssh_user(&name).to_owned(),
            name,
        },
        // Every EBS-backed AMI has one; /dev/sda1 is EC2's own default.
        root_device_name: img.root_device_name().unwrap_or("/dev/sda1").to_owned(),
    })
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The newest image by CreationDate. EC2 formats it as ISO 8601 UTC
/// (`2025-01-10T18:03:27.000Z`), so string order is time order. Ties break on
/// the id so the choice is stable.
fn newest(images: &[Image]) -> Option<&Image> {
    images
        .iter()
        .filter(|i| i.image_id().is_some())
        .max_by(|a, b| {
            (a.creation_date().unwrap_or(""), a.image_id())
                .cmp(&(b.creation_date().unwrap_or(""), b.image_id()))
        })
}

/// The login user of an image, from its name: Amazon Linux images (including
/// DLAMIs built on it) use `ec2-user`; Ubuntu and everything else `ubuntu`.
fn ssh_user(image_name: &str) -> &'static str {
    let n = image_name.to_ascii_lowercase();
    if n.contains("amazon linux") || n.contains("amzn") || n.starts_with("al2023-") {
        "ec2-user"
    } else {
        "ubuntu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, date: &str) -> Image {
        Image::builder().image_id(id).creation_date(date).build()
    }

    #[test]
    fn every_alias_has_a_query() {
        for alias in IMAGE_ALIASES {
            assert!(alias_query(alias).is_some(), "{alias}");
        }
        assert_eq!(alias_query("ami-0123"), None);
        assert_eq!(
            alias_query("ubuntu").map(|q| q.owner),
            Some(CANONICAL_OWNER)
        );
    }

    #[test]
    fn newest_by_creation_date() {
        let imgs = vec![
            image("ami-1", "2024-10-16T09:12:44.000Z"),
            image("ami-2", "2025-01-10T18:03:27.000Z"),
            image("ami-3", "2024-12-01T00:00:00.000Z"),
        ];
        assert_eq!(newest(&imgs).and_then(|i| i.image_id()), Some("ami-2"));
        assert!(newest(&[]).is_none());
    }

    #[test]
    fn ssh_user_from_name() {
        assert_eq!(
            ssh_user(
                "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5.1 (Ubuntu 22.04) 20250110"
            ),
            "ubuntu"
        );
        assert_eq!(
            ssh_user("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250112"),
            "ubuntu"
        );
        assert_eq!(
            ssh_user(
                "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5 (Amazon Linux 2023) 20250110"
            ),
            "ec2-user"
        );
        assert_eq!(
            ssh_user("amzn2-ami-kernel-5.10-hvm-2.0.20240916.0-x86_64-gp2"),
            "ec2-user"
        );
        assert_eq!(
            ssh_user("al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64"),
            "ec2-user"
        );
        assert_eq!(ssh_user("my-custom-image"), "ubuntu");
    }
}
