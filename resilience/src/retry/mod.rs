//! Retry with exponential backoff and jitter.
//!
//! [`RetryManager`] re-runs an operation while it fails with a retryable error, sleeping
//! between attempts as its [`RetryConfig`] says, and keeps per-operation statistics.
//! `#[retry]` functions use the same machinery through a per-call-site `static` (the
//! `RetrySite` of the generated code) and report into [`RetryManager::global()`].
//!
//! Promises:
//! - The success path (the first attempt returns `Ok`) allocates nothing, reads no clock and
//!   takes no lock: it counts the call with one relaxed atomic add. Exceptions: a
//!   configuration with `max_elapsed` reads the sleeper's clock before the first attempt
//!   (the budget runs from that attempt's start), and the first call of an operation name on
//!   a thread registers the name (a lock and an allocation, once).
//! - `max_retries = N` means at most `N + 1` attempts; when they run out, when the error is
//!   not retryable, or when the next attempt would start after `max_elapsed`, the last error
//!   is returned unchanged.
//! - Which errors are retried: every error with [`RetryManager::retry_with_backoff`], those
//!   the predicate accepts with [`RetryManager::retry_with_backoff_if`], and those whose
//!   [`Classify::recovery`] is [`Recovery::Retry`] with [`RetryManager::retry_classified`].
//!   `#[retry]` without `when` picks the classified behaviour when the error type implements
//!   [`Classify`], and retries every error otherwise.
//! - Each retry logs one `warn` event and each failed call one `error` event under the target
//!   `resilience::retry`, with the operation name, attempt, delay and the error's `Debug`
//!   text (hence the `E: Debug` bound, which `Result::unwrap` needs too; no `Display` needed).
//! - Waiting and the clock go through a [`Sleeper`] (blocking) or `AsyncSleeper` (feature
//!   `tokio`); [`with_sleeper`] swaps them per thread, so tests never sleep for real.
//! - Jitter comes from a per-thread `fastrand` generator, or from one seeded generator per
//!   manager with [`RetryManagerBuilder::seed`]; [`RetryConfig::delays_seeded`] gives a
//!   reproducible schedule.
//!
//! # `backoff` interop
//! [`Delays`] implements `backoff::backoff::Backoff`, so a [`RetryConfig`] can drive code
//! written against the `backoff` crate; its `reset()` restarts the schedule and the
//! `max_elapsed` budget. A `backoff::ExponentialBackoff` converts into a [`RetryConfig`]
//! (`RetryConfig::from(&backoff)`). The retry loop itself never goes through `backoff`.

mod config;
pub(crate) mod engine;
mod interop;
mod site;
mod sleep;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use crate::errors::{Classify, Recovery};

pub use self::config::{Delays, RetryConfig};

#[cfg(feature = "tokio")]
pub use self::sleep::{AsyncSleeper, SleepFuture, TokioSleeper, with_async_sleeper};
pub use self::sleep::{ManualSleeper, NoSleep, Sleeper, ThreadSleeper, with_sleeper};

use self::site::RetrySite;
pub(crate) use self::site::private;

use self::engine::{Counters, Target};

/// Statistics of all operations run through a [`RetryManager`].
///
/// `success_rate` is `successful / (successful + failed)`, and `1.0` when nothing ran.
/// `total_attempts` is `total_operations + total_retries`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryStats {
    /// Calls that finished (successfully or not).
    pub total_operations: u64,
    /// Calls that returned `Ok`.
    pub successful: u64,
    /// Calls that returned `Err`.
    pub failed: u64,
    /// Attempts made, first attempts included.
    pub total_attempts: u64,
    /// Attempts after the first one.
    pub total_retries: u64,
    /// `successful / (successful + failed)`, `1.0` when nothing ran.
    pub success_rate: f64,
    /// The same counters per operation name.
    pub by_operation: BTreeMap<String, OperationRetryStats>,
}

/// The statistics of one operation name; the fields mean what they mean in [`RetryStats`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationRetryStats {
    /// Calls that finished (successfully or not).
    pub total_operations: u64,
    /// Calls that returned `Ok`.
    pub successful: u64,
    /// Calls that returned `Err`.
    pub failed: u64,
    /// Attempts made, first attempts included.
    pub total_attempts: u64,
    /// Attempts after the first one.
    pub total_retries: u64,
    /// `successful / (successful + failed)`, `1.0` when nothing ran.
    pub success_rate: f64,
}

impl OperationRetryStats {
    pub(crate) fn from_counts(successful: u64, failed: u64, retries: u64) -> Self {
        let total_operations = successful + failed;
        OperationRetryStats {
            total_operations,
            successful,
            failed,
            total_attempts: total_operations + retries,
            total_retries: retries,
            success_rate: rate(successful, failed),
        }
    }

    fn merge(&mut self, other: &OperationRetryStats) {
        *self = Self::from_counts(
            self.successful + other.successful,
            self.failed + other.failed,
            self.total_retries + other.total_retries,
        );
    }
}

fn rate(successful: u64, failed: u64) -> f64 {
    match successful + failed {
        0 => 1.0,
        total => successful as f64 / total as f64,
    }
}

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

/// Per-thread list of (manager id, operation name) → that manager's shared counters, so that
/// counting a success by name takes no lock and allocates nothing after the first call on a
/// thread. A thread uses few names, so a short list with the last hit checked first beats
/// hashing the name on every call.
struct NamedCache {
    entries: Vec<(u64, Box<str>, Arc<Counters>)>,
    last: usize,
}

impl NamedCache {
    #[inline]
    fn find(&mut self, id: u64, name: &str) -> Option<&Counters> {
        let hit = |entry: &(u64, Box<str>, Arc<Counters>)| entry.0 == id && &*entry.1 == name;
        if !self.entries.get(self.last).is_some_and(hit) {
            self.last = self.entries.iter().position(hit)?;
        }
        Some(&self.entries[self.last].2)
    }
}

thread_local! {
    static NAMED_COUNTERS: std::cell::RefCell<NamedCache> =
        const { std::cell::RefCell::new(NamedCache { entries: Vec::new(), last: 0 }) };
}

/// Bound on the per-thread cache; past it the cache starts over (entries are re-fetched).
const NAMED_CACHE_LIMIT: usize = 64;

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
    pub fn global() -> &'static RetryManager {
        static GLOBAL: OnceLock<RetryManager> = OnceLock::new();
        GLOBAL.get_or_init(RetryManager::new)
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
        self.retry_with_backoff_if(operation_name, config, op, |_| true)
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
        mut op: impl FnMut() -> Result<T, E>,
        mut retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E> {
        let start = config.get_max_elapsed().map(|_| self.blocking_now());
        match op() {
            Ok(value) => {
                self.with_counters(operation_name, Counters::first_try_success);
                Ok(value)
            }
            Err(error) => engine::retry_blocking(
                self,
                Target::Named(operation_name),
                config,
                start,
                error,
                &mut op,
                &mut retry_if,
            ),
        }
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
        self.retry_with_backoff_if(operation_name, config, op, is_retry)
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
                let stats = site.counters.snapshot();
                match by_operation.get_mut(site.name()) {
                    Some(existing) => existing.merge(&stats),
                    None => {
                        by_operation.insert(site.name().to_owned(), stats);
                    }
                }
            }
        }
        let (mut successful, mut failed, mut retries) = (0, 0, 0);
        for stats in by_operation.values() {
            successful += stats.successful;
            failed += stats.failed;
            retries += stats.total_retries;
        }
        let totals = OperationRetryStats::from_counts(successful, failed, retries);
        RetryStats {
            total_operations: totals.total_operations,
            successful,
            failed,
            total_attempts: totals.total_attempts,
            total_retries: retries,
            success_rate: totals.success_rate,
            by_operation,
        }
    }

    /// Zeroes every counter (those of `#[retry]` call sites too, for the global manager).
    pub fn clear_history(&self) {
        let registry = self.registry();
        for counters in registry.named.values() {
            counters.zero();
        }
        for site in &registry.sites {
            site.counters.zero();
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
            site.mark_registered();
        }
    }

    /// Runs `f` on the counters of `name`, creating them on the first call.
    #[inline]
    pub(crate) fn with_counters<R>(&self, name: &str, f: impl Fn(&Counters) -> R) -> R {
        let cached = NAMED_COUNTERS.try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            cache.find(self.id, name).map(&f)
        });
        match cached {
            Ok(Some(result)) => result,
            _ => f(&self.counters_slow(name)),
        }
    }

    #[cold]
    #[inline(never)]
    fn counters_slow(&self, name: &str) -> Arc<Counters> {
        let counters = Arc::clone(self.registry().named.entry(name.to_owned()).or_default());
        let _ = NAMED_COUNTERS.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                if cache.entries.len() >= NAMED_CACHE_LIMIT {
                    cache.entries.clear();
                }
                cache.entries.push((self.id, name.into(), Arc::clone(&counters)));
                cache.last = cache.entries.len() - 1;
            }
        });
        counters
    }

    pub(crate) fn blocking_sleeper(&self) -> Arc<dyn Sleeper> {
        sleep::blocking_sleeper(&self.sleeper)
    }

    pub(crate) fn blocking_now(&self) -> Instant {
        sleep::blocking_now(&*self.sleeper)
    }

    /// A uniform draw from `[0, 1)` for the jitter (0 when the configuration has none).
    pub(crate) fn jitter_unit(&self, config: &RetryConfig) -> f64 {
        if !config.has_jitter() {
            return 0.0;
        }
        match &self.rng {
            Some(rng) => rng.lock().unwrap_or_else(PoisonError::into_inner).f64(),
            None => fastrand::f64(),
        }
    }
}

fn is_retry<E: Classify>(error: &E) -> bool {
    error.recovery() == Recovery::Retry
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
        self.retry_with_backoff_if_async(operation_name, config, op, |_| true).await
    }

    /// The async twin of [`retry_with_backoff_if`](Self::retry_with_backoff_if).
    pub async fn retry_with_backoff_if_async<T, E, Fut>(
        &self,
        operation_name: &str,
        config: &RetryConfig,
        mut op: impl FnMut() -> Fut,
        retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E>
    where
        E: Debug,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let start = config.get_max_elapsed().map(|_| self.async_now());
        match op().await {
            Ok(value) => {
                self.with_counters(operation_name, Counters::first_try_success);
                Ok(value)
            }
            Err(error) => {
                engine::retry_async(
                    self,
                    Target::Named(operation_name),
                    config,
                    start,
                    error,
                    op,
                    retry_if,
                )
                .await
            }
        }
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
        self.retry_with_backoff_if_async(operation_name, config, op, is_retry).await
    }

    pub(crate) fn async_sleeper(&self) -> Arc<dyn AsyncSleeper> {
        sleep::async_sleeper(&self.async_sleeper)
    }

    pub(crate) fn async_now(&self) -> Instant {
        sleep::async_now(&*self.async_sleeper)
    }
}
