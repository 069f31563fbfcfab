//! Per-call-site retry state for `#[retry]`, and the functions its expansion calls.
//!
//! Each annotated function gets one `static` [`RetrySite`] holding its name, its constant
//! [`RetryConfig`] and relaxed atomic counters. The site registers itself in
//! [`RetryManager::global()`] the first time it runs (afterwards the check is one relaxed
//! load), so the global statistics list it under its name, merged with calls made through
//! [`RetryManager::retry_with_backoff`] under the same name.
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
//!         ::resilience::__private::Probe(__e).retryable()
//!     })
//! }
//! # resilience::retry::with_sleeper(&resilience::NoSleep, || assert!(load("/no/such/file").is_err()));
//! ```
//! The predicate closure is autoref specialization: it resolves to
//! `recovery() == Recovery::Retry` when the error type implements [`Classify`](crate::Classify)
//! and to `true` otherwise (including inside generic functions, where the error type is a
//! parameter). It must be written at the call site, as above, for the choice to see the
//! concrete type.
//!
//! With `when = path::to::pred`, the third argument is `path::to::pred` itself.
//!
//! An `async fn` calls `retry_if_async(&__SITE, || async move { body }, pred).await` (or
//! `retry_async(&__SITE, || async move { body }).await`): each attempt's future owns copies of
//! the captured arguments, so the function's future stays `Send`. When the body must borrow an
//! argument mutably in every attempt (`&mut self`, `&mut T`), which `|| async move` cannot
//! express, call `retry_if_async_borrowing(&__SITE, async || { body }, pred).await`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use super::engine::{self, Counters, Target};
use super::{OperationRetryStats, RetryConfig, RetryManager};

/// The retry state of one `#[retry]` call site; lives in a `static`.
#[derive(Debug)]
pub struct RetrySite {
    name: &'static str,
    config: RetryConfig,
    pub(crate) counters: Counters,
    /// `UNREGISTERED`, then `PLAIN` or `TIMED` (with `max_elapsed`) once registered, so that
    /// the common case is recognized by one load and one comparison.
    state: AtomicU8,
}

const UNREGISTERED: u8 = 0;
const PLAIN: u8 = 1;
const TIMED: u8 = 2;

impl RetrySite {
    /// A site named `name` (its operation name in statistics and logs) retrying as `config`
    /// says.
    pub const fn new(name: &'static str, config: RetryConfig) -> Self {
        RetrySite { name, config, counters: Counters::new(), state: AtomicU8::new(UNREGISTERED) }
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
        self.counters.snapshot()
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.state.load(Relaxed) != UNREGISTERED
    }

    pub(crate) fn mark_registered(&self) {
        let state = if self.config.get_max_elapsed().is_some() { TIMED } else { PLAIN };
        self.state.store(state, Relaxed);
    }

    #[inline]
    fn ensure_registered(&'static self) {
        if !self.is_registered() {
            self.register();
        }
    }

    #[cold]
    #[inline(never)]
    fn register(&'static self) {
        RetryManager::global().register_site(self);
    }
}

/// Everything but the registered site without `max_elapsed`: registers the site and reads the
/// start time when the budget needs it.
#[cold]
#[inline(never)]
fn retry_if_unusual<T, E: Debug>(
    site: &'static RetrySite,
    mut op: impl FnMut() -> Result<T, E>,
    mut retry_if: impl FnMut(&E) -> bool,
) -> Result<T, E> {
    site.ensure_registered();
    let start = site.config.get_max_elapsed().map(|_| RetryManager::global().blocking_now());
    match op() {
        Ok(value) => {
            site.counters.first_try_success();
            Ok(value)
        }
        Err(error) => engine::retry_blocking(
            RetryManager::global(),
            Target::Site(site),
            &site.config,
            start,
            error,
            &mut op,
            &mut retry_if,
        ),
    }
}

pub(crate) mod private {
    use super::*;

    pub use super::RetrySite;

    /// Runs `op` with the site's retry policy, retrying every error.
    #[inline]
    pub fn retry<T, E: Debug>(
        site: &'static RetrySite,
        op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        retry_if(site, op, |_| true)
    }

    /// Runs `op` with the site's retry policy, retrying the errors `retry_if` accepts.
    #[inline]
    pub fn retry_if<T, E: Debug>(
        site: &'static RetrySite,
        mut op: impl FnMut() -> Result<T, E>,
        mut retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E> {
        if site.state.load(Relaxed) != PLAIN {
            return retry_if_unusual(site, op, retry_if);
        }
        match op() {
            Ok(value) => {
                site.counters.first_try_success();
                Ok(value)
            }
            Err(error) => engine::retry_blocking(
                RetryManager::global(),
                Target::Site(site),
                &site.config,
                None,
                error,
                &mut op,
                &mut retry_if,
            ),
        }
    }

    /// The async twin of [`retry`].
    #[cfg(feature = "tokio")]
    pub async fn retry_async<T, E: Debug, Fut>(
        site: &'static RetrySite,
        op: impl FnMut() -> Fut,
    ) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        retry_if_async(site, op, |_| true).await
    }

    /// The async twin of [`retry_if`].
    #[cfg(feature = "tokio")]
    pub async fn retry_if_async<T, E: Debug, Fut>(
        site: &'static RetrySite,
        mut op: impl FnMut() -> Fut,
        retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        site.ensure_registered();
        let start = site.config.get_max_elapsed().map(|_| RetryManager::global().async_now());
        match op().await {
            Ok(value) => {
                site.counters.first_try_success();
                Ok(value)
            }
            Err(error) => {
                engine::retry_async(
                    RetryManager::global(),
                    Target::Site(site),
                    &site.config,
                    start,
                    error,
                    op,
                    retry_if,
                )
                .await
            }
        }
    }

    /// [`retry_if_async`] for an async closure (`async || { body }`) that borrows its
    /// captures in every attempt, such as the body of an `async fn(&mut self)`.
    ///
    /// Its future is `Send` where the compiler can prove it: today it cannot for an async
    /// closure that captures references (rustc reports "implementation of `Send` is not
    /// general enough" when such a future is spawned), so prefer [`retry_if_async`] with
    /// `|| async move { body }` whenever the body only needs copies of its captures.
    #[cfg(feature = "tokio")]
    pub async fn retry_if_async_borrowing<T, E: Debug>(
        site: &'static RetrySite,
        mut op: impl AsyncFnMut() -> Result<T, E>,
        retry_if: impl FnMut(&E) -> bool,
    ) -> Result<T, E> {
        site.ensure_registered();
        let start = site.config.get_max_elapsed().map(|_| RetryManager::global().async_now());
        match op().await {
            Ok(value) => {
                site.counters.first_try_success();
                Ok(value)
            }
            Err(error) => {
                engine::retry_async_borrowing(
                    RetryManager::global(),
                    Target::Site(site),
                    &site.config,
                    start,
                    error,
                    op,
                    retry_if,
                )
                .await
            }
        }
    }

    /// Wraps an error so that `Probe(e).retryable()` asks [`Classify::recovery`] when the
    /// error type implements [`Classify`], and answers `true` otherwise.
    ///
    /// [`Classify`]: crate::Classify
    /// [`Classify::recovery`]: crate::Classify::recovery
    pub struct Probe<'a, E: ?Sized>(pub &'a E);

    /// Whether a probed error is retried; see [`Probe`]. Method resolution tries the impl on
    /// `Probe` (by value) first, and finds the fallback on `&Probe` one autoref later.
    pub trait Retryable {
        /// Whether the probed error is retried.
        fn retryable(self) -> bool;
    }

    impl<E: crate::Classify + ?Sized> Retryable for Probe<'_, E> {
        #[inline]
        fn retryable(self) -> bool {
            self.0.recovery() == crate::Recovery::Retry
        }
    }

    impl<E: ?Sized> Retryable for &Probe<'_, E> {
        #[inline]
        fn retryable(self) -> bool {
            true
        }
    }
}
