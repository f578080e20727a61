//! AMI resolution: image aliases to the newest matching public AMI, raw `ami-` ids
//! checked for existence, and the facts about an image a launch needs.

use aws_sdk_ec2::types::{Filter, Image};
use tokio_util::sync::CancellationToken;

use super::client::Ec2;
use crate::cloud::{CloudError, ErrorKind};
use crate::spec::{ResolvedImage, IMAGE_ALIASES};

/// Where an alias comes from: the owners to ask and name patterns in order of
/// preference. One DescribeImages call asks for all patterns at once (filter
/// values are OR-ed); the newest image of the first pattern with a match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AliasQuery {
    owners: &'static [&'static str],
    /// EC2 name globs (`*` only), most specific first.
    name_patterns: &'static [&'static str],
}

/// AWS Deep Learning AMIs (the "Deep Learning OSS Nvidia Driver" family ships the
/// open NVIDIA driver that current GPU types need) and Canonical's Ubuntu images.
/// DLAMIs are published by 898082745236 under the owner alias `amazon`; asking
/// for the alias too keeps older DLAMI accounts and emulator fixtures working.
const DLAMI_OWNER: &str = "898082745236";
const CANONICAL_OWNER: &str = "099720109477";
const DLAMI_OWNERS: &[&str] = &[DLAMI_OWNER, "amazon"];

/// Images that match the broad patterns but do not fit NVIDIA GPU machines.
const NOT_FOR_NVIDIA: [&str; 5] = ["neuron", "graviton", "arm64", "habana", "qualcomm"];

fn alias_query(alias: &str) -> Option<AliasQuery> {
    let (owners, name_patterns): (&'static [&'static str], &'static [&'static str]) = match alias {
        "pytorch" => (
            DLAMI_OWNERS,
            &[
                "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *",
                "Deep Learning*GPU PyTorch*",
                "Deep Learning*PyTorch*",
            ],
        ),
        "tensorflow" => (
            DLAMI_OWNERS,
            &[
                "Deep Learning OSS Nvidia Driver AMI GPU TensorFlow * (Ubuntu 22.04) *",
                "Deep Learning*GPU TensorFlow*",
                "Deep Learning*TensorFlow*",
            ],
        ),
        "cuda" => (
            DLAMI_OWNERS,
            &[
                "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
                "Deep Learning Base*GPU*",
                "Deep Learning Base*",
            ],
        ),
        "ubuntu" => (
            &[CANONICAL_OWNER],
            &[
                "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
                "ubuntu/images/*ubuntu-*-amd64-server-*",
            ],
        ),
        _ => return None,
    };
    Some(AliasQuery {
        owners,
        name_patterns,
    })
}

/// EC2's name-filter glob: `*` any run, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The preferred image for a query among what EC2 returned.
fn pick<'a>(q: &AliasQuery, images: &'a [Image]) -> Option<&'a Image> {
    let fits = |i: &&Image| {
        let name = i.name().unwrap_or_default().to_ascii_lowercase();
        !NOT_FOR_NVIDIA.iter().any(|w| name.contains(w))
    };
    q.name_patterns.iter().find_map(|pattern| {
        let tier: Vec<Image> = images
            .iter()
            .filter(fits)
            .filter(|i| glob_match(pattern, i.name().unwrap_or_default()))
            .cloned()
            .collect();
        let best = newest(&tier)?.image_id()?.to_owned();
        images.iter().find(|i| i.image_id() == Some(best.as_str()))
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
        let names = Filter::builder()
            .name("name")
            .set_values(Some(
                q.name_patterns.iter().map(|p| p.to_string()).collect(),
            ))
            .build();
        let found = ec2
            .call("DescribeImages", cancel, || {
                ec2.sdk()
                    .describe_images()
                    .set_owners(Some(q.owners.iter().map(|o| o.to_string()).collect()))
                    .filters(names.clone())
                    .filters(filter("architecture", "x86_64"))
                    .filters(filter("state", "available"))
                    .send()
            })
            .await?;
        let chosen = pick(&q, found.images()).ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "DescribeImages",
                format!(
                    "no available x86_64 image for alias {image:?} in {} (owners {:?}, names {:?})",
                    ec2.region(),
                    q.owners,
                    q.name_patterns
                ),
            )
        })?;
        return info(chosen, image);
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
            alias_query("ubuntu").map(|q| q.owners),
            Some(&[CANONICAL_OWNER][..])
        );
    }

    fn named(id: &str, name: &str, date: &str) -> Image {
        Image::builder()
            .image_id(id)
            .name(name)
            .creation_date(date)
            .build()
    }

    #[test]
    fn globs_match_like_ec2_name_filters() {
        assert!(glob_match(
            "Deep Learning*PyTorch*",
            "Deep Learning AMI GPU PyTorch 2.1 (Ubuntu 20.04) 20240101"
        ));
        assert!(glob_match(
            "ubuntu/images/*ubuntu-*-amd64-server-*",
            "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101"
        ));
        assert!(!glob_match(
            "Deep Learning Base*",
            "Deep Learning AMI GPU PyTorch"
        ));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "ac"));
    }

    #[test]
    fn the_current_family_wins_over_newer_broad_matches_and_neuron_never() {
        let q = alias_query("pytorch").unwrap_or(AliasQuery {
            owners: &[],
            name_patterns: &[],
        });
        let imgs = vec![
            named(
                "ami-old",
                "Deep Learning AMI GPU PyTorch 2.0 (Ubuntu 20.04) 20240101",
                "2026-01-01T00:00:00.000Z",
            ),
            named(
                "ami-neuron",
                "Deep Learning AMI Neuron PyTorch 1.13 (Ubuntu 22.04) 20260301",
                "2026-03-01T00:00:00.000Z",
            ),
            named(
                "ami-cur",
                "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5.1 (Ubuntu 22.04) 20250110",
                "2025-01-10T00:00:00.000Z",
            ),
        ];
        assert_eq!(pick(&q, &imgs).and_then(|i| i.image_id()), Some("ami-cur"));
        // Without the current family, the newest broad match that fits a GPU.
        assert_eq!(
            pick(&q, &imgs[..2]).and_then(|i| i.image_id()),
            Some("ami-old")
        );
        assert!(pick(&q, &imgs[1..2]).is_none());
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
