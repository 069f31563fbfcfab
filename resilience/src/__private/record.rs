//! Recording an error of any type, through `Classify` where the type implements it: what
//! `#[protected]`'s expansion calls through [`record_error!`](crate::__private::record_error).

use std::error::Error as StdError;

use crate::errors::{Classify, ErrorContext, ErrorHandler, ErrorRecord};

/// Records an error of any type, through [`Classify`] where the type implements it.
///
/// Generic runtime code cannot ask "does `E` implement `Classify`?", but method resolution at a
/// site where `E` is concrete can: write
///
/// ```text
/// (&&RecordProbe(&error)).record(handler, context)
/// ```
///
/// with both [`RecordClassified`] and [`RecordAny`] in scope. Method lookup tries the receiver
/// `&&RecordProbe<E>` first, where only [`RecordClassified`] is implemented (for
/// `E: Error + Classify`, recording through [`ErrorHandler::handle_error`]); failing that, it
/// auto-derefs to `&RecordProbe<E>`, where [`RecordAny`] is implemented for every
/// `E: Error + 'static` (recording through [`ErrorHandler::handle_any`]). This is "autoref
/// specialization": <https://github.com/dtolnay/case-studies/blob/master/autoref-specialization/README.md>.
///
/// Inside a function generic over `E` the choice is made with the bounds in scope, so there the
/// fallback is taken unless `E: Classify` is a bound.
///
/// Generated code should use `record_error!`, which wraps this expression with the traits in
/// scope.
pub struct RecordProbe<'a, E: ?Sized>(pub &'a E);

/// The preferred `record`: for errors that implement [`Classify`].
pub trait RecordClassified {
    /// Records the error with [`ErrorHandler::handle_error`].
    fn record(&self, handler: &ErrorHandler, context: ErrorContext) -> ErrorRecord;
}

impl<E: StdError + Classify + ?Sized> RecordClassified for &RecordProbe<'_, E> {
    fn record(&self, handler: &ErrorHandler, context: ErrorContext) -> ErrorRecord {
        handler.handle_error(self.0, context)
    }
}

/// The fallback `record`: for any error type.
pub trait RecordAny {
    /// Records the error with [`ErrorHandler::handle_any`].
    fn record(&self, handler: &ErrorHandler, context: ErrorContext) -> ErrorRecord;
}

impl<E: StdError + 'static> RecordAny for RecordProbe<'_, E> {
    fn record(&self, handler: &ErrorHandler, context: ErrorContext) -> ErrorRecord {
        handler.handle_any(self.0, context)
    }
}

/// Records `error` (a `&E` where `E: Error + 'static`) with `handler` (a `&ErrorHandler`) and
/// `context` (an `ErrorContext`), through `Classify` where `E` implements it; evaluates to the
/// `ErrorRecord`. The [`RecordProbe`] dispatch in one expression, with the traits in scope and
/// without lints firing in the caller's crate. Called as
/// `::resilience::__private::record_error!(..)`; `#[macro_export]` also puts it at the crate
/// root, hidden.
#[doc(hidden)]
#[macro_export]
macro_rules! __record_error {
    ($handler:expr, $error:expr, $context:expr $(,)?) => {{
        #[allow(unused_imports)]
        use $crate::__private::{RecordAny as _, RecordClassified as _};
        (&&$crate::__private::RecordProbe($error)).record($handler, $context)
    }};
}

pub use __record_error as record_error;
