//! Support for the code the macros generate. Not a public API.

pub use crate::retry::private::{Probe, RetrySite, Retryable, retry, retry_if};
#[cfg(feature = "tokio")]
pub use crate::retry::private::{retry_async, retry_if_async, retry_if_async_borrowing};
