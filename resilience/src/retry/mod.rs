//! Retry with exponential backoff and jitter.
//!
//! [`RetryManager`] re-runs an operation while it fails with a retryable error, sleeping
//! between attempts as its [`RetryConfig`] says, and keeps per-operation statistics.
//! `#[retry]` functions use the same machinery through a per-call-site `static` (the
//! `RetrySite` of the generated code) and report into [`RetryManager::global()`].
//!
//! Promises:
//! - The success path (the first attempt returns `Ok`) allocates nothing, reads no clock and
//!   takes no lock. A `#[retry]` function counts the call with a plain load and store on its
//!   thread's own slot for the site (no atomic read-modify-write; statistics add up every
//!   thread's slots, and a thread's counts move to the site's shared counters when it exits);
//!   a manager's named call counts with one relaxed atomic add. Exceptions: a configuration
//!   with `max_elapsed` reads the sleeper's clock before the first attempt (the time budget
//!   runs from that attempt's start), the first call of a site registers it and the first
//!   call of an operation name on a thread registers the name (a lock and an allocation,
//!   once each), and a thread's first `#[retry]` call allocates its slots (once).
//! - `max_retries = N` means at most `N + 1` attempts; when they run out, when the error is
//!   not retryable, or when the next attempt would start after `max_elapsed`, the last error
//!   is returned unchanged.
//! - Which errors are retried: every error with [`RetryManager::retry_with_backoff`], those
//!   the predicate accepts with [`RetryManager::retry_with_backoff_if`], and those whose
//!   [`Classify::recovery`] is [`Recovery::Retry`] with [`RetryManager::retry_classified`].
//!   `#[retry]` without `when` picks the classified behaviour when the error type implements
//!   [`Classify`], and retries every error otherwise.
//! - A server's hint: when a retried error's [`Classify::retry_after`] is `Some(d)` (classified
//!   retries, and `#[retry]` on a `Classify` error type), the next delay is exactly `d`: no
//!   jitter, not shortened by `max_delay`, still cut by `max_elapsed`.
//! - The rest is given per call with [`RetryManager::retrying`] (or the `#[retry]` arguments of
//!   the same names): `when_ok` retries `Ok` values too (when attempts run out, the last one is
//!   returned as it is); `on_retry` is called before each sleep that follows an error;
//!   `fallback` is called once with the final error; `budget` draws on a shared
//!   [`RetryBudget`].
//! - A call with a [`RetryBudget`] adds one relaxed atomic add to the success path (the
//!   deposit of its first attempt).
//! - Each retry logs one `warn` event and each failed call one `error` event under the target
//!   `resilience::retry`, with the operation name, attempt, delay and the error's `Debug`
//!   text (hence the `E: Debug` bound, which `Result::unwrap` needs too; no `Display` needed).
//! - Waiting and the clock go through a [`Sleeper`] (blocking) or `AsyncSleeper` (feature
//!   `tokio`); [`with_sleeper`] swaps them per thread, so tests never sleep for real.
//! - Jitter comes from a per-thread `fastrand` generator, or from one seeded generator per
//!   manager with [`RetryManagerBuilder::seed`]; [`RetryConfig::delays_seeded`] gives a
//!   reproducible schedule.
//!
//! # `backoff` interop (feature `backoff`)
//! `backoff` 0.4 is unmaintained (RUSTSEC-2025-0012), so its interop is an optional feature.
//! With it, [`Delays`] implements `backoff::backoff::Backoff`, so a [`RetryConfig`] can drive code
//! written against the `backoff` crate; its `reset()` restarts the schedule and the
//! `max_elapsed` budget. A `backoff::ExponentialBackoff` converts into a [`RetryConfig`]
//! (`RetryConfig::from(&backoff)`). The retry loop itself never goes through `backoff`.

mod budget;
mod config;
pub(crate) mod engine;
mod hooks;
#[cfg(feature = "backoff")]
mod interop;
mod local;
mod site;
mod sleep;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::errors::Classify;
#[cfg(doc)]
use crate::errors::Recovery;

pub use self::budget::RetryBudget;
pub use self::config::{Delays, RetryConfig};
pub use self::hooks::{Classified, Fallback, NoHook, OnRetry, RetryIf, WhenOk};
pub use self::stats::{OperationRetryStats, RetryStats};

#[cfg(feature = "tokio")]
pub use self::sleep::{AsyncSleeper, SleepFuture, TokioSleeper, with_async_sleeper};
pub use self::sleep::{ManualSleeper, NoSleep, Sleeper, ThreadSleeper, with_sleeper};

use self::budget::Budget;
use self::engine::{Call, Named, Target};
use self::hooks::Hooks;
use self::site::RetrySite;
pub(crate) use self::site::private;
use self::stats::Counters;

/// Runs operations with retries and keeps statistics per operation name.
///
/// Build one with [`RetryManager::new`] or [`RetryManager::builder`] (to choose the sleeper or
/// pin the jitter's random seed), or use the process-wide [`RetryManager::global`] that
/// `#[retry]` functions report into.
///
/// ```
/// use std::time::Duration;
/// use resilience::{ManualSleeper, RetryConfig, RetryManager};
///
/// let clock = ManualSleeper::new();
/// let manager = RetryManager::builder().sleeper(clock.clone()).build();
/// let config = RetryConfig::new(3).initial_delay(Duration::from_millis(10)).jitter(0.0);
///
/// let mut attempts = 0;
/// let size = manager.retry_with_backoff("fetch", &config, || {
///     attempts += 1;
///     if attempts < 3 { Err(format!("timeout #{attempts}")) } else { Ok(42) }
/// });
/// assert_eq!(size, Ok(42));
/// assert_eq!(clock.sleeps(), [Duration::from_millis(10), Duration::from_millis(20)]);
///
/// let stats = manager.statistics();
/// assert_eq!((stats.total_operations, stats.total_attempts, stats.total_retries), (1, 3, 2));
/// assert_eq!(stats.by_operation["fetch"].successful, 1);
/// ```
pub struct RetryManager {
    id: u64,
    sleeper: Arc<dyn Sleeper>,
    #[cfg(feature = "tokio")]
    async_sleeper: Arc<dyn AsyncSleeper>,
    rng: Option<Mutex<fastrand::Rng>>,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    named: BTreeMap<String, Arc<Counters>>,
    sites: Vec<&'static RetrySite>,
    budgets: BTreeMap<String, Arc<Budget>>,
    /// The global manager's budgets count deposits per thread (see `local.rs`).
    per_thread_budgets: bool,
}

impl Registry {
    fn budget(&mut self, name: &str) -> Arc<Budget> {
        let per_thread = self.per_thread_budgets;
        let budget = self.budgets.entry(name.to_owned()).or_insert_with(|| {
            if per_thread {
                Budget::per_thread(RetryBudget::default())
            } else {
                Arc::new(Budget::new(RetryBudget::default()))
            }
        });
        Arc::clone(budget)
    }
}

impl std::fmt::Debug for RetryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryManager")
            .field("seeded", &self.rng.is_some())
            .field("statistics", &self.statistics())
            .finish_non_exhaustive()
    }
}

impl Default for RetryManager {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`RetryManager`]; see [`RetryManager::builder`].
#[derive(Default)]
#[must_use]
pub struct RetryManagerBuilder {
    sleeper: Option<Arc<dyn Sleeper>>,
    #[cfg(feature = "tokio")]
    async_sleeper: Option<Arc<dyn AsyncSleeper>>,
    seed: Option<u64>,
}

impl RetryManagerBuilder {
    /// The sleeper and clock for blocking retries (default [`ThreadSleeper`]).
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Some(Arc::new(sleeper));
        self
    }

    /// The sleeper and clock for async retries (default [`TokioSleeper`]).
    #[cfg(feature = "tokio")]
    pub fn async_sleeper(mut self, sleeper: impl AsyncSleeper + 'static) -> Self {
        self.async_sleeper = Some(Arc::new(sleeper));
        self
    }

    /// Draws jitter from a generator seeded with `seed` (shared by all calls of the manager),
    /// so a sequence of calls waits the same delays every run. The default draws from a
    /// per-thread generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The manager.
    ///
    /// ```
    /// use resilience::{NoSleep, RetryManager};
    /// let manager = RetryManager::builder().sleeper(NoSleep).seed(7).build();
    /// assert_eq!(manager.statistics().total_operations, 0);
    /// ```
    pub fn build(self) -> RetryManager {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        RetryManager {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            sleeper: self.sleeper.unwrap_or_else(|| Arc::new(ThreadSleeper)),
            #[cfg(feature = "tokio")]
            async_sleeper: self.async_sleeper.unwrap_or_else(|| Arc::new(TokioSleeper)),
            rng: self.seed.map(|seed| Mutex::new(fastrand::Rng::with_seed(seed))),
            registry: Mutex::new(Registry::default()),
        }
    }
}

/// Per-thread list of (manager id, name) → that manager's shared counters or budget, so that
/// counting a success by name takes no lock and allocates nothing after the first call on a
/// thread. A thread uses few names, so a short list with the last hit checked first beats
/// hashing the name on every call.
struct NamedCache<V> {
    entries: Vec<(u64, Box<str>, Arc<V>)>,
    last: usize,
}

impl<V> NamedCache<V> {
    const fn new() -> Self {
        NamedCache { entries: Vec::new(), last: 0 }
    }

    #[inline]
    fn find(&mut self, id: u64, name: &str) -> Option<&V> {
        let hit = |entry: &(u64, Box<str>, Arc<V>)| entry.0 == id && &*entry.1 == name;
        if !self.entries.get(self.last).is_some_and(hit) {
            self.last = self.entries.iter().position(hit)?;
        }
        Some(&self.entries[self.last].2)
    }

    fn insert(&mut self, id: u64, name: &str, value: Arc<V>) {
        if self.entries.len() >= NAMED_CACHE_LIMIT {
            self.entries.clear();
        }
        self.entries.push((id, name.into(), value));
        self.last = self.entries.len() - 1;
    }
}

type Cache<V> = std::thread::LocalKey<std::cell::RefCell<NamedCache<V>>>;

thread_local! {
    static NAMED_COUNTERS: std::cell::RefCell<NamedCache<Counters>> =
        const { std::cell::RefCell::new(NamedCache::new()) };
    static NAMED_BUDGETS: std::cell::RefCell<NamedCache<Budget>> =
        const { std::cell::RefCell::new(NamedCache::new()) };
}

/// Bound on the per-thread cache; past it the cache starts over (entries are re-fetched).
const NAMED_CACHE_LIMIT: usize = 64;

/// Runs `f` on the cached value of `(id, name)`, or on `slow()`'s (then cached).
#[inline]
fn cached<V, R>(
    cache: &'static Cache<V>,
    id: u64,
    name: &str,
    f: impl Fn(&V) -> R,
    slow: impl FnOnce() -> Arc<V>,
) -> R {
    let hit = cache.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        cache.find(id, name).map(&f)
    });
    match hit {
        Ok(Some(result)) => result,
        _ => {
            let value = slow();
            let _ = cache.try_with(|cache| {
                if let Ok(mut cache) = cache.try_borrow_mut() {
                    cache.insert(id, name, Arc::clone(&value));
                }
            });
            f(&value)
        }
    }
}

impl RetryManager {
    /// A manager with the default sleepers ([`ThreadSleeper`], and `TokioSleeper` for async
    /// retries) and per-thread random jitter.
    ///
    /// ```
    /// let manager = resilience::RetryManager::new();
    /// assert_eq!(manager.statistics().success_rate, 1.0);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the sleepers and the jitter's seed.
    pub fn builder() -> RetryManagerBuilder {
        RetryManagerBuilder::default()
    }

    /// The process-wide manager: `#[retry]` functions report into it. It uses the default
    /// sleepers; override them per thread with [`with_sleeper`].
    #[inline]
    pub fn global() -> &'static RetryManager {
        static GLOBAL: OnceLock<RetryManager> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let manager = RetryManager::new();
            manager.registry().per_thread_budgets = true;
            manager
        })
    }

    /// Runs `op`, retrying every error with backoff as `config` says; returns the first `Ok`
    /// or the last error.
    ///
    /// ```
    /// use resilience::{NoSleep, RetryConfig, RetryManager};
    ///
    /// let manager = RetryManager::builder().sleeper(NoSleep).build();
    /// let mut calls = 0;
    /// let result: Result<u32, String> = manager.retry_with_backoff("count", &RetryConfig::new(3), || {
    ///     calls += 1;
    ///     Err(format!("failure {calls}"))
    /// });
    /// assert_eq!(result, Err("failure 4".to_string())); // 1 attempt + 3 retries
    /// ```
    #[inline]
    pub fn retry_with_backoff<T, E: Debug>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        self.retrying(operation_name, config).call(op)
    }

    /// Like [`retry_with_backoff`](Self::retry_with_backoff), but an error for which
    /// `retry_if` returns `false` is returned at once.
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use resilience::{NoSleep, RetryConfig, RetryManager};
    ///
    /// let manager = RetryManager::builder().sleeper(NoSleep).build();
    /// let mut calls = 0;
    /// let result: Result<(), Error> = manager.retry_with_backoff_if(
    ///     "open",
    ///     &RetryConfig::new(5),
    ///     || { calls += 1; Err(Error::from(ErrorKind::NotFound)) },
    ///     |e| e.kind() == ErrorKind::TimedOut,
    /// );
    /// assert_eq!(result.unwrap_err().kind(), ErrorKind::NotFound);
    /// assert_eq!(calls, 1);
    /// ```
    #[inline]
    pub fn retry_with_backoff_if<T, E: Debug>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Result<T, E>,
        retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E> {
        self.retrying(operation_name, config).when(retry_if).call(op)
    }

    /// Like [`retry_with_backoff_if`](Self::retry_with_backoff_if), and an `Ok` value for
    /// which `retry_if_ok` returns `true` is retried too; when the attempts run out, the last
    /// `Ok` value is returned as it is. The same as
    /// `self.retrying(name, config).when(retry_if).when_ok(retry_if_ok).call(op)`.
    ///
    /// ```
    /// use resilience::{NoSleep, RetryConfig, RetryManager};
    ///
    /// let manager = RetryManager::builder().sleeper(NoSleep).build();
    /// let mut statuses = [503, 503, 200].into_iter();
    /// let status = manager.retry_with_backoff_if_ok(
    ///     "poll",
    ///     &RetryConfig::new(5),
    ///     || Ok::<u16, String>(statuses.next().unwrap()),
    ///     |_| true,
    ///     |status| *status == 503,
    /// );
    /// assert_eq!(status, Ok(200));
    /// assert_eq!(manager.statistics().total_retries, 2);
    /// ```
    #[inline]
    pub fn retry_with_backoff_if_ok<T, E: Debug>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Result<T, E>,
        retry_if: impl FnMut(&E) -> bool,
        retry_if_ok: impl FnMut(&T) -> bool,
    ) -> Result<T, E> {
        self.retrying(operation_name, config).when(retry_if).when_ok(retry_if_ok).call(op)
    }

    /// Like [`retry_with_backoff`](Self::retry_with_backoff), retrying only errors whose
    /// [`Classify::recovery`] is [`Recovery::Retry`]; `Skip` and `Abort` errors are returned
    /// at once.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use resilience::{Classify, NoSleep, Recovery, RetryConfig, RetryManager, Severity};
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum FetchError { Timeout, NotFound }
    /// impl Classify for FetchError {
    ///     fn recovery(&self) -> Recovery {
    ///         match self { FetchError::Timeout => Recovery::Retry, FetchError::NotFound => Recovery::Skip }
    ///     }
    ///     fn error_code(&self) -> Cow<'_, str> { format!("FetchError::{self:?}").into() }
    ///     fn category(&self) -> Cow<'_, str> { "network".into() }
    ///     fn severity(&self) -> Severity { Severity::Error }
    /// }
    ///
    /// let manager = RetryManager::builder().sleeper(NoSleep).build();
    /// let config = RetryConfig::new(2);
    /// let mut calls = 0;
    /// let timeout = manager.retry_classified("fetch", &config, || -> Result<(), _> {
    ///     calls += 1;
    ///     Err(FetchError::Timeout)
    /// });
    /// assert_eq!((timeout, calls), (Err(FetchError::Timeout), 3));
    ///
    /// let mut calls = 0;
    /// let missing = manager.retry_classified("fetch", &config, || -> Result<(), _> {
    ///     calls += 1;
    ///     Err(FetchError::NotFound)
    /// });
    /// assert_eq!((missing, calls), (Err(FetchError::NotFound), 1));
    /// ```
    #[inline]
    pub fn retry_classified<T, E: Classify + Debug>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        self.retrying(operation_name, config).classified().call(op)
    }

    /// A retry with more than a configuration: which errors and `Ok` values to retry, a hook
    /// before each retry, a fallback and a budget. Finish with [`Retrying::call`] (or
    /// `call_async` with the `tokio` feature).
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience::{ManualSleeper, RetryBudget, RetryConfig, RetryManager};
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Fetch { Busy, Gone }
    ///
    /// let clock = ManualSleeper::new();
    /// let manager = RetryManager::builder().sleeper(clock.clone()).build();
    /// manager.set_budget("backend", RetryBudget::new());
    /// let config = RetryConfig::new(3).jitter(0.0);
    ///
    /// let mut replies = vec![Ok("pending"), Err(Fetch::Busy), Err(Fetch::Gone)].into_iter();
    /// let mut seen = Vec::new();
    /// let result = manager
    ///     .retrying("fetch", &config)
    ///     .when(|e: &Fetch| *e == Fetch::Busy)
    ///     .when_ok(|body: &&str| *body == "pending")
    ///     .on_retry(|e: &Fetch, attempt, delay| seen.push((format!("{e:?}"), attempt, delay)))
    ///     .fallback(|_: Fetch| Ok("cached"))
    ///     .budget("backend")
    ///     .call(|| replies.next().unwrap_or(Ok("done")));
    ///
    /// assert_eq!(result, Ok("cached")); // `Gone` after 2 retries, then the fallback
    /// assert_eq!(seen, [("Busy".to_string(), 2, Duration::from_millis(200))]);
    /// assert_eq!(clock.sleeps(), [100, 200].map(Duration::from_millis));
    /// assert_eq!(manager.statistics().failed, 1);
    /// ```
    pub fn retrying<'a>(
        &'a self,
        operation_name: &'a str,
        config: &'a RetryConfig,
    ) -> Retrying<'a, NoHook, NoHook, NoHook, NoHook> {
        Retrying {
            manager: self,
            operation_name,
            config,
            budget: None,
            hooks: Hooks { retry_if: NoHook, when_ok: NoHook, on_retry: NoHook, fallback: NoHook },
        }
    }

    /// Configures the budget `name` (creating it if no call used it yet). Calls join it with
    /// [`Retrying::budget`] or `#[retry(budget = "name")]` (on the global manager); see
    /// [`RetryBudget`]. A budget used before it is configured has [`RetryBudget::default`].
    pub fn set_budget(&self, name: &str, budget: RetryBudget) {
        self.budget_handle(name).configure(budget);
    }

    fn budget_handle(&self, name: &str) -> Arc<Budget> {
        self.registry().budget(name)
    }

    /// The statistics of every operation run through this manager (and, for the global
    /// manager, of every `#[retry]` call site that ran), merged by operation name.
    pub fn statistics(&self) -> RetryStats {
        let mut by_operation: BTreeMap<String, OperationRetryStats> = BTreeMap::new();
        {
            let registry = self.registry();
            for (name, counters) in &registry.named {
                by_operation.insert(name.clone(), counters.snapshot());
            }
            for site in &registry.sites {
                let stats = site.statistics();
                match by_operation.get_mut(site.name()) {
                    Some(existing) => existing.merge(&stats),
                    None => {
                        by_operation.insert(site.name().to_owned(), stats);
                    }
                }
            }
        }
        RetryStats::from_operations(by_operation)
    }

    /// Zeroes every counter (those of `#[retry]` call sites too, for the global manager).
    pub fn clear_history(&self) {
        let registry = self.registry();
        for counters in registry.named.values() {
            counters.zero();
        }
        for site in &registry.sites {
            site.clear();
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Counters live in atomics, the registry only lists them: a panic while it was held
        // cannot have left it inconsistent.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register_site(&self, site: &'static RetrySite) {
        let mut registry = self.registry();
        if !site.is_registered() {
            registry.sites.push(site);
            site.mark_registered(|name| registry.budget(name));
        }
    }

    /// Runs `f` on the counters of `name`, creating them on the first call.
    #[inline]
    pub(crate) fn with_counters<R>(&self, name: &str, f: impl Fn(&Counters) -> R) -> R {
        cached(&NAMED_COUNTERS, self.id, name, f, || self.counters_slow(name))
    }

    #[cold]
    #[inline(never)]
    fn counters_slow(&self, name: &str) -> Arc<Counters> {
        Arc::clone(self.registry().named.entry(name.to_owned()).or_default())
    }

    /// Runs `f` on the budget `name`, creating it on the first call.
    #[inline]
    fn with_budget<R>(&self, name: &str, f: impl Fn(&Budget) -> R) -> R {
        cached(&NAMED_BUDGETS, self.id, name, f, || self.budget_slow(name))
    }

    #[cold]
    #[inline(never)]
    fn budget_slow(&self, name: &str) -> Arc<Budget> {
        self.budget_handle(name)
    }

    /// Sleeps on this manager's own sleeper, ignoring a scoped one.
    pub(crate) fn default_blocking_sleep(&self, delay: Duration) {
        self.sleeper.sleep(delay);
    }

    #[inline]
    pub(crate) fn blocking_sleep(&self, delay: Duration) {
        sleep::blocking_sleep(&*self.sleeper, delay);
    }

    pub(crate) fn blocking_now(&self) -> Instant {
        sleep::blocking_now(&*self.sleeper)
    }

    /// 64 random bits for the jitter (0 when the configuration has none).
    #[inline]
    pub(crate) fn jitter_bits(&self, config: &RetryConfig) -> u64 {
        if !config.has_jitter() {
            return 0;
        }
        match &self.rng {
            Some(rng) => seeded_bits(rng),
            None => thread_bits(),
        }
    }
}

#[cold]
#[inline(never)]
fn seeded_bits(rng: &Mutex<fastrand::Rng>) -> u64 {
    rng.lock().unwrap_or_else(PoisonError::into_inner).u64(..)
}

thread_local! {
    /// The state of this thread's jitter generator (wyrand, as in `fastrand`); 0 until seeded.
    /// A `const` thread-local without destructor: reading it is one load.
    static JITTER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// 64 random bits for `config`'s jitter from this thread's generator (0 without jitter).
#[inline]
pub(crate) fn thread_jitter_bits(config: &RetryConfig) -> u64 {
    if config.has_jitter() { thread_bits() } else { 0 }
}

/// 64 random bits from this thread's generator.
#[inline]
fn thread_bits() -> u64 {
    let mut state = JITTER.with(std::cell::Cell::get);
    if state == 0 {
        state = fastrand::u64(1..);
    }
    state = state.wrapping_add(0xa076_1d64_78bd_642f);
    JITTER.with(|s| s.set(state));
    let t = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
    (t >> 64) as u64 ^ t as u64
}

#[cfg(feature = "tokio")]
impl RetryManager {
    /// The async twin of [`retry_with_backoff`](Self::retry_with_backoff): `op` returns a
    /// future, delays are awaited on the async sleeper (tokio's by default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use resilience::{NoSleep, RetryConfig, RetryManager};
    ///
    /// let manager = RetryManager::builder().async_sleeper(NoSleep).build();
    /// let mut calls = 0;
    /// let result: Result<u32, String> = manager
    ///     .retry_with_backoff_async("fetch", &RetryConfig::new(3), || {
    ///         calls += 1;
    ///         let attempt = calls;
    ///         async move { if attempt < 2 { Err("busy".to_string()) } else { Ok(attempt) } }
    ///     })
    ///     .await;
    /// assert_eq!(result, Ok(2));
    /// # }
    /// ```
    pub async fn retry_with_backoff_async<T, E, Fut>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Fut,
    ) -> Result<T, E>
    where
        E: Debug,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.retrying(operation_name, config).call_async(op).await
    }

    /// The async twin of [`retry_with_backoff_if`](Self::retry_with_backoff_if).
    pub async fn retry_with_backoff_if_async<T, E, Fut>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Fut,
        retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E>
    where
        E: Debug,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.retrying(operation_name, config).when(retry_if).call_async(op).await
    }

    /// The async twin of [`retry_classified`](Self::retry_classified).
    pub async fn retry_classified_async<T, E, Fut>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        op: impl FnMut() -> Fut,
    ) -> Result<T, E>
    where
        E: Classify + Debug,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.retrying(operation_name, config).classified().call_async(op).await
    }

    pub(crate) fn async_sleep(&self, delay: Duration) -> SleepFuture {
        sleep::async_sleep(&*self.async_sleeper, delay)
    }

    pub(crate) fn async_now(&self) -> Instant {
        sleep::async_now(&*self.async_sleeper)
    }
}

/// One retried call being set up; made by [`RetryManager::retrying`].
///
/// Every setter is optional; what is not given costs nothing:
///
/// | setter | takes | default |
/// |---|---|---|
/// | [`when`](Self::when) | `FnMut(&E) -> bool`: retry this error? | every error |
/// | [`classified`](Self::classified) | — (`E: Classify`): `Retry` errors, after their hint | |
/// | [`when_ok`](Self::when_ok) | `FnMut(&T) -> bool`: retry this `Ok` value? | no `Ok` value |
/// | [`on_retry`](Self::on_retry) | `FnMut(&E, u32, Duration)`: before each sleep after an error | nothing |
/// | [`fallback`](Self::fallback) | `FnOnce(E) -> Result<T, E>`: once, with the final error | the error |
/// | [`budget`](Self::budget) | a budget name | none |
///
/// The closures' argument types usually need writing out (`|e: &MyError| ..`), because the
/// error and value types are only known at [`call`](Self::call).
#[must_use = "nothing runs until `call`"]
pub struct Retrying<'a, V, K, H, F> {
    manager: &'a RetryManager,
    operation_name: &'a str,
    config: &'a RetryConfig,
    budget: Option<&'a str>,
    hooks: Hooks<V, K, H, F>,
}

impl<V, K, H, F> std::fmt::Debug for Retrying<'_, V, K, H, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrying")
            .field("operation_name", &self.operation_name)
            .field("config", self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<'a, V, K, H, F> Retrying<'a, V, K, H, F> {
    /// Retries only the errors for which `retry_if` returns `true`.
    pub fn when<E, P: FnMut(&E) -> bool>(self, retry_if: P) -> Retrying<'a, P, K, H, F> {
        self.rehook(|Hooks { when_ok, on_retry, fallback, .. }| Hooks {
            retry_if,
            when_ok,
            on_retry,
            fallback,
        })
    }

    /// Retries only the errors whose [`Classify::recovery`] is [`Recovery::Retry`], after
    /// exactly their [`Classify::retry_after`] delay when they give one.
    pub fn classified(self) -> Retrying<'a, Classified, K, H, F> {
        self.rehook(|Hooks { when_ok, on_retry, fallback, .. }| Hooks {
            retry_if: Classified,
            when_ok,
            on_retry,
            fallback,
        })
    }

    /// Retries an `Ok` value for which `retry_ok` returns `true`, like a retryable error; when
    /// the attempts run out, the last `Ok` value is returned as it is.
    pub fn when_ok<T, P: FnMut(&T) -> bool>(self, retry_ok: P) -> Retrying<'a, V, P, H, F> {
        self.rehook(|Hooks { retry_if, on_retry, fallback, .. }| Hooks {
            retry_if,
            when_ok: retry_ok,
            on_retry,
            fallback,
        })
    }

    /// Calls `hook(error, attempt, delay)` before each sleep that follows an error: `attempt`
    /// is the number of the retry about to happen (1 for the first), `delay` the sleep before
    /// it. Retries of `Ok` values (`when_ok`) have no error and do not call it.
    pub fn on_retry<E, P: FnMut(&E, u32, Duration)>(self, hook: P) -> Retrying<'a, V, K, P, F> {
        self.rehook(|Hooks { retry_if, when_ok, fallback, .. }| Hooks {
            retry_if,
            when_ok,
            on_retry: hook,
            fallback,
        })
    }

    /// Calls `fallback(error)` once with the final error (attempts run out, an error that is
    /// not retried, `max_elapsed`, an exhausted budget); the call returns what it returns.
    /// The statistics still count the call as failed.
    pub fn fallback<T, E, P: FnOnce(E) -> Result<T, E>>(
        self,
        fallback: P,
    ) -> Retrying<'a, V, K, H, P> {
        self.rehook(|Hooks { retry_if, when_ok, on_retry, .. }| Hooks {
            retry_if,
            when_ok,
            on_retry,
            fallback,
        })
    }

    /// Retries draw on the manager's budget `name` (see [`RetryBudget`]); each call deposits
    /// one first attempt into it.
    pub fn budget(mut self, name: &'a str) -> Self {
        self.budget = Some(name);
        self
    }

    fn rehook<V2, K2, H2, F2>(
        self,
        f: impl FnOnce(Hooks<V, K, H, F>) -> Hooks<V2, K2, H2, F2>,
    ) -> Retrying<'a, V2, K2, H2, F2> {
        Retrying {
            manager: self.manager,
            operation_name: self.operation_name,
            config: self.config,
            budget: self.budget,
            hooks: f(self.hooks),
        }
    }

    /// Everything but the hooks.
    fn rest(&self) -> Retrying<'a, NoHook, NoHook, NoHook, NoHook> {
        Retrying {
            manager: self.manager,
            operation_name: self.operation_name,
            config: self.config,
            budget: self.budget,
            hooks: Hooks { retry_if: NoHook, when_ok: NoHook, on_retry: NoHook, fallback: NoHook },
        }
    }

    /// Before the first attempt: the deposit and, with `max_elapsed`, the start time.
    #[inline]
    fn enter(&self, now: impl FnOnce() -> Instant) -> Option<Instant> {
        if let Some(name) = self.budget {
            self.manager.with_budget(name, Budget::deposit);
        }
        self.config.get_max_elapsed().map(|_| now())
    }

    /// After a rejected first attempt: what the loop needs, with `budget` borrowed from the
    /// caller.
    fn named<'b>(&'b self, budget: Option<&'b Budget>) -> Named<'b> {
        Named { manager: self.manager, name: self.operation_name, config: self.config, budget }
    }

    /// Runs `op` (blocking), retrying as set up; returns the first accepted result, the last
    /// `Ok` value `when_ok` rejected, or the fallback's answer to the last error.
    #[inline]
    pub fn call<T, E: Debug>(self, mut op: impl FnMut() -> Result<T, E>) -> Result<T, E>
    where
        V: RetryIf<E>,
        K: WhenOk<T>,
        H: OnRetry<E>,
        F: Fallback<T, E>,
    {
        let start = self.enter(|| self.manager.blocking_now());
        let (manager, name) = (self.manager, self.operation_name);
        let rest = self.rest();
        let mut hooks = self.hooks;
        let count = || manager.with_counters(name, Counters::first_try_success);
        match engine::first(op(), &mut hooks.when_ok, count) {
            Ok(result) => result,
            Err(result) => {
                let budget = rest.budget.map(|name| manager.budget_handle(name));
                let named = rest.named(budget.as_deref());
                let call = Call { target: Target::Named(&named), start };
                engine::retry_blocking(call, result, &mut op, hooks)
            }
        }
    }

    /// The async twin of [`call`](Self::call): `op` returns a future, delays are awaited on
    /// the async sleeper.
    #[cfg(feature = "tokio")]
    pub async fn call_async<T, E: Debug, Fut>(self, mut op: impl FnMut() -> Fut) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        V: RetryIf<E>,
        K: WhenOk<T>,
        H: OnRetry<E>,
        F: Fallback<T, E>,
    {
        let start = self.enter(|| self.manager.async_now());
        let (manager, name) = (self.manager, self.operation_name);
        let rest = self.rest();
        let mut hooks = self.hooks;
        let count = || manager.with_counters(name, Counters::first_try_success);
        match engine::first(op().await, &mut hooks.when_ok, count) {
            Ok(result) => result,
            Err(result) => {
                let budget = rest.budget.map(|name| manager.budget_handle(name));
                let named = rest.named(budget.as_deref());
                let call = Call { target: Target::Named(&named), start };
                engine::retry_async(call, result, op, hooks).await
            }
        }
    }
}
