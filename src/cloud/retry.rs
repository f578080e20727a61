//! One retry and wait policy for every backend: exponential backoff with full
//! jitter, honouring Retry-After, bounded in attempts and time, cancellable.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{CloudError, ErrorKind};

/// How often and how long to retry a retryable cloud error.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): full jitter over an
    /// exponentially growing ceiling, so many clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.max_delay);
        let millis = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        // At least half the ceiling: pure full jitter can retry almost at once,
        // which does not help a throttled API.
        Duration::from_millis(millis / 2 + fastrand::u64(0..=millis / 2))
    }

    /// Run `call` until it succeeds, fails with a non-retryable error, runs out of
    /// attempts, or `cancel` fires (checked before each attempt and during backoff).
    pub async fn run<T, F, Fut>(
        &self,
        operation: &str,
        cancel: &CancellationToken,
        mut call: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Cancellation stops us from *starting* a call and cuts every wait,
            // but never abandons a call in flight: a dropped RunInstances may
            // still launch a machine whose id we would then never learn, so it
            // could not be undone. Each attempt is bounded by the client timeout.
            if cancel.is_cancelled() {
                return Err(CloudError::cancelled(operation));
            }
            let result = call().await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable && attempt < self.max_attempts => {
                    let delay = e
                        .retry_after
                        .unwrap_or_else(|| self.backoff(attempt))
                        .min(self.max_delay);
                    tracing::debug!(
                        operation,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %e,
                        "retrying after a retryable cloud error"
                    );
                    sleep_or_cancel(delay, cancel, operation).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sleep, or return `Cancelled` as soon as `cancel` fires.
pub async fn sleep_or_cancel(
    delay: Duration,
    cancel: &CancellationToken,
    operation: &str,
) -> Result<(), CloudError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(CloudError::cancelled(operation)),
        _ = tokio::time::sleep(delay) => Ok(()),
    }
}

/// Poll `check` with backoff until it returns `Some`, bounded by `timeout`.
/// Each poll is one cloud call (callers batch: one describe for many objects).
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    mut check: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CloudError>>,
{
    let started = Instant::now();
    let mut interval = Duration::from_millis(250);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if started.elapsed() >= timeout {
            return Err(CloudError::new(
                ErrorKind::Timeout,
                what,
                format!("gave up waiting after {}s", timeout.as_secs()),
            ));
        }
        sleep_or_cancel(interval, cancel, what).await?;
        interval = (interval * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn throttled() -> CloudError {
        CloudError::new(ErrorKind::Throttled, "Op", "slow down").with_code("RequestLimitExceeded")
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = AtomicU32::new(0);
        let out = fast()
            .run("Op", &CancellationToken::new(), || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(throttled())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = fast()
            .run("Op", &CancellationToken::new(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            })
            .await;
        assert_eq!(out.map_err(|e| e.kind), Err(ErrorKind::Throttled));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = fast()
            .run("Op", &CancellationToken::new(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CloudError::new(ErrorKind::Capacity, "Op", "none left"))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_call_in_flight_is_not_abandoned_when_cancelled() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let out = fast()
            .run("RunInstances", &cancel, || {
                let c2 = c2.clone();
                async move {
                    c2.cancel();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, CloudError>("i-123")
                }
            })
            .await;
        assert_eq!(out, Ok("i-123"), "the response of a started call is kept");
        let next: Result<(), _> = fast().run("Next", &cancel, || async { Ok(()) }).await;
        assert_eq!(
            next.map_err(|e| e.kind),
            Err(ErrorKind::Cancelled),
            "no new call starts"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_a_wait() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let out: Result<(), _> = wait_for("wait", Duration::from_secs(60), &cancel, || async {
            Ok(None)
        })
        .await;
        assert_eq!(out.map_err(|e| e.kind), Err(ErrorKind::Cancelled));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = p.backoff(attempt);
            assert!(d <= p.max_delay, "attempt {attempt}: {d:?}");
        }
        assert!(p.backoff(1) <= Duration::from_millis(200));
    }
}
