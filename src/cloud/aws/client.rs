//! The one wrapper every EC2 call goes through: logging, error mapping, retry and
//! call counting live here so the rest of the backend only says what to call.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::errors::{from_sdk_error, ErrorContext};
use crate::cloud::retry::RetryPolicy;
use crate::cloud::CloudError;

/// An EC2 client bound to one region.
#[derive(Debug)]
pub(crate) struct Ec2 {
    sdk: aws_sdk_ec2::Client,
    region: String,
    policy: RetryPolicy,
    calls: AtomicU64,
}

impl Ec2 {
    pub(crate) fn new(sdk: aws_sdk_ec2::Client, region: String, policy: RetryPolicy) -> Self {
        Ec2 {
            sdk,
            region,
            policy,
            calls: AtomicU64::new(0),
        }
    }

    /// The SDK client, to build requests. Send them only through `call`.
    pub(crate) fn sdk(&self) -> &aws_sdk_ec2::Client {
        &self.sdk
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// HTTP requests sent so far (each retry attempt counts).
    pub(crate) fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Send one EC2 request with the default retry policy.
    pub(crate) async fn call<T, E, F, Fut>(
        &self,
        operation: &'static str,
        cancel: &CancellationToken,
        f: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call_with(
            operation,
            &ErrorContext::region(&self.region),
            &self.policy,
            cancel,
            f,
        )
        .await
    }

    /// Like `call`, with an error context (instance type, zone) for clearer
    /// capacity messages and/or a different retry policy (e.g. a longer one for
    /// `DependencyViolation` while deleting a group).
    pub(crate) async fn call_with<T, E, F, Fut>(
        &self,
        operation: &'static str,
        ctx: &ErrorContext<'_>,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        mut f: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let span = tracing::debug_span!("ec2", operation, region = %self.region);
        policy
            .run(operation, cancel, || {
                let fut = f();
                async move {
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let result = fut.await;
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    match result {
                        Ok(v) => {
                            tracing::debug!(operation, region = %self.region, elapsed_ms, outcome = "ok", "EC2 call");
                            Ok(v)
                        }
                        Err(err) => {
                            let e = from_sdk_error(operation, ctx, err);
                            tracing::debug!(
                                operation,
                                region = %self.region,
                                elapsed_ms,
                                outcome = "error",
                                code = e.code.as_deref().unwrap_or(""),
                                kind = ?e.kind,
                                retryable = e.retryable,
                                message = %e.message,
                                "EC2 call"
                            );
                            Err(e)
                        }
                    }
                }
            })
            .instrument(span)
            .await
    }
}
