//! Plugin-protocol benchmark: spawns the built provider binary the way
//! go-plugin does (magic cookie, plaintext gRPC: no `PLUGIN_CLIENT_CERT`) and
//! measures
//!
//! * spawn → handshake line latency over [`SPAWNS`] spawns (and Shutdown →
//!   process exit for each of them),
//! * gRPC round-trip latency of `GetProviderSchema` and `ValidateResourceConfig`
//!   over [`CALLS`] calls each on one connection, then `GRPCController.Shutdown`
//!   and a check that the process exits,
//! * resident memory (VmRSS) after the handshake and after the RPCs.
//!
//! Prints Markdown tables. Run with `cargo bench --bench protocol`; the binary
//! is `$AIENV_PROVIDER_BIN`, else `target/release/terraform-provider-aienv`
//! (build it first: `cargo build --release --bin terraform-provider-aienv`).
//! `scripts/bench.sh` does both.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aienv::resources::gpu_workstation;
use aienv::tfplugin::handshake::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use aienv::tfplugin::proto::plugin::grpc_controller_client::GrpcControllerClient;
use aienv::tfplugin::proto::plugin::Empty;
use aienv::tfplugin::proto::tfplugin6::diagnostic::Severity;
use aienv::tfplugin::proto::tfplugin6::provider_client::ProviderClient;
use aienv::tfplugin::proto::tfplugin6::{
    get_provider_schema, validate_resource_config, DynamicValue,
};
use aienv::tfplugin::value::encode_msgpack;
use aienv::tfplugin::Value;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

/// Process spawns for the handshake measurement.
const SPAWNS: usize = 30;
/// Timed calls per RPC on one connection.
const CALLS: usize = 500;
/// Untimed calls per RPC before timing (connection set-up, lazy init, caches).
const WARMUP: usize = 10;
/// How long the provider may take to print its handshake line.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the provider may take to exit after Shutdown.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before sampling "idle" memory, so start-up work has settled.
const IDLE_PAUSE: Duration = Duration::from_millis(200);

/// A provider process started as Terraform would start it.
struct Plugin {
    child: Child,
    /// `127.0.0.1:PORT` from the handshake line.
    addr: String,
    /// Time from just before `spawn()` until the handshake line was read.
    handshake: Duration,
}

impl Plugin {
    fn start(bin: &Path) -> Plugin {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env_remove("PLUGIN_CLIENT_CERT")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("the child's stdout is piped");

        // The reader thread sends the first line, then keeps draining stdout
        // until the process exits, so the pipe never closes under it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = match rx.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no handshake line from {} within {HANDSHAKE_TIMEOUT:?}: {other:?}",
                    bin.display()
                );
            }
        };
        let handshake = started.elapsed();

        let fields: Vec<&str> = line.trim_end().split('|').collect();
        let addr = match fields.as_slice() {
            ["1", "6", "tcp", addr, "grpc", ""] => addr.to_string(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected handshake line (want 1|6|tcp|ADDR|grpc| in plaintext mode): {line:?}");
            }
        };
        Plugin {
            child,
            addr,
            handshake,
        }
    }

    async fn connect(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("the handshake address makes a valid URI")
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to the provider at {}: {e}", self.addr))
    }

    /// `VmRSS` and `VmHWM` of the process, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("{path} has no {name} line"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Calls GRPCController.Shutdown and waits for the process to exit.
    /// Returns the exit status and the time from sending Shutdown to exit.
    async fn shutdown(mut self, channel: Channel) -> (ExitStatus, Duration) {
        let started = Instant::now();
        GrpcControllerClient::new(channel)
            .shutdown(Empty {})
            .await
            .unwrap_or_else(|e| panic!("GRPCController.Shutdown failed: {e}"));
        let deadline = started + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return (status, started.elapsed()),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("the provider did not exit within {EXIT_TIMEOUT:?} of Shutdown");
                }
                Err(e) => panic!("waiting for the provider: {e}"),
            }
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Only reached with a live process when the bench panics.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// min / median / p90 / p99 / max of a sample (nearest-rank percentiles).
struct Summary {
    n: usize,
    min: Duration,
    median: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    fn of(samples: &[Duration]) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort();
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Summary {
            n: s.len(),
            min: s[0],
            median: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: s[s.len() - 1],
        }
    }

    fn row(&self, what: &str) -> String {
        format!(
            "| {what} | {} | {} | {} | {} | {} | {} |",
            self.n,
            ms(self.min),
            ms(self.median),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn provider_bin() -> PathBuf {
    match std::env::var_os("AIENV_PROVIDER_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/terraform-provider-aienv"),
    }
}

/// A small, valid `aienv_gpu_workstation` configuration, msgpack-encoded
/// against the resource schema (unset attributes are null, as Terraform sends them).
fn workstation_config() -> Vec<u8> {
    let config = Value::object([
        ("name", Value::string("ws-0")),
        ("gpu", Value::string("T4")),
        (
            "allowed_cidrs",
            Value::List(vec![Value::string("203.0.113.0/24")]),
        ),
        ("auto_stop_idle_minutes", Value::number(60)),
    ]);
    encode_msgpack(&config, &gpu_workstation::schema().value_type())
        .expect("encode the workstation config")
}

async fn time_calls<F, Fut>(mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        call().await;
    }
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    samples
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let bin = provider_bin();
    if !bin.is_file() {
        eprintln!(
            "provider binary {} not found: run `cargo build --release --bin terraform-provider-aienv` \
             or set AIENV_PROVIDER_BIN",
            bin.display()
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");

    // (a) spawn → handshake, and Shutdown → exit, over SPAWNS fresh processes.
    let mut handshakes = Vec::with_capacity(SPAWNS);
    let mut exits = Vec::with_capacity(SPAWNS);
    for _ in 0..SPAWNS {
        let plugin = Plugin::start(&bin);
        handshakes.push(plugin.handshake);
        let (status, took) = runtime.block_on(async {
            let channel = plugin.connect().await;
            plugin.shutdown(channel).await
        });
        assert!(
            status.success(),
            "the provider exited with {status} after Shutdown"
        );
        exits.push(took);
    }

    // (b) RPC round trips on one connection; (c) memory before and after.
    let plugin = Plugin::start(&bin);
    std::thread::sleep(IDLE_PAUSE);
    let mem_idle = plugin.memory_kib();
    let config = workstation_config();
    let (schema_rtt, validate_rtt, schema_bytes, final_exit) = runtime.block_on(async {
        let channel = plugin.connect().await;
        let mut client =
            ProviderClient::new(channel.clone()).max_decoding_message_size(256 * 1024 * 1024);

        let first = client
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .unwrap_or_else(|e| panic!("GetProviderSchema failed: {e}"))
            .into_inner();
        assert!(
            first
                .resource_schemas
                .contains_key(gpu_workstation::TYPE_NAME),
            "GetProviderSchema lacks {}",
            gpu_workstation::TYPE_NAME
        );
        let schema_bytes = first.encoded_len();

        let schema_rtt = time_calls(|| {
            let mut client = client.clone();
            async move {
                client
                    .get_provider_schema(get_provider_schema::Request {})
                    .await
                    .unwrap_or_else(|e| panic!("GetProviderSchema failed: {e}"));
            }
        })
        .await;

        let request = validate_resource_config::Request {
            type_name: gpu_workstation::TYPE_NAME.to_string(),
            config: Some(DynamicValue {
                msgpack: config,
                json: Vec::new(),
            }),
        };
        let validate_rtt = time_calls(|| {
            let mut client = client.clone();
            let request = request.clone();
            async move {
                let response = client
                    .validate_resource_config(request)
                    .await
                    .unwrap_or_else(|e| panic!("ValidateResourceConfig failed: {e}"))
                    .into_inner();
                if let Some(d) = response
                    .diagnostics
                    .iter()
                    .find(|d| d.severity == Severity::Error as i32)
                {
                    panic!(
                        "ValidateResourceConfig rejected the bench config: {} {}",
                        d.summary, d.detail
                    );
                }
            }
        })
        .await;
        (schema_rtt, validate_rtt, schema_bytes, channel)
    });
    std::thread::sleep(IDLE_PAUSE);
    let mem_after = plugin.memory_kib();
    let (status, exit_took) = runtime.block_on(plugin.shutdown(final_exit));
    assert!(
        status.success(),
        "the provider exited with {status} after Shutdown"
    );
    exits.push(exit_took);

    let handshake = Summary::of(&handshakes);
    println!("### Plugin protocol ({})", bin.display());
    println!();
    println!("Latency in milliseconds; percentiles are nearest-rank.");
    println!();
    println!("| Measurement | n | min | median | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!("{}", handshake.row("spawn → handshake line"));
    println!(
        "{}",
        Summary::of(&exits).row("GRPCController.Shutdown → process exit")
    );
    println!(
        "{}",
        Summary::of(&schema_rtt).row(&format!(
            "GetProviderSchema round trip ({schema_bytes} B response)"
        ))
    );
    println!(
        "{}",
        Summary::of(&validate_rtt).row("ValidateResourceConfig round trip (aienv_gpu_workstation)")
    );
    println!();
    println!(
        "RPCs: {CALLS} timed calls of each after {WARMUP} untimed warm-up calls, one HTTP/2 connection, \
         sequential. Every process exited with status 0 after Shutdown ({} processes).",
        SPAWNS + 1
    );
    println!();
    println!("| Provider process memory | VmRSS MiB | VmHWM (peak) MiB |");
    println!("|---|---:|---:|");
    println!(
        "| idle, {} ms after the handshake | {} | {} |",
        IDLE_PAUSE.as_millis(),
        mib(mem_idle.0),
        mib(mem_idle.1)
    );
    println!(
        "| after {} RPCs (+{} warm-up) | {} | {} |",
        2 * CALLS + 1,
        2 * WARMUP,
        mib(mem_after.0),
        mib(mem_after.1)
    );
}
