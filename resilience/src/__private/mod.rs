//! Support for the code the macros generate. Not a public API.

mod checkpoint;
mod protect;

pub use checkpoint::{FromResilienceError, Options, Outcome, Run, Tracked};
pub use protect::{NeedsTokio, Protect, Protection, Recorder};

pub use crate::retry::private::{Probe, RetrySite, Retryable, retry, retry_if};
#[cfg(feature = "tokio")]
pub use crate::retry::private::{retry_async, retry_if_async, retry_if_async_borrowing};
