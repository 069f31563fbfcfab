use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::context::write_entries;
use super::{Classify, ErrorContext, Recovery, Severity};

/// One handled error, as [`ErrorHandler`] recorded it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRecord {
    /// [`Classify::error_code`], e.g. `"io::TimedOut"`.
    pub error_code: String,
    /// The error's `Display` text.
    pub message: String,
    /// [`Classify::category`], e.g. `"io"`.
    pub category: String,
    /// [`Classify::severity`].
    pub severity: Severity,
    /// [`Classify::recovery`].
    pub recovery: Recovery,
    /// The [`ErrorContext`] entries, in insertion order.
    pub context: Vec<(String, String)>,
    /// The `Display` text of each error in the `source()` chain, outermost first; empty when the
    /// error has no source.
    pub chain: Vec<String>,
    /// When the error was handled.
    pub occurred_at: SystemTime,
}

impl ErrorRecord {
    fn new<C: Classify + ?Sized>(
        classified: &C,
        message: String,
        source: Option<&(dyn StdError + 'static)>,
        context: ErrorContext,
    ) -> Self {
        let mut chain = Vec::new();
        let mut next = source;
        while let Some(error) = next {
            chain.push(error.to_string());
            next = error.source();
        }
        ErrorRecord {
            error_code: classified.error_code().into_owned(),
            message,
            category: classified.category().into_owned(),
            severity: classified.severity(),
            recovery: classified.recovery(),
            context: context.into_entries(),
            chain,
            occurred_at: SystemTime::now(),
        }
    }
}

/// Counts of handled errors since the handler was created or last cleared.
///
/// Every map counts each handled error once, so each map's values add up to `total_errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorStats {
    /// All handled errors.
    pub total_errors: u64,
    /// Per [`ErrorRecord::error_code`].
    pub by_code: BTreeMap<String, u64>,
    /// Per [`ErrorRecord::category`].
    pub by_category: BTreeMap<String, u64>,
    /// Per [`ErrorRecord::severity`].
    pub by_severity: BTreeMap<Severity, u64>,
    /// Per [`ErrorRecord::recovery`].
    pub by_recovery: BTreeMap<Recovery, u64>,
}

impl ErrorStats {
    const fn new() -> Self {
        ErrorStats {
            total_errors: 0,
            by_code: BTreeMap::new(),
            by_category: BTreeMap::new(),
            by_severity: BTreeMap::new(),
            by_recovery: BTreeMap::new(),
        }
    }

    fn count(&mut self, record: &ErrorRecord) {
        self.total_errors += 1;
        increment(&mut self.by_code, &record.error_code);
        increment(&mut self.by_category, &record.category);
        *self.by_severity.entry(record.severity).or_insert(0) += 1;
        *self.by_recovery.entry(record.recovery).or_insert(0) += 1;
    }
}

/// Allocates the key only the first time it is counted.
fn increment(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// Records handled errors: a bounded history of [`ErrorRecord`]s plus [`ErrorStats`] counts.
///
/// See the [crate docs](crate) for its promises. Each handled error is also logged as a
/// `tracing` event with target `resilience::errors`.
///
/// ```
/// use resilience::{ErrorContext, ErrorHandler, Recovery, Severity};
/// use std::io::{Error, ErrorKind};
///
/// let handler = ErrorHandler::new(2);
/// for item in 0..3 {
///     let error = Error::new(ErrorKind::ConnectionReset, format!("upload {item} failed"));
///     handler.handle_error(&error, ErrorContext::new().with("item", item));
/// }
///
/// // The history keeps the last two records, oldest first...
/// let history = handler.history();
/// assert_eq!(history.len(), 2);
/// assert_eq!(history[0].message, "upload 1 failed");
/// assert_eq!(history[1].context, [("item".to_string(), "2".to_string())]);
///
/// // ...while the statistics count all three.
/// let stats = handler.statistics();
/// assert_eq!(stats.total_errors, 3);
/// assert_eq!(stats.by_recovery[&Recovery::Retry], 3);
/// assert_eq!(stats.by_severity[&Severity::Warning], 3);
///
/// handler.clear_history();
/// assert!(handler.history().is_empty());
/// assert_eq!(handler.statistics().total_errors, 0);
/// ```
pub struct ErrorHandler {
    max_history: usize,
    state: Mutex<State>,
}

struct State {
    history: VecDeque<ErrorRecord>,
    stats: ErrorStats,
}

impl State {
    const fn new() -> Self {
        State { history: VecDeque::new(), stats: ErrorStats::new() }
    }

    /// Appends `record` to a history of at most `max` (> 0) records; returns the evicted one.
    fn keep(&mut self, record: ErrorRecord, max: usize) -> Option<ErrorRecord> {
        let evicted = if self.history.len() >= max { self.history.pop_front() } else { None };
        self.history.push_back(record);
        evicted
    }
}

impl ErrorHandler {
    /// A handler keeping the last `max_history` records. With `0` it keeps no history but
    /// still counts every error in its [`statistics`](Self::statistics).
    ///
    /// `const`, so a handler can be a `static`:
    ///
    /// ```
    /// use resilience::{ErrorContext, ErrorHandler};
    ///
    /// static IMPORT_ERRORS: ErrorHandler = ErrorHandler::new(0);
    ///
    /// let error = std::io::Error::other("disk on fire");
    /// IMPORT_ERRORS.handle_error(&error, ErrorContext::new());
    /// assert!(IMPORT_ERRORS.history().is_empty());
    /// assert_eq!(IMPORT_ERRORS.statistics().by_code["io::Other"], 1);
    /// ```
    pub const fn new(max_history: usize) -> Self {
        ErrorHandler { max_history, state: Mutex::new(State::new()) }
    }

    /// The process-wide handler, keeping 1,000 records. `#[protected]` records into it unless
    /// given `errors = ...`, and `health::check` reads it.
    ///
    /// ```
    /// assert_eq!(resilience::ErrorHandler::global().max_history(), 1000);
    /// ```
    pub fn global() -> &'static ErrorHandler {
        static GLOBAL: ErrorHandler = ErrorHandler::new(1000);
        &GLOBAL
    }

    /// How many records the history keeps.
    pub fn max_history(&self) -> usize {
        self.max_history
    }

    /// Records `error`, classified through its [`Classify`] impl, and returns the record.
    ///
    /// `message` is the error's `Display` text, `chain` the `Display` text of each error in its
    /// `source()` chain.
    ///
    /// ```
    /// use resilience::{Classify, ErrorContext, ErrorHandler};
    ///
    /// let handler = ErrorHandler::new(10);
    /// let error = resilience::Error::Locked { operation_id: "nightly".into() };
    /// let record = handler.handle_error(&error, ErrorContext::new().with("attempt", 1));
    /// assert_eq!(record.error_code, "resilience::Locked");
    /// assert_eq!(record.message, error.to_string());
    /// ```
    pub fn handle_error<E: StdError + Classify + ?Sized>(
        &self,
        error: &E,
        context: ErrorContext,
    ) -> ErrorRecord {
        self.record(ErrorRecord::new(error, error.to_string(), error.source(), context))
    }

    /// Records an error whose type is not known statically, and returns the record.
    ///
    /// It is classified as the first error, walking from `error` down its `source()` chain,
    /// that is a [`std::io::Error`] or a [`crate::Error`]. When there is none it is recorded
    /// as unclassified: code and category `"unclassified"`, severity [`Severity::Error`],
    /// recovery [`Recovery::Abort`]. `message` and `chain` are as in
    /// [`handle_error`](Self::handle_error).
    ///
    /// ```
    /// use resilience::{ErrorContext, ErrorHandler, Recovery};
    ///
    /// let handler = ErrorHandler::new(10);
    /// let error: Box<dyn std::error::Error> = "not a number".parse::<u32>().unwrap_err().into();
    /// let record = handler.handle_any(&*error, ErrorContext::new());
    /// assert_eq!(record.error_code, "unclassified");
    /// assert_eq!(record.recovery, Recovery::Abort);
    ///
    /// let io = std::io::Error::from(std::io::ErrorKind::WouldBlock);
    /// assert_eq!(handler.handle_any(&io, ErrorContext::new()).recovery, Recovery::Retry);
    /// ```
    pub fn handle_any(
        &self,
        error: &(dyn StdError + 'static),
        context: ErrorContext,
    ) -> ErrorRecord {
        let classified = find_classified(error).unwrap_or(&Unclassified);
        self.record(ErrorRecord::new(classified, error.to_string(), error.source(), context))
    }

    /// The kept records, oldest first.
    pub fn history(&self) -> Vec<ErrorRecord> {
        self.lock().history.iter().cloned().collect()
    }

    /// Empties the history and zeroes the statistics.
    pub fn clear_history(&self) {
        let old = std::mem::replace(&mut *self.lock(), State::new());
        drop(old); // outside the lock
    }

    /// Counts of every error handled since creation or the last
    /// [`clear_history`](Self::clear_history), including those no longer in the history.
    ///
    /// ```
    /// use resilience::{ErrorContext, ErrorHandler, Recovery, Severity};
    /// use std::io::{Error, ErrorKind};
    ///
    /// let handler = ErrorHandler::new(1);
    /// handler.handle_error(&Error::from(ErrorKind::TimedOut), ErrorContext::new());
    /// handler.handle_error(&Error::from(ErrorKind::NotFound), ErrorContext::new());
    ///
    /// let stats = handler.statistics();
    /// assert_eq!(stats.total_errors, 2);
    /// assert_eq!(stats.by_category["io"], 2);
    /// assert_eq!(stats.by_recovery[&Recovery::Retry], 1);
    /// assert_eq!(stats.by_severity[&Severity::Error], 1);
    /// ```
    pub fn statistics(&self) -> ErrorStats {
        self.lock().stats.clone()
    }

    /// Counts and keeps `record`, then logs it. The clone is made, and an evicted record
    /// dropped, outside the lock.
    fn record(&self, record: ErrorRecord) -> ErrorRecord {
        let kept = (self.max_history > 0).then(|| record.clone());
        let evicted = {
            let mut state = self.lock();
            state.stats.count(&record);
            kept.and_then(|kept| state.keep(kept, self.max_history))
        };
        drop(evicted);
        log(&record);
        record
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections cannot leave the state half-updated, so a poisoned lock (a panic
        // elsewhere while it was held) is safe to keep using.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `ErrorHandler::new(1000)`, like [`ErrorHandler::global`].
impl Default for ErrorHandler {
    fn default() -> Self {
        ErrorHandler::new(1000)
    }
}

impl fmt::Debug for ErrorHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ErrorHandler")
            .field("max_history", &self.max_history)
            .field("kept", &state.history.len())
            .field("total_errors", &state.stats.total_errors)
            .finish()
    }
}

/// What [`ErrorHandler::handle_any`] records when it finds nothing it can classify.
struct Unclassified;

impl Classify for Unclassified {
    fn recovery(&self) -> Recovery {
        Recovery::Abort
    }
    fn error_code(&self) -> Cow<'_, str> {
        Cow::Borrowed("unclassified")
    }
    fn category(&self) -> Cow<'_, str> {
        Cow::Borrowed("unclassified")
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
}

/// The outermost error in the chain whose type the runtime knows how to classify.
fn find_classified<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a dyn Classify> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        if let Some(own) = error.downcast_ref::<crate::Error>() {
            return Some(own);
        }
        next = error.source();
    }
    None
}

struct Entries<'a>(&'a [(String, String)]);

impl fmt::Display for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_entries(f, self.0)
    }
}

fn log(record: &ErrorRecord) {
    // `tracing` needs the level as a constant at each call site.
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "resilience::errors",
                $level,
                code = %record.error_code,
                category = %record.category,
                severity = %record.severity,
                recovery = %record.recovery,
                context = %Entries(&record.context),
                message = %record.message,
            )
        };
    }
    match record.severity {
        Severity::Info => event!(tracing::Level::INFO),
        Severity::Warning => event!(tracing::Level::WARN),
        Severity::Error | Severity::Critical => event!(tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::capture_events;
    use tracing::Level;

    struct Custom(Severity);

    impl fmt::Display for Custom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "custom {}", self.0)
        }
    }
    impl fmt::Debug for Custom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(self, f)
        }
    }
    impl StdError for Custom {}
    impl Classify for Custom {
        fn recovery(&self) -> Recovery {
            Recovery::Skip
        }
        fn error_code(&self) -> std::borrow::Cow<'_, str> {
            "E_CUSTOM".into()
        }
        fn category(&self) -> std::borrow::Cow<'_, str> {
            "custom".into()
        }
        fn severity(&self) -> Severity {
            self.0
        }
    }

    #[test]
    fn each_handled_error_is_one_event_at_its_severity_level() {
        let handler = ErrorHandler::new(0);
        let logged = capture_events(|| {
            for severity in [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical]
            {
                let context = ErrorContext::new().with("item", 4).with("file", "a.csv");
                handler.handle_error(&Custom(severity), context);
            }
        });

        let levels: Vec<Level> = logged.iter().map(|l| l.level).collect();
        assert_eq!(levels, [Level::INFO, Level::WARN, Level::ERROR, Level::ERROR]);
        assert!(logged.iter().all(|l| l.target == "resilience::errors"));
        let field = |name: &str| logged[1].field(name);
        assert_eq!(field("code"), Some("E_CUSTOM"));
        assert_eq!(field("category"), Some("custom"));
        assert_eq!(field("severity"), Some("warning"));
        assert_eq!(field("recovery"), Some("skip"));
        assert_eq!(field("context"), Some("item=4, file=a.csv"));
        assert_eq!(field("message"), Some("custom warning"));
    }
}
