//! HTTP layer: the Compute v1 paths (`/compute/v1/projects/{project}/...`)
//! routed by hand, request logging, fault injection and idempotent
//! `requestId`s.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::catalog;
use super::errors::ApiError;
use super::instances::{self, Query};
use super::resources as res;
use super::state::{Call, Scope, State};
use super::util::valid_request_id;

pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere must not wedge every later request.
pub fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

enum Reply {
    Json(Value),
    NoContent,
}

fn json_response(status: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.body())
}

/// The axum fallback: every request lands here.
pub async fn handle(AxState(shared): AxState<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let bytes = match axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError::parse_error("Could not read the request body."));
        }
    };
    let raw_query = uri.query().unwrap_or("");
    let query: Query = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let mut st = lock(&shared);
    match dispatch(&mut st, &method, &path, raw_query, &query, &bytes) {
        Ok(Reply::Json(v)) => json_response(200, &v),
        Ok(Reply::NoContent) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => error_response(&e),
    }
}

fn glob_or_contains(pattern: &str, text: &str) -> bool {
    if pattern.contains('*') {
        let re = format!(
            "^{}$",
            pattern
                .split('*')
                .map(regex_lite::escape)
                .collect::<Vec<_>>()
                .join(".*")
        );
        regex_lite::Regex::new(&re).is_ok_and(|r| r.is_match(text))
    } else {
        text.contains(pattern)
    }
}

/// Does a call match a `calls()`/fault pattern: a short name
/// (`instances.insert`), `METHOD path-pattern`, or a path fragment.
pub fn call_matches(pattern: &str, call: &Call) -> bool {
    if pattern == call.short {
        return true;
    }
    if let Some((m, rest)) = pattern.split_once(' ') {
        let (cm, cpath) = call.line.split_once(' ').unwrap_or(("", ""));
        return m.eq_ignore_ascii_case(cm) && glob_or_contains(rest.trim(), cpath);
    }
    (pattern.contains('/') || pattern.contains('*')) && glob_or_contains(pattern, &call.line)
}

fn unknown_zone(zone: &str) -> ApiError {
    ApiError::invalid_field("zone", zone, "Unknown zone.")
}

fn unknown_region(region: &str) -> ApiError {
    ApiError::invalid_field("region", region, "Unknown region.")
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::new(
        404,
        "NOT_FOUND",
        "notFound",
        &format!("The requested URL {path} was not found on this server."),
    )
}

/// Names the method a request calls, e.g. `instances.setMachineType`.
fn short_name(method: &Method, segs: &[&str]) -> String {
    let m = method.as_str();
    let op_scope = |s: &str| match s {
        "zones" => "zoneOperations",
        "regions" => "regionOperations",
        _ => "globalOperations",
    };
    let crud = |coll: &str, has_name: bool| -> String {
        let verb = match (m, has_name) {
            ("GET", false) => "list",
            ("POST", false) => "insert",
            ("GET", true) => "get",
            ("DELETE", true) => "delete",
            ("PATCH", true) => "patch",
            ("PUT", true) => "update",
            _ => "unknown",
        };
        format!("{coll}.{verb}")
    };
    match segs {
        ["zones"] | ["zones", _] => crud("zones", segs.len() == 2),
        ["regions"] | ["regions", _] => crud("regions", segs.len() == 2),
        ["aggregated", coll] => {
            let c = if *coll == "operations" {
                "globalOperations"
            } else {
                coll
            };
            format!("{c}.aggregatedList")
        }
        [scope, _, "operations"] | [scope @ "global", "operations"] if m == "GET" => {
            format!("{}.list", op_scope(scope))
        }
        [scope, _, "operations", _] | [scope @ "global", "operations", _] => {
            crud(op_scope(scope), true)
        }
        [scope, _, "operations", _, "wait"] | [scope @ "global", "operations", _, "wait"] => {
            format!("{}.wait", op_scope(scope))
        }
        ["global", "images", "family", _] => "images.getFromFamily".to_string(),
        ["global", coll] => crud(coll, false),
        ["global", coll, _] => crud(coll, true),
        [_, _, coll] => crud(coll, false),
        [_, _, coll, _] => crud(coll, true),
        [_, _, coll, _, verb] => format!("{coll}.{verb}"),
        _ => "unknown".to_string(),
    }
}

fn is_mutating(method: &Method, segs: &[&str]) -> bool {
    let op_call = segs.contains(&"operations");
    !op_call
        && matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
}

fn dispatch(
    st: &mut State,
    method: &Method,
    path: &str,
    raw_query: &str,
    query: &Query,
    bytes: &[u8],
) -> Result<Reply, ApiError> {
    st.tick();
    let Some(rest) = path.strip_prefix("/compute/v1/projects/") else {
        st.calls.push(Call {
            short: "unknown".into(),
            line: format!("{method} {path}"),
            query: raw_query.to_string(),
        });
        return Err(not_found_path(path));
    };
    let all: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some((project, segs)) = all.split_first() else {
        return Err(not_found_path(path));
    };
    let project = (*project).to_string();
    let call = Call {
        short: short_name(method, segs),
        line: format!("{method} {path}"),
        query: raw_query.to_string(),
    };
    // Injected synchronous failures (429/5xx) hit before anything else.
    let injected = st
        .request_failures
        .iter()
        .position(|f| f.remaining > 0 && call_matches(&f.pattern, &call));
    st.calls.push(call);
    if let Some(i) = injected {
        let status = st.request_failures[i].status;
        st.request_failures[i].remaining -= 1;
        if st.request_failures[i].remaining == 0 {
            st.request_failures.remove(i);
        }
        return Err(ApiError::for_status(status));
    }

    // requestId makes retries of mutating calls idempotent.
    let request_id = query.get("requestId").map(String::as_str);
    if is_mutating(method, segs) {
        if let Some(rid) = request_id {
            if !valid_request_id(rid) {
                return Err(ApiError::invalid_field(
                    "requestId",
                    rid,
                    "The request id must be a valid UUID with the exception that zero UUID is not supported (00000000-0000-0000-0000-000000000000).",
                ));
            }
            let p = st.project(&project);
            if let Some(op) = p.request_ids.get(rid).and_then(|n| p.operations.get(n)) {
                return Ok(Reply::Json(op.json.clone()));
            }
        }
    }

    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::parse_error(&format!("Invalid JSON payload received. {e}")))?
    };

    // Zones and regions named in the path must exist.
    match segs {
        ["zones", z, ..] if !catalog::zone_exists(z) => return Err(unknown_zone(z)),
        ["regions", r, ..] if !catalog::region_exists(r) => return Err(unknown_region(r)),
        _ => {}
    }

    let m = method.as_str();
    let p = &project;
    let json = |r: Result<Value, ApiError>| r.map(Reply::Json);
    match (m, segs) {
        ("GET", ["zones"]) => json(res::zones_list(p, query)),
        ("GET", ["zones", z]) => Ok(Reply::Json(catalog::zone_json(p, z))),
        ("GET", ["regions"]) => json(res::regions_list(p, query)),
        ("GET", ["regions", r]) => Ok(Reply::Json(catalog::region_json(p, r))),
        ("GET", ["zones", z, "machineTypes"]) => json(res::machine_types_list(p, z, query)),
        ("GET", ["zones", z, "machineTypes", n]) => json(res::machine_type_get(p, z, n)),
        ("GET", ["zones", z, "acceleratorTypes"]) => json(res::accelerators_list(p, z, query)),
        ("GET", ["zones", z, "acceleratorTypes", n]) => json(res::accelerator_get(p, z, n)),

        ("GET", ["zones", z, "instances"]) => {
            let proj = st.project(p);
            let items = proj
                .instances
                .iter()
                .filter(|((zone, _), _)| zone == z)
                .map(|(_, v)| v.clone())
                .collect();
            json(res::list_response(
                "compute#instanceList",
                &format!("projects/{p}/zones/{z}/instances"),
                items,
                query,
            ))
        }
        ("POST", ["zones", z, "instances"]) => json(instances::insert(st, p, z, &body, request_id)),
        ("GET", ["zones", z, "instances", n]) => json(instances::get(st, p, z, n)),
        ("DELETE", ["zones", z, "instances", n]) => {
            json(instances::verb(st, p, z, n, "delete", query, &body))
        }
        ("POST", ["zones", z, "instances", n, verb]) if *verb != "delete" => {
            json(instances::verb(st, p, z, n, verb, query, &body))
        }

        ("GET", ["zones", z, "disks"]) => json(res::disks_list(st.project(p), z, query)),
        ("POST", ["zones", z, "disks"]) => json(res::disk_insert(st, p, z, &body, query)),
        ("GET", ["zones", z, "disks", n]) => json(res::disk_get(st.project(p), z, n)),
        ("DELETE", ["zones", z, "disks", n]) => {
            json(res::disk_verb(st, p, z, n, "delete", &body, query))
        }
        ("POST", ["zones", z, "disks", n, verb @ ("resize" | "setLabels")]) => {
            json(res::disk_verb(st, p, z, n, verb, &body, query))
        }

        ("GET", ["regions", r, "subnetworks"]) => {
            json(res::subnetworks_list(st.project(p), r, query))
        }
        ("GET", ["regions", r, "subnetworks", n]) => json(res::subnetwork_get(st.project(p), r, n)),
        ("GET", ["global", "networks"]) => json(res::networks_list(st.project(p), query)),
        ("GET", ["global", "networks", n]) => json(res::network_get(st.project(p), n)),

        ("GET", ["global", "images"]) => json(res::images_list(p, query)),
        ("GET", ["global", "images", "family", f]) => json(res::image_from_family(p, f)),
        ("GET", ["global", "images", n]) => json(res::image_get(p, n)),

        ("GET", ["global", "firewalls"]) => json(res::firewalls_list(st.project(p), query)),
        ("POST", ["global", "firewalls"]) => json(res::firewall_insert(st, p, &body, query)),
        ("GET", ["global", "firewalls", n]) => json(res::firewall_get(st.project(p), n)),
        ("PATCH", ["global", "firewalls", n]) => {
            json(res::firewall_change(st, p, n, &body, query, true))
        }
        ("PUT", ["global", "firewalls", n]) => {
            json(res::firewall_change(st, p, n, &body, query, false))
        }
        ("DELETE", ["global", "firewalls", n]) => json(res::firewall_delete(st, p, n, query)),

        ("GET", ["zones", z, "operations"]) => json(res::operations_list(
            st.project(p),
            &Scope::Zone((*z).to_string()),
            query,
        )),
        ("GET", ["regions", r, "operations"]) => json(res::operations_list(
            st.project(p),
            &Scope::Region((*r).to_string()),
            query,
        )),
        ("GET", ["global", "operations"]) => {
            json(res::operations_list(st.project(p), &Scope::Global, query))
        }
        ("GET", ["zones", z, "operations", o])
        | ("POST", ["zones", z, "operations", o, "wait"]) => json(res::operation_poll(
            st.project(p),
            &Scope::Zone((*z).to_string()),
            o,
        )),
        ("GET", ["regions", r, "operations", o])
        | ("POST", ["regions", r, "operations", o, "wait"]) => json(res::operation_poll(
            st.project(p),
            &Scope::Region((*r).to_string()),
            o,
        )),
        ("GET", ["global", "operations", o]) | ("POST", ["global", "operations", o, "wait"]) => {
            json(res::operation_poll(st.project(p), &Scope::Global, o))
        }
        ("DELETE", ["zones", z, "operations", o]) => {
            res::operation_delete(st.project(p), &Scope::Zone((*z).to_string()), o)
                .map(|()| Reply::NoContent)
        }
        ("DELETE", ["regions", r, "operations", o]) => {
            res::operation_delete(st.project(p), &Scope::Region((*r).to_string()), o)
                .map(|()| Reply::NoContent)
        }
        ("DELETE", ["global", "operations", o]) => {
            res::operation_delete(st.project(p), &Scope::Global, o).map(|()| Reply::NoContent)
        }

        ("GET", ["aggregated", "instances"]) => {
            let proj = st.project(p);
            let by_zone = proj
                .instances
                .iter()
                .map(|((z, _), v)| (z.clone(), v.clone()))
                .collect();
            json(res::aggregated(
                "compute#instanceAggregatedList",
                p,
                "instances",
                by_zone,
                query,
            ))
        }
        ("GET", ["aggregated", "disks"]) => {
            let proj = st.project(p);
            let by_zone = proj
                .disks
                .iter()
                .map(|((z, _), v)| (z.clone(), v.clone()))
                .collect();
            json(res::aggregated(
                "compute#diskAggregatedList",
                p,
                "disks",
                by_zone,
                query,
            ))
        }
        _ => Err(not_found_path(path)),
    }
}

/// Parses `--port N` style arguments for the binary.
pub fn parse_port(args: &[String]) -> Result<u16, String> {
    let mut port = 0u16;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = if a == "--port" {
            it.next().ok_or("--port needs a value")?.as_str()
        } else if let Some(v) = a.strip_prefix("--port=") {
            v
        } else {
            return Err(format!("unknown argument: {a}"));
        };
        port = v.parse().map_err(|_| format!("invalid port: {v}"))?;
    }
    Ok(port)
}

/// For tests of the router without a socket.
#[cfg(test)]
pub fn call(st: &mut State, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    match dispatch(st, &method, p, q, &query, body.as_bytes()) {
        Ok(Reply::Json(v)) => (200, v),
        Ok(Reply::NoContent) => (204, Value::Null),
        Err(e) => (e.code, e.body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gce::state::PendingRequestFailure;

    const Z: &str = "/compute/v1/projects/p/zones/us-central1-a";

    fn vm_body(name: &str) -> String {
        serde_json::json!({
            "name": name,
            "machineType": "zones/us-central1-a/machineTypes/n1-standard-4",
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {"sourceImage": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"}}],
            "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
            "labels": {"aienv-id": name},
        })
        .to_string()
    }

    fn wait(st: &mut State, op: &Value) -> Value {
        let link = op["selfLink"].as_str().unwrap();
        let path = link.trim_start_matches("https://www.googleapis.com");
        loop {
            let (c, v) = call(st, "GET", path, "");
            assert_eq!(c, 200, "{v}");
            if v["status"] == "DONE" {
                return v;
            }
        }
    }

    #[test]
    fn malformed_bodies_are_400_not_panics() {
        let mut st = State::default();
        for body in [
            "{",
            "[1,2]",
            "\"x\"",
            "{\"name\": 5}",
            "{\"name\":\"a\",\"disks\":{}}",
        ] {
            let (c, v) = call(&mut st, "POST", &format!("{Z}/instances"), body);
            assert_eq!(c, 400, "{body}: {v}");
            assert_eq!(v["error"]["code"], 400);
            assert!(v["error"]["errors"][0]["reason"].is_string());
        }
        let (c, _) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/x/setLabels"),
            "nope",
        );
        assert_eq!(c, 400);
    }

    #[test]
    fn unknown_zone_and_paths() {
        let mut st = State::default();
        let (c, v) = call(
            &mut st,
            "GET",
            "/compute/v1/projects/p/zones/us-east1/instances/x",
            "",
        );
        assert_eq!(c, 400);
        assert_eq!(
            v["error"]["message"],
            "Invalid value for field 'zone': 'us-east1'. Unknown zone."
        );
        let (c, _) = call(&mut st, "GET", "/nope", "");
        assert_eq!(c, 404);
        let (c, v) = call(&mut st, "GET", &format!("{Z}/instances/missing"), "");
        assert_eq!(c, 404);
        assert_eq!(v["error"]["status"], "NOT_FOUND");
    }

    #[test]
    fn request_ids_make_retries_idempotent() {
        let mut st = State::default();
        let rid = "123e4567-e89b-12d3-a456-426614174000";
        let path = format!("{Z}/instances?requestId={rid}");
        let (c, op1) = call(&mut st, "POST", &path, &vm_body("vm1"));
        assert_eq!(c, 200);
        let (c, op2) = call(&mut st, "POST", &path, &vm_body("vm1"));
        assert_eq!(c, 200, "{op2}");
        assert_eq!(op1["name"], op2["name"]);
        assert_eq!(st.project("p").instances.len(), 1);
        let (c, _) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances?requestId=retry-1"),
            &vm_body("vm2"),
        );
        assert_eq!(c, 400);
    }

    #[test]
    fn lifecycle_through_the_router() {
        let mut st = State::default();
        let (_, op) = call(&mut st, "POST", &format!("{Z}/instances"), &vm_body("vm"));
        assert_eq!(op["status"], "PENDING");
        assert_eq!(op["kind"], "compute#operation");
        assert!(op["zone"]
            .as_str()
            .unwrap()
            .ends_with("/zones/us-central1-a"));
        let (_, inst) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(inst["status"], "PROVISIONING");
        let done = wait(&mut st, &op);
        assert!(done.get("error").is_none());
        let (_, inst) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(inst["status"], "RUNNING");
        assert!(inst["networkInterfaces"][0]["accessConfigs"][0]["natIP"].is_string());
        assert!(inst["networkInterfaces"][0]["networkIP"].is_string());
        assert_eq!(inst["disks"][0]["deviceName"], "persistent-disk-0");
        assert_eq!(inst["disks"][0]["diskSizeGb"], "10");
        assert!(inst["id"].is_string());

        // setMachineType while running: refused.
        let (c, v) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setMachineType"),
            r#"{"machineType":"zones/us-central1-a/machineTypes/n1-standard-8"}"#,
        );
        assert_eq!(c, 400);
        assert_eq!(
            v["error"]["message"],
            "Invalid resource usage: 'Instance should be in the STOPPED state.'."
        );

        // Stale label fingerprint: 412.
        let (c, v) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setLabels"),
            r#"{"labels":{"a":"b"},"labelFingerprint":"AAAAAAAAAAA="}"#,
        );
        assert_eq!(c, 412);
        assert_eq!(v["error"]["errors"][0]["reason"], "conditionNotMet");
        let (c, _) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setLabels"),
            r#"{"labels":{"a":"b"}}"#,
        );
        assert_eq!(c, 412);
        let fp = inst["labelFingerprint"].as_str().unwrap();
        let (c, op) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setLabels"),
            &format!(r#"{{"labels":{{"a":"b"}},"labelFingerprint":"{fp}"}}"#),
        );
        assert_eq!(c, 200);
        wait(&mut st, &op);
        let (_, inst2) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(inst2["labels"]["a"], "b");
        assert_ne!(inst2["labelFingerprint"], inst["labelFingerprint"]);

        // Boot disk attached → cannot delete it.
        let (c, v) = call(&mut st, "DELETE", &format!("{Z}/disks/vm"), "");
        assert_eq!(c, 400);
        assert_eq!(
            v["error"]["errors"][0]["reason"],
            "resourceInUseByAnotherResource"
        );

        // Stop: STOPPING then TERMINATED, external IP released.
        let (_, op) = call(&mut st, "POST", &format!("{Z}/instances/vm/stop"), "");
        let (_, mid) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(mid["status"], "STOPPING");
        wait(&mut st, &op);
        let (_, stopped) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(stopped["status"], "TERMINATED");
        assert!(stopped["networkInterfaces"][0]["accessConfigs"][0]
            .get("natIP")
            .is_none());

        // Filtered list.
        let (_, list) = call(
            &mut st,
            "GET",
            &format!("{Z}/instances?filter=labels.a%20%3D%20b"),
            "",
        );
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["kind"], "compute#instanceList");

        // Delete removes the auto-delete boot disk.
        let (_, op) = call(&mut st, "DELETE", &format!("{Z}/instances/vm"), "");
        assert_eq!(op["operationType"], "delete");
        wait(&mut st, &op);
        assert!(st.project("p").instances.is_empty());
        assert!(st.project("p").disks.is_empty());
    }

    #[test]
    fn machine_resources_suspend_and_resume() {
        let mut st = State::default();
        let mut body: Value = serde_json::from_str(&vm_body("vm")).unwrap();
        body["scheduling"] = serde_json::json!({"onHostMaintenance": "TERMINATE"});
        let (_, op) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances"),
            &body.to_string(),
        );
        wait(&mut st, &op);
        let t4 = r#"{"guestAccelerators":[{"acceleratorType":"zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4","acceleratorCount":1}]}"#;
        let (c, _) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setMachineResources"),
            t4,
        );
        assert_eq!(c, 400, "needs a stopped instance");
        let (c, _) = call(&mut st, "POST", &format!("{Z}/instances/vm/resume"), "");
        assert_eq!(c, 400, "not suspended");

        let (_, op) = call(&mut st, "POST", &format!("{Z}/instances/vm/suspend"), "");
        let (_, mid) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(mid["status"], "SUSPENDING");
        wait(&mut st, &op);
        let (_, s) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(s["status"], "SUSPENDED");
        let (_, op) = call(&mut st, "POST", &format!("{Z}/instances/vm/resume"), "");
        assert_eq!(op["operationType"], "resume");
        wait(&mut st, &op);
        let (_, r) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert_eq!(r["status"], "RUNNING");

        let (_, op) = call(&mut st, "POST", &format!("{Z}/instances/vm/stop"), "");
        wait(&mut st, &op);
        let (c, op) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setMachineResources"),
            t4,
        );
        assert_eq!(c, 200, "{op}");
        wait(&mut st, &op);
        let (_, g) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert!(g["guestAccelerators"][0]["acceleratorType"]
            .as_str()
            .unwrap()
            .ends_with("/nvidia-tesla-t4"));
        let (_, op) = call(
            &mut st,
            "POST",
            &format!("{Z}/instances/vm/setMachineResources"),
            "{}",
        );
        wait(&mut st, &op);
        let (_, g) = call(&mut st, "GET", &format!("{Z}/instances/vm"), "");
        assert!(g.get("guestAccelerators").is_none());
    }

    #[test]
    fn injected_request_failures_and_call_log() {
        let mut st = State::default();
        st.request_failures.push(PendingRequestFailure {
            pattern: "POST /compute/v1/projects/p/zones/*/instances".into(),
            status: 429,
            remaining: 1,
        });
        let (c, v) = call(&mut st, "POST", &format!("{Z}/instances"), &vm_body("vm"));
        assert_eq!(c, 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        let (c, _) = call(&mut st, "POST", &format!("{Z}/instances"), &vm_body("vm"));
        assert_eq!(c, 200);
        let n = st
            .calls
            .iter()
            .filter(|c| call_matches("instances.insert", c))
            .count();
        assert_eq!(n, 2);
        let n = st
            .calls
            .iter()
            .filter(|c| call_matches("POST /zones/us-central1-a/instances", c))
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn short_names() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(
            short_name(&m("POST"), &["zones", "z", "instances"]),
            "instances.insert"
        );
        assert_eq!(
            short_name(&m("POST"), &["zones", "z", "instances", "i", "stop"]),
            "instances.stop"
        );
        assert_eq!(
            short_name(&m("GET"), &["zones", "z", "operations", "o"]),
            "zoneOperations.get"
        );
        assert_eq!(
            short_name(&m("POST"), &["zones", "z", "operations", "o", "wait"]),
            "zoneOperations.wait"
        );
        assert_eq!(
            short_name(&m("GET"), &["global", "operations", "o"]),
            "globalOperations.get"
        );
        assert_eq!(
            short_name(&m("GET"), &["global", "images", "family", "f"]),
            "images.getFromFamily"
        );
        assert_eq!(
            short_name(&m("PATCH"), &["global", "firewalls", "f"]),
            "firewalls.patch"
        );
        assert_eq!(
            short_name(&m("GET"), &["regions", "r", "subnetworks", "s"]),
            "subnetworks.get"
        );
        assert_eq!(
            short_name(&m("GET"), &["aggregated", "instances"]),
            "instances.aggregatedList"
        );
    }

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port(&[]), Ok(0));
        assert_eq!(parse_port(&["--port".into(), "8080".into()]), Ok(8080));
        assert_eq!(parse_port(&["--port=9".into()]), Ok(9));
        assert!(parse_port(&["--port".into()]).is_err());
        assert!(parse_port(&["-x".into()]).is_err());
    }
}
