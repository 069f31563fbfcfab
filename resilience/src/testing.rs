//! Aids for testing code that uses `resilience`.
//!
//! - [`no_sleep`] makes every retry in the process skip its sleeps, for a test binary whose
//!   code retries through `#[retry]` or the global manager on threads the test does not
//!   control (where [`with_sleeper`](crate::with_sleeper) cannot reach). The default
//!   sleepers ([`ThreadSleeper`](crate::ThreadSleeper), and `TokioSleeper` with the `tokio`
//!   feature) return at once; delays are still computed, logged, passed to `on_retry` and
//!   recorded by a test sleeper such as [`ManualSleeper`](crate::ManualSleeper).
//! - [`crash_after`] stops a `#[checkpointed]` run as a kill would, so that a test can check
//!   its own resume.

use std::cell::Cell;
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

thread_local! {
    static CRASH_AFTER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes the next `#[checkpointed]` (or `#[protected]`) run on this thread stop as if the
/// process were killed after `n` items of its tracked loop (counted from where the run starts,
/// so after a resume from `n` more).
///
/// The function returns `Err(Error::SimulatedCrash { operation_id })`, converted into its error
/// type, and leaves the store exactly as `kill -9` would: the last `Running` checkpoint (taken
/// on the run's `every`/`interval` schedule), no `Failed` record, the lock released. A run
/// whose loop ends before `n` items completes as usual; either way the setting is used up by
/// that run.
///
/// ```
/// use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
/// struct Sum { total: u64 }
///
/// #[checkpointed(manager = store, id = "sum", every = 10, state = state)]
/// fn sum(store: &FailsafeManager, calls: &mut u64, state: &mut Sum) -> Result<u64, Error> {
///     for item in 0..100u64 {
///         *calls += 1; // a side effect a resume may repeat
///         state.total += item;
///     }
///     Ok(state.total)
/// }
///
/// # let tmp = tempfile::tempdir()?;
/// let store = FailsafeManager::open(tmp.path())?;
/// let mut calls = 0;
/// resilience::testing::crash_after(37);
/// let crashed = sum(&store, &mut calls, &mut Sum::default());
/// assert!(matches!(crashed, Err(Error::SimulatedCrash { .. })));
/// let checkpoint = store.load_checkpoint::<Sum>("sum")?.unwrap();
/// assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Running, 30));
///
/// // The resume redoes at most `every` items and gets the same answer.
/// assert_eq!(sum(&store, &mut calls, &mut Sum::default())?, (0..100).sum::<u64>());
/// assert!(calls - 100 <= 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn crash_after(n: u64) {
    CRASH_AFTER.with(|cell| cell.set(Some(n)));
}

/// Takes this thread's [`crash_after`] setting, for the run that starts.
pub(crate) fn take_crash() -> Option<u64> {
    CRASH_AFTER.with(Cell::take)
}
