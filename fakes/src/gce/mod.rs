//! A fake of the Compute Engine v1 REST API, for the calls the `gcp` backend
//! makes, faithful to the public wire format: camelCase JSON, int64 as
//! strings, `selfLink`s on `https://www.googleapis.com/compute/v1/...`,
//! URL-safe base64 fingerprints, Google error bodies, Operations that go
//! PENDING → RUNNING → DONE over successive polls, and the real API's
//! refusals (GPU without `onHostMaintenance = TERMINATE`, `guestAccelerators`
//! on A2/A3/G2, stale fingerprints, deleting an attached disk...).
//!
//! ```no_run
//! # async fn demo() {
//! let fake = aienv_fakes::gce::FakeGce::start().await;
//! // Point google-cloud-compute-v1 at it:
//! //   Instances::builder().with_endpoint(fake.endpoint()) ...
//! fake.fail_next_operation("insert", "QUOTA_EXCEEDED", "");
//! assert!(fake.is_empty());
//! # }
//! ```

mod catalog;
mod errors;
mod filter;
mod instances;
mod resources;
mod server;
mod state;
mod util;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

pub use server::parse_port;
use server::{call_matches, lock, Shared};
use state::{PendingOpFailure, PendingRequestFailure, State};

/// A running fake Compute Engine API on 127.0.0.1. It serves on its own
/// thread and tokio runtime, so both sync and async tests can use it; dropping
/// the handle stops the server.
pub struct FakeGce {
    shared: Shared,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeGce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGce").field("addr", &self.addr).finish()
    }
}

impl FakeGce {
    /// Starts on an ephemeral port of 127.0.0.1.
    ///
    /// Panics if no local port can be bound (a broken test machine, not a
    /// request the fake could answer).
    pub async fn start() -> FakeGce {
        Self::start_blocking()
    }

    /// [`FakeGce::start`] for synchronous code.
    pub fn start_blocking() -> FakeGce {
        match Self::start_on_port(0) {
            Ok(f) => f,
            Err(e) => panic!("fake-gce: cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts on a given port of 127.0.0.1 (0 picks one).
    pub fn start_on_port(port: u16) -> std::io::Result<FakeGce> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let app_state = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-gce-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("fake-gce: cannot serve: {e}");
                            return;
                        }
                    };
                    let app = axum::Router::new()
                        .fallback(server::handle)
                        .with_state(app_state);
                    // Not a graceful shutdown: clients keep idle keep-alive
                    // connections open, and a test must not wait on them.
                    tokio::select! {
                        r = async { axum::serve(listener, app).await } => {
                            if let Err(e) = r {
                                eprintln!("fake-gce: server stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(FakeGce {
            shared,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` — the client appends `/compute/v1/projects/...`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared)
    }

    // ---- fault injection --------------------------------------------------

    /// The next operation of this `operationType` (`insert`, `start`,
    /// `setMachineType`..., `instances.insert` to name the collection too, or
    /// `*`) is accepted, then ends DONE with `error.errors[{code, message}]`
    /// and `httpErrorStatusCode`/`httpErrorMessage` (403 FORBIDDEN for
    /// QUOTA_EXCEEDED, 503 SERVICE UNAVAILABLE for ZONE_RESOURCE_POOL_EXHAUSTED);
    /// whatever it had started to create is removed. An empty `message` uses
    /// the real API's wording for the code.
    pub fn fail_next_operation(&self, kind: &str, error_code: &str, message: &str) {
        self.state().op_failures.push(PendingOpFailure {
            kind: kind.to_string(),
            code: error_code.to_string(),
            message: message.to_string(),
        });
    }

    /// The next request matching `pattern` fails synchronously with `status`
    /// (429 → RESOURCE_EXHAUSTED/rateLimitExceeded, 500 → INTERNAL,
    /// 503 → UNAVAILABLE) and a Google error body. `pattern` is a short name
    /// (`instances.insert`), `METHOD path-fragment` (`*` wildcards allowed) or a
    /// path fragment containing `/`.
    pub fn fail_next_request(&self, pattern: &str, status: u16) {
        self.fail_requests(pattern, status, 1);
    }

    /// Like [`FakeGce::fail_next_request`], for the next `times` matches.
    pub fn fail_requests(&self, pattern: &str, status: u16, times: usize) {
        if times == 0 {
            return;
        }
        self.state().request_failures.push(PendingRequestFailure {
            pattern: pattern.to_string(),
            status,
            remaining: times,
        });
    }

    /// How many `get`/`wait` polls an operation takes to reach DONE
    /// (default 2: the first poll shows RUNNING). 0 returns DONE at once.
    pub fn set_operation_polls(&self, n: u32) {
        self.state().polls_needed = n;
    }

    /// Also complete operations this old on any request, as the real service
    /// does in the background (default: only polls advance them).
    pub fn set_operation_auto_complete(&self, after: Option<Duration>) {
        self.state().auto_complete_after = after;
    }

    // ---- call log -----------------------------------------------------------

    /// How many requests matched: a short name (`instances.insert`,
    /// `zoneOperations.get`), `METHOD path-pattern` (`POST */instances`,
    /// substring unless it has `*`), or a path fragment containing `/`.
    pub fn calls(&self, pattern: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| call_matches(pattern, c))
            .count()
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state()
            .calls
            .iter()
            .map(|c| {
                if c.query.is_empty() {
                    c.line.clone()
                } else {
                    format!("{}?{}", c.line, c.query)
                }
            })
            .collect()
    }

    /// The short method names of every request so far, in order.
    pub fn methods(&self) -> Vec<String> {
        self.state().calls.iter().map(|c| c.short.clone()).collect()
    }

    pub fn clear_requests(&self) {
        self.state().calls.clear();
    }

    // ---- inspection -----------------------------------------------------------

    /// Every instance of every project, as GET returns it.
    pub fn instances(&self) -> Vec<Value> {
        self.state()
            .projects
            .values()
            .flat_map(|p| p.instances.values().cloned())
            .collect()
    }

    /// The instance with this name (any project or zone).
    pub fn instance(&self, name: &str) -> Option<Value> {
        self.state()
            .projects
            .values()
            .flat_map(|p| p.instances.iter())
            .find(|((_, n), _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn disks(&self) -> Vec<Value> {
        self.state()
            .projects
            .values()
            .flat_map(|p| p.disks.values().cloned())
            .collect()
    }

    /// Firewall rules created through the API (the `default-allow-*` rules
    /// every project starts with are left out).
    pub fn firewalls(&self) -> Vec<Value> {
        self.state()
            .projects
            .values()
            .flat_map(|p| {
                p.firewalls
                    .iter()
                    .filter(|(n, _)| !p.builtin_firewalls.contains(*n))
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every operation, oldest first.
    pub fn operations(&self) -> Vec<Value> {
        let st = self.state();
        let mut ops: Vec<&state::Operation> = st
            .projects
            .values()
            .flat_map(|p| p.operations.values())
            .collect();
        ops.sort_by_key(|o| o.seq);
        ops.into_iter().map(|o| o.json.clone()).collect()
    }

    /// No instances, disks or firewall rules left (the default network, its
    /// subnetworks and default rules do not count).
    pub fn is_empty(&self) -> bool {
        self.instances().is_empty() && self.disks().is_empty() && self.firewalls().is_empty()
    }

    // ---- out-of-band changes (drift) ---------------------------------------------

    fn with_instance(
        &self,
        name: &str,
        f: impl FnOnce(&mut state::Project, &(String, String)),
    ) -> bool {
        let mut st = self.state();
        for p in st.projects.values_mut() {
            let key = p.instances.keys().find(|(_, n)| n == name).cloned();
            if let Some(key) = key {
                f(p, &key);
                return true;
            }
        }
        false
    }

    /// Stops the instance as if someone used the console: TERMINATED, external
    /// IP released.
    pub fn stop_instance_out_of_band(&self, name: &str) -> bool {
        self.with_instance(name, |p, key| {
            if let Some(i) = p.instances.get_mut(key) {
                i["status"] = json!("TERMINATED");
                i["lastStopTimestamp"] = json!(util::now_rfc3339());
                if let Some(nics) = i["networkInterfaces"].as_array_mut() {
                    for nic in nics {
                        if let Some(acs) = nic["accessConfigs"].as_array_mut() {
                            for ac in acs {
                                if let Some(o) = ac.as_object_mut() {
                                    o.remove("natIP");
                                }
                            }
                        }
                    }
                }
            }
        })
    }

    /// Suspends the instance as if someone used the console: SUSPENDED,
    /// external IP released.
    pub fn suspend_instance_out_of_band(&self, name: &str) -> bool {
        let stopped = self.stop_instance_out_of_band(name);
        self.with_instance(name, |p, key| {
            if let Some(i) = p.instances.get_mut(key) {
                i["status"] = json!("SUSPENDED");
                if let Some(o) = i.as_object_mut() {
                    o.remove("lastStopTimestamp");
                }
                i["lastSuspendedTimestamp"] = json!(util::now_rfc3339());
            }
        }) && stopped
    }

    /// Deletes the instance (and its auto-delete disks) behind the provider's back.
    pub fn delete_instance_out_of_band(&self, name: &str) -> bool {
        self.with_instance(name, |p, key| state::remove_instance(p, &key.0, &key.1))
    }

    /// Replaces the instance's labels (the label fingerprint changes).
    pub fn set_instance_labels_out_of_band(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let map: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        self.with_instance(name, |p, key| {
            if let Some(i) = p.instances.get_mut(key) {
                state::set_labels(i, &map);
            }
        })
    }

    /// Changes the machine type directly (no stop needed, it is drift).
    pub fn set_instance_machine_type_out_of_band(&self, name: &str, machine_type: &str) -> bool {
        self.with_instance(name, |p, key| {
            let link = instances::machine_type_link(&p.name, &key.0, machine_type);
            if let Some(i) = p.instances.get_mut(key) {
                i["machineType"] = json!(link);
            }
        })
    }

    /// Merges `patch` (top-level fields) into a firewall rule.
    pub fn patch_firewall_out_of_band(&self, name: &str, patch: Value) -> bool {
        let mut st = self.state();
        for p in st.projects.values_mut() {
            if let Some(fw) = p.firewalls.get_mut(name) {
                if let (Some(dst), Some(src)) = (fw.as_object_mut(), patch.as_object()) {
                    for (k, v) in src {
                        if v.is_null() {
                            dst.remove(k);
                        } else {
                            dst.insert(k.clone(), v.clone());
                        }
                    }
                }
                return true;
            }
        }
        false
    }

    pub fn delete_firewall_out_of_band(&self, name: &str) -> bool {
        let mut st = self.state();
        st.projects
            .values_mut()
            .any(|p| p.firewalls.remove(name).is_some())
    }

    pub fn delete_disk_out_of_band(&self, name: &str) -> bool {
        let mut st = self.state();
        for p in st.projects.values_mut() {
            let key = p.disks.keys().find(|(_, n)| n == name).cloned();
            if let Some(key) = key {
                p.disks.remove(&key);
                return true;
            }
        }
        false
    }

    // ---- setup ---------------------------------------------------------------

    /// Creates a subnetwork `name` in `region` of project `project` (in the
    /// custom-mode network `network`, created on first use) and returns its
    /// selfLink.
    pub fn create_subnetwork(
        &self,
        project: &str,
        region: &str,
        network: &str,
        name: &str,
        cidr: &str,
    ) -> String {
        self.state()
            .project(project)
            .add_subnetwork(region, name, network, cidr)
    }

    /// Forgets every resource, operation, injected fault and logged call.
    pub fn reset(&self) {
        *self.state() = State::default();
    }
}

impl Drop for FakeGce {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn http(fake: &FakeGce, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut s = std::net::TcpStream::connect(fake.addr()).unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: compute.googleapis.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status: u16 = out[9..12].parse().unwrap();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
        // Chunked or not, the JSON object is between the outer braces.
        let json = match (body.find('{'), body.rfind('}')) {
            (Some(a), Some(b)) => serde_json::from_str(&body[a..=b]).unwrap(),
            _ => Value::Null,
        };
        (status, json)
    }

    #[test]
    fn serves_over_tcp_and_stops_on_drop() {
        let fake = FakeGce::start_blocking();
        assert!(fake.endpoint().starts_with("http://127.0.0.1:"));
        let (c, z) = http(
            &fake,
            "GET",
            "/compute/v1/projects/p/zones/us-central1-a",
            "",
        );
        assert_eq!(c, 200);
        assert_eq!(z["kind"], "compute#zone");
        assert_eq!(
            z["region"],
            "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1"
        );
        assert_eq!(fake.calls("zones.get"), 1);
        assert_eq!(
            fake.requests(),
            vec!["GET /compute/v1/projects/p/zones/us-central1-a"]
        );
        assert!(fake.is_empty());
        let addr = fake.addr();
        drop(fake);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[test]
    fn async_failure_leaves_nothing() {
        let fake = FakeGce::start_blocking();
        fake.fail_next_operation("insert", "QUOTA_EXCEEDED", "");
        let body = json!({
            "name": "vm",
            "machineType": "zones/us-central1-a/machineTypes/n1-standard-8",
            "guestAccelerators": [{"acceleratorType": "projects/p/zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}],
            "scheduling": {"onHostMaintenance": "TERMINATE"},
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {"sourceImage": "projects/deeplearning-platform-release/global/images/family/common-cu121-debian-11"}}],
            "networkInterfaces": [{}],
        })
        .to_string();
        let (c, op) = http(
            &fake,
            "POST",
            "/compute/v1/projects/p/zones/us-central1-a/instances",
            &body,
        );
        assert_eq!(c, 200, "{op}");
        assert_eq!(fake.instances().len(), 1);
        assert_eq!(fake.disks().len(), 1);
        let path = format!(
            "/compute/v1/projects/p/zones/us-central1-a/operations/{}",
            op["name"].as_str().unwrap()
        );
        let (_, running) = http(&fake, "GET", &path, "");
        assert_eq!(running["status"], "RUNNING");
        let (_, done) = http(&fake, "POST", &format!("{path}/wait"), "");
        assert_eq!(done["status"], "DONE");
        assert_eq!(done["error"]["errors"][0]["code"], "QUOTA_EXCEEDED");
        assert_eq!(done["httpErrorStatusCode"], 403);
        assert!(fake.is_empty());
    }

    #[test]
    fn out_of_band_drift() {
        let fake = FakeGce::start_blocking();
        fake.set_operation_polls(0);
        let body = json!({
            "name": "vm", "machineType": "zones/us-central1-a/machineTypes/e2-standard-2",
            "disks": [{"initializeParams": {"sourceImage": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"}}],
            "networkInterfaces": [{"accessConfigs": [{}]}],
        })
        .to_string();
        let (c, op) = http(
            &fake,
            "POST",
            "/compute/v1/projects/p/zones/us-central1-a/instances",
            &body,
        );
        assert_eq!(c, 200);
        assert_eq!(op["status"], "DONE");
        let before = fake.instance("vm").unwrap();
        assert_eq!(before["status"], "RUNNING");
        assert!(fake.set_instance_labels_out_of_band("vm", &[("owner", "someone")]));
        let after = fake.instance("vm").unwrap();
        assert_eq!(after["labels"]["owner"], "someone");
        assert_ne!(after["labelFingerprint"], before["labelFingerprint"]);
        assert!(fake.stop_instance_out_of_band("vm"));
        let stopped = fake.instance("vm").unwrap();
        assert_eq!(stopped["status"], "TERMINATED");
        assert!(stopped["networkInterfaces"][0]["accessConfigs"][0]
            .get("natIP")
            .is_none());
        // Boot disk was not auto-delete: it stays after the instance goes.
        assert!(fake.delete_instance_out_of_band("vm"));
        assert!(fake.instances().is_empty());
        assert_eq!(fake.disks().len(), 1);
        assert!(fake.disks()[0].get("users").is_none());
        assert!(!fake.is_empty());
        assert!(!fake.stop_instance_out_of_band("vm"));
    }
}
