//! A real moto EC2 emulator (`moto_server`) on a free loopback port, one per test.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools;

/// How long `start` waits for moto to answer its first EC2 request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs moto with a watchdog thread: when the test process dies (even by SIGKILL) the
/// pipe on moto's stdin closes and moto exits, so no server outlives its test run.
const LAUNCHER: &str = "\
import os, sys, threading
def _watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
from moto.server import main
sys.exit(main())
";

/// A running `moto_server`, killed when dropped (also when the test panics).
///
/// Started with `MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION`, `MOTO_ENABLE_AMI_VALIDATION`,
/// `MOTO_ENABLE_KEYPAIR_VALIDATION` and `MOTO_AMIS_PATH=tests/fixtures/moto-amis.json`
/// (which replaces moto's default AMI list in every region).
pub struct MotoServer {
    child: Child,
    port: u16,
    log_dir: Option<tempfile::TempDir>,
    log_path: PathBuf,
}

impl MotoServer {
    /// Starts a server from async code (the blocking work runs on a blocking thread).
    pub async fn start() -> MotoServer {
        Self::start_with_env(&[]).await
    }

    /// Like [`MotoServer::start`], with extra environment variables for moto. moto reads
    /// its `MOTO_*` switches as "set and non-empty", so an empty value removes the variable
    /// (e.g. `("MOTO_ENABLE_KEYPAIR_VALIDATION", "")` turns that validation off).
    pub async fn start_with_env(extra_env: &[(&str, &str)]) -> MotoServer {
        let extra: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let task = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            Self::start_blocking_with_env(&borrowed)
        });
        match task.await {
            Ok(server) => server,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("starting moto_server was cancelled: {e}"),
        }
    }

    /// Starts a server and blocks until it answers (at most ~20 s, then panics).
    pub fn start_blocking() -> MotoServer {
        Self::start_blocking_with_env(&[])
    }

    /// Like [`MotoServer::start_blocking`], with extra environment variables for moto.
    pub fn start_blocking_with_env(extra_env: &[(&str, &str)]) -> MotoServer {
        // A free port is found by binding port 0; another process could take it before
        // moto binds it, so a server that dies at once is retried on a new port.
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            match Self::try_start(extra_env) {
                Ok(server) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto_server did not start: {last_failure}");
    }

    fn try_start(extra_env: &[(&str, &str)]) -> Result<MotoServer, String> {
        let python = tools::moto_python_bin();
        let amis = tools::moto_amis_fixture();
        let port = free_port();
        let log_dir = tempfile::Builder::new()
            .prefix("aienv-moto-")
            .tempdir()
            .expect("create a temp dir for the moto log");
        let log_path = log_dir.path().join("moto.log");
        let log = File::create(&log_path).expect("create the moto log file");
        let log_err = log.try_clone().expect("clone the moto log file handle");

        let mut cmd = Command::new(&python);
        cmd.arg("-c")
            .arg(LAUNCHER)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
            .env("MOTO_AMIS_PATH", &amis)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("MOTO_EC2_LOAD_DEFAULT_AMIS")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err);
        for (k, v) in extra_env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} (moto): {e}", python.display()));
        let mut server = MotoServer {
            child,
            port,
            log_dir: Some(log_dir),
            log_path,
        };

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "moto_server exited with {status} on port {port}; end of its log:\n{}",
                    server.log_tail()
                ));
            }
            if probe(port) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let tail = server.log_tail();
                let path = server.keep_log();
                panic!(
                    "moto_server on port {port} did not answer within {STARTUP_TIMEOUT:?}; log {}:\n{tail}",
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL to give the AWS SDK or the provider.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file that receives moto's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last 4 KiB of the log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// Keeps the log directory after drop and returns the log path.
    fn keep_log(&mut self) -> PathBuf {
        if let Some(dir) = self.log_dir.take() {
            let _ = dir.keep();
        }
        self.log_path.clone()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let path = self.keep_log();
            eprintln!("moto_server log (kept): {}", path.display());
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free loopback port");
    listener
        .local_addr()
        .expect("local address of the port probe")
        .port()
}

/// True once moto answers an EC2 DescribeRegions with 200 (this also builds the
/// us-east-1 backend, loading the AMI fixture, so the first real call is quick).
fn probe(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let body = "Action=DescribeRegions&Version=2016-11-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head) {
        Ok(()) => head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
        Err(_) => false,
    }
}
