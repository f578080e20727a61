//! The first-boot script every backend hands its VM (user data / startup-script /
//! custom data). It installs the idle auto-stop watcher, then runs the user's own
//! script. The watcher reads its threshold from the instance's own metadata on
//! every tick, so changing `auto_stop_idle_minutes` is a tag/metadata update and
//! needs no restart.

use crate::spec::TAG_AUTO_STOP;

/// Where the watcher reads the idle threshold from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// EC2 instance metadata (IMDSv2 token + instance tags in metadata).
    AwsInstanceTags,
    /// GCE metadata server, instance attribute of the same name.
    GceInstanceAttributes,
    /// Azure IMDS compute tags.
    AzureInstanceTags,
}

impl MetadataSource {
    /// A shell function body printing the threshold in minutes (empty when unset).
    fn read_threshold(self) -> String {
        match self {
            MetadataSource::AwsInstanceTags => format!(
                "tok=$(curl -sf -m 5 -X PUT http://169.254.169.254/latest/api/token \
-H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 0\n  \
curl -sf -m 5 -H \"X-aws-ec2-metadata-token: $tok\" \
http://169.254.169.254/latest/meta-data/tags/instance/{TAG_AUTO_STOP}"
            ),
            MetadataSource::GceInstanceAttributes => format!(
                "curl -sf -m 5 -H 'Metadata-Flavor: Google' \
http://metadata.google.internal/computeMetadata/v1/instance/attributes/{TAG_AUTO_STOP}"
            ),
            MetadataSource::AzureInstanceTags => format!(
                "curl -sf -m 5 -H 'Metadata: true' \
'http://169.254.169.254/metadata/instance/compute/tagsList?api-version=2021-02-01' \
| tr '{{' '\\n' | grep '\"name\":\"{TAG_AUTO_STOP}\"' | sed 's/.*\"value\":\"\\([0-9]*\\)\".*/\\1/'"
            ),
        }
    }
}

/// Build the boot script. `user_data` runs last, as root, from its own file so
/// its shebang (if any) is honoured.
pub fn boot_script(source: MetadataSource, user_data: Option<&str>) -> String {
    let read_threshold = source.read_threshold();
    let mut script = format!(
        r#"#!/bin/bash
# aienv bootstrap: idle auto-stop watcher, then the user's script.
set -u
install -d -m 0755 /opt/aienv
cat > /opt/aienv/idle-check.sh <<'AIENV_IDLE'
#!/bin/bash
# Runs every minute. A machine is busy while a GPU is used, someone is logged
# in, or a Jupyter kernel is running; it stops after THRESHOLD idle minutes.
set -u
state=/var/lib/aienv-idle-minutes
threshold() {{
  {read_threshold}
}}
t=$(threshold 2>/dev/null | tr -cd '0-9')
if [ -z "$t" ] || [ "$t" -eq 0 ]; then echo 0 > "$state"; exit 0; fi
busy=0
if command -v nvidia-smi >/dev/null 2>&1; then
  util=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -1 | tr -cd '0-9')
  [ -n "$util" ] && [ "$util" -gt 5 ] && busy=1
fi
[ "$(who | wc -l)" -gt 0 ] && busy=1
pgrep -f ipykernel >/dev/null 2>&1 && busy=1
if [ "$busy" -eq 1 ]; then echo 0 > "$state"; exit 0; fi
idle=$(( $(cat "$state" 2>/dev/null || echo 0) + 1 ))
echo "$idle" > "$state"
if [ "$idle" -ge "$t" ]; then
  logger -t aienv "idle for $idle minutes (threshold $t): stopping"
  shutdown -h now
fi
AIENV_IDLE
chmod 0755 /opt/aienv/idle-check.sh
cat > /etc/systemd/system/aienv-idle.service <<'AIENV_UNIT'
[Unit]
Description=aienv idle auto-stop check
[Service]
Type=oneshot
ExecStart=/opt/aienv/idle-check.sh
AIENV_UNIT
cat > /etc/systemd/system/aienv-idle.timer <<'AIENV_TIMER'
[Unit]
Description=aienv idle auto-stop check every minute
[Timer]
OnBootSec=5min
OnUnitActiveSec=1min
[Install]
WantedBy=timers.target
AIENV_TIMER
systemctl daemon-reload && systemctl enable --now aienv-idle.timer
"#
    );
    if let Some(user) = user_data.filter(|u| !u.trim().is_empty()) {
        // A heredoc delimiter the user's script cannot contain by accident.
        let mut delim = String::from("AIENV_USER_DATA");
        while user.contains(&delim) {
            delim.push('_');
        }
        // Some clouds run the boot script on every start (GCE's startup-script):
        // the user's script runs once, like user data on EC2.
        script.push_str(&format!(
            "if [ ! -e /var/lib/aienv/user-data.done ]; then\n\
cat > /opt/aienv/user-data <<'{delim}'\n{user}\n{delim}\nchmod 0755 /opt/aienv/user-data\n\
install -d -m 0755 /var/lib/aienv && touch /var/lib/aienv/user-data.done\n\
if head -c 2 /opt/aienv/user-data | grep -q '#!'; then /opt/aienv/user-data; else /bin/bash /opt/aienv/user-data; fi\n\
fi\n"
        ));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_script_reads_threshold_from_instance_tags() {
        let s = boot_script(MetadataSource::AwsInstanceTags, None);
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("meta-data/tags/instance/aienv-auto-stop-idle-minutes"));
        assert!(s.contains("X-aws-ec2-metadata-token"));
        assert!(!s.contains("/opt/aienv/user-data <<"));
    }

    #[test]
    fn user_data_runs_after_the_watcher_and_survives_delimiter_clash() {
        let user = "echo hi\nAIENV_USER_DATA\n";
        let s = boot_script(MetadataSource::GceInstanceAttributes, Some(user));
        let watcher = s.find("aienv-idle.timer").unwrap_or(usize::MAX);
        let user_at = s.find("echo hi").unwrap_or(0);
        assert!(watcher < user_at);
        assert!(s.contains("<<'AIENV_USER_DATA_'"));
        assert!(
            s.contains("/var/lib/aienv/user-data.done"),
            "runs once even where the script runs at every boot"
        );
    }
}
