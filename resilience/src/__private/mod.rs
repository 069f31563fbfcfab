//! Support for the code the macros generate. Not a public API.

mod checkpoint;
mod probes;
mod protect;
mod shape;

pub use checkpoint::{
    Bound, FromResilienceError, Options, Outcome, Position, Run, Skipper, Tracked,
};
pub use probes::{Fingerprint, Skippable, fingerprint};
pub use protect::{NeedsTokio, Protect, Protection, Recorder};
pub use shape::{Shape, schema};

pub use crate::retry::private::{Probe, RetrySite, Retryable, retry, retry_if};
#[cfg(feature = "tokio")]
pub use crate::retry::private::{retry_async, retry_if_async, retry_if_async_borrowing};

/// The bound `#[derive(Checkpointable)]` puts on the state type and its parameters: what
/// `Checkpointable`'s supertraits need, with a message naming the missing derives.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a checkpoint: it does not implement serde's `Serialize` and `Deserialize`",
    label = "`#[derive(Checkpointable)]` needs serde's derives too",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`"
)]
pub trait CheckpointData: serde::Serialize + serde::de::DeserializeOwned {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> CheckpointData for T {}

/// Implemented only with the `tokio` feature. `#[retry]` on an `async fn` passes its site where
/// this bound is checked, so that without the feature the one error names the feature.
#[diagnostic::on_unimplemented(
    message = "`async fn` under `#[retry]` needs the `tokio` feature of `resilience`",
    label = "this `async fn` is retried with tokio's timer",
    note = "enable it in Cargo.toml: `resilience = {{ version = \"0.1\", features = [\"tokio\"] }}`"
)]
pub trait TokioFeature {}

#[cfg(feature = "tokio")]
impl TokioFeature for RetrySite {}

/// Without the `tokio` feature, `async fn` expansions resolve here, and the unsatisfiable
/// `TokioFeature` bound is the only error they get (instead of "cannot find function").
#[cfg(not(feature = "tokio"))]
pub fn retry_if_async<S: TokioFeature, T, E, Fut>(
    _site: &'static S,
    _op: impl FnMut() -> Fut,
    _retry_if: impl FnMut(&E) -> bool,
) -> std::future::Pending<Result<T, E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}

/// The twin of the fallback [`retry_if_async`] for `async fn`s that borrow mutably.
#[cfg(not(feature = "tokio"))]
pub fn retry_if_async_borrowing<S: TokioFeature, T, E>(
    _site: &'static S,
    _op: impl AsyncFnMut() -> Result<T, E>,
    _retry_if: impl FnMut(&E) -> bool,
) -> std::future::Pending<Result<T, E>> {
    // Never called: no type implements `TokioFeature` without the feature.
    std::future::pending()
}
