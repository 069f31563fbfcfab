//! Error recording and classification.
//!
//! [`Classify`] says, for one error value, how to recover from it ([`Recovery`]), how bad it is
//! ([`Severity`]) and which stable code and category to count it under. It is implemented here
//! for [`std::io::Error`] and [`crate::Error`], and derived for your own types with
//! `#[derive(resilience::Classify)]`.
//!
//! [`ErrorHandler`] records handled errors as [`ErrorRecord`]s: the classification, the error's
//! message and `source()` chain, and an [`ErrorContext`] of key–value facts (operation id, item
//! index). [`ErrorHandler::handle_error`] classifies through `Classify`;
//! [`ErrorHandler::handle_any`] takes any `dyn Error`, classifies the outermost I/O or
//! `resilience` error in its chain, and records anything else as `"unclassified"`. The handler
//! promises:
//!
//! - **Bounded history.** It keeps the last `max_history` records, oldest first; older ones are
//!   dropped. [`ErrorHandler::global`] keeps 1,000.
//! - **Exact counts.** [`ErrorStats`] counts every handled error, per code, category, severity
//!   and recovery. Dropping records from the history never lowers the counts; only
//!   [`ErrorHandler::clear_history`] resets them (together with the history).
//! - **Thread safety.** A handler is `Send + Sync`; concurrent calls are neither lost nor
//!   double-counted. Records are built before the handler's lock is taken, so the critical
//!   section is a few map updates.
//! - **One log.** Each handled error is also a `tracing` event with target
//!   `resilience::errors` (level `info`, `warn` or `error` after its severity) and the fields
//!   `code`, `category`, `severity`, `recovery`, `context` and `message`.
//!
//! ```
//! use resilience::{ErrorContext, ErrorHandler, Recovery};
//!
//! let handler = ErrorHandler::new(100);
//! let error = std::io::Error::from(std::io::ErrorKind::TimedOut);
//! let record = handler.handle_error(&error, ErrorContext::new().with("item", 7));
//!
//! assert_eq!(record.error_code, "io::TimedOut");
//! assert_eq!(record.recovery, Recovery::Retry);
//! assert_eq!(handler.statistics().by_code["io::TimedOut"], 1);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

mod context;
mod handler;
mod impls;

pub use context::ErrorContext;
pub use handler::{ErrorHandler, ErrorRecord, ErrorStats};

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

impl Recovery {
    /// The lower-case name: `"retry"`, `"skip"` or `"abort"`.
    ///
    /// ```
    /// assert_eq!(resilience::Recovery::Skip.as_str(), "skip");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Recovery::Retry => "retry",
            Recovery::Skip => "skip",
            Recovery::Abort => "abort",
        }
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

impl Severity {
    /// The lower-case name: `"info"`, `"warning"`, `"error"` or `"critical"`.
    ///
    /// ```
    /// assert_eq!(resilience::Severity::Warning.as_str(), "warning");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an error: how to recover, its code, category and severity.
///
/// Derive it with `#[derive(resilience::Classify)]`, or implement it by hand:
///
/// ```
/// use std::borrow::Cow;
/// use resilience::{Classify, Recovery, Severity};
///
/// #[derive(Debug)]
/// struct QuotaExceeded;
///
/// impl Classify for QuotaExceeded {
///     fn recovery(&self) -> Recovery { Recovery::Retry }
///     fn error_code(&self) -> Cow<'_, str> { Cow::Borrowed("E_QUOTA") }
///     fn category(&self) -> Cow<'_, str> { Cow::Borrowed("network") }
///     fn severity(&self) -> Severity { Severity::Warning }
/// }
///
/// assert_eq!(QuotaExceeded.error_code(), "E_QUOTA");
/// ```
///
/// Provided impls: [`std::io::Error`] (code `io::<ErrorKind>`, category `io`) and
/// [`crate::Error`] (code `resilience::<Variant>`, category `resilience`); see their impl docs
/// for the mapping. References, `Box` and `Arc` of a `Classify` type classify like it.
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
    /// How long to wait before retrying, when the error says (a server's `Retry-After`, a
    /// rate limit's reset time). When it is `Some(d)` and the error is retried, the next delay
    /// is exactly `d`: no jitter, not shortened by `max_delay`, still cut by `max_elapsed`.
    /// Default `None`: the configured backoff applies. The derive reads it from a field with
    /// `#[classify(retry_after = field)]`.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use std::time::Duration;
    /// use resilience::{Classify, Recovery, Severity};
    ///
    /// struct RateLimited { reset_in: Duration }
    ///
    /// impl Classify for RateLimited {
    ///     fn recovery(&self) -> Recovery { Recovery::Retry }
    ///     fn error_code(&self) -> Cow<'_, str> { "E_RATE".into() }
    ///     fn category(&self) -> Cow<'_, str> { "network".into() }
    ///     fn severity(&self) -> Severity { Severity::Warning }
    ///     fn retry_after(&self) -> Option<Duration> { Some(self.reset_in) }
    /// }
    /// # assert_eq!(RateLimited { reset_in: Duration::from_secs(2) }.retry_after(), Some(Duration::from_secs(2)));
    /// ```
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

macro_rules! forward_classify {
    ($($ty:ty),*) => {$(
        impl<T: Classify + ?Sized> Classify for $ty {
            fn recovery(&self) -> Recovery {
                (**self).recovery()
            }
            fn error_code(&self) -> Cow<'_, str> {
                (**self).error_code()
            }
            fn category(&self) -> Cow<'_, str> {
                (**self).category()
            }
            fn severity(&self) -> Severity {
                (**self).severity()
            }
            fn retry_after(&self) -> Option<std::time::Duration> {
                (**self).retry_after()
            }
        }
    )*};
}

forward_classify!(&T, Box<T>, Arc<T>);
