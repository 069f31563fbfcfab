//! `when_ok`, `on_retry`, `fallback`, `budget` and server hints (`retry_after`), through
//! `#[retry]`, `#[protected(retry(..))]` and `RetryManager::retrying`. No test sleeps: delays
//! go to a `ManualSleeper`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use resilience::{
    Classify, FailsafeManager, OperationRetryStats, RetryBudget, RetryConfig, RetryManager,
    protected, retry,
};
use resilience::{ManualSleeper, with_sleeper};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An error without `Classify`: always retried.
#[derive(Debug, Clone, PartialEq)]
struct Plain(u32);

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failure #{}", self.0)
    }
}

impl std::error::Error for Plain {}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Classify)]
enum ApiError {
    #[error("rate limited, retry in {wait:?}")]
    #[classify(retry, retry_after = wait)]
    RateLimited { wait: Duration },
    #[error("unavailable")]
    #[classify(retry, retry_after = hint)]
    Unavailable { hint: Option<Duration> },
    #[error("denied")]
    #[classify(abort)]
    Denied,
    #[error("store: {0}")]
    #[classify(abort)]
    Store(String),
}

impl From<resilience::Error> for ApiError {
    fn from(error: resilience::Error) -> Self {
        ApiError::Store(error.to_string())
    }
}

#[derive(Debug, thiserror::Error, Classify)]
enum Wrapped {
    #[error(transparent)]
    #[classify(transparent)]
    Api(ApiError),
    #[error("other")]
    Other,
}

thread_local! {
    /// What the next attempts return; `Ok(0)` once it runs dry.
    static SCRIPT: RefCell<VecDeque<Result<u32, ApiError>>> = const { RefCell::new(VecDeque::new()) };
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn script(steps: impl IntoIterator<Item = Result<u32, ApiError>>) {
    SCRIPT.with_borrow_mut(|s| *s = steps.into_iter().collect());
    LOG.with_borrow_mut(Vec::clear);
}

fn next() -> Result<u32, ApiError> {
    SCRIPT.with_borrow_mut(|s| s.pop_front().unwrap_or(Ok(0)))
}

fn attempts_left() -> usize {
    SCRIPT.with_borrow(VecDeque::len)
}

fn log() -> Vec<String> {
    LOG.with_borrow(Clone::clone)
}

fn quiet<R>(f: impl FnOnce() -> R) -> (R, Vec<Duration>) {
    let clock = ManualSleeper::new();
    let result = with_sleeper(&clock, f);
    (result, clock.sleeps())
}

fn site_stats(name: &str) -> OperationRetryStats {
    RetryManager::global().statistics().by_operation[name].clone()
}

// --- when_ok -----------------------------------------------------------------------------

fn is_pending(status: &u32) -> bool {
    *status == 102
}

#[retry(max = 2, initial = "10ms", jitter = 0.0, when_ok = is_pending, name = "hooks::poll")]
fn poll() -> Result<u32, ApiError> {
    next()
}

#[test]
fn when_ok_retries_ok_values_like_errors() {
    script([Ok(102), Err(ApiError::Unavailable { hint: None }), Ok(200)]);
    let (result, sleeps) = quiet(poll);
    assert_eq!(result, Ok(200));
    assert_eq!(sleeps, [ms(10), ms(20)]);
}

#[test]
fn when_attempts_run_out_the_last_ok_value_is_returned_as_it_is() {
    let before = RetryManager::global().statistics().by_operation.get("hooks::poll").cloned();
    script([Ok(102), Ok(102), Ok(102), Ok(200)]);
    let (result, sleeps) = quiet(poll);
    assert_eq!(result, Ok(102));
    assert_eq!(sleeps.len(), 2);
    assert_eq!(attempts_left(), 1);
    let after = site_stats("hooks::poll");
    let failed_before = before.map_or(0, |s| s.failed);
    assert!(after.failed > failed_before, "a call that ends on a rejected value counts as failed");
}

#[test]
fn an_accepted_first_value_is_the_success_path() {
    script([Ok(200)]);
    let (result, sleeps) = quiet(poll);
    assert_eq!((result, sleeps.len()), (Ok(200), 0));
}

// --- on_retry ------------------------------------------------------------------------------

fn note_retry(error: &ApiError, attempt: u32, delay: Duration) {
    LOG.with_borrow_mut(|log| log.push(format!("{error} #{attempt} after {delay:?}")));
}

#[retry(max = 3, initial = "10ms", jitter = 0.0, on_retry = note_retry)]
fn observed() -> Result<u32, ApiError> {
    next()
}

#[test]
fn on_retry_sees_each_error_the_retry_number_and_the_delay_before_the_sleep() {
    script([
        Err(ApiError::Unavailable { hint: None }),
        Err(ApiError::RateLimited { wait: secs(3) }),
        Ok(7),
    ]);
    let (result, sleeps) = quiet(observed);
    assert_eq!(result, Ok(7));
    assert_eq!(sleeps, [ms(10), secs(3)]);
    assert_eq!(log(), ["unavailable #1 after 10ms", "rate limited, retry in 3s #2 after 3s"]);
}

#[test]
fn on_retry_is_not_called_when_nothing_is_retried() {
    script([Err(ApiError::Denied)]);
    let (result, sleeps) = quiet(observed);
    assert_eq!(result, Err(ApiError::Denied));
    assert!(sleeps.is_empty() && log().is_empty());
}

// --- fallback ------------------------------------------------------------------------------

fn cached(error: ApiError) -> Result<u32, ApiError> {
    LOG.with_borrow_mut(|log| log.push(format!("fallback after {error}")));
    match error {
        ApiError::Denied => Err(error),
        _ => Ok(42),
    }
}

#[retry(max = 1, initial = "10ms", jitter = 0.0, fallback = cached, name = "hooks::with_fallback")]
fn with_fallback() -> Result<u32, ApiError> {
    next()
}

#[test]
fn the_fallback_answers_once_when_attempts_run_out() {
    script([Err(ApiError::Unavailable { hint: None }), Err(ApiError::Unavailable { hint: None })]);
    let (result, sleeps) = quiet(with_fallback);
    assert_eq!(result, Ok(42));
    assert_eq!(sleeps, [ms(10)]);
    assert_eq!(log(), ["fallback after unavailable"]);
}

#[test]
fn the_fallback_answers_an_error_that_is_not_retried_and_may_keep_it() {
    script([Err(ApiError::Denied)]);
    let (result, sleeps) = quiet(with_fallback);
    assert_eq!(result, Err(ApiError::Denied));
    assert!(sleeps.is_empty());
    assert_eq!(log(), ["fallback after denied"]);
}

#[test]
fn the_fallback_is_not_called_on_success() {
    script([Err(ApiError::Unavailable { hint: None }), Ok(5)]);
    let (result, _) = quiet(with_fallback);
    assert_eq!(result, Ok(5));
    assert!(log().is_empty());
}

// --- retry_after ---------------------------------------------------------------------------

#[retry(max = 3, initial = "10ms", max_delay = "1s", jitter = 0.5)]
fn hinted() -> Result<u32, ApiError> {
    next()
}

#[retry(max = 3, initial = "10ms", jitter = 0.0, max_elapsed = "4s")]
fn hinted_with_deadline() -> Result<u32, ApiError> {
    next()
}

#[test]
fn a_hint_is_the_next_delay_exactly_without_jitter_and_beyond_max_delay() {
    script([
        Err(ApiError::RateLimited { wait: secs(5) }),
        Err(ApiError::Unavailable { hint: Some(ms(1500)) }),
        Err(ApiError::Unavailable { hint: None }),
        Ok(1),
    ]);
    let (result, sleeps) = quiet(hinted);
    assert_eq!(result, Ok(1));
    assert_eq!(sleeps[..2], [secs(5), ms(1500)]);
    // Without a hint, the backoff of the third retry: 40 ms with jitter 0.5.
    assert!((ms(20)..=ms(60)).contains(&sleeps[2]), "{sleeps:?}");
}

#[test]
fn a_hint_is_still_cut_by_max_elapsed() {
    script([
        Err(ApiError::RateLimited { wait: secs(3) }),
        Err(ApiError::RateLimited { wait: secs(2) }),
    ]);
    let (result, sleeps) = quiet(hinted_with_deadline);
    // 3 s fits in the 4 s budget; the next start (3 s + 2 s) would not.
    assert_eq!(result, Err(ApiError::RateLimited { wait: secs(2) }));
    assert_eq!(sleeps, [secs(3)]);
}

#[test]
fn the_derive_reads_the_hint_and_transparent_variants_delegate() {
    assert_eq!(ApiError::RateLimited { wait: secs(2) }.retry_after(), Some(secs(2)));
    assert_eq!(ApiError::Unavailable { hint: None }.retry_after(), None);
    assert_eq!(ApiError::Denied.retry_after(), None);
    assert_eq!(Wrapped::Api(ApiError::RateLimited { wait: secs(4) }).retry_after(), Some(secs(4)));
    assert_eq!(Wrapped::Other.retry_after(), None);
}

#[test]
fn classified_manager_retries_follow_hints_too() {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().sleeper(clock.clone()).build();
    script([Err(ApiError::RateLimited { wait: secs(9) }), Ok(3)]);
    let result = manager.retry_classified("hinted", &RetryConfig::new(2), next);
    assert_eq!(result, Ok(3));
    assert_eq!(clock.sleeps(), [secs(9)]);
}

// --- budget --------------------------------------------------------------------------------

#[retry(max = 3, initial = "1ms", jitter = 0.0, budget = "hooks::tight", name = "hooks::budgeted")]
fn budgeted(fail: bool) -> Result<(), Plain> {
    if fail { Err(Plain(0)) } else { Ok(()) }
}

#[test]
fn an_exhausted_budget_returns_the_error_at_once_and_counts_it() {
    // No deposits count (ratio 0): 1 retry per second, 10 in the 10-second window.
    RetryManager::global().set_budget("hooks::tight", RetryBudget::new().ratio(0.0).min_per_sec(1));
    let clock = ManualSleeper::new();
    let retries = |clock: &ManualSleeper| {
        let before = clock.sleeps().len();
        assert_eq!(with_sleeper(clock, || budgeted(true)), Err(Plain(0)));
        clock.sleeps().len() - before
    };
    // 3 + 3 + 3 retries, then 1 more before the budget is spent, then none.
    let spent: Vec<usize> = (0..5).map(|_| retries(&clock)).collect();
    assert_eq!(spent, [3, 3, 3, 1, 0]);
    let stats = site_stats("hooks::budgeted");
    assert_eq!(stats.budget_exhausted, 2);
    assert_eq!((stats.failed, stats.total_retries), (5, 10));
    assert_eq!(RetryManager::global().statistics().budget_exhausted, 2);
    // Successes still pass (and deposit); once the window has moved on, retries come back.
    assert_eq!(with_sleeper(&clock, || budgeted(false)), Ok(()));
    clock.advance(secs(11));
    assert_eq!(retries(&clock), 3);
}

#[test]
fn first_attempts_buy_retries_at_the_ratio() {
    let manager = RetryManager::builder().sleeper(ManualSleeper::new()).build();
    manager.set_budget("ratio", RetryBudget::new().ratio(0.5).min_per_sec(0));
    let config = RetryConfig::new(100).initial_delay(Duration::ZERO).jitter(0.0);
    let run = |fail: bool| {
        let mut attempts = 0;
        let _ = manager.retrying("ratio-op", &config).budget("ratio").call(|| {
            attempts += 1;
            if fail { Err(Plain(attempts)) } else { Ok(()) }
        });
        attempts
    };
    for _ in 0..10 {
        assert_eq!(run(false), 1);
    }
    // 11 first attempts at ratio 0.5: 5 retries.
    assert_eq!(run(true), 1 + 5);
    let stats = manager.statistics();
    assert_eq!((stats.budget_exhausted, stats.total_retries), (1, 5));
}

// --- the manager's builder -----------------------------------------------------------------

#[test]
fn the_builder_runs_every_hook_in_order() {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().sleeper(clock.clone()).build();
    let config = RetryConfig::new(4).initial_delay(ms(10)).jitter(0.0);
    script([
        Ok(102),
        Err(ApiError::Unavailable { hint: None }),
        Err(ApiError::RateLimited { wait: secs(1) }),
        Err(ApiError::Denied),
    ]);
    let mut events = Vec::new();
    let result = manager
        .retrying("builder", &config)
        .classified()
        .when_ok(is_pending)
        .on_retry(|e: &ApiError, attempt, delay| events.push(format!("{e} #{attempt} {delay:?}")))
        .fallback(|e: ApiError| if e == ApiError::Denied { Ok(0) } else { Err(e) })
        .call(next);
    assert_eq!(result, Ok(0));
    assert_eq!(events, ["unavailable #2 20ms", "rate limited, retry in 1s #3 1s"]);
    assert_eq!(clock.sleeps(), [ms(10), ms(20), secs(1)]);
    let stats = &manager.statistics().by_operation["builder"];
    assert_eq!((stats.failed, stats.total_retries, stats.total_attempts), (1, 3, 4));
}

#[test]
fn the_builder_with_a_predicate_returns_rejected_errors_at_once() {
    let manager = RetryManager::builder().sleeper(ManualSleeper::new()).build();
    let mut calls = 0;
    let result: Result<(), Plain> =
        manager.retrying("predicate", &RetryConfig::new(3)).when(|e: &Plain| e.0 < 2).call(|| {
            calls += 1;
            Err(Plain(calls))
        });
    assert_eq!(result, Err(Plain(2)));
}

// --- #[protected(retry(..))] ---------------------------------------------------------------

fn not_ready(rows: &u64) -> bool {
    *rows == 0
}

fn zero_rows(_: ApiError) -> Result<u64, ApiError> {
    Ok(0)
}

#[protected(
    id = "hooks-protected-{tag}",
    manager = store,
    retry(max = 2, initial = "5ms", jitter = 0.0, when_ok = not_ready, fallback = zero_rows, on_retry = note_retry)
)]
fn protected_job(store: &FailsafeManager, tag: u32) -> Result<u64, ApiError> {
    next().map(u64::from)
}

#[test]
fn protected_retry_takes_the_same_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(dir.path()).unwrap();
    script([Ok(0), Err(ApiError::Unavailable { hint: None }), Ok(9)]);
    let (result, sleeps) = quiet(|| protected_job(&store, 1));
    assert_eq!(result, Ok(9));
    assert_eq!(sleeps, [ms(5), ms(10)]);
    assert_eq!(log(), ["unavailable #2 after 10ms"]);

    script([Err(ApiError::Denied)]);
    let (result, sleeps) = quiet(|| protected_job(&store, 2));
    assert_eq!((result, sleeps.len()), (Ok(0), 0), "the fallback answers");
}

#[retry(
    max = 100,
    initial = "1ms",
    jitter = 0.0,
    budget = "hooks::earned",
    name = "hooks::earning"
)]
fn earning(fail: bool) -> Result<(), Plain> {
    if fail { Err(Plain(0)) } else { Ok(()) }
}

#[test]
fn first_attempts_on_every_thread_buy_a_sites_retries() {
    RetryManager::global()
        .set_budget("hooks::earned", RetryBudget::new().ratio(0.5).min_per_sec(0));
    let clock = ManualSleeper::new();
    // 6 calls on this thread and 4 on a thread that has exited since: 10 deposits.
    for _ in 0..6 {
        assert_eq!(earning(false), Ok(()));
    }
    std::thread::spawn(|| {
        for _ in 0..4 {
            assert_eq!(earning(false), Ok(()));
        }
    })
    .join()
    .unwrap();
    // The failing call deposits too: 11 first attempts at ratio 0.5 buy 5 retries.
    let retried = with_sleeper(&clock, || earning(true));
    assert_eq!(retried, Err(Plain(0)));
    assert_eq!(clock.sleeps().len(), 5);
    assert_eq!(site_stats("hooks::earning").budget_exhausted, 1);
}
