//! Error recording and classification.
//!
//! (The `ErrorHandler` implementation lands with the error layer.)

use std::borrow::Cow;

/// What to do about an error.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Recovery {
    /// The error is transient: try again.
    Retry,
    /// This item is bad: record it and go on with the next one.
    Skip,
    /// Stop the operation.
    Abort,
}

/// How bad an error is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    /// Worth noting, nothing failed.
    Info,
    /// Something failed but the job goes on.
    Warning,
    /// An operation failed.
    Error,
    /// The job cannot go on.
    Critical,
}

/// Classifies an error: how to recover, its code, category and severity.
///
/// Derive it with `#[derive(resilience::Classify)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `resilience::Classify`",
    note = "add `#[derive(resilience::Classify)]` to `{Self}`, or implement `Classify` by hand"
)]
pub trait Classify {
    /// What to do about this error.
    fn recovery(&self) -> Recovery;
    /// A stable code such as `"io::TimedOut"`.
    fn error_code(&self) -> Cow<'_, str>;
    /// A coarse group such as `"network"`.
    fn category(&self) -> Cow<'_, str>;
    /// How bad it is.
    fn severity(&self) -> Severity;
}
