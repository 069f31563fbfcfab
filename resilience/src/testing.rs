//! Helpers for the tests of code that uses `resilience`.
//!
//! - [`no_sleep`] makes every retry in the process skip its sleeps, for a test binary whose
//!   code retries through `#[retry]` or the global manager on threads the test does not
//!   control (where [`with_sleeper`](crate::retry::with_sleeper) cannot reach). The default
//!   sleepers ([`ThreadSleeper`](crate::ThreadSleeper), and `TokioSleeper` with the `tokio`
//!   feature) return at once; delays are still computed, logged, passed to `on_retry` and
//!   recorded by a test sleeper such as [`ManualSleeper`](crate::ManualSleeper).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static NO_SLEEP: AtomicBool = AtomicBool::new(false);

/// Makes every retry in this process skip its sleeps from now on (blocking and async, every
/// manager and every `#[retry]` function). There is no way back: call it at the start of a
/// test binary.
///
/// ```standalone_crate
/// use resilience::{RetryConfig, RetryManager};
///
/// resilience::testing::no_sleep();
/// let started = std::time::Instant::now();
/// let config = RetryConfig::new(3).initial_delay(std::time::Duration::from_secs(10));
/// let result: Result<(), &str> = RetryManager::new().retry_with_backoff("doc", &config, || Err("down"));
/// assert_eq!(result, Err("down"));
/// assert!(started.elapsed() < std::time::Duration::from_secs(10));
/// ```
pub fn no_sleep() {
    NO_SLEEP.store(true, Relaxed);
}

/// Whether [`no_sleep`] was called.
#[inline]
pub(crate) fn sleeps_skipped() -> bool {
    NO_SLEEP.load(Relaxed)
}
