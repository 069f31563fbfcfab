//! `#[retry]` as users see it. No test sleeps: every call runs under a `ManualSleeper`, which
//! records the delays instead of waiting.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::{Classify, RetryManager, retry};
use resilience::{ManualSleeper, with_sleeper};

#[derive(Debug, Clone, PartialEq)]
struct Flaky(u32);

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failure #{}", self.0)
    }
}

fn quiet<R>(f: impl FnOnce() -> R) -> (R, Vec<Duration>) {
    let clock = ManualSleeper::new();
    let result = with_sleeper(&clock, f);
    (result, clock.sleeps())
}

thread_local! {
    static FAILURES_LEFT: Cell<u32> = const { Cell::new(0) };
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

fn setup(failures: u32) {
    FAILURES_LEFT.set(failures);
    CALLS.set(0);
}

fn attempt() -> Result<u32, Flaky> {
    CALLS.set(CALLS.get() + 1);
    match FAILURES_LEFT.get() {
        0 => Ok(CALLS.get()),
        n => {
            FAILURES_LEFT.set(n - 1);
            Err(Flaky(CALLS.get()))
        }
    }
}

#[retry(max = 3, initial = "10ms", jitter = 0.0)]
fn fetch() -> Result<u32, Flaky> {
    attempt()
}

#[test]
fn succeeds_after_failures_with_backoff() {
    setup(2);
    let (result, sleeps) = quiet(fetch);
    assert_eq!(result, Ok(3));
    assert_eq!(sleeps, [10, 20].map(Duration::from_millis));
}

#[test]
fn first_try_success_does_not_sleep() {
    setup(0);
    let (result, sleeps) = quiet(fetch);
    assert_eq!(result, Ok(1));
    assert!(sleeps.is_empty());
}

#[test]
fn returns_the_last_error_when_attempts_run_out() {
    setup(10);
    let (result, sleeps) = quiet(fetch);
    assert_eq!(result, Err(Flaky(4)), "max = 3 means 4 attempts");
    assert_eq!(CALLS.get(), 4);
    assert_eq!(sleeps.len(), 3);
}

#[test]
fn question_mark_and_early_return_keep_working() {
    #[retry(max = 1, jitter = 0.0)]
    fn parse(text: &str) -> Result<u32, Flaky> {
        if text.is_empty() {
            return Ok(0);
        }
        let attempt = attempt()?;
        Ok(attempt + text.len() as u32)
    }
    setup(1);
    let (result, _) = quiet(|| parse("abc"));
    assert_eq!(result, Ok(5));
    setup(1);
    assert_eq!(quiet(|| parse("")).0, Ok(0));
}

fn transient(error: &Flaky) -> bool {
    error.0 < 2
}

#[retry(max = 5, when = transient)]
fn guarded() -> Result<u32, Flaky> {
    attempt()
}

#[test]
fn when_predicate_stops_on_permanent_errors() {
    setup(10);
    let (result, sleeps) = quiet(guarded);
    assert_eq!(result, Err(Flaky(2)), "the second failure is not transient");
    assert_eq!(sleeps.len(), 1);
}

#[derive(Debug, PartialEq, Classify)]
enum Classified {
    Busy,
    #[classify(skip)]
    BadInput,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[retry(max = 4)]
fn classified(errors: &[Classified]) -> Result<(), Classified> {
    CALLS.set(CALLS.get() + 1);
    match errors.get(CALLS.get() as usize - 1) {
        Some(Classified::Busy) => Err(Classified::Busy),
        Some(Classified::BadInput) => Err(Classified::BadInput),
        None => Ok(()),
    }
}

#[test]
fn classify_errors_are_retried_only_when_their_recovery_is_retry() {
    setup(0);
    let (result, _) = quiet(|| classified(&[Classified::Busy, Classified::Busy]));
    assert_eq!((result, CALLS.get()), (Ok(()), 3));
    setup(0);
    let (result, sleeps) = quiet(|| classified(&[Classified::Busy, Classified::BadInput]));
    assert_eq!((result, CALLS.get()), (Err(Classified::BadInput), 2), "Skip is not retried");
    assert_eq!(sleeps.len(), 1);
}

#[retry(max = 2, name = "retry_attr::named operation")]
fn named() -> Result<u32, Flaky> {
    attempt()
}

#[retry(max = 2)]
fn unnamed() -> Result<u32, Flaky> {
    attempt()
}

#[test]
fn statistics_use_the_name_or_the_module_path() {
    setup(1);
    assert_eq!(quiet(named).0, Ok(2));
    setup(0);
    assert_eq!(quiet(unnamed).0, Ok(1));
    let stats = RetryManager::global().statistics();
    let named = &stats.by_operation["retry_attr::named operation"];
    assert!(named.total_retries >= 1 && named.successful >= 1, "{named:?}");
    assert!(
        stats.by_operation.contains_key("retry_attr::unnamed"),
        "{:?}",
        stats.by_operation.keys()
    );
}

struct Client {
    calls: AtomicU32,
    fail_first: u32,
    sent: Vec<String>,
}

impl Client {
    fn new(fail_first: u32) -> Self {
        Client { calls: AtomicU32::new(0), fail_first, sent: Vec::new() }
    }

    fn tick(&self) -> Result<u32, Flaky> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= self.fail_first { Err(Flaky(n)) } else { Ok(n) }
    }

    #[retry(max = 3)]
    fn get(&self) -> Result<u32, Flaky> {
        self.tick()
    }

    #[retry(max = 3)]
    fn send(&mut self, message: &str) -> Result<usize, Flaky> {
        self.tick()?;
        self.sent.push(message.to_owned());
        Ok(self.sent.len())
    }

    #[retry(max = 3)]
    fn finish(self) -> Result<Vec<String>, Flaky> {
        self.tick()?;
        Ok(self.sent.clone())
    }
}

#[test]
fn methods_with_every_receiver() {
    let mut client = Client::new(1);
    assert_eq!(quiet(|| client.get()).0, Ok(2));
    client.fail_first = 3;
    assert_eq!(quiet(|| client.send("hi")).0, Ok(1));
    client.fail_first = 5;
    assert_eq!(quiet(|| client.finish()).0, Ok(vec!["hi".to_owned()]));
}

trait Store {
    fn put(&mut self, key: u8) -> Result<u8, Flaky>;
}

impl Store for Client {
    #[retry(max = 1)]
    fn put(&mut self, key: u8) -> Result<u8, Flaky> {
        self.tick().map(|_| key)
    }
}

#[test]
fn trait_impl_methods() {
    let mut client = Client::new(1);
    assert_eq!(quiet(|| client.put(7)).0, Ok(7));
}

struct Cache<T> {
    value: T,
    misses: Cell<u32>,
}

impl<T: Clone> Cache<T> {
    #[retry(max = 3)]
    fn get(&self) -> Result<T, Flaky> {
        let misses = self.misses.get();
        if misses == 0 {
            return Ok(self.value.clone());
        }
        self.misses.set(misses - 1);
        Err(Flaky(misses))
    }
}

trait Source {
    fn attempt(&self) -> Result<u32, Flaky>;

    #[retry(max = 2)]
    fn read(&self) -> Result<u32, Flaky> {
        self.attempt()
    }
}

struct Sequence;

impl Source for Sequence {
    fn attempt(&self) -> Result<u32, Flaky> {
        attempt()
    }
}

#[test]
fn generic_impls_and_default_trait_methods() {
    let cache = Cache { value: "v".to_owned(), misses: Cell::new(2) };
    assert_eq!(quiet(|| cache.get()).0, Ok("v".to_owned()));
    let cache = Cache { value: 1u8, misses: Cell::new(9) };
    assert_eq!(quiet(|| cache.get()).0, Err(Flaky(6)), "4 attempts, the last error returned");
    setup(2);
    assert_eq!(quiet(|| Sequence.read()).0, Ok(3));
}

// A generic error type without a `Classify` bound says which errors to retry (without `when`
// it is a compile error: tests/ui/retry-generic-error-without-classify.rs).
#[retry(max = 2, when = always)]
fn generic<T: Clone + Default, E: fmt::Debug>(
    value: &T,
    fail: impl Fn() -> Option<E>,
) -> Result<T, E> {
    match fail() {
        Some(e) => Err(e),
        None => Ok(value.clone()),
    }
}

#[test]
fn generic_functions() {
    setup(1);
    let flaky = || attempt().err();
    assert_eq!(quiet(|| generic(&"x".to_owned(), flaky)).0, Ok("x".to_owned()));
    assert_eq!(quiet(|| generic::<u8, Flaky>(&4, || None)).0, Ok(4));
}

#[retry(max = 1)]
fn io_alias(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[test]
fn result_aliases_and_classified_std_errors() {
    // `NotFound` classifies as Abort: one attempt, no sleep.
    let (result, sleeps) = quiet(|| io_alias(std::path::Path::new("/definitely/not/here")));
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert!(sleeps.is_empty());
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use super::*;
    use resilience::with_async_sleeper;

    #[retry(max = 3, initial = "1s", jitter = 0.0)]
    async fn fetch_async(counter: &AtomicU32, fail_first: u32) -> Result<u32, Flaky> {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::task::yield_now().await;
        if n <= fail_first { Err(Flaky(n)) } else { Ok(n) }
    }

    #[retry(max = 1)]
    async fn tenfold(counter: &AtomicU32) -> Result<u32, Flaky> {
        let n = fetch_async(counter, 0).await?;
        Ok(n * 10)
    }

    impl Client {
        #[retry(max = 2, jitter = 0.0)]
        async fn get_async(&self) -> Result<u32, Flaky> {
            self.tick()
        }

        #[retry(max = 3, jitter = 0.0)]
        async fn send_async(&mut self, message: &str) -> Result<usize, Flaky> {
            self.tick()?;
            tokio::task::yield_now().await;
            self.sent.push(message.to_owned());
            Ok(self.sent.len())
        }
    }

    #[retry(max = 3, jitter = 0.0)]
    async fn append(log: &mut Vec<u32>, counter: &AtomicU32) -> Result<usize, Flaky> {
        let n = fetch_async(counter, 0).await?;
        log.push(n);
        if log.len() < 3 { Err(Flaky(n)) } else { Ok(log.len()) }
    }

    #[tokio::test]
    async fn async_fn_borrowing_mutably() {
        let clock = ManualSleeper::new();
        let mut client = Client::new(2);
        let result = with_async_sleeper(&clock, client.send_async("hi")).await;
        assert_eq!(result, Ok(1));
        assert_eq!(client.sent, ["hi"]);
        let mut log = Vec::new();
        let counter = AtomicU32::new(0);
        let result = with_async_sleeper(&clock, append(&mut log, &counter)).await;
        assert_eq!(result, Ok(3), "every attempt saw the previous attempts' pushes");
        assert_eq!(log, [1, 2, 3]);
    }

    #[tokio::test]
    async fn async_fn_futures_are_send() {
        fn assert_send<F: Future + Send>(future: F) -> F {
            future
        }
        let counter = std::sync::Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(async move {
            let clock = ManualSleeper::new();
            with_async_sleeper(&clock, assert_send(fetch_async(&counter, 1))).await
        });
        assert_eq!(task.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn async_fn_retries_on_the_async_sleeper() {
        let clock = ManualSleeper::new();
        let counter = AtomicU32::new(0);
        let result = with_async_sleeper(&clock, fetch_async(&counter, 2)).await;
        assert_eq!(result, Ok(3));
        assert_eq!(clock.sleeps(), [1, 2].map(Duration::from_secs));
        let client = Client::new(5);
        let result = with_async_sleeper(&clock, client.get_async()).await;
        assert_eq!(result, Err(Flaky(3)));
        assert_eq!(with_async_sleeper(&clock, tenfold(&counter)).await, Ok(40));
    }
}

#[retry(max = 1)]
fn first<'a>(items: &'a [String], fallback: &str) -> Result<&'a str, Flaky> {
    items.first().map(String::as_str).ok_or(Flaky(fallback.len() as u32))
}

#[retry(max = 1)]
fn first_elided(items: &[u8]) -> Result<&u8, Flaky> {
    items.first().ok_or(Flaky(0))
}

#[test]
fn borrowed_results() {
    let items = vec!["a".to_owned()];
    assert_eq!(quiet(|| first(&items, "none")).0, Ok("a"));
    assert_eq!(quiet(|| first(&[], "none")).0, Err(Flaky(4)));
    assert_eq!(quiet(|| first_elided(&[9])).0, Ok(&9));
}

#[retry(max = 1)]
fn opaque(n: u32) -> Result<impl fmt::Display, Flaky> {
    if n == 0 { Err(Flaky(0)) } else { Ok(n * 2) }
}

#[test]
fn impl_trait_in_the_ok_type() {
    assert_eq!(quiet(|| opaque(2)).0.map(|v| v.to_string()), Ok("4".to_owned()));
    let (result, sleeps) = quiet(|| opaque(0));
    assert_eq!(result.map(|v| v.to_string()), Err(Flaky(0)));
    assert_eq!(sleeps.len(), 1);
}

/// A minimal error enum: `Debug` and `Classify`, no `Display`, no `std::error::Error`.
#[derive(Debug, PartialEq, Classify)]
enum NetError {
    Timeout,
    #[classify(abort)]
    Refused,
}

#[retry(max = 2, jitter = 0.0)]
fn connect(outcomes: &mut Vec<Result<u8, NetError>>) -> Result<u8, NetError> {
    outcomes.remove(0)
}

#[retry(max = 1, jitter = 0.0)]
fn unit_error(failures_left: &Cell<u32>) -> Result<&'static str, ()> {
    match failures_left.get() {
        0 => Ok("done"),
        n => {
            failures_left.set(n - 1);
            Err(())
        }
    }
}

#[test]
fn error_types_need_only_debug() {
    let mut outcomes = vec![Err(NetError::Timeout), Ok(7)];
    let (result, sleeps) = quiet(|| connect(&mut outcomes));
    assert_eq!((result, sleeps.len()), (Ok(7), 1));

    let mut outcomes = vec![Err(NetError::Refused), Ok(7)];
    let (result, sleeps) = quiet(|| connect(&mut outcomes));
    assert_eq!((result, sleeps.len()), (Err(NetError::Refused), 0), "abort is not retried");

    let failures_left = Cell::new(1);
    assert_eq!(quiet(|| unit_error(&failures_left)).0, Ok("done"));
    let failures_left = Cell::new(5);
    assert_eq!(quiet(|| unit_error(&failures_left)).0, Err(()));
    assert_eq!(failures_left.get(), 3, "two attempts with max = 1");
}
