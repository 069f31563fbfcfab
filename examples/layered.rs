//! Layered protection, as in the failsafe guide: `#[retry]` inside `#[checkpointed]` inside
//! `#[protected]`, all three reporting to one log through `tracing`.
//!
//! ```text
//! cargo run --example layered        # writes data/ledger.json and data/layered.log
//! ```
//!
//! The job converts four months of transactions to euros with rates from a flaky feed:
//! - `#[retry]` on `RateFeed::rate` absorbs the feed's occasional timeouts;
//! - `#[checkpointed]` on `convert_month` saves each month's progress every 5 days;
//! - `#[protected]` on `close_books` backs up the ledger, records every error it returns and,
//!   when the feed is down for longer than the inner retries last, retries the whole job,
//!   which resumes from the checkpoints: the done months are not redone, and the interrupted
//!   month goes on from its last checkpoint.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use resilience::{
    Checkpointable, Classify, ErrorHandler, FailsafeManager, RetryManager, checkpointed, protected,
    retry,
};
use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::LevelFilter;

/// The months to convert and their number of days.
const MONTHS: [(&str, u32); 4] =
    [("2026-01", 31), ("2026-02", 28), ("2026-03", 31), ("2026-04", 30)];

/// The feed is down for this day's rate for 5 calls in a row: longer than `rate`'s 4 attempts.
const OUTAGE: (&str, u32, u32) = ("2026-03", 12, 5);

#[derive(Debug, thiserror::Error, Classify)]
enum LedgerError {
    #[error("rate feed timed out for {month}-{day:02}")]
    #[classify(retry, code = "E_FEED_TIMEOUT", category = "network", severity = "warning")]
    FeedTimeout { month: String, day: u32 },

    #[error("I/O error on `{}`", path.display())]
    #[classify(abort, code = "E_IO", category = "storage", severity = "critical")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[classify(transparent)]
    Resilience(#[from] resilience::Error),
}

/// An exchange-rate service: every 9th call times out, and one day's rate is out for a while.
#[derive(Default)]
struct RateFeed {
    calls: Cell<u32>,
    outage_calls: Cell<u32>,
}

impl RateFeed {
    /// The EUR rate of one day. Timeouts are retried up to 3 times, after about 10, 20, 40 ms.
    #[retry(max = 3, initial = "10ms", name = "fetch-rate")]
    fn rate(&self, month: &str, day: u32) -> Result<f64, LedgerError> {
        self.calls.set(self.calls.get() + 1);
        let (outage_month, outage_day, outage_len) = OUTAGE;
        let in_outage = month == outage_month && day == outage_day;
        if in_outage && self.outage_calls.replace(self.outage_calls.get() + 1) < outage_len {
            return Err(LedgerError::FeedTimeout { month: month.to_owned(), day });
        }
        if !in_outage && self.calls.get().is_multiple_of(9) {
            return Err(LedgerError::FeedTimeout { month: month.to_owned(), day });
        }
        Ok(0.9 + f64::from(day) / 1000.0)
    }
}

/// A month's conversion progress.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct MonthProgress {
    #[checkpoint(cursor)]
    days_done: u64,
    #[checkpoint(total)]
    days: u64,
    eur_cents: i64,
}

/// Converts one month's transactions, day by day, with a checkpoint every 5 days.
#[checkpointed(manager = store, every = 5, id = "convert-{month}", name = "Convert month")]
fn convert_month(
    store: &FailsafeManager,
    month: &str,
    days: u32,
    feed: &RateFeed,
    progress: &mut MonthProgress,
) -> Result<i64, LedgerError> {
    // `progress` has been restored from the checkpoint already if this month was interrupted.
    if progress.days_done > 0 {
        println!("  {month}: resuming at day {} from its checkpoint", progress.days_done + 1);
    }
    progress.days = days.into();
    for day in 1..=days {
        let rate = feed.rate(month, day)?;
        progress.eur_cents += (transactions_cents(month, day) as f64 * rate).round() as i64;
    }
    Ok(progress.eur_cents)
}

/// The closed months and their totals.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Books {
    #[checkpoint(cursor)]
    months_done: u64,
    totals: BTreeMap<String, i64>,
}

/// Converts every month and writes `{dir}/ledger.json`, under the full protection:
/// - the ledger is backed up at entry, and restored if the job fails for good;
/// - a checkpoint after every month (the default `every = 1`);
/// - every `Err` is recorded with the global `ErrorHandler`, with the operation and the item;
/// - a retryable `Err` (here: the feed still down after `rate`'s retries) runs the job again
///   after 50 ms, from its last checkpoint.
#[protected(
    manager = store,
    id = "close-books",
    name = "Close the books",
    backup = "{dir}/ledger.json",
    backup_missing = "skip",
    restore_on_failure = true,
    retry(max = 2, initial = "50ms")
)]
fn close_books(
    store: &FailsafeManager,
    dir: &str,
    feed: &RateFeed,
    books: &mut Books,
) -> Result<(), LedgerError> {
    for (month, days) in MONTHS {
        let total = convert_month(store, month, days, feed, &mut MonthProgress::default())?;
        println!("  {month}: {days} days converted, {}.{:02} EUR", total / 100, total % 100);
        books.totals.insert(month.to_owned(), total);
        write_ledger(Path::new(dir), books)?;
    }
    Ok(())
}

/// A month's transactions on one day, in cents: made up, but the same on every run.
fn transactions_cents(month: &str, day: u32) -> i64 {
    let m = month.bytes().fold(0i64, |h, b| h * 31 + i64::from(b)) % 97;
    10_000 + (m * 131 + i64::from(day) * 977) % 25_000
}

fn write_ledger(dir: &Path, books: &Books) -> Result<(), LedgerError> {
    let path = dir.join("ledger.json");
    let tmp = dir.join("ledger.json.tmp");
    let text = serde_json::to_string_pretty(&books.totals).expect("a map of numbers serializes");
    fs::write(&tmp, text + "\n").map_err(|source| LedgerError::Io { path: tmp.clone(), source })?;
    fs::rename(&tmp, &path).map_err(|source| LedgerError::Io { path, source })
}

fn run(data: &str) -> Result<(), LedgerError> {
    let dir = Path::new(data);
    fs::create_dir_all(dir).map_err(|source| LedgerError::Io { path: dir.into(), source })?;

    // One subscriber for the three layers: the events of `resilience::retry`,
    // `resilience::errors` and `resilience::failsafe` all go to `layered.log`.
    let log_path = dir.join("layered.log");
    let log = File::create(&log_path)
        .map_err(|source| LedgerError::Io { path: log_path.clone(), source })?;
    tracing_subscriber::fmt()
        .with_writer(Mutex::new(log))
        .with_max_level(LevelFilter::DEBUG)
        .init();
    println!("Closing the books for {} months; the log is {}", MONTHS.len(), log_path.display());

    let store_dir =
        std::env::var_os("RESILIENCE_DIR").map_or_else(|| dir.join(".resilience"), PathBuf::from);
    let store = FailsafeManager::open(store_dir)?;
    let feed = RateFeed::default();
    let mut books = Books::default();
    let result = close_books(&store, data, &feed, &mut books);

    match &result {
        Ok(()) => println!("Ledger written to {}", dir.join("ledger.json").display()),
        Err(e) => println!("The books could not be closed: {e}"),
    }
    let retries = RetryManager::global().statistics();
    for (name, op) in &retries.by_operation {
        println!(
            "Retries of {name}: {} calls, {} retries, {} gave up",
            op.total_operations, op.total_retries, op.failed
        );
    }
    let history = ErrorHandler::global().history();
    println!("Errors recorded: {}", history.len());
    for record in &history {
        let context: Vec<String> = record.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {} ({:?}, {:?}): {} [{}]",
            record.error_code,
            record.severity,
            record.recovery,
            record.message,
            context.join(", ")
        );
    }
    print_log_summary(&log_path);
    result
}

/// Counts the log's lines per `resilience` target.
fn print_log_summary(log_path: &Path) {
    let Ok(text) = fs::read_to_string(log_path) else { return };
    let count = |target: &str| text.lines().filter(|l| l.contains(target)).count();
    println!(
        "The log {} has {} lines: {} from resilience::retry, {} from resilience::errors, \
         {} from resilience::failsafe",
        log_path.display(),
        text.lines().count(),
        count("resilience::retry:"),
        count("resilience::errors:"),
        count("resilience::failsafe:")
    );
}

const USAGE: &str = "\
usage: layered [--data DIR]

  --data DIR   where the ledger, the log and the checkpoints live (default: data);
               the checkpoint store is DIR/.resilience, or $RESILIENCE_DIR when it is set";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let data = match args.iter().map(|a| a.to_str()).collect::<Vec<_>>().as_slice() {
        [] => "data".to_owned(),
        [Some("--data"), Some(dir)] => (*dir).to_owned(),
        [Some("-h" | "--help")] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("error: unexpected arguments {args:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
