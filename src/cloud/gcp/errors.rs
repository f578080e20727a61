//! The one place where Compute Engine errors become `CloudError`s: HTTP errors
//! from the client library and errors carried by a finished Operation.
//!
//! Compute Engine describes a failure three ways, most specific first:
//! - a reason (`errors[].reason` in an HTTP error body, e.g. `rateLimitExceeded`,
//!   `quotaExceeded`), or an error code on a DONE Operation (`error.errors[].code`,
//!   e.g. `QUOTA_EXCEEDED`, `ZONE_RESOURCE_POOL_EXHAUSTED`);
//! - a canonical status name (`error.status`, e.g. `RESOURCE_EXHAUSTED`);
//! - the HTTP status.
//!
//! The most specific one decides: Google sends quota and rate-limit errors both
//! as 403 or 429 and both as `RESOURCE_EXHAUSTED`, and only the reason tells a
//! quota (retrying cannot help) from a rate limit (retrying later does).

use std::time::Duration;

use google_cloud_compute_v1::model::Operation;
use google_cloud_gax::error::rpc::{Code, Status, StatusDetails};
use google_cloud_gax::error::Error as GaxError;

use crate::cloud::{CloudError, ErrorKind};

/// What the failing call was about, so capacity and quota messages can name the
/// machine type and zone instead of only repeating Google's words.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ErrorContext<'a> {
    pub zone: Option<&'a str>,
    pub machine_type: Option<&'a str>,
}

impl<'a> ErrorContext<'a> {
    pub(crate) fn none() -> Self {
        ErrorContext::default()
    }

    pub(crate) fn zone(zone: &'a str) -> Self {
        ErrorContext {
            zone: Some(zone),
            machine_type: None,
        }
    }

    pub(crate) fn machine(zone: &'a str, machine_type: &'a str) -> Self {
        ErrorContext {
            zone: Some(zone),
            machine_type: Some(machine_type),
        }
    }
}

/// Map an error from the Compute client library. This and `from_operation` are
/// the only mappings; every call goes through them (via `client::Gce`).
pub(crate) fn from_gax(operation: &str, ctx: &ErrorContext<'_>, err: &GaxError) -> CloudError {
    if let Some(status) = err.status() {
        let http = err.http_status_code();
        let retry_after = err
            .http_headers()
            .and_then(|h| h.get("retry-after"))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut e = from_status(operation, ctx, http, status);
        e.retry_after = retry_after;
        return e;
    }
    if err.is_authentication() {
        // Token fetches that failed for a transient reason (metadata server or
        // token endpoint briefly unreachable) are worth a retry; a missing or
        // malformed key is not. The error text names the cause, never the key.
        let transient = std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<google_cloud_gax::error::CredentialsError>())
            .is_some_and(|c| c.is_transient());
        return CloudError::new(
            ErrorKind::Auth,
            operation,
            format!(
                "could not get Google Cloud credentials: {}. {AUTH_HINT}",
                chain(err)
            ),
        )
        .retryable(transient);
    }
    if err.is_timeout() {
        return CloudError::new(
            ErrorKind::Timeout,
            operation,
            format!("Compute Engine did not answer in time: {}", chain(err)),
        )
        .retryable(true);
    }
    if err.is_connect() {
        return CloudError::new(
            ErrorKind::Unexpected,
            operation,
            format!("could not reach Compute Engine: {}", chain(err)),
        )
        .retryable(true);
    }
    if let Some(http) = err.http_status_code() {
        // An answer without a Google error body: a proxy or load balancer page.
        let (kind, retryable) = classify(Some(http), None, &[]);
        let payload = err
            .http_payload()
            .map(|p| snippet(&String::from_utf8_lossy(p)))
            .unwrap_or_default();
        return CloudError::new(
            kind,
            operation,
            format!("Compute Engine answered HTTP {http}: {payload}"),
        )
        .with_code(format!("HTTP {http}"))
        .retryable(retryable);
    }
    if err.is_binding() {
        // The request did not fit the URL template: an empty or malformed
        // project, zone or name. Nothing was sent.
        return CloudError::new(
            ErrorKind::InvalidInput,
            operation,
            format!("invalid request: {}", chain(err)),
        );
    }
    if err.is_io() {
        // The connection broke mid-request. Mutations carry a requestId, so a
        // retry cannot create twice.
        return CloudError::new(
            ErrorKind::Unexpected,
            operation,
            format!("connection to Compute Engine failed: {}", chain(err)),
        )
        .retryable(true);
    }
    CloudError::new(
        ErrorKind::Unexpected,
        operation,
        format!("Compute Engine call failed: {}", chain(err)),
    )
}

/// Map a Google `Status` (parsed from an HTTP error body).
pub(crate) fn from_status(
    operation: &str,
    ctx: &ErrorContext<'_>,
    http: Option<u16>,
    status: &Status,
) -> CloudError {
    let reasons = reasons_of(status);
    let reason_refs: Vec<&str> = reasons.iter().map(String::as_str).collect();
    // `Code::Unknown` is also what the library reports when the body has no
    // `status` field, which older Compute Engine errors omit.
    let status_name = (status.code != Code::Unknown).then(|| status.code.name());
    let (mut kind, mut retryable) = classify(http, status_name, &reason_refs);
    if kind == ErrorKind::Throttled
        && status
            .details
            .iter()
            .any(|d| matches!(d, StatusDetails::QuotaFailure(_)))
        && !reason_refs.iter().any(|r| is_rate_reason(r))
    {
        // RESOURCE_EXHAUSTED with a QuotaFailure detail and no rate-limit reason
        // is an exhausted quota, not a rate limit.
        kind = ErrorKind::Quota;
        retryable = false;
    }
    let code = reasons
        .first()
        .cloned()
        .or_else(|| status_name.map(str::to_owned))
        .or_else(|| http.map(|h| format!("HTTP {h}")));
    let google = if status.message.is_empty() {
        match http {
            Some(h) => format!("HTTP {h} with no error message"),
            None => "no error message".to_owned(),
        }
    } else {
        status.message.clone()
    };
    let mut e = CloudError::new(kind, operation, describe(kind, &google, ctx)).retryable(retryable);
    e.code = code;
    e
}

/// The error of a DONE Operation, if it has one. A finished Operation can carry
/// QUOTA_EXCEEDED or ZONE_RESOURCE_POOL_EXHAUSTED while every HTTP call that
/// led to it succeeded: this is where those become errors.
pub(crate) fn from_operation(
    operation: &str,
    ctx: &ErrorContext<'_>,
    op: &Operation,
) -> Option<CloudError> {
    let http = op
        .http_error_status_code
        .and_then(|c| u16::try_from(c).ok());
    let errors = op
        .error
        .as_ref()
        .map(|e| e.errors.as_slice())
        .unwrap_or(&[]);
    if errors.is_empty() {
        let http = http.filter(|h| *h >= 400)?;
        let (kind, retryable) = classify(Some(http), None, &[]);
        let google = op
            .http_error_message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("operation failed with HTTP {http}"));
        return Some(
            CloudError::new(kind, operation, describe(kind, &google, ctx))
                .with_code(format!("HTTP {http}"))
                .retryable(retryable),
        );
    }
    let codes: Vec<&str> = errors.iter().filter_map(|e| e.code.as_deref()).collect();
    let (kind, retryable) = classify(http, None, &codes);
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.message.as_deref())
        .filter(|m| !m.is_empty())
        .collect();
    let google = if messages.is_empty() {
        op.http_error_message
            .clone()
            .unwrap_or_else(|| "the operation failed without a message".to_owned())
    } else {
        messages.join("; ")
    };
    let mut e = CloudError::new(kind, operation, describe(kind, &google, ctx)).retryable(retryable);
    e.code = codes.first().map(|c| (*c).to_owned());
    Some(e)
}

/// Kind and retryability from (most specific first) reasons/operation error
/// codes, the canonical status name, and the HTTP status.
pub(crate) fn classify(
    http: Option<u16>,
    status_name: Option<&str>,
    reasons: &[&str],
) -> (ErrorKind, bool) {
    if let Some(found) = reasons.iter().find_map(|r| classify_reason(r)) {
        return found;
    }
    if let Some(found) = status_name.and_then(classify_status) {
        return found;
    }
    match http {
        Some(404) => (ErrorKind::NotFound, false),
        Some(409) => (ErrorKind::Conflict, false),
        // conditionNotMet: a fingerprint changed under us; re-read and retry.
        Some(412) => (ErrorKind::Conflict, true),
        Some(429) => (ErrorKind::Throttled, true),
        Some(400) => (ErrorKind::InvalidInput, false),
        Some(401) | Some(403) => (ErrorKind::Auth, false),
        Some(s) if s >= 500 => (ErrorKind::Unexpected, true),
        _ => (ErrorKind::Unexpected, false),
    }
}

/// `QUOTA_EXCEEDED` and `quotaExceeded` are the same word in the two styles
/// Compute Engine uses (operation error codes vs. HTTP error reasons).
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_rate_reason(reason: &str) -> bool {
    matches!(classify_reason(reason), Some((ErrorKind::Throttled, _)))
}

fn classify_reason(reason: &str) -> Option<(ErrorKind, bool)> {
    use ErrorKind::*;
    let r = normalize(reason);
    let found = match r.as_str() {
        "notfound" | "resourcenotfound" => (NotFound, false),
        "alreadyexists" | "resourcealreadyexists" | "duplicate" => (Conflict, false),
        "conditionnotmet" | "preconditionfailed" => (Conflict, true),
        // A disk still attached to an instance being deleted, an instance still
        // stopping: these clear up by themselves.
        "resourceinusebyanotherresource" | "resourceinuse" | "resourcenotready" => (Conflict, true),
        "ratelimitexceeded"
        | "userratelimitexceeded"
        | "resourceoperationrateexceeded"
        | "operationratelimitexceeded"
        | "toomanyrequests" => (Throttled, true),
        "quotaexceeded" | "dailylimitexceeded" | "limitexceeded" => (Quota, false),
        r if r.contains("resourcepoolexhausted") || r.contains("stockout") => (Capacity, false),
        "forbidden"
        | "insufficientpermissions"
        | "accessnotconfigured"
        | "servicedisabled"
        | "billingdisabled"
        | "accessdenied"
        | "permissiondenied"
        | "iampermissiondenied"
        | "unauthorized"
        | "autherror" => (Auth, false),
        "required"
        | "badrequest"
        | "invalidargument"
        | "invalidparameter"
        | "invalidfieldvalue"
        | "fieldvalueinvalid"
        | "invalidusage"
        | "unsupportedoperation" => (InvalidInput, false),
        r if r.starts_with("invalid") => (InvalidInput, false),
        "backenderror" | "internalerror" | "internal" | "serviceunavailable" | "unavailable" => {
            (Unexpected, true)
        }
        _ => return None,
    };
    Some(found)
}

fn classify_status(name: &str) -> Option<(ErrorKind, bool)> {
    use ErrorKind::*;
    let found = match name {
        "NOT_FOUND" => (NotFound, false),
        "ALREADY_EXISTS" => (Conflict, false),
        "FAILED_PRECONDITION" | "ABORTED" => (Conflict, true),
        // Without a reason we cannot tell quota from rate: a bounded retry is
        // the cheaper mistake.
        "RESOURCE_EXHAUSTED" => (Throttled, true),
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => (InvalidInput, false),
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => (Auth, false),
        "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" => (Unexpected, true),
        "UNIMPLEMENTED" => (Unsupported, false),
        _ => return None,
    };
    Some(found)
}

/// Reasons from the details: `errors[].reason` of the HTTP body (which the
/// library turns into ErrorInfo) and any ErrorInfo the body carries.
fn reasons_of(status: &Status) -> Vec<String> {
    status
        .details
        .iter()
        .filter_map(|d| match d {
            StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => Some(info.reason.clone()),
            _ => None,
        })
        .collect()
}

const AUTH_HINT: &str = "Set credentials in the provider's gcp block or GOOGLE_CREDENTIALS (a service \
account key, JSON contents or path), or use Application Default Credentials (`gcloud auth \
application-default login`), and check that the account may use the Compute Engine API in this project";

/// The user-facing message: Google's words plus what to do about it.
fn describe(kind: ErrorKind, google: &str, ctx: &ErrorContext<'_>) -> String {
    let what = match (ctx.machine_type, ctx.zone) {
        (Some(m), Some(z)) => format!("{m} in {z}"),
        (Some(m), None) => m.to_owned(),
        (None, Some(z)) => z.to_owned(),
        (None, None) => String::new(),
    };
    match kind {
        ErrorKind::Capacity if !what.is_empty() => format!(
            "Compute Engine has no capacity for {what} right now: {google}. Try another zone \
(set zone), another GPU, or again later."
        ),
        ErrorKind::Quota => format!(
            "{google}. Request a higher quota in the Google Cloud console (IAM & Admin → Quotas) \
or choose fewer GPUs or another region."
        ),
        ErrorKind::Auth => format!("{google}. {AUTH_HINT}."),
        _ => google.to_owned(),
    }
}

/// `Retry-After` in seconds (the form Google uses); HTTP dates are ignored.
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

fn snippet(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = flat.chars().take(200).collect();
    if flat.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_compute_v1::model::operation;

    /// Parse a real error body the way the client library does.
    fn http_error(http: u16, body: &str) -> CloudError {
        let bytes = bytes::Bytes::from(body.to_owned());
        let status = Status::try_from(&bytes);
        assert!(status.is_ok(), "body must parse: {body}");
        let status = status.unwrap_or_default();
        let err = GaxError::service_with_http_metadata(status, Some(http), None);
        from_gax("instances.insert", &ErrorContext::none(), &err)
    }

    #[test]
    fn not_found_body() {
        let e = http_error(
            404,
            r#"{"error":{"code":404,"message":"The resource 'projects/p/zones/us-central1-a/instances/box' was not found","errors":[{"message":"The resource 'projects/p/zones/us-central1-a/instances/box' was not found","domain":"global","reason":"notFound"}]}}"#,
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(!e.retryable);
        assert_eq!(e.code.as_deref(), Some("notFound"));
        assert!(e.message.contains("was not found"));
    }

    #[test]
    fn already_exists_is_conflict() {
        let e = http_error(
            409,
            r#"{"error":{"code":409,"message":"The resource 'projects/p/global/firewalls/aienv-box' already exists","errors":[{"message":"The resource 'projects/p/global/firewalls/aienv-box' already exists","domain":"global","reason":"alreadyExists"}],"status":"ALREADY_EXISTS"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Conflict, false));
    }

    #[test]
    fn condition_not_met_is_retryable_conflict() {
        let e = http_error(
            412,
            r#"{"error":{"code":412,"message":"Labels fingerprint either invalid or resource labels have changed","errors":[{"message":"Labels fingerprint either invalid or resource labels have changed","domain":"global","reason":"conditionNotMet","location":"If-Match","locationType":"header"}],"status":"FAILED_PRECONDITION"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Conflict, true));
    }

    #[test]
    fn rate_limit_429_and_403_are_throttled() {
        let e = http_error(
            429,
            r#"{"error":{"code":429,"message":"Rate Limit Exceeded","errors":[{"message":"Rate Limit Exceeded","domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Throttled, true));
        // Compute Engine also sends rate limits as 403.
        let e = http_error(
            403,
            r#"{"error":{"code":403,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'","errors":[{"message":"Quota exceeded for quota metric 'Queries'","domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Throttled, true));
        // RESOURCE_EXHAUSTED without a reason.
        let e = http_error(
            429,
            r#"{"error":{"code":429,"message":"Too many requests","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Throttled, true));
    }

    #[test]
    fn quota_exceeded_body_is_quota() {
        let e = http_error(
            403,
            r#"{"error":{"code":403,"message":"Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.","errors":[{"message":"Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.","domain":"usageLimits","reason":"quotaExceeded"}],"status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Quota, false));
        assert!(e.message.contains("NVIDIA_T4_GPUS"));
        assert!(e.message.contains("Quotas"));
    }

    #[test]
    fn invalid_and_auth_bodies() {
        let e = http_error(
            400,
            r#"{"error":{"code":400,"message":"Invalid value for field 'resource.machineType': 'zones/us-central1-a/machineTypes/n1-nope'. Machine type with name 'n1-nope' does not exist in zone 'us-central1-a'.","errors":[{"message":"Invalid value for field 'resource.machineType'","domain":"global","reason":"invalid"}],"status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::InvalidInput, false));
        let e = http_error(
            403,
            r#"{"error":{"code":403,"message":"Required 'compute.instances.create' permission for 'projects/p/zones/us-central1-a/instances/box'","errors":[{"message":"Required 'compute.instances.create' permission","domain":"global","reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Auth, false));
        let e = http_error(
            401,
            r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("GOOGLE_CREDENTIALS"));
    }

    #[test]
    fn structured_details_are_read_too() {
        // Newer Google errors carry an ErrorInfo in `details` instead of `errors`.
        let e = http_error(
            403,
            r#"{"error":{"code":403,"message":"Compute Engine API has not been used in project 123 before or it is disabled.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"service":"compute.googleapis.com","consumer":"projects/123"}}]}}"#,
        );
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (ErrorKind::Auth, Some("SERVICE_DISABLED"))
        );
        let e = http_error(
            429,
            r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_metric":"compute.googleapis.com/read_requests"}}]}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Throttled, true));
    }

    #[test]
    fn server_errors_are_retryable() {
        let e = http_error(
            503,
            r#"{"error":{"code":503,"message":"The service is currently unavailable.","errors":[{"message":"The service is currently unavailable.","domain":"global","reason":"backendError"}],"status":"UNAVAILABLE"}}"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Unexpected, true));
        let e = http_error(500, r#"{"error":{"code":500,"message":"Internal error"}}"#);
        assert_eq!((e.kind, e.retryable), (ErrorKind::Unexpected, true));
    }

    #[test]
    fn proxy_pages_fall_back_to_http_status() {
        let err = GaxError::http(
            502,
            Default::default(),
            bytes::Bytes::from_static(b"<html>Bad Gateway</html>"),
        );
        let e = from_gax("instances.get", &ErrorContext::none(), &err);
        assert_eq!((e.kind, e.retryable), (ErrorKind::Unexpected, true));
        assert!(e.message.contains("Bad Gateway"));
    }

    fn op_with_error(code: &str, message: &str, http: Option<i32>) -> Operation {
        let mut err = operation::error::Errors::new();
        err.code = Some(code.to_owned());
        err.message = Some(message.to_owned());
        let mut error = operation::Error::new();
        error.errors = vec![err];
        let mut op = Operation::new();
        op.status = Some(operation::Status::Done);
        op.error = Some(error);
        op.http_error_status_code = http;
        op
    }

    #[test]
    fn done_operation_with_quota_error_is_quota() {
        let op = op_with_error(
            "QUOTA_EXCEEDED",
            "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
            Some(403),
        );
        let ctx = ErrorContext::machine("us-central1-a", "n1-standard-8");
        let e = from_operation("instances.insert", &ctx, &op);
        let e = e.map(|e| (e.kind, e.retryable, e.code));
        assert_eq!(
            e,
            Some((ErrorKind::Quota, false, Some("QUOTA_EXCEEDED".to_owned())))
        );
    }

    #[test]
    fn done_operation_with_stockout_is_capacity() {
        for code in [
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        ] {
            let op = op_with_error(
                code,
                "The zone 'projects/p/zones/us-central1-a' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.",
                Some(503),
            );
            let ctx = ErrorContext::machine("us-central1-a", "a2-highgpu-1g");
            let e = from_operation("instances.insert", &ctx, &op);
            let Some(e) = e else {
                panic!("expected an error for {code}");
            };
            assert_eq!(
                (e.kind, e.retryable),
                (ErrorKind::Capacity, false),
                "{code}"
            );
            assert_eq!(e.code.as_deref(), Some(code));
            assert!(e.message.contains("a2-highgpu-1g in us-central1-a"));
            assert!(e.message.contains("does not have enough resources"));
        }
    }

    #[test]
    fn done_operation_without_error_is_ok() {
        let mut op = Operation::new();
        op.status = Some(operation::Status::Done);
        op.http_error_status_code = Some(200);
        assert!(from_operation("x", &ErrorContext::none(), &op).is_none());
        let mut op = Operation::new();
        op.http_error_status_code = Some(404);
        op.http_error_message = Some("NOT FOUND".into());
        let e = from_operation("x", &ErrorContext::none(), &op).map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::NotFound));
    }

    #[test]
    fn reasons_are_matched_in_both_spellings() {
        assert_eq!(
            classify(None, None, &["RESOURCE_NOT_FOUND"]),
            (ErrorKind::NotFound, false)
        );
        assert_eq!(
            classify(None, None, &["RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"]),
            (ErrorKind::Conflict, true)
        );
        assert_eq!(
            classify(None, None, &["resourceInUseByAnotherResource"]),
            (ErrorKind::Conflict, true)
        );
        assert_eq!(
            classify(Some(400), None, &["INVALID_FIELD_VALUE"]),
            (ErrorKind::InvalidInput, false)
        );
        assert_eq!(classify(Some(412), None, &[]), (ErrorKind::Conflict, true));
        assert_eq!(
            classify(Some(418), None, &["somethingNew"]),
            (ErrorKind::Unexpected, false)
        );
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
