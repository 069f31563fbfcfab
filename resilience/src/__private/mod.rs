//! Support for the code the macros generate. Not a public API.

mod checkpoint;
mod probes;
mod protect;
mod record;
mod shape;

pub use checkpoint::{
    Bound, FromResilienceError, Options, Outcome, Position, Run, Skipper, Tracked,
};
pub use probes::{Fingerprint, Skippable, fingerprint};
pub use protect::{Protect, Protection, Recorder};
pub use record::{RecordAny, RecordClassified, RecordProbe, record_error};
pub use shape::{Shape, schema};

/// The decoders of bytes read from disk, for the fuzz targets in `fuzz/`.
pub mod fuzz {
    pub use crate::failsafe::fuzz::{backup_name, checkpoint_file, listing_cache, source_record};
}

/// The store's write seam, recorded by the power-loss tests (`tests/powerloss`).
pub mod io {
    pub use crate::failsafe::io::{IoOp, mark, start_recording, stop_recording};
}

pub use crate::retry::private::{
    ClassifiedError, FreshArgument, NoHook, Probe, RetrySite, Retryable, Verdict, classified,
    fresh, retry_if, retry_with,
};
#[cfg(feature = "tokio")]
pub use crate::retry::private::{
    retry_if_async, retry_if_async_borrowing, retry_with_async, retry_with_async_borrowing,
};

/// The type of a `#[classify(retry_after = field)]` field: the hint it gives.
#[diagnostic::on_unimplemented(
    message = "`retry_after` needs a field of type `Duration` or `Option<Duration>`, not `{Self}`",
    label = "this field is a `{Self}`",
    note = "`#[classify(retry_after = field)]` names the field holding the delay to wait before the next attempt (a `std::time::Duration`, or an `Option<Duration>` that is `None` when there is no hint)"
)]
pub trait RetryAfterField {
    /// The hint.
    fn retry_after(&self) -> Option<std::time::Duration>;
}

impl RetryAfterField for std::time::Duration {
    #[inline]
    fn retry_after(&self) -> Option<std::time::Duration> {
        Some(*self)
    }
}

impl RetryAfterField for Option<std::time::Duration> {
    #[inline]
    fn retry_after(&self) -> Option<std::time::Duration> {
        *self
    }
}

/// The bound `#[derive(Checkpointable)]` puts on the state type and its parameters: what
/// `Checkpointable`'s supertraits need. (A type without serde's derives gets serde's own two
/// errors, at its name: rustc reports the unmet bounds of a blanket impl rather than a
/// message of this trait, so it carries none.)
pub trait CheckpointData: serde::Serialize + serde::de::DeserializeOwned {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> CheckpointData for T {}

/// Implemented only with the `tokio` feature. `#[retry]` on an `async fn` passes its site, and
/// `#[protected(retry(..))]` its body, where this bound is checked, so that without the feature
/// the one error names the feature.
#[diagnostic::on_unimplemented(
    message = "an `async fn` under `#[retry]` or `#[protected(retry(..))]` needs the `tokio` feature of `resilience`",
    label = "this `async fn` is retried with tokio's timer",
    note = "enable it in Cargo.toml: `resilience = {{ version = \"0.1\", features = [\"tokio\"] }}`"
)]
pub trait TokioFeature {}

#[cfg(feature = "tokio")]
impl TokioFeature for RetrySite {}

/// Without the `tokio` feature, `async fn` expansions resolve here, and the unsatisfiable
/// `TokioFeature` bound is the only error they get (instead of "cannot find function").
#[cfg(not(feature = "tokio"))]
pub fn retry_if_async<S: TokioFeature, R: Outcome, Fut>(
    _site: &'static S,
    _op: impl FnMut() -> Fut,
    _verdict: impl FnMut(&R::Error) -> Verdict,
) -> std::future::Pending<R>
where
    Fut: Future<Output = R>,
{
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}

/// The twin of the fallback [`retry_if_async`] with hooks.
#[cfg(not(feature = "tokio"))]
pub fn retry_with_async<S: TokioFeature, R: Outcome, Fut>(
    _site: &'static S,
    _op: impl FnMut() -> Fut,
    _verdict: impl FnMut(&R::Error) -> Verdict,
    _when_ok: impl Sized,
    _on_retry: impl Sized,
    _fallback: impl Sized,
) -> std::future::Pending<R>
where
    Fut: Future<Output = R>,
{
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}

/// The twin of the fallback [`retry_if_async`] for `async fn`s that borrow mutably.
#[cfg(not(feature = "tokio"))]
pub fn retry_if_async_borrowing<S: TokioFeature, R: Outcome>(
    _site: &'static S,
    _op: impl AsyncFnMut() -> R,
    _verdict: impl FnMut(&R::Error) -> Verdict,
) -> std::future::Pending<R> {
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}

/// The twin of the fallback [`retry_if_async_borrowing`] with hooks.
#[cfg(not(feature = "tokio"))]
pub fn retry_with_async_borrowing<S: TokioFeature, R: Outcome>(
    _site: &'static S,
    _op: impl AsyncFnMut() -> R,
    _verdict: impl FnMut(&R::Error) -> Verdict,
    _when_ok: impl Sized,
    _on_retry: impl Sized,
    _fallback: impl Sized,
) -> std::future::Pending<R> {
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}
