//! The retry loop, shared by managers and call sites.
//!
//! Every entry point runs the first attempt itself and hands it to [`first`] (the one
//! prologue): an accepted first attempt is counted and returned there, inline; anything else
//! enters the loop: [`retry_site_blocking`] (inline in a `#[retry]` function, behind the
//! rejected-first-attempt branch, so that a retry pays no call), [`retry_blocking`] (out of
//! line, for managers), [`retry_async`] and [`retry_async_borrowing`]. Everything in the loop
//! runs only after an attempt was rejected: it may read the clock, lock and log; the way to
//! the next attempt stays short, and giving up and logging are out of line.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::hooks::{Fallback, Hooks, OnRetry, RetryIf, Verdict, WhenOk};
use super::site::RetrySite;
use super::stats::Counters;
use super::{RetryConfig, RetryManager};

/// What a call runs under and reports into: a `#[retry]` site (everything else follows from
/// it and the global manager), or a manager's named call.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Site(&'static RetrySite),
    Named(&'a Named<'a>),
}

/// A call through [`RetryManager::retrying`].
pub(crate) struct Named<'a> {
    pub(crate) manager: &'a RetryManager,
    pub(crate) name: &'a str,
    pub(crate) config: &'a RetryConfig,
    pub(crate) budget: Option<&'a Budget>,
}

/// One call: its target and, with `max_elapsed`, the start of its first attempt. Two words
/// and an `Option<Instant>`, so that setting up the loop stores little.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) start: Option<Instant>,
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Named(named) => named.name,
            Target::Site(site) => site.name(),
        }
    }
}

impl<'a> Call<'a> {
    #[inline]
    fn config(&self) -> &'a RetryConfig {
        match self.target {
            Target::Named(named) => named.config,
            Target::Site(site) => site.config(),
        }
    }

    #[inline]
    fn budget(&self) -> Option<&'a Budget> {
        match self.target {
            Target::Named(named) => named.budget,
            Target::Site(site) => site.shared_budget(),
        }
    }

    #[inline]
    fn manager(&self) -> &'a RetryManager {
        match self.target {
            Target::Named(named) => named.manager,
            Target::Site(_) => RetryManager::global(),
        }
    }

    /// Jitter bits; the global manager (a site's) never has a seeded generator.
    #[inline]
    fn jitter_bits(&self, config: &RetryConfig) -> u64 {
        match self.target {
            Target::Named(named) => named.manager.jitter_bits(config),
            Target::Site(_) => super::thread_jitter_bits(config),
        }
    }

    #[inline]
    fn finish(&self, ok: bool, retries: u32) {
        match self.target {
            Target::Named(named) => {
                named.manager.with_counters(named.name, |c| c.finish(ok, retries));
            }
            Target::Site(site) => site.count_finish(ok, retries),
        }
    }

    fn budget_exhausted(&self) {
        match self.target {
            Target::Named(named) => {
                named.manager.with_counters(named.name, Counters::budget_exhausted);
            }
            Target::Site(site) => site.counters.budget_exhausted(),
        }
    }
}

/// The one first-attempt prologue: `Ok(result)` when the first attempt is accepted (an `Ok`
/// that `when_ok` does not reject; counted with `count`), `Err(result)` when the loop must run.
#[inline(always)]
pub(crate) fn first<T, E>(
    result: Result<T, E>,
    when_ok: &mut impl WhenOk<T>,
    count: impl FnOnce(),
) -> Result<Result<T, E>, Result<T, E>> {
    if accepted(&result, when_ok) {
        count();
        Ok(result)
    } else {
        Err(result)
    }
}

/// The `error` field of the log events: the error, or what stood for one.
struct Shown<'a, E>(Option<&'a E>);

impl<E: Debug> Debug for Shown<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(error) => error.fmt(f),
            None => f.write_str("an `Ok` value that `when_ok` rejected"),
        }
    }
}

/// Why a call ends with its last result.
#[derive(Clone, Copy)]
enum GiveUp {
    NotRetryable,
    NoRetriesLeft,
    MaxElapsed(Duration),
    Budget,
}

/// What the loop does after a rejected attempt.
enum Step {
    Sleep(Duration),
    GiveUp,
}

/// The state of one call's retry loop.
struct Plan<'a> {
    call: Call<'a>,
    retries: u32,
}

impl<'a> Plan<'a> {
    /// Decides after a rejected attempt: `error` is `None` for an `Ok` that `when_ok`
    /// rejected. `now` reads the sleeper's clock (only with `max_elapsed` or a budget). The
    /// way to a retry stays inline and short; giving up and logging are out of line.
    #[inline(always)]
    fn after<E: Debug>(
        &mut self,
        error: Option<&E>,
        verdict: Verdict,
        now: impl Fn() -> Instant,
    ) -> Step {
        let config = self.call.config();
        let hint = match verdict {
            Verdict::Stop => {
                return give_up(self.call.target, self.retries, error, GiveUp::NotRetryable);
            }
            Verdict::Retry => None,
            Verdict::RetryAfter(delay) => Some(delay),
        };
        if self.retries >= config.max_retries() {
            return give_up(self.call.target, self.retries, error, GiveUp::NoRetriesLeft);
        }
        let delay = match hint {
            Some(delay) => delay,
            None => config.delay(self.retries, self.call.jitter_bits(config)),
        };
        if let (Some(limit), Some(start)) = (config.get_max_elapsed(), self.call.start)
            && now().saturating_duration_since(start).saturating_add(delay) > limit
        {
            return give_up(self.call.target, self.retries, error, GiveUp::MaxElapsed(limit));
        }
        if let Some(budget) = self.call.budget()
            && !budget.withdraw(now())
        {
            self.call.budget_exhausted();
            return give_up(self.call.target, self.retries, error, GiveUp::Budget);
        }
        if tracing::level_enabled!(tracing::Level::WARN) {
            log_retry(self.call.target, self.retries, error, delay);
        }
        self.retries += 1;
        Step::Sleep(delay)
    }

    /// Counts the call and settles its result: an accepted `Ok` or the last `Ok` of
    /// `when_ok` is returned, an error goes through the fallback.
    #[inline(always)]
    fn finish<T, E>(
        &self,
        result: Result<T, E>,
        ok: bool,
        fallback: impl Fallback<T, E>,
    ) -> Result<T, E> {
        self.call.finish(ok, self.retries);
        match result {
            Ok(value) => Ok(value),
            Err(error) => fallback.fallback(error),
        }
    }

    /// The verdict on a rejected result, and the hook before a retry that follows an error.
    #[inline(always)]
    fn step<T, E: Debug, V: RetryIf<E>, K, H: OnRetry<E>, F>(
        &mut self,
        result: &Result<T, E>,
        hooks: &mut Hooks<V, K, H, F>,
        now: impl Fn() -> Instant,
    ) -> Step {
        match result {
            Ok(_) => self.after::<E>(None, Verdict::Retry, now),
            Err(error) => {
                let verdict = hooks.retry_if.verdict(error);
                let step = self.after(Some(error), verdict, now);
                if let Step::Sleep(delay) = step {
                    hooks.on_retry.on_retry(error, self.retries, delay);
                }
                step
            }
        }
    }
}

#[cold]
#[inline(never)]
fn log_retry<E: Debug>(target: Target<'_>, retries: u32, error: Option<&E>, delay: Duration) {
    tracing::warn!(
        target: "resilience::retry",
        operation = target.name(), attempt = retries + 1, delay = ?delay,
        error = ?Shown(error),
        "attempt failed, retrying"
    );
}

#[cold]
#[inline(never)]
fn give_up<E: Debug>(target: Target<'_>, retries: u32, error: Option<&E>, why: GiveUp) -> Step {
    let operation = target.name();
    let attempts = retries + 1;
    let error = Shown(error);
    match why {
        GiveUp::NotRetryable => tracing::error!(
            target: "resilience::retry",
            operation, attempts, error = ?error,
            "operation failed with an error that is not retryable"
        ),
        GiveUp::NoRetriesLeft => tracing::error!(
            target: "resilience::retry",
            operation, attempts, error = ?error,
            "operation failed: no retries left"
        ),
        GiveUp::MaxElapsed(limit) => tracing::error!(
            target: "resilience::retry",
            operation, attempts, error = ?error, max_elapsed = ?limit,
            "operation failed: the next attempt would start after max_elapsed"
        ),
        GiveUp::Budget => tracing::error!(
            target: "resilience::retry",
            operation, attempts, error = ?error,
            "operation failed: its retry budget is exhausted"
        ),
    }
    Step::GiveUp
}

/// Whether the loop ends with `result`.
#[inline(always)]
fn accepted<T, E>(result: &Result<T, E>, when_ok: &mut impl WhenOk<T>) -> bool {
    matches!(result, Ok(value) if !when_ok.retry_ok(value))
}

/// The blocking loop of a call site, entered with the first attempt's rejected result.
#[inline(always)]
pub(crate) fn retry_site_blocking<T, E, V, K, H, F>(
    site: &'static RetrySite,
    start: Option<Instant>,
    result: Result<T, E>,
    op: &mut impl FnMut() -> Result<T, E>,
    hooks: Hooks<V, K, H, F>,
) -> Result<T, E>
where
    E: Debug,
    V: RetryIf<E>,
    K: WhenOk<T>,
    H: OnRetry<E>,
    F: Fallback<T, E>,
{
    run_blocking(site.call(start), result, op, hooks)
}

/// The blocking loop, entered with the first attempt's rejected result.
#[cold]
#[inline(never)]
pub(crate) fn retry_blocking<T, E, V, K, H, F>(
    call: Call<'_>,
    result: Result<T, E>,
    op: &mut impl FnMut() -> Result<T, E>,
    hooks: Hooks<V, K, H, F>,
) -> Result<T, E>
where
    E: Debug,
    V: RetryIf<E>,
    K: WhenOk<T>,
    H: OnRetry<E>,
    F: Fallback<T, E>,
{
    run_blocking(call, result, op, hooks)
}

#[inline(always)]
fn run_blocking<T, E, V, K, H, F>(
    call: Call<'_>,
    mut result: Result<T, E>,
    op: &mut impl FnMut() -> Result<T, E>,
    mut hooks: Hooks<V, K, H, F>,
) -> Result<T, E>
where
    E: Debug,
    V: RetryIf<E>,
    K: WhenOk<T>,
    H: OnRetry<E>,
    F: Fallback<T, E>,
{
    let mut plan = Plan { call, retries: 0 };
    loop {
        match plan.step(&result, &mut hooks, || call.manager().blocking_now()) {
            Step::GiveUp => return plan.finish(result, false, hooks.fallback),
            Step::Sleep(delay) => match call.target {
                Target::Site(_) => super::sleep::blocking_sleep_or(RetryManager::global, delay),
                Target::Named(named) => named.manager.blocking_sleep(delay),
            },
        }
        result = op();
        if accepted(&result, &mut hooks.when_ok) {
            return plan.finish(result, true, hooks.fallback);
        }
    }
}

/// The async loop, entered with the first attempt's rejected result.
#[cfg(feature = "tokio")]
pub(crate) async fn retry_async<T, E, Fut, V, K, H, F>(
    call: Call<'_>,
    mut result: Result<T, E>,
    mut op: impl FnMut() -> Fut,
    mut hooks: Hooks<V, K, H, F>,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Debug,
    V: RetryIf<E>,
    K: WhenOk<T>,
    H: OnRetry<E>,
    F: Fallback<T, E>,
{
    let manager = call.manager();
    let mut plan = Plan { call, retries: 0 };
    loop {
        match plan.step(&result, &mut hooks, || manager.async_now()) {
            Step::GiveUp => return plan.finish(result, false, hooks.fallback),
            Step::Sleep(delay) => manager.async_sleep(delay).await,
        }
        result = op().await;
        if accepted(&result, &mut hooks.when_ok) {
            return plan.finish(result, true, hooks.fallback);
        }
    }
}

/// [`retry_async`] for an async closure that borrows its captures across attempts.
#[cfg(feature = "tokio")]
pub(crate) async fn retry_async_borrowing<T, E, V, K, H, F>(
    call: Call<'_>,
    mut result: Result<T, E>,
    mut op: impl AsyncFnMut() -> Result<T, E>,
    mut hooks: Hooks<V, K, H, F>,
) -> Result<T, E>
where
    E: Debug,
    V: RetryIf<E>,
    K: WhenOk<T>,
    H: OnRetry<E>,
    F: Fallback<T, E>,
{
    let manager = call.manager();
    let mut plan = Plan { call, retries: 0 };
    loop {
        match plan.step(&result, &mut hooks, || manager.async_now()) {
            Step::GiveUp => return plan.finish(result, false, hooks.fallback),
            Step::Sleep(delay) => manager.async_sleep(delay).await,
        }
        result = op().await;
        if accepted(&result, &mut hooks.when_ok) {
            return plan.finish(result, true, hooks.fallback);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use crate::retry::{NoSleep, RetryConfig, RetryManager};
    use crate::test_support::capture_events;

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
