//! The macros' expansions compile cleanly under strict lints in the user's crate (the model is
//! thiserror's `test_lints.rs`): no `unused_qualifications` from the absolute paths, no
//! unused results, documentation kept, no casts the user would be warned about.
#![deny(
    missing_docs,
    unused_qualifications,
    unused_results,
    unused_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    elided_lifetimes_in_paths,
    unsafe_code,
    unreachable_pub,
    let_underscore_drop,
    non_ascii_idents,
    unit_bindings,
    warnings
)]

use std::fmt;

use resilience::{Checkpointable, Classify, retry};
use serde::{Deserialize, Serialize};

/// An error.
#[derive(Debug, Classify)]
#[classify(category = "lint")]
pub enum LintError {
    /// Transient.
    Busy,
    /// Bad input.
    #[classify(skip, code = "E_BAD", severity = "warning")]
    Bad {
        /// Where.
        line: u64,
    },
    /// From the OS.
    #[classify(transparent)]
    Io(std::io::Error),
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LintError::Busy => f.write_str("busy"),
            LintError::Bad { line } => write!(f, "bad input on line {line}"),
            LintError::Io(e) => e.fmt(f),
        }
    }
}

/// A wrapper.
#[derive(Debug, Classify)]
#[classify(transparent)]
pub struct Wrapped(pub LintError);

#[derive(Debug, Classify)]
#[classify(abort)]
struct Hidden;

/// A public error delegating to a private one.
#[derive(Debug, Classify)]
#[classify(transparent)]
pub struct Shielded(Hidden);

/// Progress.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
#[checkpoint(version = 3)]
pub struct Progress {
    /// Done.
    #[checkpoint(cursor)]
    pub done: u64,
    /// Of.
    #[checkpoint(total)]
    pub total: usize,
    /// Narrow.
    pub narrow: u8,
}

/// Signed and narrow markers exercise the saturating conversions.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
pub struct Signed(#[checkpoint(cursor)] pub i32, #[checkpoint(total)] pub u16);

/// Generic state.
#[derive(Debug, Serialize, Deserialize, Checkpointable)]
pub struct Generic<T> {
    /// Position.
    #[checkpoint(cursor)]
    pub position: u128,
    /// Last.
    pub last: Option<T>,
}

/// Retried.
#[retry(max = 2, initial = "1ms", jitter = 0.0)]
pub fn fetch(key: &str) -> Result<usize, LintError> {
    if key.is_empty() { Err(LintError::Busy) } else { Ok(key.len()) }
}

fn transient(error: &LintError) -> bool {
    matches!(error, LintError::Busy)
}

/// Retried with a predicate and a name.
#[retry(max = 1, when = transient, name = "lints::guarded")]
pub fn guarded<'a>(items: &'a [String]) -> Result<&'a str, LintError> {
    items.first().map(String::as_str).ok_or(LintError::Bad { line: 0 })
}

/// A client.
#[derive(Debug, Default)]
pub struct Client {
    sent: Vec<String>,
}

impl Client {
    /// By reference.
    #[retry(max = 1)]
    pub fn count(&self) -> Result<usize, LintError> {
        Ok(self.sent.len())
    }

    /// By mutable reference.
    #[retry(max = 1)]
    pub fn send(&mut self, message: &str) -> std::io::Result<()> {
        self.sent.push(message.to_owned());
        Ok(())
    }

    /// By value.
    #[retry(max = 1)]
    pub fn into_sent(self) -> Result<Vec<String>, LintError> {
        Ok(self.sent.clone())
    }

    /// Async, by reference.
    #[cfg(feature = "tokio")]
    #[retry(max = 1)]
    pub async fn count_async(&self) -> Result<usize, LintError> {
        Ok(self.sent.len())
    }

    /// Async, by mutable reference.
    #[cfg(feature = "tokio")]
    #[retry(max = 1)]
    pub async fn send_async(&mut self, message: &str) -> Result<usize, LintError> {
        self.sent.push(message.to_owned());
        Ok(self.sent.len())
    }
}

fn pending(count: &usize) -> bool {
    *count == 0
}

fn note(_: &LintError, _: u32, _: std::time::Duration) {}

fn cached(_: LintError) -> Result<usize, LintError> {
    Ok(0)
}

#[cfg(feature = "tokio")]
fn never(_: &()) -> bool {
    false
}

#[cfg(feature = "tokio")]
fn kept(error: resilience::Error) -> Result<(), resilience::Error> {
    Err(error)
}

/// Every hook and a budget.
#[retry(max = 1, when_ok = pending, on_retry = note, fallback = cached, budget = "lints")]
pub fn hooked(key: &str) -> Result<usize, LintError> {
    Ok(key.len())
}

/// A server's hint.
#[derive(Debug, Classify)]
pub enum Limited {
    /// Retry later.
    #[classify(retry_after = wait)]
    Later {
        /// How long.
        wait: std::time::Duration,
    },
}

/// Generic, with a `mut` argument (copied in each attempt: no `unused_mut`).
#[retry(when = always)]
pub fn generic<T: Clone, E: fmt::Debug>(value: &T, mut tries: u32) -> Result<(T, u32), E> {
    tries += 1;
    Ok((value.clone(), tries))
}

#[test]
fn expansions_compile_under_strict_lints() {
    assert_eq!(fetch("abc").unwrap(), 3);
    assert_eq!(guarded(&["x".to_owned()]).unwrap(), "x");
    let mut client = Client::default();
    client.send("hi").unwrap();
    assert_eq!(client.count().unwrap(), 1);
    assert_eq!(client.into_sent().unwrap(), ["hi"]);
    assert_eq!(generic::<u8, LintError>(&1, 0).unwrap(), (1, 1));
    assert_eq!(hooked("ab").unwrap(), 2);
    let wait = std::time::Duration::from_secs(1);
    assert_eq!(Limited::Later { wait }.retry_after(), Some(wait));
    assert_eq!(Wrapped(LintError::Bad { line: 2 }).error_code(), "E_BAD");
    assert_eq!(Shielded(Hidden).recovery(), resilience::Recovery::Abort);
    let mut progress = Progress { total: 4, ..Progress::default() };
    progress.set_cursor(2);
    assert_eq!((progress.cursor(), progress.total(), progress.narrow), (2, Some(4), 0));
    let mut signed = Signed(-1, 9);
    assert_eq!((signed.cursor(), signed.total()), (0, Some(9)));
    signed.set_cursor(u64::MAX);
    assert_eq!(signed.0, i32::MAX);
    let mut generic_state = Generic::<String> { position: 1, last: None };
    generic_state.set_cursor(5);
    assert_eq!((generic_state.cursor(), generic_state.last), (5, None));
    assert_ne!(Progress::SCHEMA, Signed::SCHEMA);
    assert_eq!(
        LintError::Io(std::io::ErrorKind::TimedOut.into()).recovery(),
        resilience::Recovery::Retry
    );
}

/// `#[checkpointed]` and `#[protected]`, with a tracked loop, a marker, backups and retry.
pub mod checkpointing {
    use resilience::{Error, FailsafeManager, checkpointed, protected};

    /// Progress.
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        /// Done.
        #[checkpoint(cursor)]
        pub done: u64,
    }

    /// Checkpointed.
    #[checkpointed(manager = mgr, every = 2, interval = "1s", id = "lint-{batch}")]
    pub fn checkpointed(
        mgr: &FailsafeManager,
        batch: u8,
        items: &[u8],
        p: &mut Progress,
    ) -> Result<u8, Error> {
        #[checkpoint]
        for _ in items {}
        for _ in items {}
        Ok(batch)
    }

    /// Protected.
    #[protected(manager = mgr, backup = "{path}", backup_missing = "skip", restore_on_failure = true, retry(max = 1))]
    pub fn protected(mgr: &FailsafeManager, path: &str, items: &[u8]) -> Result<(), Error> {
        for _ in items {}
        Ok(())
    }

    /// Protected, async.
    #[cfg(feature = "tokio")]
    #[protected(manager = mgr, retry(max = 1, when_ok = super::never, fallback = super::kept, budget = "lints"))]
    pub async fn protected_async(
        mgr: &FailsafeManager,
        items: &[u8],
        p: &mut Progress,
    ) -> Result<(), Error> {
        for _ in items {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}
