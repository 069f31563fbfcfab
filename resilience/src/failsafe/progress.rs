//! Progress callbacks: [`FailsafeManager::on_progress`] and [`ProgressUpdate`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{FailsafeManager, ProcessState};

/// Where a tracked loop is, given to the callbacks of [`FailsafeManager::on_progress`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// The operation's id.
    pub operation_id: String,
    /// The operation's name.
    pub operation_name: String,
    /// Items completed, counting those of earlier runs that this one resumed after.
    pub done: u64,
    /// All items, when known (a `#[checkpoint(total)]` field or an iterator of known length).
    pub total: Option<u64>,
    /// Items skipped by the operation's current run (across resumed runs).
    pub skipped: u64,
    /// Items per second completed by this run so far.
    pub rate_per_sec: f64,
    /// Time left at `rate_per_sec`, when `total` is known and the rate is not zero.
    pub eta: Option<Duration>,
    /// `Running` while the loop runs; the run's end state (`Completed`, `Failed`, `Paused`) in
    /// the last update.
    pub state: ProcessState,
}

/// A registered progress callback.
pub(crate) type Callback = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;

/// The callbacks registered on a manager.
#[derive(Default)]
pub(crate) struct ProgressHooks(RwLock<Vec<Callback>>);

impl std::fmt::Debug for ProgressHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProgressHooks({})", self.snapshot().len())
    }
}

impl ProgressHooks {
    /// The callbacks registered now (a run keeps the ones it started with).
    pub(crate) fn snapshot(&self) -> Vec<Callback> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl FailsafeManager {
    /// Registers a callback for the progress of this manager's tracked loops
    /// (`#[checkpointed]`, `#[protected]`); several may be registered, and each is called in
    /// turn.
    ///
    /// A run calls them when it starts, at each checkpoint, at most every 200 ms in between
    /// (from the same cold path that takes checkpoints: never per item), and once at its end
    /// with its end state. Runs that started before the registration do not call it. Callbacks
    /// run on the loop's thread: keep them short.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use resilience::{Error, FailsafeManager, ProcessState, checkpointed};
    ///
    /// #[checkpointed(manager = store, id = "sum", every = 50)]
    /// fn sum(store: &FailsafeManager) -> Result<(), Error> {
    ///     for _ in 0..100 {}
    ///     Ok(())
    /// }
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// let store = FailsafeManager::open(tmp.path())?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// store.on_progress(move |p| log.lock().unwrap().push((p.done, p.state)));
    /// sum(&store)?;
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen.first(), Some(&(0, ProcessState::Running)));
    /// assert_eq!(seen.last(), Some(&(100, ProcessState::Completed)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_progress(&self, callback: impl Fn(&ProgressUpdate) + Send + Sync + 'static) {
        self.inner
            .progress
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(callback));
    }
}
