//! A throw-away Terraform working directory that runs the real Terraform CLI against
//! the provider binary under test, isolated from the user's configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::tools;

/// Provider address the plugin directory serves (`source = "aienv/aienv"` in HCL).
pub const PROVIDER_SOURCE: &str = "registry.terraform.io/aienv/aienv";
/// Provider version in the plugin directory.
pub const PROVIDER_VERSION: &str = "0.1.0";
/// Variable set to the workspace's root dir for every command; terraform passes it on to
/// the provider, so a test can find its own provider processes
/// (see `processes::running_provider_processes_with_env`).
pub const MARKER_ENV: &str = "AIENV_TEST_WORKSPACE";
/// Default time limit of one terraform command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables taken over from the test's own environment; everything else is cleared.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "LANG",
    "RUST_BACKTRACE",
    "RUST_LOG",
    "LLVM_PROFILE_FILE",
];

/// One temp dir per test: `work/` (the configuration, state and `.terraform/`),
/// `plugins/` (the provider under test), an empty CLI config and an empty `home/`.
/// The dir is deleted on drop, and kept (path printed) when the test panics.
/// Its methods block: an async test may call them directly (its runtime thread waits)
/// or through `tokio::task::spawn_blocking` when other tasks must run meanwhile.
pub struct Workspace {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    work: PathBuf,
    plugins: PathBuf,
    provider_bin: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Duration,
}

impl Workspace {
    /// Creates the workspace; `provider_bin` is normally
    /// `env!("CARGO_BIN_EXE_terraform-provider-aienv")`.
    pub fn new(provider_bin: &Path) -> Workspace {
        let provider_bin = std::fs::canonicalize(provider_bin)
            .unwrap_or_else(|e| panic!("provider binary {}: {e}", provider_bin.display()));
        let tmp = tempfile::Builder::new()
            .prefix("aienv-tf-")
            .tempdir()
            .expect("create the workspace temp dir");
        let root = tmp.path().to_path_buf();
        let work = root.join("work");
        let plugins = root.join("plugins");
        let home = root.join("home");
        let cli_config = root.join("terraformrc");
        for dir in [&work, &home] {
            std::fs::create_dir_all(dir).expect("create workspace dirs");
        }
        std::fs::write(&cli_config, "").expect("write the empty terraform CLI config");

        let ws = Workspace {
            tmp: Some(tmp),
            root: root.clone(),
            work,
            plugins,
            provider_bin,
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
        };
        let installed = ws.plugin_binary_path();
        let package_dir = installed.parent().expect("plugin package dir");
        std::fs::create_dir_all(package_dir).expect("create the plugin dir");
        // A link or copy, not a symlink: a rebuild of the binary during a test
        // (another cargo run) must not change the plugin under terraform's lock file.
        if std::fs::hard_link(&ws.provider_bin, &installed).is_err() {
            std::fs::copy(&ws.provider_bin, &installed).expect("copy the provider binary");
        }

        let mut ws = ws;
        let root_str = root.to_string_lossy().into_owned();
        let defaults = [
            ("TF_IN_AUTOMATION", "1".to_string()),
            ("CHECKPOINT_DISABLE", "1".to_string()),
            ("TF_INPUT", "0".to_string()),
            (
                "TF_CLI_CONFIG_FILE",
                cli_config.to_string_lossy().into_owned(),
            ),
            ("HOME", home.to_string_lossy().into_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            (
                "AWS_CONFIG_FILE",
                home.join(".aws/config").to_string_lossy().into_owned(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                home.join(".aws/credentials").to_string_lossy().into_owned(),
            ),
            (MARKER_ENV, root_str),
        ];
        for (k, v) in defaults {
            ws.env.insert(k.to_string(), v);
        }
        ws
    }

    /// The working directory (main.tf, terraform.tfstate, .terraform/).
    pub fn dir(&self) -> &Path {
        &self.work
    }

    /// The workspace's temp dir (parent of `dir()` and the plugin dir).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `-plugin-dir` given to `terraform init`.
    pub fn plugin_dir(&self) -> &Path {
        &self.plugins
    }

    /// `plugins/registry.terraform.io/aienv/aienv/0.1.0/linux_amd64/terraform-provider-aienv_v0.1.0`
    /// (a symlink to the provider binary, or a copy where symlinks fail).
    pub fn plugin_binary_path(&self) -> PathBuf {
        self.plugins
            .join(PROVIDER_SOURCE)
            .join(PROVIDER_VERSION)
            .join("linux_amd64")
            .join(format!("terraform-provider-aienv_v{PROVIDER_VERSION}"))
    }

    /// The provider binary under test (canonical path).
    pub fn provider_bin(&self) -> &Path {
        &self.provider_bin
    }

    /// The value of [`MARKER_ENV`] in this workspace's commands.
    pub fn marker(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    /// The local state file.
    pub fn state_file(&self) -> PathBuf {
        self.work.join("terraform.tfstate")
    }

    /// Sets an environment variable for every later command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Removes an environment variable (also one of the defaults).
    pub fn env_remove(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    /// Sets the time limit of each command (default 5 minutes).
    pub fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Sets `TF_LOG=level` and `TF_LOG_PATH` to a file in the workspace; returns its path.
    pub fn enable_tf_log(&mut self, level: &str) -> PathBuf {
        let path = self.root.join("terraform.log");
        self.env("TF_LOG", level);
        self.env("TF_LOG_PATH", &path.to_string_lossy());
        path
    }

    /// Writes `main.tf`.
    pub fn write_main(&self, hcl: &str) {
        self.write_file("main.tf", hcl);
    }

    /// Writes a file into the working directory.
    pub fn write_file(&self, name: &str, contents: &str) {
        let path = self.work.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// `terraform init -plugin-dir=<plugins>` (local state, no network).
    pub fn init(&self) -> CmdOutcome {
        let plugin_dir = format!("-plugin-dir={}", self.plugins.display());
        self.run(&["init", "-input=false", "-no-color", &plugin_dir])
    }

    /// `terraform apply -auto-approve`.
    pub fn apply(&self) -> CmdOutcome {
        self.apply_with(&[])
    }

    /// `terraform apply -auto-approve <extra...>` (e.g. `-var`, `-parallelism=1`).
    pub fn apply_with(&self, extra: &[&str]) -> CmdOutcome {
        let mut args = vec!["apply", "-input=false", "-no-color", "-auto-approve"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `terraform apply -refresh-only -auto-approve`.
    pub fn refresh(&self) -> CmdOutcome {
        self.apply_with(&["-refresh-only"])
    }

    /// `terraform plan -detailed-exitcode`.
    pub fn plan(&self) -> PlanOutcome {
        self.plan_with(&[])
    }

    /// `terraform plan -detailed-exitcode <extra...>`.
    pub fn plan_with(&self, extra: &[&str]) -> PlanOutcome {
        let mut args = vec!["plan", "-input=false", "-no-color", "-detailed-exitcode"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        PlanOutcome {
            command: out.command,
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// `terraform plan -out` + `terraform show -json` of that plan. Panics on failure.
    pub fn plan_json(&self) -> Value {
        let plan_file = self.root.join("plan.tfplan");
        let out_arg = format!("-out={}", plan_file.display());
        self.run(&["plan", "-input=false", "-no-color", &out_arg])
            .expect_ok();
        let plan_path = plan_file.to_string_lossy().into_owned();
        let shown = self
            .run(&["show", "-json", "-no-color", &plan_path])
            .expect_ok();
        parse_json(&shown)
    }

    /// `terraform destroy -auto-approve`.
    pub fn destroy(&self) -> CmdOutcome {
        self.run(&["destroy", "-input=false", "-no-color", "-auto-approve"])
    }

    /// `terraform state rm <addr>`.
    pub fn state_rm(&self, addr: &str) -> CmdOutcome {
        self.run(&["state", "rm", addr])
    }

    /// `terraform import <addr> <id>`.
    pub fn import(&self, addr: &str, id: &str) -> CmdOutcome {
        self.run(&["import", "-input=false", "-no-color", addr, id])
    }

    /// `terraform show -json` of the current state. Panics on failure.
    pub fn state_json(&self) -> Value {
        let shown = self.run(&["show", "-json", "-no-color"]).expect_ok();
        parse_json(&shown)
    }

    /// The attribute values of resource `addr` (e.g. `aienv_workstation.main`) in the state.
    /// Panics, listing the addresses present, when it is not there.
    pub fn resource_values(&self, addr: &str) -> Value {
        let state = self.state_json();
        let mut resources = Vec::new();
        if let Some(root) = state.pointer("/values/root_module") {
            collect_resources(root, &mut resources);
        }
        if let Some(found) = resources
            .iter()
            .find(|r| r.get("address").and_then(Value::as_str) == Some(addr))
        {
            return found.get("values").cloned().unwrap_or(Value::Null);
        }
        let present: Vec<&str> = resources
            .iter()
            .filter_map(|r| r.get("address").and_then(Value::as_str))
            .collect();
        panic!("resource {addr} is not in the state; present: {present:?}");
    }

    /// `terraform output -json <name>`; the stdout is the value as JSON.
    pub fn output(&self, name: &str) -> CmdOutcome {
        self.run(&["output", "-no-color", "-json", name])
    }

    /// The value of output `name`. Panics on failure.
    pub fn output_json(&self, name: &str) -> Value {
        let out = self.output(name).expect_ok();
        parse_json(&out)
    }

    /// The `terraform <args...>` command with the workspace environment, in its own
    /// process group, for tests that must signal it while it runs (`run` for the rest).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tools::terraform_bin());
        cmd.args(args)
            .current_dir(&self.work)
            .env_clear()
            .stdin(Stdio::null())
            .process_group(0);
        for key in PASSTHROUGH_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(&self.env);
        cmd
    }

    /// Runs `terraform <args...>` in the working directory with the workspace environment,
    /// killing it (and its process group, the provider included) after the time limit;
    /// a timeout fails the test with the output so far.
    pub fn run(&self, args: &[&str]) -> CmdOutcome {
        let terraform = tools::terraform_bin();
        let command = format!("terraform {}", args.join(" "));
        let mut cmd = Command::new(&terraform);
        cmd.args(args)
            .current_dir(&self.work)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for key in PASSTHROUGH_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(&self.env);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", terraform.display()));
        let stdout = Capture::start(child.stdout.take().expect("piped stdout"));
        let stderr = Capture::start(child.stderr.take().expect("piped stderr"));

        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => panic!("wait for `{command}`: {e}"),
            }
            if Instant::now() >= deadline {
                kill_process_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`{command}` timed out after {:?} in {}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.timeout,
                    self.work.display(),
                    stdout.finish(),
                    stderr.finish()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        CmdOutcome {
            command,
            success: status.success(),
            exit_code: status.code().unwrap_or(-1),
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!("terraform workspace (kept): {}", kept.display());
            }
        }
    }
}

/// The result of one terraform command.
#[derive(Clone)]
pub struct CmdOutcome {
    /// The command line, for messages.
    pub command: String,
    pub success: bool,
    /// The exit code, -1 when killed by a signal.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutcome {
    /// Panics with the full stdout and stderr unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(self) -> Self {
        if !self.success {
            panic!("expected success, got {self:?}");
        }
        self
    }

    /// Panics with the full stdout and stderr unless the command failed.
    #[track_caller]
    pub fn expect_err(self) -> Self {
        if self.success {
            panic!("expected failure, got {self:?}");
        }
        self
    }

    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Debug for CmdOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_outcome(f, &self.command, self.exit_code, &self.stdout, &self.stderr)
    }
}

/// The result of `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
#[derive(Clone)]
pub struct PlanOutcome {
    pub command: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PlanOutcome {
    /// Exit code 2.
    pub fn has_changes(&self) -> bool {
        self.exit_code == 2
    }

    /// Exit code 0.
    pub fn is_clean(&self) -> bool {
        self.exit_code == 0
    }

    /// Neither 0 nor 2.
    pub fn is_error(&self) -> bool {
        !matches!(self.exit_code, 0 | 2)
    }

    /// Panics with the full output unless the plan is empty.
    #[track_caller]
    pub fn expect_no_changes(self) -> Self {
        if !self.is_clean() {
            panic!("expected an empty plan, got {self:?}");
        }
        self
    }

    /// Panics with the full output unless the plan has changes.
    #[track_caller]
    pub fn expect_changes(self) -> Self {
        if !self.has_changes() {
            panic!("expected a plan with changes, got {self:?}");
        }
        self
    }

    /// Panics with the full output unless the plan failed.
    #[track_caller]
    pub fn expect_error(self) -> Self {
        if !self.is_error() {
            panic!("expected the plan to fail, got {self:?}");
        }
        self
    }

    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Debug for PlanOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_outcome(f, &self.command, self.exit_code, &self.stdout, &self.stderr)
    }
}

fn write_outcome(
    f: &mut fmt::Formatter<'_>,
    command: &str,
    exit_code: i32,
    stdout: &str,
    stderr: &str,
) -> fmt::Result {
    write!(
        f,
        "`{command}` exited with {exit_code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- end ---"
    )
}

fn parse_json(out: &CmdOutcome) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no valid JSON ({e}): {out:?}", out.command))
}

fn collect_resources<'a>(module: &'a Value, into: &mut Vec<&'a Value>) {
    if let Some(resources) = module.get("resources").and_then(Value::as_array) {
        into.extend(resources.iter());
    }
    if let Some(children) = module.get("child_modules").and_then(Value::as_array) {
        for child in children {
            collect_resources(child, into);
        }
    }
}

/// Reads a pipe to its end on a thread.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Capture { buf, thread }
    }

    /// The text read so far, after waiting (at most 10 s) for the pipe to close: a
    /// leftover grandchild may hold it open.
    fn finish(self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let bytes = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn kill_process_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
