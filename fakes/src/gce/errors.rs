//! Google API error bodies: `{"error":{"code","message","status","errors":[...]}}`.
//!
//! Compute Engine still fills the legacy `errors[]` array (message, domain,
//! reason); the Rust client turns it into the status details the backend maps
//! to our error kinds, so reasons must be the real ones.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub status: &'static str,
    pub reason: &'static str,
    pub domain: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, status: &'static str, reason: &'static str, message: &str) -> Self {
        ApiError {
            code,
            status,
            reason,
            domain: "global",
            message: message.to_string(),
        }
    }

    /// `path` is `projects/P/zones/Z/instances/N` and the like.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            "NOT_FOUND",
            "notFound",
            &format!("The resource '{path}' was not found"),
        )
    }

    pub fn already_exists(path: &str) -> Self {
        Self::new(
            409,
            "ALREADY_EXISTS",
            "alreadyExists",
            &format!("The resource '{path}' already exists"),
        )
    }

    pub fn invalid(message: &str) -> Self {
        Self::new(400, "INVALID_ARGUMENT", "invalid", message)
    }

    /// `Invalid value for field 'F': 'V'. DETAIL`
    pub fn invalid_field(field: &str, value: &str, detail: &str) -> Self {
        let msg = if detail.is_empty() {
            format!("Invalid value for field '{field}': '{value}'.")
        } else {
            format!("Invalid value for field '{field}': '{value}'. {detail}")
        };
        Self::invalid(&msg)
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(400, "INVALID_ARGUMENT", "badRequest", message)
    }

    pub fn required(field: &str) -> Self {
        Self::new(
            400,
            "INVALID_ARGUMENT",
            "required",
            &format!("Required field '{field}' not specified"),
        )
    }

    pub fn parse_error(message: &str) -> Self {
        Self::new(400, "INVALID_ARGUMENT", "parseError", message)
    }

    pub fn condition_not_met(message: &str) -> Self {
        Self::new(412, "FAILED_PRECONDITION", "conditionNotMet", message)
    }

    /// `The disk resource 'X' is already being used by 'Y'`.
    pub fn in_use(kind: &str, path: &str, user: &str) -> Self {
        Self::new(
            400,
            "INVALID_ARGUMENT",
            "resourceInUseByAnotherResource",
            &format!("The {kind} resource '{path}' is already being used by '{user}'"),
        )
    }

    /// `Invalid resource usage: 'DETAIL'.`
    pub fn invalid_usage(detail: &str) -> Self {
        Self::new(
            400,
            "INVALID_ARGUMENT",
            "invalidResourceUsage",
            &format!("Invalid resource usage: '{detail}'."),
        )
    }

    /// A resource still being created (or deleted) cannot be used yet.
    pub fn not_ready(path: &str) -> Self {
        Self::new(
            400,
            "INVALID_ARGUMENT",
            "resourceNotReady",
            &format!("The resource '{path}' is not ready"),
        )
    }

    /// What the fault injector returns for a given HTTP status.
    pub fn for_status(code: u16) -> Self {
        match code {
            429 => {
                let mut e = Self::new(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "rateLimitExceeded",
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'.",
                );
                e.domain = "usageLimits";
                e
            }
            500 => Self::new(
                500,
                "INTERNAL",
                "backendError",
                "Internal error. Please try again or contact Google Support.",
            ),
            502 => Self::new(502, "UNAVAILABLE", "backendError", "Bad Gateway"),
            503 => Self::new(
                503,
                "UNAVAILABLE",
                "backendError",
                "The service is currently unavailable.",
            ),
            504 => Self::new(
                504,
                "DEADLINE_EXCEEDED",
                "backendError",
                "Deadline exceeded.",
            ),
            400 => Self::bad_request("Bad Request"),
            401 => Self::new(
                401,
                "UNAUTHENTICATED",
                "authError",
                "Request is missing required authentication credential.",
            ),
            403 => Self::new(
                403,
                "PERMISSION_DENIED",
                "forbidden",
                "Required permission is missing for this request.",
            ),
            404 => Self::new(404, "NOT_FOUND", "notFound", "Not Found"),
            409 => Self::new(409, "ABORTED", "conflict", "Conflict"),
            other => Self::new(other, "UNKNOWN", "unknown", "Injected failure"),
        }
    }

    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{
                    "message": self.message,
                    "domain": self.domain,
                    "reason": self.reason,
                }],
                "status": self.status,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_google_shape() {
        let b = ApiError::not_found("projects/p/zones/z/instances/i").body();
        assert_eq!(b["error"]["code"], 404);
        assert_eq!(b["error"]["status"], "NOT_FOUND");
        assert_eq!(b["error"]["errors"][0]["reason"], "notFound");
        assert_eq!(b["error"]["errors"][0]["domain"], "global");
        assert_eq!(
            b["error"]["message"],
            "The resource 'projects/p/zones/z/instances/i' was not found"
        );
        let r = ApiError::for_status(429).body();
        assert_eq!(r["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(r["error"]["errors"][0]["reason"], "rateLimitExceeded");
    }
}
