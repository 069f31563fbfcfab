//! The driver behind `#[protected]`: a [`Run`] plus backups, restore on failure, a retry of
//! the whole operation and error recording.
//!
//! ```text
//! static __SITE: RetrySite = ...;                       // with `retry(...)`
//! let __run = Protect::<Ret>::begin(options, id, state,
//!     Protection::new(handler, |e, h, c| record!(h, e, c)).backup(path).restore_on_failure())?;
//! let __result = __run.call_retry(&__SITE, retryable, state, |state| { body });
//! __run.finish(state, __result)
//! ```
//!
//! The body is a closure over the state so that a retry can put the state of the last
//! checkpoint back into it before running the body again.

use std::fmt::{Debug, Display};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

#[cfg(not(feature = "tokio"))]
use super::TokioFeature;
use super::checkpoint::{FromResilienceError, Options, Outcome, Run};
use crate::error::Error;
use crate::errors::{ErrorContext, ErrorHandler, ErrorRecord};
use crate::failsafe::{BackupInfo, Checkpointable, EncodedState, ProcessState};
use crate::retry::private::{NoHook, RetrySite, Verdict, retry_with};
use crate::retry::{Fallback, OnRetry, WhenOk};

/// Records an error with a handler; written at the call site, where the error type is concrete
/// (see `RecordProbe`).
pub type Recorder<E> = fn(&E, &ErrorHandler, ErrorContext) -> ErrorRecord;

/// What `#[protected]` adds to `#[checkpointed]`, built by the generated code.
pub struct Protection<'h, E> {
    errors: &'h ErrorHandler,
    record: Recorder<E>,
    backups: Vec<PathBuf>,
    skip_missing: bool,
    restore_on_failure: bool,
}

impl<'h, E> Protection<'h, E> {
    /// Errors are recorded in `errors` with `record`.
    pub fn new(errors: &'h ErrorHandler, record: Recorder<E>) -> Self {
        Protection {
            errors,
            record,
            backups: Vec::new(),
            skip_missing: false,
            restore_on_failure: false,
        }
    }

    /// Backs up `path` at entry.
    pub fn backup(mut self, path: impl Into<PathBuf>) -> Self {
        self.backups.push(path.into());
        self
    }

    /// A file to back up that does not exist is skipped instead of failing the call.
    pub fn skip_missing(mut self) -> Self {
        self.skip_missing = true;
        self
    }

    /// When the call fails, the backed-up files are restored.
    pub fn restore_on_failure(mut self) -> Self {
        self.restore_on_failure = true;
        self
    }
}

/// One call of a `#[protected]` function.
pub struct Protect<'h, R: Outcome> {
    run: Run<R>,
    errors: &'h ErrorHandler,
    record: Recorder<R::Error>,
    /// With `restore_on_failure`: the backups taken at entry and the state and cursor the run
    /// started from, which the files' contents correspond to.
    restore: Option<Entry>,
    settled: AtomicBool,
}

struct Entry {
    backups: Vec<BackupInfo>,
    state: EncodedState,
    cursor: u64,
    /// The run section at entry (inputs, skipped items).
    run: Vec<u8>,
}

impl<'h, R: Outcome> Protect<'h, R> {
    /// [`Run::begin`], then the backups.
    pub fn begin<S: Checkpointable>(
        options: Options<'_>,
        id: impl Into<String>,
        state: &mut S,
        protection: Protection<'h, R::Error>,
    ) -> Result<Self, R::Error>
    where
        R::Error: FromResilienceError + Display,
    {
        let record = protection.record;
        let errors = protection.errors;
        let id = id.into();
        let mut options = options;
        options.protected = true;
        let run = match Run::<R>::begin(options, id.as_str(), state) {
            Ok(run) => run,
            Err(error) => {
                // Locked, a schema mismatch, a store error: returned, so recorded too.
                record(&error, errors, ErrorContext::new().with("operation_id", &id));
                return Err(error);
            }
        };
        let fail = |error: Error| {
            let error = run.convert(error);
            let text = run.describe(&error);
            run.record_failure(&text);
            run.settle();
            record(&error, errors, context(&run));
            error
        };
        let mut backups = Vec::with_capacity(protection.backups.len());
        for path in &protection.backups {
            if protection.skip_missing && !path.exists() {
                tracing::info!(
                    target: "resilience::failsafe",
                    parent: run.span(),
                    "`{}` does not exist: no backup (backup_missing = \"skip\")",
                    path.display()
                );
                continue;
            }
            match run.manager().create_backup(path) {
                Ok(info) => backups.push(info),
                Err(error) => return Err(fail(error)),
            }
        }
        let restore = if protection.restore_on_failure {
            let mut encoded = EncodedState::new();
            encoded.encode(run.id(), &*state).map_err(fail)?;
            Some(Entry { backups, state: encoded, cursor: run.cursor(), run: run.run_section() })
        } else {
            None
        };
        Ok(Protect { run, errors, record, restore, settled: AtomicBool::new(false) })
    }

    /// Runs the body once; an `Err` it returns is recorded.
    pub fn call<S>(&self, state: &mut S, body: impl FnOnce(&mut S) -> R) -> R {
        self.guard(|| {
            let result = body(state);
            if let Err(error) = result.as_result() {
                self.record(error);
            }
            result
        })
    }

    /// Runs the body with `site`'s retry policy (through `RetryManager::global()`, so its
    /// sleeper and statistics apply). Every failed attempt is recorded; before each retry
    /// `*state` is restored from the last checkpoint and the tracked loop resumes from there.
    pub fn call_retry<S: Checkpointable>(
        &self,
        site: &'static RetrySite,
        verdict: impl FnMut(&R::Error) -> Verdict,
        state: &mut S,
        body: impl FnMut(&mut S) -> R,
    ) -> R
    where
        R::Error: Display + Debug,
    {
        self.call_retry_with(site, verdict, NoHook, NoHook, NoHook, state, body)
    }

    /// [`Protect::call_retry`] with the hooks of `when_ok`, `on_retry` and `fallback`.
    #[allow(clippy::too_many_arguments)]
    pub fn call_retry_with<S: Checkpointable>(
        &self,
        site: &'static RetrySite,
        mut verdict: impl FnMut(&R::Error) -> Verdict,
        when_ok: impl WhenOk<R::Ok>,
        on_retry: impl OnRetry<R::Error>,
        fallback: impl Fallback<R::Ok, R::Error>,
        state: &mut S,
        mut body: impl FnMut(&mut S) -> R,
    ) -> R
    where
        R::Error: Display + Debug,
    {
        self.guard(|| {
            let mut attempt = 0u32;
            let op = || {
                attempt += 1;
                if attempt > 1 {
                    self.rewind(state)?;
                }
                let result = body(state).into_result();
                if let Err(error) = &result {
                    self.record(error);
                }
                result
            };
            // A pause or a simulated crash is no failure to retry.
            let verdict = |error: &R::Error| {
                if self.run.stopped() { Verdict::Stop } else { verdict(error) }
            };
            R::from_result(retry_with(site, op, verdict, when_ok, on_retry, fallback))
        })
    }

    /// The `async` twin of [`Protect::call`].
    pub async fn call_async<S>(&self, state: &mut S, body: impl AsyncFnOnce(&mut S) -> R) -> R {
        self.run
            .call_async(async {
                let result = body(state).await;
                if let Err(error) = result.as_result() {
                    self.record(error);
                }
                result
            })
            .await
    }

    /// The `async` twin of [`Protect::call_retry`]: sleeps with `RetryManager::global()`'s
    /// async sleeper.
    #[cfg(feature = "tokio")]
    pub async fn call_retry_async<S: Checkpointable>(
        &self,
        site: &'static RetrySite,
        verdict: impl FnMut(&R::Error) -> Verdict,
        state: &mut S,
        body: impl AsyncFnMut(&mut S) -> R,
    ) -> R
    where
        R::Error: Display + Debug,
    {
        self.call_retry_with_async(site, verdict, NoHook, NoHook, NoHook, state, body).await
    }

    /// The `async` twin of [`Protect::call_retry_with`], on the same loop as `#[retry]` on an
    /// `async fn`.
    #[cfg(feature = "tokio")]
    #[allow(clippy::too_many_arguments)]
    pub async fn call_retry_with_async<S: Checkpointable>(
        &self,
        site: &'static RetrySite,
        mut verdict: impl FnMut(&R::Error) -> Verdict,
        when_ok: impl WhenOk<R::Ok>,
        on_retry: impl OnRetry<R::Error>,
        fallback: impl Fallback<R::Ok, R::Error>,
        state: &mut S,
        mut body: impl AsyncFnMut(&mut S) -> R,
    ) -> R
    where
        R::Error: Display + Debug,
    {
        self.run
            .call_async(async {
                let mut attempt = 0u32;
                let op = async || {
                    attempt += 1;
                    if attempt > 1 {
                        self.rewind(state)?;
                    }
                    let result = body(state).await.into_result();
                    if let Err(error) = &result {
                        self.record(error);
                    }
                    result
                };
                // A pause or a simulated crash is no failure to retry.
                let verdict = |error: &R::Error| {
                    if self.run.stopped() { Verdict::Stop } else { verdict(error) }
                };
                let result = crate::retry::private::retry_with_async_borrowing(
                    site, op, verdict, when_ok, on_retry, fallback,
                )
                .await;
                R::from_result(result)
            })
            .await
    }

    /// Without the `tokio` feature there is no async sleeper to wait between attempts: the
    /// unsatisfiable `TokioFeature` bound is the one error an `async fn` expansion gets.
    #[cfg(not(feature = "tokio"))]
    pub fn call_retry_async<S, B: TokioFeature>(
        &self,
        _site: &'static RetrySite,
        _verdict: impl FnMut(&R::Error) -> Verdict,
        _state: &mut S,
        _body: B,
    ) -> std::future::Pending<R> {
        // Never called: nothing implements `TokioFeature` for a body.
        std::future::pending()
    }

    /// The twin of the fallback [`Protect::call_retry_async`] with hooks.
    #[cfg(not(feature = "tokio"))]
    #[allow(clippy::too_many_arguments)]
    pub fn call_retry_with_async<S, B: TokioFeature>(
        &self,
        _site: &'static RetrySite,
        _verdict: impl FnMut(&R::Error) -> Verdict,
        _when_ok: impl Sized,
        _on_retry: impl Sized,
        _fallback: impl Sized,
        _state: &mut S,
        _body: B,
    ) -> std::future::Pending<R> {
        // Never called: nothing implements `TokioFeature` for a body.
        std::future::pending()
    }

    /// Saves `Completed` on `Ok`. On `Err`: with `restore_on_failure`, restores the backups and
    /// puts the entry state back into `*state` and into the `Failed` checkpoint (the files and
    /// the checkpoint then agree); otherwise saves `Failed` with the last checkpointed state.
    /// When a file cannot be restored, nothing is rolled back: the `Failed` checkpoint holds the
    /// last checkpointed state and the call returns [`Error::RestoreFailed`] naming the file.
    pub fn finish<S: Checkpointable>(&self, state: &mut S, result: R) -> R {
        if let (Err(error), Some(entry), false) =
            (result.as_result(), &self.restore, self.run.stopped())
        {
            self.settled.store(true, Relaxed);
            let text = self.run.describe(error);
            match self.restore_entry(entry, &text) {
                Ok(true) => match self.run.manager().load_checkpoint::<S>(self.run.id()) {
                    Ok(Some(checkpoint)) => *state = checkpoint.data,
                    Ok(None) => {}
                    Err(error) => self.log_restore_error(&error),
                },
                Ok(false) => {}
                Err(restore_error) => {
                    let error = self.run.convert(restore_error);
                    self.record(&error);
                    return self.run.finish(state, R::from_result(Err(error)));
                }
            }
        }
        self.settled.store(true, Relaxed);
        self.run.finish(state, result)
    }

    /// [`Run::skipping`], with skipped items recorded in this call's handler.
    pub fn skipping(&self, skipper: super::Skipper<R::Error>) -> super::Position<'_, R> {
        self.run.skipping(skipper).errors(self.errors)
    }

    fn guard(&self, body: impl FnOnce() -> R) -> R {
        self.run.call(body)
    }

    fn rewind<S: Checkpointable>(&self, state: &mut S) -> Result<(), R::Error> {
        self.run.rewind(state).map_err(|error| self.run.convert(error))?;
        tracing::info!(
            target: "resilience::failsafe",
            parent: self.run.span(),
            "retrying `{}` from item {}",
            self.run.id(),
            self.run.cursor()
        );
        Ok(())
    }

    /// Records an error of the body; a pause or a simulated crash is none.
    fn record(&self, error: &R::Error) {
        if self.run.stopped() {
            return;
        }
        (self.record)(error, self.errors, context(&self.run));
    }

    /// Restores the backups and writes a `Failed` checkpoint with the entry state; the run
    /// then records nothing more. Returns whether the checkpoint was written, or, when a file
    /// could not be restored, [`Error::RestoreFailed`] (nothing is rolled back then, and the run
    /// records its failure itself).
    fn restore_entry(&self, entry: &Entry, text: &str) -> Result<bool, Error> {
        let manager = self.run.manager();
        let mut failed = None;
        for backup in &entry.backups {
            match manager.restore_backup(backup) {
                Ok(()) => tracing::info!(
                    target: "resilience::failsafe",
                    parent: self.run.span(),
                    "restored `{}` from its backup",
                    backup.source.display()
                ),
                Err(error) => {
                    // The other files are still restored: each one back to its entry state is
                    // better than none.
                    tracing::error!(
                        target: "resilience::failsafe",
                        parent: self.run.span(),
                        "cannot restore `{}` from its backup: {error}",
                        backup.source.display()
                    );
                    failed.get_or_insert((backup.source.clone(), error));
                }
            }
        }
        if let Some((path, error)) = failed {
            return Err(Error::RestoreFailed {
                operation_id: self.run.id().to_owned(),
                path,
                failure: text.to_owned(),
                source: Box::new(error),
            });
        }
        self.run.settle();
        let saved = manager.save_encoded(
            self.run.id(),
            self.run.name(),
            ProcessState::Failed,
            0.0,
            entry.cursor,
            &entry.state,
            Some(text),
            &entry.run,
        );
        match saved {
            Ok(()) => Ok(true),
            Err(error) => {
                self.log_restore_error(&error);
                Ok(false)
            }
        }
    }

    fn log_restore_error(&self, error: &Error) {
        tracing::error!(
            target: "resilience::failsafe",
            parent: self.run.span(),
            "cannot restore the state of `{}` after its failure: {error}",
            self.run.id()
        );
    }
}

/// The tracked loop's `position` and `skip` are [`Run`]'s.
impl<R: Outcome> std::ops::Deref for Protect<'_, R> {
    type Target = Run<R>;

    fn deref(&self) -> &Run<R> {
        &self.run
    }
}

impl<R: Outcome> Drop for Protect<'_, R> {
    fn drop(&mut self) {
        // Unfinished: a panic (already recorded as `Failed` by `Run::call`) or a cancelled call.
        if !self.settled.load(Relaxed)
            && let Some(entry) = &self.restore
        {
            let text = match self.run.panic_text() {
                Some(text) => text,
                None if std::thread::panicking() => "panicked".to_owned(),
                None => "cancelled: the call was dropped before it finished".to_owned(),
            };
            // A panic or a cancellation has no error to return: a failed restore is logged,
            // and the run records its failure with the last checkpointed state.
            let _ = self.restore_entry(entry, &text);
        }
    }
}

fn context<R: Outcome>(run: &Run<R>) -> ErrorContext {
    ErrorContext::new().with("operation_id", run.id()).with("item", run.cursor())
}
