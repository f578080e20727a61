//! A loopback HTTP/1.1 proxy between an AWS SDK client and moto that counts EC2 Query
//! API calls per action and injects EC2-style errors or latency.
//!
//! It runs on its own thread with its own tokio runtime, so it works from plain `#[test]`
//! functions and from `#[tokio::test]` alike, and stops when dropped.
//!
//! Status codes real EC2 uses: `InternalError` 500, `Unavailable` 503,
//! `RequestLimitExceeded` 503, `InsufficientInstanceCapacity` 500 (a server error in the
//! EC2 error-code reference; observed on the wire as 500). Note that the AWS SDKs' standard
//! retry strategy treats all of these as retryable, and every attempt is a separate call here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Name under which calls without any `Action` parameter are counted.
pub const NO_ACTION: &str = "<no-action>";

/// An injected EC2 error: HTTP status, EC2 error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug)]
enum Rule {
    Nth {
        action: String,
        n: usize,
        fault: Fault,
    },
    All {
        action: String,
        fault: Fault,
    },
}

#[derive(Default)]
struct State {
    counts: HashMap<String, usize>,
    order: Vec<String>,
    rules: Vec<Rule>,
    latency: Duration,
    action_latency: HashMap<String, Duration>,
    injected: usize,
}

enum Decision {
    Fault(Fault),
    Forward(Duration),
}

impl State {
    /// Records one call and decides what to do with it.
    fn record(&mut self, action: &str) -> Decision {
        let n = {
            let count = self.counts.entry(action.to_string()).or_insert(0);
            *count += 1;
            *count
        };
        self.order.push(action.to_string());
        let fault = self.rules.iter().find_map(|rule| match rule {
            Rule::Nth {
                action: a,
                n: k,
                fault,
            } if a == action && *k == n => Some(fault.clone()),
            Rule::All { action: a, fault } if a == action => Some(fault.clone()),
            _ => None,
        });
        match fault {
            Some(fault) => {
                self.injected += 1;
                Decision::Fault(fault)
            }
            None => Decision::Forward(
                self.latency + self.action_latency.get(action).copied().unwrap_or_default(),
            ),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The running proxy; see the module docs.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (e.g. `MotoServer::endpoint()`).
    pub async fn start(upstream: &str) -> FaultProxy {
        Self::start_blocking(upstream)
    }

    /// Same as [`FaultProxy::start`], for sync code (it does not block for long).
    pub fn start_blocking(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_end_matches('/').to_string();
        assert!(
            upstream.starts_with("http://"),
            "FaultProxy upstream must be an http:// URL, got {upstream:?}"
        );
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the fault proxy on a loopback port");
        listener
            .set_nonblocking(true)
            .expect("make the fault proxy listener non-blocking");
        let addr = listener.local_addr().expect("fault proxy local address");
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            upstream: upstream.clone(),
            client,
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || serve(listener, thread_shared, rx))
            .expect("spawn the fault proxy thread");
        FaultProxy {
            addr,
            upstream,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL to give the SDK or the provider.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream the proxy forwards to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Fails the `n`-th call (1-based, counting every call of that action the proxy has
    /// seen, including earlier faulted ones) with an EC2 XML error.
    pub fn fail_nth(&self, action: &str, n: usize, status: u16, code: &str, message: &str) {
        assert!(n >= 1, "fail_nth counts calls from 1");
        self.state().rules.push(Rule::Nth {
            action: action.to_string(),
            n,
            fault: fault(status, code, message),
        });
    }

    /// Fails the next call of `action` (relative to the calls seen so far).
    pub fn fail_next(&self, action: &str, status: u16, code: &str, message: &str) {
        let mut state = self.state();
        let n = state.counts.get(action).copied().unwrap_or(0) + 1;
        state.rules.push(Rule::Nth {
            action: action.to_string(),
            n,
            fault: fault(status, code, message),
        });
    }

    /// Fails every call of `action` until [`FaultProxy::clear_faults`].
    pub fn fail_all(&self, action: &str, status: u16, code: &str, message: &str) {
        self.state().rules.push(Rule::All {
            action: action.to_string(),
            fault: fault(status, code, message),
        });
    }

    /// Removes every fault rule (counts are kept).
    pub fn clear_faults(&self) {
        self.state().rules.clear();
    }

    /// Delays every forwarded call by `latency` before it goes upstream.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Adds `latency` to forwarded calls of one action (on top of [`FaultProxy::set_latency`]).
    pub fn set_action_latency(&self, action: &str, latency: Duration) {
        self.state()
            .action_latency
            .insert(action.to_string(), latency);
    }

    /// How many calls of `action` arrived (forwarded or faulted).
    pub fn calls(&self, action: &str) -> usize {
        self.state().counts.get(action).copied().unwrap_or(0)
    }

    /// How many calls arrived in all.
    pub fn total_calls(&self) -> usize {
        self.state().order.len()
    }

    /// The action of every call, in arrival order.
    pub fn actions(&self) -> Vec<String> {
        self.state().order.clone()
    }

    /// How many calls were answered with an injected fault.
    pub fn injected_faults(&self) -> usize {
        self.state().injected
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint())
            .field("upstream", &self.upstream)
            .field("calls", &state.counts)
            .field("rules", &state.rules)
            .finish()
    }
}

fn fault(status: u16, code: &str, message: &str) -> Fault {
    assert!(
        StatusCode::from_u16(status).is_ok(),
        "invalid HTTP status {status}"
    );
    Fault {
        status,
        code: code.to_string(),
        message: message.to_string(),
    }
}

fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the fault proxy runtime");
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("register the fault proxy listener");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, shared.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    });
    // Dropping the runtime here cancels open connections and in-flight calls.
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("read body: {e}"))),
    };
    let action = action_of(parts.uri.query(), &body).unwrap_or_else(|| NO_ACTION.to_string());
    let decision = shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .record(&action);
    let latency = match decision {
        Decision::Fault(fault) => return Ok(fault_response(&fault)),
        Decision::Forward(latency) => latency,
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream_req = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{}", shared.upstream, path));
    for (name, value) in parts.headers.iter() {
        if !is_hop_by_hop(name) {
            upstream_req = upstream_req.header(name, value);
        }
    }
    let upstream_req = match upstream_req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                format!("build request: {e}"),
            ))
        }
    };
    let upstream_resp = match shared.client.request(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream {} failed: {e}", shared.upstream),
            ))
        }
    };
    let (parts, body) = upstream_resp.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: reading upstream body failed: {e}"),
            ))
        }
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = parts.status;
    for (name, value) in parts.headers.iter() {
        if !is_hop_by_hop(name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(resp)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The EC2 error document, as real EC2 sends it.
pub fn ec2_error_xml(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id)
    )
}

fn fault_response(fault: &Fault) -> Response<Full<Bytes>> {
    let request_id = request_id();
    let body = ec2_error_xml(&fault.code, &fault.message, &request_id);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    headers.insert(
        HeaderName::from_static("server"),
        HeaderValue::from_static("AmazonEC2"),
    );
    resp
}

fn request_id() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The EC2 Query API action: `Action=` from the form body, else from the query string.
pub fn action_of(query: Option<&str>, body: &[u8]) -> Option<String> {
    let from_body = std::str::from_utf8(body)
        .ok()
        .and_then(|b| form_value(b, "Action"));
    from_body.or_else(|| query.and_then(|q| form_value(q, "Action")))
}

/// The first value of `key` in an `application/x-www-form-urlencoded` string.
pub fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
