//! Sleepers: how the retry loop waits between attempts and reads the time.
//!
//! The retry functions only touch the sleeper after an attempt failed (or, when
//! `max_elapsed` is set, to read the start time). Which sleeper they use, first match wins:
//!
//! 1. a scoped override on the current thread: [`with_sleeper`] (blocking) or
//!    [`with_async_sleeper`] (async, feature `tokio`) — this is how tests run code that uses
//!    [`RetryManager::global()`](super::RetryManager::global) or `#[retry]` without real sleeps,
//!    also when tests run on parallel threads;
//! 2. the sleeper the [`RetryManager`](super::RetryManager) was built with;
//! 3. the default: [`ThreadSleeper`] for blocking retries, [`TokioSleeper`] for async ones.

use std::cell::Cell;
#[cfg(feature = "tokio")]
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Waits between blocking retry attempts and tells the time used for `max_elapsed`.
pub trait Sleeper: Send + Sync {
    /// Blocks the current thread for `delay`.
    fn sleep(&self, delay: Duration);

    /// The current time on this sleeper's clock. Defaults to [`Instant::now`].
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The default blocking sleeper: [`std::thread::sleep`] and the system's monotonic clock
/// (after [`testing::no_sleep`](crate::testing::no_sleep), it returns at once).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, delay: Duration) {
        if !crate::testing::sleeps_skipped() {
            std::thread::sleep(delay);
        }
    }
}

/// A sleeper that does not wait at all: retries follow each other at once, on the real clock.
///
/// ```
/// use resilience::{NoSleep, RetryConfig, RetryManager};
///
/// let manager = RetryManager::builder().sleeper(NoSleep).build();
/// let mut calls = 0;
/// let result: Result<(), &str> =
///     manager.retry_with_backoff("flaky", &RetryConfig::new(2), || { calls += 1; Err("down") });
/// assert_eq!((result, calls), (Err("down"), 3));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSleep;

impl Sleeper for NoSleep {
    fn sleep(&self, _delay: Duration) {}
}

/// A test clock: sleeping advances it instantly and records the delay.
///
/// Clones share the same clock and record. Use it to check the exact delays a retry waits,
/// and `max_elapsed`, without sleeping; [`advance`](Self::advance) simulates time spent inside
/// an attempt.
///
/// ```
/// use std::time::Duration;
/// use resilience::{ManualSleeper, RetryConfig, RetryManager};
///
/// let clock = ManualSleeper::new();
/// let manager = RetryManager::builder().sleeper(clock.clone()).build();
/// let config = RetryConfig::new(3).jitter(0.0);
/// let result: Result<(), String> =
///     manager.retry_with_backoff("always-fails", &config, || Err("boom".to_string()));
/// assert!(result.is_err());
/// assert_eq!(clock.sleeps(), [100, 200, 400].map(Duration::from_millis));
/// assert_eq!(clock.elapsed(), Duration::from_millis(700));
/// ```
#[derive(Debug, Clone)]
pub struct ManualSleeper {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    origin: Instant,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for ManualSleeper {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualSleeper {
    /// A clock at zero elapsed time with no recorded sleeps.
    pub fn new() -> Self {
        let state =
            ManualState { origin: Instant::now(), elapsed: Duration::ZERO, sleeps: Vec::new() };
        ManualSleeper { inner: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The delays slept so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }

    /// Returns the delays slept so far and forgets them (the clock keeps its time).
    pub fn take_sleeps(&self) -> Vec<Duration> {
        std::mem::take(&mut self.state().sleeps)
    }

    /// Total time on the clock: every sleep plus every [`advance`](Self::advance).
    pub fn elapsed(&self) -> Duration {
        self.state().elapsed
    }

    /// Moves the clock forward without recording a sleep (time spent working).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.elapsed = state.elapsed.saturating_add(by);
    }

    fn record(&self, delay: Duration) {
        let mut state = self.state();
        state.elapsed = state.elapsed.saturating_add(delay);
        state.sleeps.push(delay);
    }

    fn instant(&self) -> Instant {
        let state = self.state();
        state.origin.checked_add(state.elapsed).unwrap_or(state.origin)
    }
}

impl Sleeper for ManualSleeper {
    fn sleep(&self, delay: Duration) {
        self.record(delay);
    }

    fn now(&self) -> Instant {
        self.instant()
    }
}

thread_local! {
    /// The scoped blocking sleeper of this thread: a pointer to the sleeper that the innermost
    /// [`with_sleeper`] frame owns. A `const` thread-local without destructor, so that the
    /// retry loop reads it with one load (the loop runs it once per retry).
    static BLOCKING_OVERRIDE: Cell<Option<NonNull<dyn Sleeper>>> = const { Cell::new(None) };
}

/// Puts the previous scoped sleeper back when a [`with_sleeper`] frame ends, also on panic.
struct RestoreBlocking(Option<NonNull<dyn Sleeper>>);

impl Drop for RestoreBlocking {
    fn drop(&mut self) {
        BLOCKING_OVERRIDE.set(self.0);
    }
}

/// Runs `f` with the thread's scoped blocking sleeper, if any.
#[inline]
fn with_override<R>(f: impl FnOnce(&dyn Sleeper) -> R) -> Option<R> {
    let sleeper = BLOCKING_OVERRIDE.get()?;
    // SAFETY: the pointer was set by a `with_sleeper` frame on this thread from a sleeper that
    // the frame owns, and that frame's `RestoreBlocking` puts the previous value back before
    // the sleeper is dropped (also when unwinding), so while it is set it points to a live
    // sleeper. It is never read from another thread.
    Some(f(unsafe { sleeper.as_ref() }))
}

/// Restores the previous override when the scope ends, also on panic.
#[cfg(feature = "tokio")]
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    previous: Option<T>,
}

#[cfg(feature = "tokio")]
impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = self.key.try_with(|slot| *slot.borrow_mut() = previous);
    }
}

#[cfg(feature = "tokio")]
fn install<T: 'static>(
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    value: T,
) -> Restore<T> {
    let previous = key.with(|slot| slot.borrow_mut().replace(value));
    Restore { key, previous }
}

/// Runs `f` with `sleeper` used by every blocking retry on this thread (global manager,
/// `#[retry]` functions and managers built with their own sleeper alike). Scopes nest; the
/// previous sleeper comes back when `f` returns or panics.
///
/// ```
/// use std::time::Duration;
/// use resilience::{ManualSleeper, RetryConfig, RetryManager, with_sleeper};
///
/// let clock = ManualSleeper::new();
/// let config = RetryConfig::new(1).jitter(0.0);
/// let result: Result<(), &str> = with_sleeper(&clock, || {
///     RetryManager::global().retry_with_backoff("doc::with_sleeper", &config, || Err("down"))
/// });
/// assert_eq!(result, Err("down"));
/// assert_eq!(clock.sleeps(), [Duration::from_millis(100)]);
/// ```
pub fn with_sleeper<S, R>(sleeper: &S, f: impl FnOnce() -> R) -> R
where
    S: Sleeper + Clone + 'static,
{
    let owned: Box<dyn Sleeper> = Box::new(sleeper.clone());
    let previous = BLOCKING_OVERRIDE.replace(Some(NonNull::from(&*owned)));
    // Declared after `owned`, so dropped before it.
    let _restore = RestoreBlocking(previous);
    f()
}

/// Sleeps on the thread's scoped sleeper, else on `default`.
#[inline]
pub(crate) fn blocking_sleep(default: &dyn Sleeper, delay: Duration) {
    if with_override(|sleeper| sleeper.sleep(delay)).is_none() {
        default.sleep(delay);
    }
}

/// [`blocking_sleep`] with a default sleeper looked up only when there is no scoped one.
#[inline]
pub(crate) fn blocking_sleep_or(
    manager: impl FnOnce() -> &'static super::RetryManager,
    delay: Duration,
) {
    if with_override(|sleeper| sleeper.sleep(delay)).is_none() {
        manager().default_blocking_sleep(delay);
    }
}

/// The time on the thread's scoped sleeper's clock, else on `default`'s.
pub(crate) fn blocking_now(default: &dyn Sleeper) -> Instant {
    with_override(|sleeper| sleeper.now()).unwrap_or_else(|| default.now())
}

#[cfg(feature = "tokio")]
pub use self::asynchronous::*;

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use super::{ManualSleeper, NoSleep, install};

    /// A boxed sleep future, as returned by [`AsyncSleeper::sleep`].
    pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    /// Waits between async retry attempts and tells the time used for `max_elapsed`.
    pub trait AsyncSleeper: Send + Sync {
        /// A future that completes after `delay`.
        fn sleep(&self, delay: Duration) -> SleepFuture;

        /// The current time on this sleeper's clock. Defaults to [`Instant::now`].
        fn now(&self) -> Instant {
            Instant::now()
        }
    }

    /// The default async sleeper: [`tokio::time::sleep`] and tokio's clock, so a test runtime
    /// with paused time (`#[tokio::test(start_paused = true)]`) skips the delays (and so does
    /// [`testing::no_sleep`](crate::testing::no_sleep)).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TokioSleeper;

    impl AsyncSleeper for TokioSleeper {
        fn sleep(&self, delay: Duration) -> SleepFuture {
            if crate::testing::sleeps_skipped() {
                return Box::pin(std::future::ready(()));
            }
            Box::pin(tokio::time::sleep(delay))
        }

        fn now(&self) -> Instant {
            tokio::time::Instant::now().into_std()
        }
    }

    impl AsyncSleeper for NoSleep {
        fn sleep(&self, _delay: Duration) -> SleepFuture {
            Box::pin(std::future::ready(()))
        }
    }

    impl AsyncSleeper for ManualSleeper {
        fn sleep(&self, delay: Duration) -> SleepFuture {
            self.record(delay);
            Box::pin(std::future::ready(()))
        }

        fn now(&self) -> Instant {
            self.instant()
        }
    }

    thread_local! {
        static ASYNC_OVERRIDE: RefCell<Option<Arc<dyn AsyncSleeper>>> =
            const { RefCell::new(None) };
    }

    /// Runs `future` with `sleeper` used by every async retry it polls (global manager,
    /// async `#[retry]` functions and managers built with their own sleeper alike).
    ///
    /// The override is installed on the polling thread for each poll of `future`, so it
    /// follows the future across the threads of a multi-threaded runtime; it does not reach
    /// tasks that `future` spawns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use resilience::{ManualSleeper, RetryConfig, RetryManager, with_async_sleeper};
    ///
    /// let clock = ManualSleeper::new();
    /// let config = RetryConfig::new(2).jitter(0.0);
    /// let result: Result<(), &str> = with_async_sleeper(&clock, async {
    ///     RetryManager::global()
    ///         .retry_with_backoff_async("doc::with_async_sleeper", &config, || async { Err("down") })
    ///         .await
    /// })
    /// .await;
    /// assert_eq!(result, Err("down"));
    /// assert_eq!(clock.sleeps(), [100, 200].map(Duration::from_millis));
    /// # }
    /// ```
    pub fn with_async_sleeper<S, F>(
        sleeper: &S,
        future: F,
    ) -> impl Future<Output = F::Output> + use<S, F>
    where
        S: AsyncSleeper + Clone + 'static,
        F: Future,
    {
        Scoped { sleeper: Arc::new(sleeper.clone()), future: Box::pin(future) }
    }

    struct Scoped<F> {
        sleeper: Arc<dyn AsyncSleeper>,
        future: Pin<Box<F>>,
    }

    impl<F: Future> Future for Scoped<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.get_mut();
            let _restore = install(&ASYNC_OVERRIDE, Arc::clone(&this.sleeper));
            this.future.as_mut().poll(cx)
        }
    }

    /// The sleep future of the thread's override, else of `default`.
    pub(crate) fn async_sleep(default: &dyn AsyncSleeper, delay: Duration) -> SleepFuture {
        ASYNC_OVERRIDE
            .try_with(|slot| slot.borrow().as_ref().map(|s| s.sleep(delay)))
            .ok()
            .flatten()
            .unwrap_or_else(|| default.sleep(delay))
    }

    /// The async clock's time, without cloning the sleeper.
    pub(crate) fn async_now(default: &dyn AsyncSleeper) -> Instant {
        ASYNC_OVERRIDE
            .try_with(|slot| slot.borrow().as_ref().map(|s| s.now()))
            .ok()
            .flatten()
            .unwrap_or_else(|| default.now())
    }
}
