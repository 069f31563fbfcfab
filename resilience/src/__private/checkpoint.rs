//! The driver behind `#[checkpointed]`: one [`Run`] per call.
//!
//! ```text
//! let __run: Run<Ret> = Run::begin(options, id, state)?; // lock, resume, save Running
//! let __op = __run.bind(state);
//! __op.call(|state| {                       // then saves Completed or Failed
//!     let mut __at = __run.position();      // the loop's counters, in a local
//!     let mut __items = __run.skip(items);  // skips the items a resumed run has done
//!     while __at.resume(&mut __items, state)? {  // between runs of items: maybe checkpoint
//!         for item in &mut __items {        // pauses when a checkpoint may be due
//!             __at.step(state);             // counts the item, mirrors the cursor
//!             ...
//!         }
//!     }                                     // (the last `resume` ends the loop)
//!     ...
//! })                                        // the lock goes with `__run`
//! ```
//!
//! The per-item cost is an increment, a store of the cursor mirror, a compare on [`Position`]
//! and [`Tracked`] locals, and one relaxed load of the process-wide pause flag
//! (`crate::pause`): a pause, a simulated crash ([`crate::testing::crash_after`]) and the
//! progress callbacks all go through the cold path between runs of the inner loop
//! ([`Position::resume`]), never through the item. The user's loop runs unchanged inside the inner `for`,
//! so its `break`, `continue` and labels mean what they meant; the checkpoint is taken between
//! runs of the inner loop, never inside it. That matters for speed: a call that sees `state`
//! inside the loop, even a cold one, would make the compiler keep every field the body
//! updates in memory rather than in a register (measured: about 2 ns per item on a loop that
//! accumulates into the state). The `Run`'s own counters are
//! relaxed atomics (plain loads and stores, never read-modify-write) so that `&Run` can be held
//! across an `.await` of a `Send` future.

use std::fmt::Display;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::protect::Recorder;
use crate::error::Error;
use crate::errors::{ErrorContext, ErrorHandler};
use crate::failsafe::run_info::RunInfo;
use crate::failsafe::{
    Checkpointable, FailsafeManager, OperationLock, ProcessState, ProgressUpdate, SkippedItem,
};

/// The settings of one `#[checkpointed]` call, built with `const fn`s.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The operation's name.
    name: &'static str,
    every: u64,
    interval: Option<Duration>,
    /// Names the call's span `protected` instead of `checkpointed`.
    pub(crate) protected: bool,
    skip_limit: Option<u64>,
    restart_on_input_change: bool,
    /// Per parameter, the fingerprint of the argument (`None`: its type is not `Hash`).
    inputs: &'a [(&'static str, Option<u64>)],
    /// `None`: [`FailsafeManager::global`].
    manager: Option<&'a FailsafeManager>,
}

impl<'a> Options<'a> {
    /// The operation `name`: `every = 1`, no interval, no skip limit, no inputs, the global
    /// manager.
    pub const fn new(name: &'static str) -> Self {
        Options {
            name,
            every: 1,
            interval: None,
            protected: false,
            skip_limit: None,
            restart_on_input_change: false,
            inputs: &[],
            manager: None,
        }
    }

    /// The checkpoints go to `manager` instead of [`FailsafeManager::global`].
    pub const fn manager(mut self, manager: &'a FailsafeManager) -> Self {
        self.manager = Some(manager);
        self
    }

    /// At most `n` skipped items per operation, counted across resumed runs.
    pub const fn skip_limit(mut self, n: u64) -> Self {
        self.skip_limit = Some(n);
        self
    }

    /// A checkpoint of other inputs starts a fresh run instead of failing with
    /// [`Error::InputChanged`].
    pub const fn restart_on_input_change(mut self) -> Self {
        self.restart_on_input_change = true;
        self
    }

    /// The call's input fingerprints, from [`Probe::fingerprint`](crate::__private::Fingerprint).
    pub const fn inputs(mut self, inputs: &'a [(&'static str, Option<u64>)]) -> Self {
        self.inputs = inputs;
        self
    }

    /// A checkpoint after every `n` completed items (0 is read as 1).
    pub const fn every(mut self, n: u64) -> Self {
        self.every = if n == 0 { 1 } else { n };
        self
    }

    /// Also a checkpoint when `ms` milliseconds have passed since the last one.
    pub const fn interval_ms(mut self, ms: u64) -> Self {
        self.interval = Some(Duration::from_millis(ms));
        self
    }
}

/// The return type of a checkpointed function: a `Result`, possibly behind an alias.
#[diagnostic::on_unimplemented(
    message = "a `#[retry]`, `#[checkpointed]` or `#[protected]` function must return a `Result`, not `{Self}`"
)]
pub trait Outcome {
    /// `T` of `Result<T, E>`.
    type Ok;
    /// `E` of `Result<T, E>`.
    type Error;
    /// Borrows it as a `Result`.
    fn as_result(&self) -> Result<&Self::Ok, &Self::Error>;
    /// Converts into a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Error>;
    /// Converts from a `Result`.
    fn from_result(result: Result<Self::Ok, Self::Error>) -> Self;
}

impl<T, E> Outcome for Result<T, E> {
    type Ok = T;
    type Error = E;
    #[inline]
    fn as_result(&self) -> Result<&T, &E> {
        self.as_ref()
    }
    #[inline]
    fn into_result(self) -> Self {
        self
    }
    #[inline]
    fn from_result(result: Self) -> Self {
        result
    }
}

/// The error type of a checkpointed function must absorb the runtime's own errors.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of a `#[checkpointed]` function must implement `From<resilience::Error>`",
    label = "the checkpoint store's errors (lock held, I/O, schema mismatch) must convert into `{Self}`",
    note = "add a variant `#[error(transparent)] Resilience(#[from] resilience::Error)` to `{Self}`, \
            or implement `From<resilience::Error>` for it"
)]
pub trait FromResilienceError: From<Error> {}

impl<E: From<Error>> FromResilienceError for E {}

/// One call of a checkpointed function. See the module docs for the generated code.
///
/// Dropping it without [`Run::finish`] (a panic, a cancelled future) records a `Failed`
/// checkpoint carrying the last checkpointed state, then releases the lock.
pub struct Run<R: Outcome> {
    manager: FailsafeManager,
    id: String,
    name: &'static str,
    every: u64,
    /// Cursor the tracked loop starts from (items a previous run completed).
    resumed: AtomicU64,
    /// Items of the tracked loop begun so far (including the resumed ones).
    begun: AtomicU64,
    /// `step` enters the cold path when the completed count reaches this.
    next_check: AtomicU64,
    /// The next `every` boundary.
    next_every: AtomicU64,
    /// The items the loop's iterator announced exactly, `u64::MAX` when unknown.
    total_hint: AtomicU64,
    /// Set when the tracked iterator ran out (so the last begun item is complete).
    exhausted: AtomicBool,
    /// Completed items when the loop ended (`resumed` until then).
    completed: AtomicU64,
    clock: Option<Clock>,
    /// The manager's progress callbacks, when it has any.
    progress: Option<Progress>,
    /// [`crate::testing::crash_after`]: the loop stops as if killed once this many items are
    /// complete (`u64::MAX`: never).
    crash_at: u64,
    /// The run paused or crashed (simulated): nothing is recorded as a failure, restored or
    /// retried.
    stopped: AtomicBool,
    /// `Failed` has been recorded (panic) or the run finished: `Drop` does nothing.
    settled: AtomicBool,
    /// What a panic of the body was recorded as.
    panic: std::sync::Mutex<Option<String>>,
    skip_limit: Option<u64>,
    /// Inputs and skipped items, saved with every checkpoint; `run_section` is its encoding.
    info: std::sync::Mutex<RunInfo>,
    run_section: std::sync::Mutex<Vec<u8>>,
    convert: fn(Error) -> R::Error,
    describe: fn(&R::Error) -> String,
    span: tracing::Span,
    _lock: OperationLock,
    _outcome: PhantomData<fn() -> R>,
}

/// `interval` bookkeeping. The clock is read only in the cold path, which `step` enters every
/// `stride` items; `stride` doubles (up to 1024) while clock checks come more often than 8 per
/// interval and halves (down to 1) while they come less often than 2 per interval. With steady
/// item durations a checkpoint is therefore at most about half an interval late; an item that
/// suddenly takes much longer than its predecessors can delay it by up to `stride` items.
struct Clock {
    start: Instant,
    interval: u64,
    last_save: AtomicU64,
    last_check: AtomicU64,
    stride: AtomicU64,
}

const MAX_STRIDE: u64 = 1024;

/// At most this long between two progress updates while items complete.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The progress callbacks of a run, and the clock that spaces their calls.
struct Progress {
    hooks: Vec<crate::failsafe::progress::Callback>,
    clock: Clock,
    /// Completed items when the run started (the rate counts this run's items only).
    first: u64,
}

impl Clock {
    fn new(interval: Duration) -> Self {
        Clock {
            start: Instant::now(),
            interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1),
            last_save: AtomicU64::new(0),
            last_check: AtomicU64::new(0),
            stride: AtomicU64::new(1),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a checkpoint is due by time at `now`; adapts the stride. Returns
    /// (due, stride, now).
    fn check(&self, now: u64) -> (bool, u64, u64) {
        let since_check = now.saturating_sub(self.last_check.load(Relaxed));
        self.last_check.store(now, Relaxed);
        let mut stride = self.stride.load(Relaxed);
        if since_check < self.interval / 16 {
            stride = (stride * 2).min(MAX_STRIDE);
        } else if since_check > self.interval / 2 {
            stride = (stride / 2).max(1);
        }
        self.stride.store(stride, Relaxed);
        let due = now.saturating_sub(self.last_save.load(Relaxed)) >= self.interval;
        (due, stride, now)
    }
}

impl<R: Outcome> Run<R> {
    /// Takes the operation's lock, restores `*state` from a resumable checkpoint (or starts
    /// fresh) and saves a `Running` checkpoint.
    pub fn begin<S: Checkpointable>(
        options: Options<'_>,
        id: impl Into<String>,
        state: &mut S,
    ) -> Result<Self, R::Error>
    where
        R::Error: FromResilienceError + Display,
    {
        Self::start(options, id.into(), state).map_err(R::Error::from)
    }

    fn start<S: Checkpointable>(
        options: Options<'_>,
        id: String,
        state: &mut S,
    ) -> Result<Self, Error>
    where
        R::Error: FromResilienceError + Display,
    {
        let name = options.name;
        let manager = match options.manager {
            Some(manager) => manager,
            None => FailsafeManager::global(),
        };
        let span = if options.protected {
            tracing::info_span!(target: "resilience::failsafe", "protected", operation = name, id = %id)
        } else {
            tracing::info_span!(target: "resilience::failsafe", "checkpointed", operation = name, id = %id)
        };
        let lock = match crate::recovery::adopt(manager, &id) {
            Some(lock) => lock,
            None => manager.lock(&id)?,
        };
        let inputs: Vec<(String, u64)> = options
            .inputs
            .iter()
            .filter_map(|(name, fingerprint)| fingerprint.map(|f| ((*name).to_owned(), f)))
            .collect();
        let restored = restore(manager, &id, state, &inputs, options.restart_on_input_change)?;
        let (resumed, info) = match restored {
            Some((cursor, info)) => (Some(cursor), RunInfo { inputs, ..info }),
            None => (None, RunInfo { inputs, ..RunInfo::default() }),
        };
        let mut run_section = Vec::new();
        info.encode(&mut run_section);
        if resumed.is_some() {
            tracing::info!(
                target: "resilience::failsafe",
                parent: &span,
                cursor = resumed,
                "resuming `{id}` after item {}",
                resumed.unwrap_or(0)
            );
        }
        let resumed = resumed.unwrap_or(0);
        state.set_cursor(resumed);
        let every = options.every.max(1);
        let clock = options.interval.map(Clock::new);
        let hooks = manager.inner.progress.snapshot();
        let progress = (!hooks.is_empty()).then(|| Progress {
            hooks,
            clock: Clock::new(PROGRESS_EVERY),
            first: resumed,
        });
        let crash_at = crate::testing::take_crash().map_or(u64::MAX, |n| resumed.saturating_add(n));
        let run = Run {
            manager: manager.clone(),
            id,
            name,
            every,
            resumed: AtomicU64::new(resumed),
            begun: AtomicU64::new(resumed),
            next_check: AtomicU64::new(0),
            next_every: AtomicU64::new(0),
            total_hint: AtomicU64::new(u64::MAX),
            exhausted: AtomicBool::new(false),
            completed: AtomicU64::new(resumed),
            clock,
            progress,
            crash_at,
            stopped: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            panic: std::sync::Mutex::new(None),
            skip_limit: options.skip_limit,
            info: std::sync::Mutex::new(info),
            run_section: std::sync::Mutex::new(run_section),
            convert: R::Error::from,
            describe: |error: &R::Error| error.to_string(),
            span,
            _lock: lock,
            _outcome: PhantomData,
        };
        run.arm(resumed);
        if let Err(error) = run.save(ProcessState::Running, resumed, state) {
            // Nothing ran: the previous checkpoint stays as it was.
            run.settle();
            return Err(error);
        }
        run.report(ProcessState::Running, resumed, state);
        Ok(run)
    }

    /// The operation id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The operation name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Items of the tracked loop completed so far (what the next checkpoint's cursor would be).
    pub fn cursor(&self) -> u64 {
        let begun = self.begun.load(Relaxed);
        if self.exhausted.load(Relaxed) { begun } else { begun.saturating_sub(1) }
            .max(self.resumed.load(Relaxed))
    }

    /// Runs the body; a panic records a `Failed` checkpoint before it goes on unwinding.
    pub fn call(&self, body: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        match panic::catch_unwind(AssertUnwindSafe(body)) {
            Ok(result) => result,
            Err(payload) => {
                self.record_panic(&*payload);
                panic::resume_unwind(payload)
            }
        }
    }

    /// Binds the state for [`Bound::call`]. The state's `Checkpointable` bound is checked here,
    /// at the state's own tokens (where `begin` checks it too, so a missing derive is one
    /// error), and [`Bound::call`] carries no bound of its own.
    pub fn bind<'a, S: Checkpointable>(&'a self, state: &'a mut S) -> Bound<'a, R, S> {
        Bound { run: self, state, finish: Run::finish::<S> }
    }

    /// The `async` twin of [`Run::call`]. The store calls it makes block the executor's
    /// thread for the length of a checkpoint write.
    pub async fn call_async(&self, body: impl Future<Output = R>) -> R {
        use tracing::Instrument as _;
        let mut body = std::pin::pin!(body);
        let guarded = std::future::poll_fn(|cx| {
            match panic::catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
                Ok(poll) => poll,
                Err(payload) => {
                    self.record_panic(&*payload);
                    panic::resume_unwind(payload)
                }
            }
        });
        guarded.instrument(self.span.clone()).await
    }

    /// Starts the tracked loop: `items.into_iter()` without the items a resumed run completed.
    pub fn skip<I: IntoIterator>(&self, items: I) -> Tracked<'_, I::IntoIter> {
        let mut iter = items.into_iter();
        if let (low, Some(high)) = iter.size_hint()
            && low == high
        {
            self.total_hint.store(low as u64, Relaxed);
        }
        let resumed = self.resumed.load(Relaxed);
        if resumed > 0 {
            // `nth` is O(1) on slices, ranges and `Vec`s.
            let _ = iter.nth(usize::try_from(resumed - 1).unwrap_or(usize::MAX));
        }
        self.exhausted.store(false, Relaxed);
        let limit = self.next_check.load(Relaxed);
        Tracked {
            iter,
            exhausted: &self.exhausted,
            begun: resumed,
            limit,
            started: false,
            paused: false,
        }
    }

    /// [`Run::position`] for a loop body with `?`: errors that `skipper` accepts are skipped
    /// by [`Position::skip`].
    pub fn skipping(&self, skipper: Skipper<R::Error>) -> Position<'_, R> {
        self.position().with_skipper(skipper)
    }

    /// The tracked loop's counters, kept in a local of the generated code so that the
    /// per-item work stays in registers.
    pub fn position(&self) -> Position<'_, R> {
        let begun = self.resumed.load(Relaxed);
        self.begun.store(begun, Relaxed);
        Position {
            run: self,
            begun,
            next: self.next_check.load(Relaxed),
            skipper: None,
            errors: ErrorHandler::global(),
        }
    }

    /// After the tracked loop. When it ran out, its last item is complete (checkpointed when
    /// due); after a `break` the item being processed stays uncounted (at-least-once).
    fn end<S: Checkpointable>(&self, state: &mut S, next: u64) -> Result<(), R::Error> {
        let done = self.cursor();
        self.completed.store(done, Relaxed);
        state.set_cursor(done);
        if self.exhausted.load(Relaxed) && done >= next {
            self.due(state, done)?;
        }
        Ok(())
    }

    /// Saves `Completed` on `Ok`, `Failed` on `Err`. Returns `result`, or the store's error
    /// when the `Completed` checkpoint cannot be written. The lock goes with the `Run`.
    pub fn finish<S: Checkpointable>(&self, state: &mut S, result: R) -> R {
        // Settled already: `Protect` has written the `Failed` checkpoint itself.
        let settled = self.settled.swap(true, Relaxed);
        match result.as_result() {
            Ok(_) => {
                let done = self.completed.load(Relaxed);
                state.set_cursor(done);
                if let Err(error) = self.save(ProcessState::Completed, done, state) {
                    self.report(ProcessState::Failed, done, state);
                    return R::from_result(Err((self.convert)(error)));
                }
                tracing::debug!(target: "resilience::failsafe", parent: &self.span, "completed `{}`", self.id);
                self.report(ProcessState::Completed, done, state);
            }
            Err(_) if self.stopped() => {}
            Err(error) => {
                if !settled {
                    self.fail(&(self.describe)(error));
                }
                self.report(ProcessState::Failed, self.cursor(), state);
            }
        }
        result
    }

    /// Checkpoints if `done` is on an `every` boundary or the interval has passed; returns
    /// the completed count at which to come back.
    #[cold]
    #[inline(never)]
    fn due<S: Checkpointable>(&self, state: &mut S, done: u64) -> Result<u64, R::Error> {
        let mut save = done >= self.next_every.load(Relaxed);
        let mut stride = u64::MAX;
        if let Some(clock) = &self.clock {
            let (late, new_stride, now) = clock.check(clock.now());
            save |= late;
            stride = new_stride;
            if save {
                clock.last_save.store(now, Relaxed);
            }
        }
        let mut report = save;
        if let Some(progress) = &self.progress {
            let (late, new_stride, now) = progress.clock.check(progress.clock.now());
            report |= late;
            stride = stride.min(new_stride);
            if report {
                progress.clock.last_save.store(now, Relaxed);
            }
        }
        if save {
            self.next_every.store(done.saturating_add(self.every), Relaxed);
            state.set_cursor(done);
            self.save(ProcessState::Running, done, state).map_err(self.convert)?;
        }
        if report {
            self.report(ProcessState::Running, done, state);
        }
        let next =
            self.next_every.load(Relaxed).min(done.saturating_add(stride)).min(self.crash_at);
        self.next_check.store(next, Relaxed);
        Ok(next)
    }

    /// The tracked loop stopped between items with a pause requested or a simulated crash due
    /// ([`Position::resume`]): checkpoints if due, then stops the run when it must. Returns the
    /// completed count at which to come back.
    #[cold]
    #[inline(never)]
    fn boundary<S: Checkpointable>(&self, state: &mut S, done: u64) -> Result<u64, R::Error> {
        if done >= self.crash_at {
            // As a kill would leave it: the last `Running` checkpoint, no failure recorded.
            self.stopped.store(true, Relaxed);
            self.settle();
            tracing::info!(target: "resilience::failsafe", parent: &self.span, cursor = done, "`{}`: simulated crash after item {done}", self.id);
            return Err((self.convert)(Error::SimulatedCrash { operation_id: self.id.clone() }));
        }
        if crate::pause::requested() {
            self.completed.store(done, Relaxed);
            state.set_cursor(done);
            self.save(ProcessState::Paused, done, state).map_err(self.convert)?;
            self.stopped.store(true, Relaxed);
            self.settle();
            tracing::info!(target: "resilience::failsafe", parent: &self.span, cursor = done, "`{}` paused after item {done}", self.id);
            self.report(ProcessState::Paused, done, state);
            return Err((self.convert)(Error::Paused { operation_id: self.id.clone() }));
        }
        self.due(state, done)
    }

    /// Whether the run paused or crashed (simulated): its error is no failure.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Relaxed)
    }

    /// Calls the progress callbacks, if any.
    fn report<S: Checkpointable>(&self, state: ProcessState, done: u64, data: &S) {
        let Some(progress) = &self.progress else { return };
        let total = self.total_of(data);
        let elapsed = progress.clock.start.elapsed().as_secs_f64();
        let rate_per_sec =
            if elapsed > 0.0 { done.saturating_sub(progress.first) as f64 / elapsed } else { 0.0 };
        let eta = match total {
            Some(total) if rate_per_sec > 0.0 => {
                Duration::try_from_secs_f64(total.saturating_sub(done) as f64 / rate_per_sec).ok()
            }
            _ => None,
        };
        let update = ProgressUpdate {
            operation_id: self.id.clone(),
            operation_name: self.name.to_owned(),
            done,
            total,
            skipped: lock(&self.info).skip_count,
            rate_per_sec,
            eta,
            state,
        };
        for hook in &progress.hooks {
            hook(&update);
        }
    }

    /// All items: a `#[checkpoint(total)]` field that was set, else the iterator's exact length.
    fn total_of<S: Checkpointable>(&self, data: &S) -> Option<u64> {
        data.total().filter(|&total| total > 0).or_else(|| {
            let hint = self.total_hint.load(Relaxed);
            (hint != u64::MAX).then_some(hint)
        })
    }

    /// Sets the loop counters to start from `cursor`.
    fn arm(&self, cursor: u64) {
        let next_every = cursor.saturating_add(self.every);
        self.next_every.store(next_every, Relaxed);
        let clocked = self.clock.is_some() || self.progress.is_some();
        let next = if clocked { next_every.min(cursor + 1) } else { next_every };
        self.next_check.store(next.min(self.crash_at), Relaxed);
    }

    fn save<S: Checkpointable>(
        &self,
        state: ProcessState,
        cursor: u64,
        data: &S,
    ) -> Result<(), Error> {
        // A `#[checkpoint(total)]` field still at 0 has not been set: use the size hint.
        let total = self.total_of(data);
        let progress = match (state, total) {
            (ProcessState::Completed, _) => 1.0,
            (_, Some(total)) if total > 0 => (cursor as f64 / total as f64).min(1.0),
            _ => 0.0,
        };
        tracing::trace!(target: "resilience::failsafe", parent: &self.span, cursor, progress, "checkpoint");
        let run = lock(&self.run_section);
        self.manager.save_run(&self.id, self.name, state, progress, cursor, data, &run)
    }

    /// Records `Failed` with the data of the newest checkpoint. A store error here is logged:
    /// the error or panic being reported matters more.
    fn fail(&self, text: &str) {
        tracing::warn!(target: "resilience::failsafe", parent: &self.span, error = text, "`{}` failed", self.id);
        if let Err(error) = self.manager.save_failed(&self.id, self.name, text) {
            tracing::error!(
                target: "resilience::failsafe",
                parent: &self.span,
                "cannot record the failure of `{}`: {error}",
                self.id
            );
        }
    }

    #[cold]
    fn record_panic(&self, payload: &(dyn std::any::Any + Send)) {
        if !self.settled.swap(true, Relaxed) {
            let text = format!("panicked: {}", panic_message(payload));
            self.fail(&text);
            *self.panic.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
        }
    }

    /// The text recorded for a panic of the body, if it panicked.
    pub(crate) fn panic_text(&self) -> Option<String> {
        self.panic.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// For a retry of the whole operation: restores `*state` from the newest checkpoint and
    /// makes the tracked loop start from its cursor.
    pub(crate) fn rewind<S: Checkpointable>(&self, state: &mut S) -> Result<(), Error> {
        let cursor = match self.manager.load_checkpoint::<S>(&self.id)? {
            Some(checkpoint) => {
                *state = checkpoint.data;
                checkpoint.cursor
            }
            None => 0,
        };
        state.set_cursor(cursor);
        self.resumed.store(cursor, Relaxed);
        self.begun.store(cursor, Relaxed);
        self.completed.store(cursor, Relaxed);
        self.exhausted.store(false, Relaxed);
        self.arm(cursor);
        Ok(())
    }

    /// The run section saved with every checkpoint (inputs, skipped items), encoded.
    pub(crate) fn run_section(&self) -> Vec<u8> {
        lock(&self.run_section).clone()
    }

    /// Records a skipped item at `position` unless the skip limit is reached; returns whether
    /// the item is skipped.
    fn note_skip<E>(
        &self,
        position: u64,
        error: &E,
        record: Recorder<E>,
        errors: &ErrorHandler,
    ) -> bool {
        let mut info = lock(&self.info);
        if self.skip_limit.is_some_and(|limit| info.skip_count >= limit) {
            tracing::warn!(
                target: "resilience::failsafe",
                parent: &self.span,
                skip_limit = self.skip_limit,
                "`{}`: item {position} fails too, and {} items were skipped already: stopping",
                self.id,
                info.skip_count
            );
            return false;
        }
        let context = ErrorContext::new().with("operation_id", &self.id).with("item", position);
        let record = record(error, errors, context);
        tracing::warn!(
            target: "resilience::failsafe",
            parent: &self.span,
            item = position,
            error_code = %record.error_code,
            "`{}`: skipped item {position}: {}",
            self.id,
            record.message
        );
        info.push_skipped(SkippedItem {
            position,
            error_code: record.error_code,
            message: record.message,
        });
        info.encode(&mut lock(&self.run_section));
        true
    }

    pub(crate) fn manager(&self) -> &FailsafeManager {
        &self.manager
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn settle(&self) {
        self.settled.store(true, Relaxed);
    }

    pub(crate) fn convert(&self, error: Error) -> R::Error {
        (self.convert)(error)
    }

    pub(crate) fn describe(&self, error: &R::Error) -> String {
        (self.describe)(error)
    }

    pub(crate) fn record_failure(&self, text: &str) {
        self.fail(text);
    }
}

impl<R: Outcome> Drop for Run<R> {
    fn drop(&mut self) {
        if !self.settled.load(Relaxed) {
            self.fail(if std::thread::panicking() {
                "panicked"
            } else {
                "cancelled: the call was dropped before it finished"
            });
        }
    }
}

/// A [`Run`] and its state: [`Bound::call`] runs the body and finishes the run.
pub struct Bound<'a, R: Outcome, S> {
    run: &'a Run<R>,
    state: &'a mut S,
    /// [`Run::finish`] for `S`, chosen by [`Run::bind`] under its bound.
    finish: fn(&Run<R>, &mut S, R) -> R,
}

impl<R: Outcome, S> Bound<'_, R, S> {
    /// [`Run::call`], then [`Run::finish`]. The body gets the state as its parameter rather
    /// than capturing it: a parameter is known not to alias the body's other references, so
    /// the compiler can keep the state's fields in registers inside the tracked loop.
    #[inline]
    pub fn call(self, body: impl FnOnce(&mut S) -> R) -> R {
        let Bound { run, state, finish } = self;
        let result = run.call(|| body(state));
        finish(run, state, result)
    }
}

/// If the last checkpoint of `id` is resumable, restores `*state` from it and returns its cursor
/// and run section. A `Completed` or missing checkpoint means a fresh run; a resumable
/// checkpoint written by another version of `S` is [`Error::SchemaMismatch`], and one written
/// for other inputs is [`Error::InputChanged`] (or a fresh run, with `restart`).
fn restore<S: Checkpointable>(
    manager: &FailsafeManager,
    id: &str,
    state: &mut S,
    inputs: &[(String, u64)],
    restart: bool,
) -> Result<Option<(u64, RunInfo)>, Error> {
    match manager.load_resumable::<S>(id) {
        Ok(Some((checkpoint, info))) => {
            let changed = changed_inputs(&info.inputs, inputs);
            if !changed.is_empty() {
                if restart {
                    tracing::info!(
                        target: "resilience::failsafe",
                        operation_id = id,
                        changed = ?changed,
                        "the inputs changed since the last checkpoint: starting afresh"
                    );
                    return Ok(None);
                }
                return Err(Error::InputChanged { operation_id: id.to_owned(), changed });
            }
            *state = checkpoint.data;
            Ok(Some((checkpoint.cursor, info)))
        }
        Ok(None) => Ok(None),
        Err(error @ Error::SchemaMismatch { .. }) => {
            if manager.can_resume(id)? {
                Err(error)
            } else {
                Ok(None)
            }
        }
        Err(error) => Err(error),
    }
}

/// The parameters whose fingerprints differ; none when either side has no fingerprints (a
/// checkpoint written without them, or a call with `input = none`).
fn changed_inputs(stored: &[(String, u64)], current: &[(String, u64)]) -> Vec<String> {
    if stored.is_empty() || current.is_empty() {
        return Vec::new();
    }
    let mut changed: Vec<String> = current
        .iter()
        .filter(|(name, f)| !stored.iter().any(|(n, g)| n == name && g == f))
        .map(|(name, _)| name.clone())
        .collect();
    for (name, _) in stored {
        if !current.iter().any(|(n, _)| n == name) {
            changed.push(name.clone());
        }
    }
    changed
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(a non-string payload)"
    }
}

/// The tracked loop's position: a local of the generated code.
///
/// ```text
/// let mut __at = __run.position();
/// let mut __items = __run.skip(items);
/// while __at.resume(&mut __items, state)? {
///     for item in &mut __items {
///         __at.step(state);   // the previous item is complete: a counter and a store
///         ...
///     }
/// }   // the last `resume` checkpoints the end of the loop
/// ```
///
/// Dropping it (the loop or the body returned early) hands the count back to the [`Run`].
pub struct Position<'r, R: Outcome> {
    run: &'r Run<R>,
    /// Items begun, counting the ones a resumed run skipped.
    begun: u64,
    /// `step` goes to the cold path when the completed count reaches this.
    next: u64,
    /// Whether an error is skipped, and how it is recorded (see [`Position::skipping`]).
    skipper: Option<Skipper<R::Error>>,
    errors: &'r ErrorHandler,
}

/// For an error type that implements `Classify` (and `std::error::Error`): `Some(recorder)` for
/// the errors whose recovery is `Skip`. Built at the call site through [`Probe`](super::Probe),
/// where the error type is concrete.
pub type Skipper<E> = fn(&E) -> Option<Recorder<E>>;

impl<'r, R: Outcome> Position<'r, R> {
    /// Errors of the body that `skipper` accepts are skipped by [`Position::skip`].
    pub fn with_skipper(mut self, skipper: Skipper<R::Error>) -> Self {
        self.skipper = Some(skipper);
        self
    }

    /// Skipped items are recorded in `errors` instead of `ErrorHandler::global()`.
    pub fn errors(mut self, errors: &'r ErrorHandler) -> Self {
        self.errors = errors;
        self
    }

    /// What a `?` in the tracked loop's body becomes: `Ok(Some(value))` for `Ok(value)`,
    /// `Ok(None)` when the error is skipped (the generated code then goes on with the next
    /// item), else the error converted into the function's error type, which `?` returns.
    #[inline(always)]
    pub fn ok<T, F>(&mut self, result: Result<T, F>) -> Result<Option<T>, R::Error>
    where
        R::Error: From<F>,
    {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) => self.skip(R::Error::from(error)).map(|()| None),
        }
    }

    /// An error left the tracked loop's body through `?`: `Ok(())` when the item is skipped
    /// (its error classifies as `Skip` and the skip limit is not reached; the error is recorded
    /// and the generated code goes on with the next item), else the error, which the generated
    /// code returns.
    #[cold]
    #[inline(never)]
    pub fn skip(&mut self, error: R::Error) -> Result<(), R::Error> {
        let Some(record) = self.skipper.and_then(|skipper| skipper(&error)) else {
            return Err(error);
        };
        let position = self.begun.saturating_sub(1);
        if self.run.note_skip(position, &error, record, self.errors) { Ok(()) } else { Err(error) }
    }

    /// At the start of each iteration: the previous item is complete.
    #[inline(always)]
    pub fn step<S: Checkpointable>(&mut self, state: &mut S) {
        let done = self.begun;
        self.begun = done + 1;
        state.set_cursor(done);
    }

    /// Before each run of the inner loop: `true` to (re)enter it. When `items` paused at a
    /// possible checkpoint, every item begun is complete: checkpoints if due. Once the items
    /// ran out or the body left the loop with `break`, does what [`Position::end`] does and
    /// returns `false`.
    #[inline]
    pub fn resume<I: Iterator, S: Checkpointable>(
        &mut self,
        items: &mut Tracked<'_, I>,
        state: &mut S,
    ) -> Result<bool, R::Error> {
        if !items.started {
            items.started = true;
            return Ok(true);
        }
        if !items.paused {
            self.end(state)?;
            return Ok(false);
        }
        items.paused = false;
        let done = self.begun;
        state.set_cursor(done);
        self.next = self.run.boundary(state, done)?;
        items.limit = self.next;
        Ok(true)
    }

    /// After the loop: its last item is complete when it ran out, not after a `break`.
    pub fn end<S: Checkpointable>(&mut self, state: &mut S) -> Result<(), R::Error> {
        self.run.begun.store(self.begun, Relaxed);
        self.run.end(state, self.next)
    }
}

impl<R: Outcome> Drop for Position<'_, R> {
    fn drop(&mut self) {
        self.run.begun.store(self.begun, Relaxed);
    }
}

/// The tracked loop's iterator. It pauses (ends the inner `for`) before the item at which a
/// checkpoint may be due, so that [`Position::resume`] can take it, and notes when it runs
/// out, so [`Position::end`] can tell the end of the items from a `break`.
pub struct Tracked<'r, I> {
    iter: I,
    exhausted: &'r AtomicBool,
    /// Items yielded, counting the ones a resumed run skipped.
    begun: u64,
    /// Pause when `begun` reaches this.
    limit: u64,
    started: bool,
    paused: bool,
}

impl<I: Iterator> Iterator for Tracked<'_, I> {
    type Item = I::Item;

    #[inline(always)]
    fn next(&mut self) -> Option<I::Item> {
        if self.begun >= self.limit || crate::pause::requested() {
            self.paused = true;
            return None;
        }
        let item = self.iter.next();
        if item.is_some() {
            self.begun += 1;
        } else {
            self.exhausted.store(true, Relaxed);
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A pause ends a run of the inner loop early.
        (0, self.iter.size_hint().1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs items of `item_ns` each for `total_ns` through the clock the way `Run::due` does;
    /// returns (clock reads, items, save times).
    fn simulate(interval: Duration, item_ns: u64, total_ns: u64) -> (u64, u64, Vec<u64>) {
        let clock = Clock::new(interval);
        let (mut now, mut items, mut reads, mut stride) = (0, 0, 0, 1);
        let mut saves = Vec::new();
        while now < total_ns {
            items += stride;
            now += stride * item_ns;
            reads += 1;
            let (due, next_stride, at) = clock.check(now);
            if due {
                clock.last_save.store(at, Relaxed);
                saves.push(at);
            }
            stride = next_stride;
        }
        (reads, items, saves)
    }

    #[test]
    fn fast_items_read_the_clock_rarely_and_still_save_on_time() {
        let interval = Duration::from_millis(100);
        let (reads, items, saves) = simulate(interval, 1_000, 1_000_000_000);
        assert!(reads * 500 < items, "{reads} clock reads for {items} items");
        assert_eq!(saves.len(), 9, "{saves:?}");
        let late = MAX_STRIDE * 1_000;
        assert!(saves[0] >= 100_000_000 && saves[0] <= 100_000_000 + late);
        for pair in saves.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((100_000_000..=100_000_000 + late).contains(&gap), "{gap} ns between saves");
        }
    }

    #[test]
    fn slow_items_check_the_clock_after_each_one() {
        let (reads, items, saves) = simulate(Duration::from_millis(100), 30_000_000, 1_000_000_000);
        assert_eq!(reads, items);
        assert!(saves.windows(2).all(|pair| pair[1] - pair[0] <= 120_000_000), "{saves:?}");
    }
}
