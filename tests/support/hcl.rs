//! The configuration the workstation scenarios share, and reading it back.

use serde_json::Value;

/// A valid OpenSSH public key (no private half exists anywhere).
pub const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWMvMYeYuaSIZey9Llmi901jvbPlR1IvE56UOAMkoSf dev@aienv-test";
/// The address of the workstation in every scenario.
pub const ADDR: &str = "aienv_gpu_workstation.dev";

/// The scenarios' workstation (one T4, a key, one source range, a data disk),
/// with `extra` attribute lines, and outputs for the SSH command and the cost.
pub fn workstation(extra: &str) -> String {
    format!(
        r#"
resource "aienv_gpu_workstation" "dev" {{
  name           = "dev-box"
  gpu            = "T4"
  ssh_public_key = "{SSH_KEY}"
  allowed_cidrs  = ["203.0.113.0/24"]
  data_disk_gb   = 100
{extra}
}}

output "ssh"  {{ value = aienv_gpu_workstation.dev.ssh_command }}
output "cost" {{ value = aienv_gpu_workstation.dev.hourly_cost_usd }}
"#
    )
}

/// A string attribute of a resource's state values ("" when absent).
pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}
