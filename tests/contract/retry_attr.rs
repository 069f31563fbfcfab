//! #[retry].

use super::*;

static UPLOAD_CALLS: AtomicU32 = AtomicU32::new(0);

struct Photo {
    size: u64,
    fail_first: u32,
}

#[retry(max = 3, initial = "50ms")]
fn upload(photo: &Photo) -> Result<u64, ImportError> {
    let n = UPLOAD_CALLS.fetch_add(1, Ordering::Relaxed);
    if n < photo.fail_first { Err(ImportError::Timeout) } else { Ok(photo.size) }
}

#[test]
fn retry_attribute_makes_max_plus_one_attempts_with_the_initial_delay() {
    let clock = ManualSleeper::new();
    UPLOAD_CALLS.store(0, Ordering::Relaxed);
    let photo = Photo { size: 12, fail_first: 2 };
    assert_eq!(with_sleeper(&clock, || upload(&photo)).unwrap(), 12);
    assert_eq!(UPLOAD_CALLS.load(Ordering::Relaxed), 3);
    let first = clock.sleeps()[0].as_secs_f64() * 1000.0;
    assert!((25.0 - 1e-6..=75.0 + 1e-6).contains(&first), "{first}ms");

    UPLOAD_CALLS.store(0, Ordering::Relaxed);
    let photo = Photo { size: 1, fail_first: 100 };
    assert!(matches!(with_sleeper(&NoSleep, || upload(&photo)), Err(ImportError::Timeout)));
    assert_eq!(UPLOAD_CALLS.load(Ordering::Relaxed), 4);
}

static SKIPPED: AtomicU32 = AtomicU32::new(0);

#[retry]
fn damaged_upload() -> Result<(), ImportError> {
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    Err(ImportError::Damaged(1))
}

#[test]
fn retry_attribute_retries_only_classified_retry_errors() {
    assert!(with_sleeper(&NoSleep, damaged_upload).is_err());
    assert_eq!(SKIPPED.load(Ordering::Relaxed), 1);
}

static PLAIN_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 2)]
fn plain_error() -> Result<(), String> {
    PLAIN_CALLS.fetch_add(1, Ordering::Relaxed);
    Err("unclassified".into())
}

#[test]
fn retry_attribute_retries_every_error_of_an_unclassified_type() {
    assert!(with_sleeper(&NoSleep, plain_error).is_err());
    assert_eq!(PLAIN_CALLS.load(Ordering::Relaxed), 3);
}

static DEFAULT_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry]
fn with_defaults() -> Result<(), String> {
    DEFAULT_CALLS.fetch_add(1, Ordering::Relaxed);
    Err("down".into())
}

#[test]
fn retry_attribute_defaults_are_3_retries_from_100ms_doubling_with_half_jitter() {
    let clock = ManualSleeper::new();
    assert!(with_sleeper(&clock, with_defaults).is_err());
    assert_eq!(DEFAULT_CALLS.load(Ordering::Relaxed), 4);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (k, delay) in sleeps.iter().enumerate() {
        let base = 100.0 * 2f64.powi(k as i32);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((base * 0.5 - 1e-6..=base * 1.5 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

fn only_timeouts(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
}

static WHEN_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 5, when = only_timeouts, name = "contract-when")]
fn read_config(kind: io::ErrorKind) -> Result<(), io::Error> {
    WHEN_CALLS.fetch_add(1, Ordering::Relaxed);
    Err(io::Error::from(kind))
}

#[test]
fn retry_attribute_when_and_name() {
    WHEN_CALLS.store(0, Ordering::Relaxed);
    assert!(with_sleeper(&NoSleep, || read_config(io::ErrorKind::NotFound)).is_err());
    assert_eq!(WHEN_CALLS.load(Ordering::Relaxed), 1);
    // NotFound is Abort, TimedOut is Retry per Classify, but `when` decides here.
    assert!(with_sleeper(&NoSleep, || read_config(io::ErrorKind::TimedOut)).is_err());
    assert_eq!(WHEN_CALLS.load(Ordering::Relaxed), 1 + 6);
    let stats = RetryManager::global().statistics();
    let op = &stats.by_operation["contract-when"];
    assert_eq!((op.total_operations, op.failed, op.total_retries), (2, 2, 5));
}

#[retry(
    max = 2,
    initial = "250ms",
    max_delay = "30s",
    multiplier = 2.0,
    jitter = 0.0,
    max_elapsed = "1m"
)]
fn every_retry_key() -> Result<(), &'static str> {
    Err("down")
}

#[test]
fn retry_attribute_takes_every_key_and_defaults_its_name_to_module_path_fn_name() {
    let clock = ManualSleeper::new();
    assert!(with_sleeper(&clock, every_retry_key).is_err());
    assert_eq!(clock.sleeps(), [250, 500].map(Duration::from_millis));
    let stats = RetryManager::global().statistics();
    let name = format!("{}::every_retry_key", module_path!());
    assert!(stats.by_operation.contains_key(&name), "{:?}", stats.by_operation.keys());
}

#[retry(max = 1, initial = "2s", jitter = 0.0, max_elapsed = "1s")]
fn short_budget() -> Result<(), &'static str> {
    Err("down")
}

#[test]
fn retry_attribute_max_elapsed_stops_the_attempts() {
    let clock = ManualSleeper::new();
    let _ = with_sleeper(&clock, short_budget);
    assert!(clock.sleeps().is_empty(), "the retry would start after max_elapsed");
}

static BORROW_CALLS: AtomicU32 = AtomicU32::new(0);

/// A by-value argument that the body only borrows is fine under `#[retry]`.
#[retry(max = 1)]
fn measure(name: String, factor: usize) -> Result<usize, String> {
    if BORROW_CALLS.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(format!("{name} not ready"));
    }
    Ok(name.len() * factor)
}

#[test]
fn retry_attribute_accepts_by_value_arguments_the_body_only_borrows() {
    assert_eq!(with_sleeper(&NoSleep, || measure("abc".to_string(), 2)), Ok(6));
    assert_eq!(BORROW_CALLS.load(Ordering::Relaxed), 2);
}

struct Uploader {
    calls: std::cell::Cell<u32>,
    sent: Vec<u64>,
}

impl Uploader {
    #[retry(max = 2, initial = "1ms")]
    fn ping(&self) -> Result<u32, String> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() < 2 { Err("flaky".into()) } else { Ok(self.calls.get()) }
    }

    #[retry(max = 1)]
    fn send(&mut self, size: u64) -> Result<usize, String> {
        self.sent.push(size);
        if self.sent.len() < 2 { Err("flaky".into()) } else { Ok(self.sent.len()) }
    }
}

#[retry(max = 1)]
fn parse_all<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse::<T>().map_err(|_| format!("bad {text}"))
}

#[test]
fn retry_attribute_works_on_methods_and_generic_functions() {
    let mut uploader = Uploader { calls: std::cell::Cell::new(0), sent: Vec::new() };
    assert_eq!(with_sleeper(&NoSleep, || uploader.ping()), Ok(2));
    assert_eq!(with_sleeper(&NoSleep, || uploader.send(5)), Ok(2));
    assert_eq!(with_sleeper(&NoSleep, || parse_all::<u8>("7")), Ok(7));
    assert!(with_sleeper(&NoSleep, || parse_all::<u8>("x")).is_err());
}
