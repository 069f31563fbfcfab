//! What a retry may be told besides its configuration: which errors to retry, which `Ok`
//! values to retry, what to call before each retry and what to do when the attempts run out.
//!
//! Each is a trait implemented for closures and functions of the right signature and for
//! [`NoHook`] (nothing given), so that a hook that is not given costs nothing.

use std::time::Duration;

use crate::errors::{Classify, Recovery};

/// What to do after an attempt failed with an error. Not a public API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Return the error (through the fallback).
    Stop,
    /// Retry after the configured backoff.
    Retry,
    /// Retry after exactly this delay (a server's hint, [`Classify::retry_after`]).
    RetryAfter(Duration),
}

impl Verdict {
    /// `Retry`, or `RetryAfter` when `hint` is given.
    #[inline]
    pub fn retry(hint: Option<Duration>) -> Self {
        match hint {
            Some(delay) => Verdict::RetryAfter(delay),
            None => Verdict::Retry,
        }
    }

    /// The verdict of [`Classify`]: a retry (after the error's hint, if it has one) when
    /// the recovery is [`Recovery::Retry`].
    #[inline]
    pub fn classify<E: Classify + ?Sized>(error: &E) -> Self {
        Self::when(error.recovery() == Recovery::Retry, error)
    }

    /// A retry (after the error's hint, if it has one) when `retry` is true.
    #[inline]
    pub fn when<E: Classify + ?Sized>(retry: bool, error: &E) -> Self {
        if retry { Self::retry(error.retry_after()) } else { Verdict::Stop }
    }
}

impl From<bool> for Verdict {
    #[inline]
    fn from(retry: bool) -> Self {
        if retry { Verdict::Retry } else { Verdict::Stop }
    }
}

/// The hook that was not given: retries every error, accepts every `Ok`, does nothing before
/// a retry, and returns the last error as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

/// Retries only errors whose [`Classify::recovery`] is [`Recovery::Retry`], after their
/// [`Classify::retry_after`] hint when they give one. See [`Retrying::classified`].
///
/// [`Retrying::classified`]: super::Retrying::classified
#[derive(Debug, Clone, Copy, Default)]
pub struct Classified;

/// Which errors are retried: `FnMut(&E) -> bool`, [`Classified`], or [`NoHook`] (all).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot decide which errors of type `{E}` to retry",
    label = "expected a `fn(&{E}) -> bool`",
    note = "`when` takes a function or closure `fn(&E) -> bool`, where `E` is the error type"
)]
pub trait RetryIf<E> {
    /// What to do about `error`.
    #[doc(hidden)]
    fn verdict(&mut self, error: &E) -> Verdict;
}

impl<E> RetryIf<E> for NoHook {
    #[inline]
    fn verdict(&mut self, _: &E) -> Verdict {
        Verdict::Retry
    }
}

impl<E: Classify> RetryIf<E> for Classified {
    #[inline]
    fn verdict(&mut self, error: &E) -> Verdict {
        Verdict::classify(error)
    }
}

impl<E, F: FnMut(&E) -> bool> RetryIf<E> for F {
    #[inline]
    fn verdict(&mut self, error: &E) -> Verdict {
        self(error).into()
    }
}

/// A verdict closure written at a `#[retry]` call site, where the error type is concrete.
#[doc(hidden)]
pub struct ByVerdict<F>(pub F);

impl<E, F: FnMut(&E) -> Verdict> RetryIf<E> for ByVerdict<F> {
    #[inline]
    fn verdict(&mut self, error: &E) -> Verdict {
        (self.0)(error)
    }
}

/// Which `Ok` values are retried: `FnMut(&T) -> bool` (true: retry), or [`NoHook`] (none).
#[diagnostic::on_unimplemented(
    message = "`when_ok` must be a `fn(&{T}) -> bool`, taking the function's `Ok` value",
    label = "expected a `fn(&{T}) -> bool`"
)]
pub trait WhenOk<T> {
    /// Whether to retry after the attempt returned `Ok(value)`.
    #[doc(hidden)]
    fn retry_ok(&mut self, value: &T) -> bool;
}

impl<T> WhenOk<T> for NoHook {
    #[inline(always)]
    fn retry_ok(&mut self, _: &T) -> bool {
        false
    }
}

impl<T, F: FnMut(&T) -> bool> WhenOk<T> for F {
    #[inline]
    fn retry_ok(&mut self, value: &T) -> bool {
        self(value)
    }
}

/// Called before each retry that follows an error: `FnMut(&E, u32, Duration)` with the error,
/// the number of the retry about to happen (1 for the first) and the delay slept before it; or
/// [`NoHook`].
#[diagnostic::on_unimplemented(
    message = "`on_retry` must be a `fn(&{E}, u32, Duration)`",
    label = "expected a `fn(&{E}, attempt: u32, delay: std::time::Duration)`"
)]
pub trait OnRetry<E> {
    /// Called before sleeping `delay` ahead of retry number `attempt`.
    #[doc(hidden)]
    fn on_retry(&mut self, error: &E, attempt: u32, delay: Duration);
}

impl<E> OnRetry<E> for NoHook {
    #[inline(always)]
    fn on_retry(&mut self, _: &E, _: u32, _: Duration) {}
}

impl<E, F: FnMut(&E, u32, Duration)> OnRetry<E> for F {
    #[inline]
    fn on_retry(&mut self, error: &E, attempt: u32, delay: Duration) {
        self(error, attempt, delay)
    }
}

/// Called once with the final error, when the attempts run out or the error is not retried:
/// `FnOnce(E) -> Result<T, E>`; or [`NoHook`] (the error is returned).
#[diagnostic::on_unimplemented(
    message = "`fallback` must be a `fn({E}) -> Result<{T}, {E}>`",
    label = "expected a `fn({E}) -> Result<{T}, {E}>`"
)]
pub trait Fallback<T, E> {
    /// The call's result after its last error.
    #[doc(hidden)]
    fn fallback(self, error: E) -> Result<T, E>;
}

impl<T, E> Fallback<T, E> for NoHook {
    #[inline(always)]
    fn fallback(self, error: E) -> Result<T, E> {
        Err(error)
    }
}

impl<T, E, F: FnOnce(E) -> Result<T, E>> Fallback<T, E> for F {
    #[inline]
    fn fallback(self, error: E) -> Result<T, E> {
        self(error)
    }
}

/// The hooks of one call.
pub(crate) struct Hooks<V, K, H, F> {
    pub(crate) retry_if: V,
    pub(crate) when_ok: K,
    pub(crate) on_retry: H,
    pub(crate) fallback: F,
}
