//! A plain AWS SDK EC2 client for tests, an inventory of what exists in the account,
//! and out-of-band changes (drift) made behind the provider's back.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::types::{Filter, Instance, SecurityGroup, Tag};
use aws_sdk_ec2::Client;

/// An EC2 client for `endpoint` in us-east-1 (static test credentials, SDK retries off).
pub fn client(endpoint: &str) -> Client {
    client_in(endpoint, "us-east-1")
}

/// An EC2 client for `endpoint` in `region` (static test credentials, SDK retries off).
pub fn client_in(endpoint: &str, region: &str) -> Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "aienv-tests",
        ))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// What exists in one region of the account; used to assert that nothing leaked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Ids of instances in any state but `terminated`.
    pub instances_alive: Vec<String>,
    /// Ids of security groups, except the VPCs' `default` groups.
    pub security_groups: Vec<String>,
    /// Ids of EBS volumes (attached root volumes included).
    pub volumes: Vec<String>,
    /// Names of key pairs.
    pub key_pairs: Vec<String>,
}

impl Inventory {
    /// True when nothing at all is left.
    pub fn is_empty(&self) -> bool {
        self.instances_alive.is_empty()
            && self.security_groups.is_empty()
            && self.volumes.is_empty()
            && self.key_pairs.is_empty()
    }
}

impl fmt::Debug for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("Inventory { empty }");
        }
        let list = |ids: &[String]| format!("[{}]", ids.join(", "));
        write!(
            f,
            "Inventory {{ instances_alive: {}, security_groups: {}, volumes: {}, key_pairs: {} }}",
            list(&self.instances_alive),
            list(&self.security_groups),
            list(&self.volumes),
            list(&self.key_pairs)
        )
    }
}

/// Lists live instances, non-default security groups, volumes and key pairs.
pub async fn inventory(client: &Client) -> Inventory {
    let mut inv = Inventory::default();

    let pages = client
        .describe_instances()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances: {}", DisplayErrorContext(e)));
    for page in pages {
        for reservation in page.reservations() {
            for instance in reservation.instances() {
                let state = instance
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                if state != "terminated" {
                    inv.instances_alive
                        .push(instance.instance_id().unwrap_or_default().to_string());
                }
            }
        }
    }

    let pages = client
        .describe_security_groups()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("DescribeSecurityGroups: {}", DisplayErrorContext(e)));
    for page in pages {
        for group in page.security_groups() {
            if group.group_name() != Some("default") {
                inv.security_groups
                    .push(group.group_id().unwrap_or_default().to_string());
            }
        }
    }

    let pages = client
        .describe_volumes()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("DescribeVolumes: {}", DisplayErrorContext(e)));
    for page in pages {
        for volume in page.volumes() {
            inv.volumes
                .push(volume.volume_id().unwrap_or_default().to_string());
        }
    }

    let keys = client
        .describe_key_pairs()
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeKeyPairs: {}", DisplayErrorContext(e)));
    for key in keys.key_pairs() {
        inv.key_pairs
            .push(key.key_name().unwrap_or_default().to_string());
    }

    inv.instances_alive.sort();
    inv.security_groups.sort();
    inv.volumes.sort();
    inv.key_pairs.sort();
    inv
}

/// The instance `id` as EC2 describes it. Panics if it does not exist.
pub async fn instance(client: &Client, id: &str) -> Instance {
    let out = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances {id}: {}", DisplayErrorContext(e)));
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .unwrap_or_else(|| panic!("instance {id} not found"))
}

/// Instances carrying tag `key` = `value` (any state).
pub async fn instances_tagged(client: &Client, key: &str, value: &str) -> Vec<Instance> {
    let out = client
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeInstances tag:{key}: {}", DisplayErrorContext(e)));
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .cloned()
        .collect()
}

/// The state name of an instance (`running`, `stopped`, `terminated`, ...).
pub fn state_name(instance: &Instance) -> String {
    instance
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_default()
}

/// The tags of an instance as a sorted map.
pub fn tags(instance: &Instance) -> BTreeMap<String, String> {
    tag_map(instance.tags())
}

/// Turns an SDK tag list into a sorted map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The security group `group_id`. Panics if it does not exist.
pub async fn security_group(client: &Client, group_id: &str) -> SecurityGroup {
    let out = client
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DescribeSecurityGroups {group_id}: {}",
                DisplayErrorContext(e)
            )
        });
    out.security_groups()
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("security group {group_id} not found"))
}

/// Terminates an instance out of band.
pub async fn terminate(client: &Client, id: &str) {
    client
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("TerminateInstances {id}: {}", DisplayErrorContext(e)));
}

/// Sets (creates or overwrites) tag `key` = `value` on any taggable resource.
pub async fn set_tag(client: &Client, resource_id: &str, key: &str, value: &str) {
    client
        .create_tags()
        .resources(resource_id)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTags {resource_id}: {}", DisplayErrorContext(e)));
}

/// Removes every ingress rule of a security group. Returns how many rule sets it removed.
pub async fn revoke_all_ingress(client: &Client, group_id: &str) -> usize {
    let group = security_group(client, group_id).await;
    let rules = group.ip_permissions().to_vec();
    if rules.is_empty() {
        return 0;
    }
    let count = rules.len();
    client
        .revoke_security_group_ingress()
        .group_id(group_id)
        .set_ip_permissions(Some(rules))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RevokeSecurityGroupIngress {group_id}: {}",
                DisplayErrorContext(e)
            )
        });
    count
}

/// Changes an instance's type out of band the way a person would on real EC2:
/// stop, ModifyInstanceAttribute(InstanceType), start.
pub async fn modify_instance_type(client: &Client, id: &str, instance_type: &str) {
    client
        .stop_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("StopInstances {id}: {}", DisplayErrorContext(e)));
    client
        .modify_instance_attribute()
        .instance_id(id)
        .instance_type(
            aws_sdk_ec2::types::AttributeValue::builder()
                .value(instance_type)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ModifyInstanceAttribute {id} InstanceType={instance_type}: {}",
                DisplayErrorContext(e)
            )
        });
    client
        .start_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartInstances {id}: {}", DisplayErrorContext(e)));
}
