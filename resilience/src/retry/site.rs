//! Per-call-site retry state for `#[retry]`, and the functions its expansion calls.
//!
//! Each annotated function gets one `static` [`RetrySite`] holding its name, its constant
//! [`RetryConfig`], its shared counters and the number of its per-thread slot (see
//! `local.rs`). The site registers itself in [`RetryManager::global()`] the first time it runs
//! (afterwards the check is one relaxed load), so the global statistics list it under its
//! name, merged with calls made through [`RetryManager::retry_with_backoff`] under the same
//! name.
//!
//! The expansion of
//! ```text
//! #[retry(max = 5, initial = "50ms")]
//! fn load(path: &str) -> Result<String, std::io::Error> { std::fs::read_to_string(path) }
//! ```
//! is
//! ```
//! fn load(path: &str) -> Result<String, std::io::Error> {
//!     static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
//!         ::core::concat!(::core::module_path!(), "::load"),
//!         ::resilience::RetryConfig::new(5).initial_delay(::core::time::Duration::from_millis(50)),
//!     );
//!     ::resilience::__private::retry_if(&__SITE, || { std::fs::read_to_string(path) }, |__e| {
//!         use ::resilience::__private::Retryable as _;
//!         ::resilience::__private::Probe(__e).verdict()
//!     })
//! }
//! # resilience::with_sleeper(&resilience::NoSleep, || assert!(load("/no/such/file").is_err()));
//! ```
//! The verdict closure is autoref specialization: when the error type implements
//! [`Classify`](crate::Classify) it retries `Recovery::Retry` errors, after their
//! `retry_after()` hint when they give one; any other concrete error type is always retried.
//! It must be written at the call site, as above, for the choice to see the concrete type.
//! Where the error type is generic (a type parameter, `Self::Error`), the choice cannot see
//! it, so the verdict is `classified(__e)` instead, which requires `Classify`
//! ([`ClassifiedError`](private::ClassifiedError) says what to do when it is missing).
//!
//! With `when = path::to::pred`, the verdict is `Probe(__e).verdict_when(path::to::pred(__e))`:
//! the predicate decides, the hint still applies; `when = always` is `verdict_when(true)`. With `when_ok`, `on_retry` or `fallback`,
//! the call is `retry_with(&__SITE, op, verdict, when_ok, on_retry, fallback)`: each hook is a
//! closure calling the user's path with typed parameters (`|__v: &<Ret as Outcome>::Ok|
//! path(__v)`, spanned at the path, so a wrong signature is reported there), and `NoHook`
//! stands for a hook not given; `budget = "name"` adds `.budget("name")` to the site.
//!
//! An `async fn` calls `retry_if_async(&__SITE, || async { body }, verdict).await`: each
//! attempt's future borrows the arguments from the function's own future, so the function's
//! future stays `Send`. When the body must borrow an argument mutably in every attempt
//! (`&mut self`, `&mut T`), which `|| async` cannot express, it calls `retry_if_async_borrowing(&__SITE, async || { body }, verdict).await`. Each
//! has a `retry_with_*` twin taking the hooks.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use super::budget::Budget;
use super::engine::{self, Call, Target};
use super::hooks::{ByVerdict, Fallback, Hooks, OnRetry, WhenOk};
use super::local;
use super::stats::{Counters, OperationRetryStats, Raw};
use super::{RetryConfig, RetryManager};

/// The retry state of one `#[retry]` call site; lives in a `static`.
#[derive(Debug)]
pub struct RetrySite {
    name: &'static str,
    config: RetryConfig,
    budget_name: Option<&'static str>,
    /// Counts of threads without a slot, of threads that exited, and of budget refusals.
    pub(crate) counters: Counters,
    /// The per-thread slots' counts at the last `clear_history`.
    baseline: Mutex<Raw>,
    /// The budget, resolved in the global manager when the site registers.
    budget: OnceLock<Arc<Budget>>,
    /// `UNREGISTERED`, then what the first attempt needs (`PLAIN`, `BUDGETED`, `TIMED`) in
    /// the low two bits and the site's per-thread slot plus one (0: none) above them, so that
    /// the common case is one load and one comparison.
    state: AtomicU32,
}

const UNREGISTERED: u32 = 0;
/// Nothing before the first attempt.
const PLAIN: u32 = 1;
/// A deposit into the budget.
const BUDGETED: u32 = 2;
/// The start time (`max_elapsed`), and a deposit if there is a budget.
const TIMED: u32 = 3;
const KIND: u32 = 3;

impl RetrySite {
    /// A site named `name` (its operation name in statistics and logs) retrying as `config`
    /// says.
    pub const fn new(name: &'static str, config: RetryConfig) -> Self {
        RetrySite {
            name,
            config,
            budget_name: None,
            counters: Counters::new(),
            baseline: Mutex::new(Raw::ZERO),
            budget: OnceLock::new(),
            state: AtomicU32::new(UNREGISTERED),
        }
    }

    /// Retries of this site draw on the global manager's budget `name`.
    pub const fn budget(mut self, name: &'static str) -> Self {
        self.budget_name = Some(name);
        self
    }

    /// The operation name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The retry configuration.
    pub const fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// This site's own counters (the global statistics merge them with others of the same
    /// name).
    pub fn statistics(&self) -> OperationRetryStats {
        self.raw().stats()
    }

    #[inline]
    fn slot(&self) -> Option<u32> {
        (self.state.load(Relaxed) >> 2).checked_sub(1)
    }

    pub(crate) fn raw(&self) -> Raw {
        let baseline = *self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        local::total(self.slot(), &self.counters).minus(baseline)
    }

    pub(crate) fn clear(&self) {
        local::clear(self.slot(), &self.counters, &self.baseline);
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.state.load(Relaxed) != UNREGISTERED
    }

    /// Called by the manager, under its registry lock, once.
    pub(crate) fn mark_registered(&'static self, budget: impl FnOnce(&str) -> Arc<Budget>) {
        if let Some(name) = self.budget_name {
            let _ = self.budget.set(budget(name));
        }
        let kind = match (self.config.get_max_elapsed(), self.budget_name) {
            (Some(_), _) => TIMED,
            (None, Some(_)) => BUDGETED,
            (None, None) => PLAIN,
        };
        let slot = local::assign(self).map_or(0, |slot| slot + 1);
        self.state.store(kind | slot << 2, Relaxed);
    }

    /// Before the first attempt: the deposit and the start time, where the site needs them.
    /// Returns the state (for [`RetrySite::count_first_try`]) and the start.
    #[inline(always)]
    fn enter(&'static self, now: impl Fn(&RetryManager) -> Instant) -> (u32, Option<Instant>) {
        let state = self.state.load(Relaxed);
        match state & KIND {
            PLAIN => (state, None),
            BUDGETED => {
                if let Some(budget) = self.budget.get() {
                    budget.deposit();
                }
                (state, None)
            }
            _ => self.enter_unusual(now),
        }
    }

    #[cold]
    #[inline(never)]
    fn enter_unusual(
        &'static self,
        now: impl Fn(&RetryManager) -> Instant,
    ) -> (u32, Option<Instant>) {
        let manager = RetryManager::global();
        if !self.is_registered() {
            manager.register_site(self);
        }
        if let Some(budget) = self.budget.get() {
            budget.deposit();
        }
        let start = self.config.get_max_elapsed().map(|_| now(manager));
        (self.state.load(Relaxed), start)
    }

    /// Counts an accepted first attempt; `state` is what [`RetrySite::enter`] returned.
    #[inline(always)]
    fn count_first_try(&self, state: u32) {
        match (state >> 2).checked_sub(1) {
            Some(slot) => local::first_try_success(slot, &self.counters),
            None => self.counters.first_try_success(),
        }
    }

    /// Counts a call that went through the retry loop.
    #[inline]
    pub(crate) fn count_finish(&self, ok: bool, retries: u32) {
        match self.slot() {
            Some(slot) => local::finish(slot, &self.counters, ok, retries),
            None => self.counters.finish(ok, retries),
        }
    }

    #[inline]
    pub(crate) fn call(&'static self, start: Option<Instant>) -> Call<'static> {
        Call { target: Target::Site(self), start }
    }

    #[inline]
    pub(crate) fn shared_budget(&self) -> Option<&Budget> {
        self.budget.get().map(|b| &**b)
    }
}

/// The blocking clock of the global manager, for `max_elapsed`.
fn blocking_now(manager: &RetryManager) -> Instant {
    manager.blocking_now()
}

pub(crate) mod private {
    use super::*;
    use crate::__private::Outcome;

    pub use super::RetrySite;
    pub use crate::retry::hooks::{NoHook, Verdict};

    /// Runs `op` with the site's retry policy; `verdict` decides about each error. `R` is the
    /// function's return type: a `Result`, or an alias of one.
    #[inline]
    pub fn retry_if<R: Outcome<Error: Debug>>(
        site: &'static RetrySite,
        op: impl FnMut() -> R,
        verdict: impl FnMut(&R::Error) -> Verdict,
    ) -> R {
        retry_with(site, op, verdict, NoHook, NoHook, NoHook)
    }

    /// [`retry_if`] with the hooks of `when_ok`, `on_retry` and `fallback` ([`NoHook`] for
    /// those not given).
    #[inline]
    pub fn retry_with<R: Outcome<Error: Debug>>(
        site: &'static RetrySite,
        mut op: impl FnMut() -> R,
        verdict: impl FnMut(&R::Error) -> Verdict,
        mut when_ok: impl WhenOk<R::Ok>,
        on_retry: impl OnRetry<R::Error>,
        fallback: impl Fallback<R::Ok, R::Error>,
    ) -> R {
        let mut op = || op().into_result();
        let (state, start) = site.enter(blocking_now);
        R::from_result(match engine::first(op(), &mut when_ok, || site.count_first_try(state)) {
            Ok(result) => result,
            Err(result) => engine::retry_site_blocking(
                site,
                start,
                result,
                &mut op,
                Hooks { retry_if: ByVerdict(verdict), when_ok, on_retry, fallback },
            ),
        })
    }

    /// The async twin of [`retry_if`].
    #[cfg(feature = "tokio")]
    pub async fn retry_if_async<R: Outcome<Error: Debug>, Fut>(
        site: &'static RetrySite,
        op: impl FnMut() -> Fut,
        verdict: impl FnMut(&R::Error) -> Verdict,
    ) -> R
    where
        Fut: std::future::Future<Output = R>,
    {
        retry_with_async(site, op, verdict, NoHook, NoHook, NoHook).await
    }

    /// The async twin of [`retry_with`].
    #[cfg(feature = "tokio")]
    pub async fn retry_with_async<R: Outcome<Error: Debug>, Fut>(
        site: &'static RetrySite,
        mut op: impl FnMut() -> Fut,
        verdict: impl FnMut(&R::Error) -> Verdict,
        mut when_ok: impl WhenOk<R::Ok>,
        on_retry: impl OnRetry<R::Error>,
        fallback: impl Fallback<R::Ok, R::Error>,
    ) -> R
    where
        Fut: std::future::Future<Output = R>,
    {
        let (state, start) = site.enter(async_now);
        let first = op().await.into_result();
        R::from_result(match engine::first(first, &mut when_ok, || site.count_first_try(state)) {
            Ok(result) => result,
            Err(result) => {
                let hooks = Hooks { retry_if: ByVerdict(verdict), when_ok, on_retry, fallback };
                let op = || {
                    let attempt = op();
                    async move { attempt.await.into_result() }
                };
                engine::retry_async(site.call(start), result, op, hooks).await
            }
        })
    }

    /// [`retry_if_async`] for an async closure (`async || { body }`) that borrows its
    /// captures in every attempt, such as the body of an `async fn(&mut self)`.
    ///
    /// Its future is `Send` where the compiler can prove it: today it cannot for an async
    /// closure that captures references (rustc reports "implementation of `Send` is not
    /// general enough" when such a future is spawned), so prefer [`retry_if_async`] with
    /// `|| async { body }` whenever the body only needs shared borrows of its captures.
    #[cfg(feature = "tokio")]
    pub async fn retry_if_async_borrowing<R: Outcome<Error: Debug>>(
        site: &'static RetrySite,
        op: impl AsyncFnMut() -> R,
        verdict: impl FnMut(&R::Error) -> Verdict,
    ) -> R {
        retry_with_async_borrowing(site, op, verdict, NoHook, NoHook, NoHook).await
    }

    /// The twin of [`retry_with_async`] for an async closure; see [`retry_if_async_borrowing`].
    #[cfg(feature = "tokio")]
    pub async fn retry_with_async_borrowing<R: Outcome<Error: Debug>>(
        site: &'static RetrySite,
        mut op: impl AsyncFnMut() -> R,
        verdict: impl FnMut(&R::Error) -> Verdict,
        mut when_ok: impl WhenOk<R::Ok>,
        on_retry: impl OnRetry<R::Error>,
        fallback: impl Fallback<R::Ok, R::Error>,
    ) -> R {
        let (state, start) = site.enter(async_now);
        let first = op().await.into_result();
        R::from_result(match engine::first(first, &mut when_ok, || site.count_first_try(state)) {
            Ok(result) => result,
            Err(result) => {
                let hooks = Hooks { retry_if: ByVerdict(verdict), when_ok, on_retry, fallback };
                let op = async || op().await.into_result();
                engine::retry_async_borrowing(site.call(start), result, op, hooks).await
            }
        })
    }

    #[cfg(feature = "tokio")]
    fn async_now(manager: &RetryManager) -> Instant {
        manager.async_now()
    }

    /// Wraps an error so that `Probe(e).verdict()` asks [`Classify`] when the error type
    /// implements it, and retries otherwise.
    ///
    /// [`Classify`]: crate::Classify
    pub struct Probe<'a, E: ?Sized>(pub &'a E);

    /// The verdict on a probed error; see [`Probe`]. Method resolution tries the impl on
    /// `Probe` (by value) first, and finds the fallback on `&Probe` one autoref later.
    pub trait Retryable {
        /// Retry when the recovery is `Retry`, after the error's `retry_after()` hint if any;
        /// without `Classify`, always retry.
        fn verdict(self) -> Verdict;
        /// Retry when `retry` is true (a `when` predicate's answer), after the error's
        /// `retry_after()` hint if any.
        fn verdict_when(self, retry: bool) -> Verdict;
    }

    impl<E: crate::errors::Classify + ?Sized> Retryable for Probe<'_, E> {
        #[inline]
        fn verdict(self) -> Verdict {
            Verdict::classify(self.0)
        }
        #[inline]
        fn verdict_when(self, retry: bool) -> Verdict {
            Verdict::when(retry, self.0)
        }
    }

    /// The error type of a `#[retry]` function when it is generic (`Result<_, E>` with a type
    /// parameter `E`, or `Self::Error`), and `when` is not given: its errors are retried by
    /// their classification, so it must implement [`Classify`](crate::Classify). (At a
    /// generic type, [`Probe`]'s choice would fall back to "retry every error" even when the
    /// type the caller picks is classified.)
    #[diagnostic::on_unimplemented(
        message = "`#[retry]` cannot tell which errors of the generic type `{Self}` to retry",
        label = "generic error type without a `Classify` bound",
        note = "add the bound `{Self}: resilience::Classify` to retry by the error's classification, or say which errors to retry: `#[retry(when = path::to::predicate)]`, or `#[retry(when = always)]` to retry every error"
    )]
    pub trait ClassifiedError {
        /// Retry when the recovery is `Retry`, after the `retry_after()` hint if any.
        fn classified_verdict(&self) -> Verdict;
    }

    impl<E: crate::errors::Classify + ?Sized> ClassifiedError for E {
        #[inline]
        fn classified_verdict(&self) -> Verdict {
            Verdict::classify(self)
        }
    }

    /// The verdict on an error of a generic type; see [`ClassifiedError`].
    #[inline]
    pub fn classified<E: ClassifiedError + ?Sized>(error: &E) -> Verdict {
        error.classified_verdict()
    }

    /// The type of a by-value `mut` argument of a `#[retry]` function: each attempt starts from
    /// a copy of the value the call passed, so it must be `Copy`.
    #[diagnostic::on_unimplemented(
        message = "`#[retry]` starts every attempt from the arguments as the call passed them, so a `mut` argument must be `Copy`; `{Self}` is not",
        label = "each attempt would need its own `{Self}`",
        note = "take it by reference (`&mut {Self}`, to keep the changes of one attempt for the next), or drop the `mut` and clone it inside the body (`let mut copy = arg.clone();`)"
    )]
    pub trait FreshArgument: Copy {}

    impl<T: Copy> FreshArgument for T {}

    /// A copy of a `mut` argument, for one attempt; see [`FreshArgument`].
    #[inline(always)]
    pub fn fresh<T: FreshArgument>(argument: &T) -> T {
        *argument
    }

    impl<E: ?Sized> Retryable for &Probe<'_, E> {
        #[inline]
        fn verdict(self) -> Verdict {
            Verdict::Retry
        }
        #[inline]
        fn verdict_when(self, retry: bool) -> Verdict {
            retry.into()
        }
    }
}
