//! The retry loop after the first failure, shared by managers and call sites.
//!
//! Everything here runs only once an attempt has failed: it may read the clock, lock and log.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{OperationRetryStats, RetryConfig, RetryManager, RetrySite};

/// Per-operation counters. Calls and attempts are derived (`calls = successes + failures`,
/// `attempts = calls + retries`) so that a first-attempt success costs one relaxed add.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Counters {
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn first_try_success(&self) {
        self.successes.fetch_add(1, Relaxed);
    }

    fn finish(&self, ok: bool, retries: u32) {
        if ok { &self.successes } else { &self.failures }.fetch_add(1, Relaxed);
        if retries > 0 {
            self.retries.fetch_add(u64::from(retries), Relaxed);
        }
    }

    pub(crate) fn zero(&self) {
        self.successes.store(0, Relaxed);
        self.failures.store(0, Relaxed);
        self.retries.store(0, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> OperationRetryStats {
        OperationRetryStats::from_counts(
            self.successes.load(Relaxed),
            self.failures.load(Relaxed),
            self.retries.load(Relaxed),
        )
    }
}

/// Where a finished call is counted.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Named(&'a str),
    Site(&'static RetrySite),
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Named(name) => name,
            Target::Site(site) => site.name(),
        }
    }
}

/// What the loop does after a failed attempt.
pub(crate) enum Step {
    Sleep(Duration),
    GiveUp,
}

/// The state of one call's retry loop.
pub(crate) struct Plan<'a> {
    manager: &'a RetryManager,
    target: Target<'a>,
    config: &'a RetryConfig,
    /// Start of the first attempt; read before it only when `max_elapsed` is set.
    start: Option<Instant>,
    retries: u32,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(
        manager: &'a RetryManager,
        target: Target<'a>,
        config: &'a RetryConfig,
        start: Option<Instant>,
    ) -> Self {
        Plan { manager, target, config, start, retries: 0 }
    }

    /// Decides after a failed attempt; `now` reads the sleeper's clock (only with `max_elapsed`).
    pub(crate) fn after_failure<E: Debug>(
        &mut self,
        error: &E,
        retryable: bool,
        now: impl FnOnce() -> Instant,
    ) -> Step {
        let operation = self.target.name();
        let attempts = self.retries + 1;
        if !retryable {
            tracing::error!(
                target: "resilience::retry",
                operation, attempts, error = ?error,
                "operation failed with an error that is not retryable"
            );
            return Step::GiveUp;
        }
        if self.retries >= self.config.max_retries() {
            tracing::error!(
                target: "resilience::retry",
                operation, attempts, error = ?error,
                "operation failed: no retries left"
            );
            return Step::GiveUp;
        }
        let delay = self.config.delay(self.retries, self.manager.jitter_unit(self.config));
        if let (Some(budget), Some(start)) = (self.config.get_max_elapsed(), self.start) {
            let next_start = now().saturating_duration_since(start).saturating_add(delay);
            if next_start > budget {
                tracing::error!(
                    target: "resilience::retry",
                    operation, attempts, error = ?error, max_elapsed = ?budget,
                    "operation failed: the next attempt would start after max_elapsed"
                );
                return Step::GiveUp;
            }
        }
        tracing::warn!(
            target: "resilience::retry",
            operation, attempt = attempts, delay = ?delay, error = ?error,
            "attempt failed, retrying"
        );
        self.retries += 1;
        Step::Sleep(delay)
    }

    /// Counts the finished call.
    pub(crate) fn finish(&self, ok: bool) {
        match self.target {
            Target::Named(name) => self.manager.with_counters(name, |c| c.finish(ok, self.retries)),
            Target::Site(site) => site.counters.finish(ok, self.retries),
        }
    }
}

/// The blocking loop, entered with the first attempt's error.
#[cold]
#[inline(never)]
pub(crate) fn retry_blocking<T, E: Debug>(
    manager: &RetryManager,
    target: Target<'_>,
    config: &RetryConfig,
    start: Option<Instant>,
    mut error: E,
    op: &mut impl FnMut() -> Result<T, E>,
    retry_if: &mut impl FnMut(&E) -> bool,
) -> Result<T, E> {
    let sleeper = manager.blocking_sleeper();
    let mut plan = Plan::new(manager, target, config, start);
    loop {
        let retryable = retry_if(&error);
        match plan.after_failure(&error, retryable, || sleeper.now()) {
            Step::GiveUp => {
                plan.finish(false);
                return Err(error);
            }
            Step::Sleep(delay) => sleeper.sleep(delay),
        }
        match op() {
            Ok(value) => {
                plan.finish(true);
                return Ok(value);
            }
            Err(e) => error = e,
        }
    }
}

/// Sleeps before the next attempt, or says that there is none.
#[cfg(feature = "tokio")]
async fn wait_async<E: Debug>(
    plan: &mut Plan<'_>,
    sleeper: &dyn super::AsyncSleeper,
    error: &E,
    retryable: bool,
) -> bool {
    match plan.after_failure(error, retryable, || sleeper.now()) {
        Step::GiveUp => false,
        Step::Sleep(delay) => {
            sleeper.sleep(delay).await;
            true
        }
    }
}

/// The async loop, entered with the first attempt's error.
#[cfg(feature = "tokio")]
pub(crate) async fn retry_async<T, E: Debug, Fut>(
    manager: &RetryManager,
    target: Target<'_>,
    config: &RetryConfig,
    start: Option<Instant>,
    mut error: E,
    mut op: impl FnMut() -> Fut,
    mut retry_if: impl FnMut(&E) -> bool,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let sleeper = manager.async_sleeper();
    let mut plan = Plan::new(manager, target, config, start);
    loop {
        if !wait_async(&mut plan, &*sleeper, &error, retry_if(&error)).await {
            plan.finish(false);
            return Err(error);
        }
        match op().await {
            Ok(value) => {
                plan.finish(true);
                return Ok(value);
            }
            Err(e) => error = e,
        }
    }
}

/// [`retry_async`] for an async closure that borrows its captures across attempts.
#[cfg(feature = "tokio")]
pub(crate) async fn retry_async_borrowing<T, E: Debug>(
    manager: &RetryManager,
    target: Target<'_>,
    config: &RetryConfig,
    start: Option<Instant>,
    mut error: E,
    mut op: impl AsyncFnMut() -> Result<T, E>,
    mut retry_if: impl FnMut(&E) -> bool,
) -> Result<T, E> {
    let sleeper = manager.async_sleeper();
    let mut plan = Plan::new(manager, target, config, start);
    loop {
        if !wait_async(&mut plan, &*sleeper, &error, retry_if(&error)).await {
            plan.finish(false);
            return Err(error);
        }
        match op().await {
            Ok(value) => {
                plan.finish(true);
                return Ok(value);
            }
            Err(e) => error = e,
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use crate::retry::{NoSleep, RetryConfig, RetryManager};
    use crate::testing::capture_events;

    #[test]
    fn one_warn_per_retry_and_one_error_per_failed_call() {
        let manager = RetryManager::builder().sleeper(NoSleep).build();
        let config = RetryConfig::new(2).jitter(0.0);
        let events = capture_events(|| {
            let _ = manager.retry_with_backoff("logged", &config, || Err::<(), _>("link down"));
            let _ = manager.retry_with_backoff("quiet", &config, || Ok::<_, &str>(()));
        });
        let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
        assert_eq!(levels, [Level::WARN, Level::WARN, Level::ERROR]);
        for event in &events {
            assert_eq!(event.target, "resilience::retry");
            assert_eq!(event.field("operation"), Some(r#""logged""#), "{event:?}");
            assert_eq!(event.field("error"), Some(r#""link down""#), "{event:?}");
        }
        assert_eq!(
            (events[0].field("attempt"), events[0].field("delay")),
            (Some("1"), Some("100ms"))
        );
        assert_eq!(
            (events[1].field("attempt"), events[1].field("delay")),
            (Some("2"), Some("200ms"))
        );
        assert_eq!(events[2].field("attempts"), Some("3"), "{:?}", events[2]);
    }
}
