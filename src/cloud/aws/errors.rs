//! The one place where EC2 SDK errors become `CloudError`s.
//!
//! EC2 reports most failures as an error code plus a message (see "Error codes for
//! the Amazon EC2 API"). The code decides the kind and whether a retry can help; the
//! HTTP status is only a fallback for responses without a known code (a 5xx from a
//! load balancer, a proxy's HTML page). Note that EC2 sends capacity errors such as
//! `InsufficientInstanceCapacity` with HTTP 500, so the code must win over the status.

use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::{CloudError, ErrorKind};

/// What the failing call was about, so capacity and quota messages can name the
/// instance type and place instead of only repeating AWS's words.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ErrorContext<'a> {
    pub region: &'a str,
    pub instance_type: Option<&'a str>,
    pub zone: Option<&'a str>,
}

impl<'a> ErrorContext<'a> {
    pub(crate) fn region(region: &'a str) -> Self {
        ErrorContext {
            region,
            instance_type: None,
            zone: None,
        }
    }
}

/// The parts of a raw HTTP response the mapping needs. A trait (rather than the
/// concrete SDK response type) so unit tests can build errors without the SDK's
/// internal HTTP types.
pub(crate) trait RawResponse {
    fn status_code(&self) -> u16;
    fn header(&self, name: &str) -> Option<&str>;
}

impl RawResponse for HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }
}

/// Map any EC2 SDK error to a `CloudError`. This is the only mapping function;
/// every call goes through it (via `client::Ec2::call`).
pub(crate) fn from_sdk_error<E, R>(
    operation: &str,
    ctx: &ErrorContext<'_>,
    err: SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: RawResponse + std::fmt::Debug,
{
    // The cause chain, for the variants whose top-level text is only a category
    // ("dispatch failure", "io error").
    let detail = err.source().map(source_chain).unwrap_or_default();
    match err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status_code();
            let retry_after = raw.header("retry-after").and_then(parse_retry_after);
            let source = service.err();
            let code = source.code().map(str::to_owned);
            let aws_message = source
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {status} with no error message"));
            let (kind, retryable) = classify(code.as_deref(), Some(status));
            let message = describe(kind, code.as_deref(), &aws_message, operation, ctx);
            let mut e = CloudError::new(kind, operation, message).retryable(retryable);
            e.code = code;
            e.retry_after = retry_after;
            e
        }
        SdkError::ResponseError(response) => {
            // The service answered with something the SDK could not parse: usually a
            // proxy or load balancer page during an outage. Worth a retry unless the
            // status says the credentials are refused.
            let status = response.raw().status_code();
            let kind = match classify(None, Some(status)).0 {
                k @ (ErrorKind::Throttled | ErrorKind::Auth) => k,
                _ => ErrorKind::Unexpected,
            };
            CloudError::new(
                kind,
                operation,
                format!(
                    "unreadable response from EC2 in {} (HTTP {status}): {detail}",
                    ctx.region
                ),
            )
            .retryable(kind != ErrorKind::Auth)
        }
        SdkError::TimeoutError(_) => CloudError::new(
            ErrorKind::Timeout,
            operation,
            format!("no answer from EC2 in {} in time: {detail}", ctx.region),
        )
        .retryable(true),
        SdkError::DispatchFailure(d) => {
            // Credential resolution failures surface as dispatch failures too; no
            // typed error reaches us, so the cause text is the only signal.
            if detail.to_ascii_lowercase().contains("credential") {
                return CloudError::new(
                    ErrorKind::Auth,
                    operation,
                    format!(
                        "could not load AWS credentials: {detail}. Configure a profile, \
environment credentials or an instance role."
                    ),
                );
            }
            // `user` failures are ours (bad endpoint URL...): retrying cannot help.
            // Everything else (connect refused, DNS, reset, TLS) is transient.
            let kind = if d.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unexpected
            };
            CloudError::new(
                kind,
                operation,
                format!("could not reach EC2 in {}: {detail}", ctx.region),
            )
            .retryable(!d.is_user())
        }
        SdkError::ConstructionFailure(_) => {
            // The request could not even be built (invalid region name or endpoint).
            CloudError::new(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "could not build the EC2 request for region {:?}: {detail}",
                    ctx.region
                ),
            )
        }
        _ => CloudError::new(
            ErrorKind::Unexpected,
            operation,
            format!("EC2 call failed: {detail}"),
        ),
    }
}

/// Kind and retryability from an EC2 error code and/or HTTP status.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> (ErrorKind, bool) {
    if let Some(raw) = code {
        // Instance state reasons use `Server.` / `Client.` prefixes for the same codes.
        let code = raw
            .strip_prefix("Server.")
            .or_else(|| raw.strip_prefix("Client."))
            .unwrap_or(raw);
        if let Some(found) = classify_code(code) {
            return found;
        }
    }
    match status {
        Some(429) => (ErrorKind::Throttled, true),
        Some(401) | Some(403) => (ErrorKind::Auth, false),
        Some(404) => (ErrorKind::NotFound, false),
        Some(s) if s >= 500 => (ErrorKind::Unexpected, true),
        Some(400) if code.is_some() => (ErrorKind::InvalidInput, false),
        _ => (ErrorKind::Unexpected, false),
    }
}

fn classify_code(code: &str) -> Option<(ErrorKind, bool)> {
    use ErrorKind::*;
    let found = match code {
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientCapacity"
        | "InsufficientCapacityOnHost"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientVolumeCapacity"
        | "InsufficientAddressCapacity"
        | "SpotMaxPriceTooLow" => (Capacity, false),
        "MaxSpotInstanceCountExceeded"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "VolumeLimitExceeded"
        | "SecurityGroupLimitExceeded"
        | "RulesPerSecurityGroupLimitExceeded"
        | "ResourceLimitExceeded"
        | "KeyPairLimitExceeded"
        | "MaxIOPSLimitExceeded"
        | "AddressLimitExceeded"
        | "NetworkInterfaceLimitExceeded"
        | "TagLimitExceeded" => (Quota, false),
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "SlowDown" => (Throttled, true),
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "OptInRequired"
        | "Blocked"
        | "AccessDenied"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "PendingVerification" => (Auth, false),
        "InvalidGroup.Duplicate"
        | "InvalidKeyPair.Duplicate"
        | "InvalidPermission.Duplicate"
        | "IncorrectInstanceState"
        | "IncorrectState"
        | "IncorrectModificationState"
        | "VolumeInUse"
        | "IdempotentParameterMismatch"
        | "InvalidGroup.InUse" => (Conflict, false),
        // A group still referenced by an ENI that is going away, a volume still
        // detaching: these clear up by themselves within a minute or so.
        "DependencyViolation" => (Conflict, true),
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            (Unexpected, true)
        }
        "DryRunOperation" => (Unexpected, false),
        c if c.starts_with("AuthFailure") => (Auth, false),
        c if c.ends_with(".NotFound") || c == "InvalidAMIID.Unavailable" => (NotFound, false),
        c if c.ends_with(".Malformed") => (InvalidInput, false),
        c if c.ends_with("LimitExceeded") => (Quota, false),
        c if c.starts_with("Insufficient") && c.ends_with("Capacity") => (Capacity, false),
        c if c.starts_with("Invalid")
            || c.starts_with("MissingParameter")
            || c.starts_with("Unsupported")
            || c.starts_with("ValidationError")
            || c == "OperationNotPermitted" =>
        {
            (InvalidInput, false)
        }
        _ => return None,
    };
    Some(found)
}

/// The message a user reads. Capacity, quota and auth errors say in plain words
/// what happened and what to try; every message keeps AWS's code and text.
fn describe(
    kind: ErrorKind,
    code: Option<&str>,
    aws_message: &str,
    operation: &str,
    ctx: &ErrorContext<'_>,
) -> String {
    let code_s = code.unwrap_or("no code");
    let place = ctx.zone.unwrap_or(ctx.region);
    let what = ctx.instance_type.unwrap_or("the requested instance type");
    match kind {
        ErrorKind::Capacity if code == Some("SpotMaxPriceTooLow") => format!(
            "the spot price for {what} in {place} is above the maximum price right now \
({code_s}): {aws_message}. Try another zone, region or instance type, or spot = false."
        ),
        ErrorKind::Capacity if code.is_some_and(|c| c.contains("Volume")) => format!(
            "AWS has no EBS volume capacity in {place} right now ({code_s}): {aws_message}. \
Try another zone or region."
        ),
        ErrorKind::Capacity => format!(
            "AWS has no capacity for {what} in {place} right now ({code_s}): {aws_message}. \
Try another zone, region or instance type, or spot = false."
        ),
        ErrorKind::Quota => format!(
            "your AWS account reached a limit in {} ({code_s}): {aws_message}. Ask for a higher \
quota in the Service Quotas console (for GPU instances: the vCPU quota of the instance \
family, On-Demand or Spot), or remove resources you no longer use.",
            ctx.region
        ),
        ErrorKind::Auth => format!(
            "AWS refused the request ({code_s}): {aws_message}. Check the credentials/profile in \
use and that their IAM policy allows ec2:{operation} in {}.",
            ctx.region
        ),
        _ => aws_message.to_string(),
    }
}

/// `Retry-After` as seconds (the only form AWS uses).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An error and its causes on one line; the SDK's top-level messages alone are
/// often just "dispatch failure".
fn source_chain(err: &(dyn StdError + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_ec2::operation::run_instances::RunInstancesError;

    #[derive(Debug)]
    struct Fake {
        status: u16,
        retry_after: Option<&'static str>,
    }

    impl RawResponse for Fake {
        fn status_code(&self) -> u16 {
            self.status
        }
        fn header(&self, name: &str) -> Option<&str> {
            if name.eq_ignore_ascii_case("retry-after") {
                self.retry_after
            } else {
                None
            }
        }
    }

    fn service(code: &str, message: &str, status: u16) -> SdkError<RunInstancesError, Fake> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(
            RunInstancesError::generic(meta),
            Fake {
                status,
                retry_after: None,
            },
        )
    }

    fn ctx() -> ErrorContext<'static> {
        ErrorContext {
            region: "us-east-1",
            instance_type: Some("p4d.24xlarge"),
            zone: Some("us-east-1a"),
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        use ErrorKind::*;
        let cases: &[(&str, u16, ErrorKind, bool)] = &[
            ("InsufficientInstanceCapacity", 500, Capacity, false),
            ("InsufficientHostCapacity", 500, Capacity, false),
            ("InsufficientCapacity", 500, Capacity, false),
            ("InsufficientReservedInstanceCapacity", 500, Capacity, false),
            ("InsufficientVolumeCapacity", 400, Capacity, false),
            ("SpotMaxPriceTooLow", 400, Capacity, false),
            ("MaxSpotInstanceCountExceeded", 400, Quota, false),
            ("InstanceLimitExceeded", 400, Quota, false),
            ("VcpuLimitExceeded", 400, Quota, false),
            ("VolumeLimitExceeded", 400, Quota, false),
            ("SecurityGroupLimitExceeded", 400, Quota, false),
            ("RulesPerSecurityGroupLimitExceeded", 400, Quota, false),
            ("ResourceLimitExceeded", 400, Quota, false),
            ("KeyPairLimitExceeded", 400, Quota, false),
            ("RequestLimitExceeded", 503, Throttled, true),
            ("Throttling", 400, Throttled, true),
            ("ThrottlingException", 400, Throttled, true),
            ("RequestThrottled", 400, Throttled, true),
            ("InvalidInstanceID.NotFound", 400, NotFound, false),
            ("InvalidGroup.NotFound", 400, NotFound, false),
            ("InvalidKeyPair.NotFound", 400, NotFound, false),
            ("InvalidVolume.NotFound", 400, NotFound, false),
            ("InvalidAMIID.NotFound", 400, NotFound, false),
            ("InvalidSubnetID.NotFound", 400, NotFound, false),
            ("InvalidInstanceID.Malformed", 400, InvalidInput, false),
            ("InvalidAMIID.Malformed", 400, InvalidInput, false),
            ("InvalidGroupId.Malformed", 400, InvalidInput, false),
            ("AuthFailure", 401, Auth, false),
            ("UnauthorizedOperation", 403, Auth, false),
            ("InvalidClientTokenId", 403, Auth, false),
            ("ExpiredToken", 400, Auth, false),
            ("SignatureDoesNotMatch", 403, Auth, false),
            ("OptInRequired", 401, Auth, false),
            ("InvalidGroup.Duplicate", 400, Conflict, false),
            ("InvalidKeyPair.Duplicate", 400, Conflict, false),
            ("IncorrectInstanceState", 400, Conflict, false),
            ("IncorrectState", 400, Conflict, false),
            ("VolumeInUse", 400, Conflict, false),
            ("DependencyViolation", 400, Conflict, true),
            ("InternalError", 500, Unexpected, true),
            ("InternalFailure", 500, Unexpected, true),
            ("ServiceUnavailable", 503, Unexpected, true),
            ("Unavailable", 503, Unexpected, true),
            ("InvalidParameterValue", 400, InvalidInput, false),
            ("InvalidParameterCombination", 400, InvalidInput, false),
            ("MissingParameter", 400, InvalidInput, false),
            ("Unsupported", 400, InvalidInput, false),
            ("Server.InsufficientInstanceCapacity", 0, Capacity, false),
        ];
        for &(code, status, kind, retryable) in cases {
            assert_eq!(
                classify(Some(code), Some(status)),
                (kind, retryable),
                "code {code} status {status}"
            );
        }
    }

    #[test]
    fn status_is_the_fallback_without_a_known_code() {
        use ErrorKind::*;
        assert_eq!(classify(None, Some(502)), (Unexpected, true));
        assert_eq!(
            classify(Some("SomethingNew"), Some(503)),
            (Unexpected, true)
        );
        assert_eq!(classify(None, Some(429)), (Throttled, true));
        assert_eq!(classify(None, Some(403)), (Auth, false));
        assert_eq!(
            classify(Some("SomethingNew"), Some(400)),
            (InvalidInput, false)
        );
        assert_eq!(classify(None, None), (Unexpected, false));
    }

    #[test]
    fn capacity_message_names_type_zone_and_keeps_aws_words() {
        let aws = "We currently do not have sufficient p4d.24xlarge capacity in the Availability \
Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. \
You can currently get p4d.24xlarge capacity by not specifying an Availability Zone in your request \
or choosing us-east-1b, us-east-1c.";
        let e = from_sdk_error(
            "RunInstances",
            &ctx(),
            service("InsufficientInstanceCapacity", aws, 500),
        );
        assert_eq!(e.kind, ErrorKind::Capacity);
        assert!(!e.retryable);
        assert_eq!(e.operation, "RunInstances");
        assert_eq!(e.code.as_deref(), Some("InsufficientInstanceCapacity"));
        assert!(e.message.starts_with(
            "AWS has no capacity for p4d.24xlarge in us-east-1a right now (InsufficientInstanceCapacity): We currently"
        ));
        assert!(e
            .message
            .ends_with("Try another zone, region or instance type, or spot = false."));
    }

    #[test]
    fn quota_message_says_what_to_do() {
        let aws = "You have requested more vCPU capacity than your current vCPU limit of 0 allows \
for the instance bucket that the specified instance type belongs to. Please visit \
http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.";
        let e = from_sdk_error(
            "RunInstances",
            &ctx(),
            service("VcpuLimitExceeded", aws, 400),
        );
        assert_eq!(e.kind, ErrorKind::Quota);
        assert!(e.message.contains("(VcpuLimitExceeded)"));
        assert!(e.message.contains("Service Quotas"));
        assert!(e.message.contains("current vCPU limit of 0"));
    }

    #[test]
    fn throttling_is_retryable_and_honours_retry_after() {
        let meta = ErrorMetadata::builder()
            .code("RequestLimitExceeded")
            .message("Request limit exceeded.")
            .build();
        let err: SdkError<RunInstancesError, Fake> = SdkError::service_error(
            RunInstancesError::generic(meta),
            Fake {
                status: 503,
                retry_after: Some("3"),
            },
        );
        let e = from_sdk_error("DescribeInstances", &ErrorContext::region("eu-west-1"), err);
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.message, "Request limit exceeded.");
    }

    #[test]
    fn not_found_keeps_the_aws_message() {
        let e = from_sdk_error(
            "DescribeInstances",
            &ErrorContext::region("us-east-1"),
            service(
                "InvalidInstanceID.NotFound",
                "The instance ID 'i-0123456789abcdef0' does not exist",
                400,
            ),
        );
        assert!(e.is_not_found());
        assert_eq!(
            e.message,
            "The instance ID 'i-0123456789abcdef0' does not exist"
        );
    }

    #[test]
    fn transport_errors_are_retryable() {
        let io: SdkError<RunInstancesError, Fake> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let e = from_sdk_error("DescribeInstances", &ErrorContext::region("us-east-1"), io);
        assert_eq!(e.kind, ErrorKind::Unexpected);
        assert!(e.retryable);
        assert!(e.message.contains("connection refused"), "{}", e.message);

        let t: SdkError<RunInstancesError, Fake> = SdkError::timeout_error("attempt timeout");
        let e = from_sdk_error("DescribeInstances", &ErrorContext::region("us-east-1"), t);
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.retryable);

        let r: SdkError<RunInstancesError, Fake> = SdkError::response_error(
            "<html>502 Bad Gateway</html>",
            Fake {
                status: 502,
                retry_after: None,
            },
        );
        let e = from_sdk_error("DescribeInstances", &ErrorContext::region("us-east-1"), r);
        assert_eq!(e.kind, ErrorKind::Unexpected);
        assert!(e.retryable);
    }

    #[test]
    fn construction_failures_are_permanent() {
        let c: SdkError<RunInstancesError, Fake> =
            SdkError::construction_failure("invalid region name");
        let e = from_sdk_error("DescribeInstances", &ErrorContext::region("us east"), c);
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(!e.retryable);
    }
}
