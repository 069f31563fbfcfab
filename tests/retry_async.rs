//! The async twins of the retry layer (feature `tokio`). No test sleeps for real: delays go to
//! a `ManualSleeper`, installed on a manager or scoped around a future.
#![cfg(feature = "tokio")]

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use resilience::{Classify, ManualSleeper, NoSleep, Recovery, RetryConfig, RetryManager, Severity};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn manual() -> (ManualSleeper, RetryManager) {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().async_sleeper(clock.clone()).build();
    (clock, manager)
}

#[derive(Debug, Clone, PartialEq)]
enum NetError {
    Timeout(u32),
    Refused,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Timeout(n) => write!(f, "timeout #{n}"),
            NetError::Refused => f.write_str("refused"),
        }
    }
}

impl Classify for NetError {
    fn recovery(&self) -> Recovery {
        match self {
            NetError::Timeout(_) => Recovery::Retry,
            NetError::Refused => Recovery::Abort,
        }
    }
    fn error_code(&self) -> Cow<'_, str> {
        "NetError".into()
    }
    fn category(&self) -> Cow<'_, str> {
        "network".into()
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
}

#[tokio::test]
async fn async_retries_follow_the_schedule_and_return_the_last_error() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(3).initial_delay(ms(5)).jitter(0.0);
    let mut attempts = 0;
    let result: Result<(), NetError> = manager
        .retry_with_backoff_async("async-fail", &config, || {
            attempts += 1;
            let attempt = attempts;
            async move {
                tokio::task::yield_now().await;
                Err(NetError::Timeout(attempt))
            }
        })
        .await;
    assert_eq!(result, Err(NetError::Timeout(4)));
    assert_eq!(clock.sleeps(), [5, 10, 20].map(ms));
    let stats = manager.statistics();
    assert_eq!((stats.failed, stats.total_attempts, stats.total_retries), (1, 4, 3));
}

#[tokio::test]
async fn async_success_after_retries_and_on_the_first_attempt() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(5).jitter(0.0);
    let mut attempts = 0;
    let value = manager
        .retry_with_backoff_async("async-eventually", &config, || {
            attempts += 1;
            let attempt = attempts;
            async move { if attempt < 3 { Err(NetError::Timeout(attempt)) } else { Ok(attempt) } }
        })
        .await;
    assert_eq!(value, Ok(3));
    assert_eq!(clock.take_sleeps(), [ms(100), ms(200)]);

    let first = manager
        .retry_with_backoff_async("async-fast", &config, || async { Ok::<_, NetError>(1) })
        .await;
    assert_eq!(first, Ok(1));
    assert!(clock.sleeps().is_empty());
    let fast = &manager.statistics().by_operation["async-fast"];
    assert_eq!((fast.successful, fast.total_attempts, fast.total_retries), (1, 1, 0));
}

#[tokio::test]
async fn async_predicate_and_classification_stop_at_once() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(4).jitter(0.0);

    let mut attempts = 0;
    let result: Result<(), NetError> = manager
        .retry_with_backoff_if_async(
            "async-predicate",
            &config,
            || {
                attempts += 1;
                let error = if attempts == 1 { NetError::Timeout(1) } else { NetError::Refused };
                async move { Err(error) }
            },
            |e| matches!(e, NetError::Timeout(_)),
        )
        .await;
    assert_eq!((result, attempts), (Err(NetError::Refused), 2));

    let mut attempts = 0;
    let result: Result<(), NetError> = manager
        .retry_classified_async("async-classified", &config, || {
            attempts += 1;
            async { Err(NetError::Refused) }
        })
        .await;
    assert_eq!((result, attempts), (Err(NetError::Refused), 1));

    let mut attempts = 0;
    let result: Result<(), NetError> = manager
        .retry_classified_async("async-classified", &config, || {
            attempts += 1;
            let attempt = attempts;
            async move { Err(NetError::Timeout(attempt)) }
        })
        .await;
    assert_eq!((result, attempts), (Err(NetError::Timeout(5)), 5));
    assert_eq!(clock.sleeps().len(), 1 + 4);
}

#[tokio::test]
async fn async_max_elapsed_runs_on_the_sleepers_clock() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(10)
        .initial_delay(Duration::from_secs(1))
        .jitter(0.0)
        .max_elapsed(Duration::from_secs(4));
    let mut starts = Vec::new();
    let result: Result<(), NetError> = manager
        .retry_with_backoff_async("async-budget", &config, || {
            starts.push(clock.elapsed());
            clock.advance(Duration::from_millis(500)); // each attempt takes half a second
            let attempt = starts.len() as u32;
            async move { Err(NetError::Timeout(attempt)) }
        })
        .await;
    // Starts at 0, 1.5 s and 4 s (exactly on the budget); the next would start at 8.5 s.
    assert_eq!(starts, [ms(0), ms(1500), ms(4000)]);
    assert_eq!(result, Err(NetError::Timeout(3)));
}

struct Connection {
    sent: Vec<String>,
    failures_left: u32,
}

impl Connection {
    /// `#[retry(max = 3, initial = "10ms", jitter = 0.0)]` on an `async fn(&mut self)`, as
    /// expanded: the async closure borrows `self` mutably in every attempt, so the expansion
    /// uses the borrowing entry point.
    async fn send(&mut self, msg: &str) -> Result<usize, NetError> {
        static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
            "retry_async::Connection::send",
            ::resilience::RetryConfig::new(3)
                .initial_delay(::core::time::Duration::from_millis(10))
                .jitter(0.0),
        );
        ::resilience::__private::retry_if_async_borrowing(
            &__SITE,
            async || {
                tokio::task::yield_now().await;
                if self.failures_left > 0 {
                    self.failures_left -= 1;
                    return Err(NetError::Timeout(self.failures_left));
                }
                self.sent.push(msg.to_owned());
                Ok(msg.len())
            },
            |__e| {
                use ::resilience::__private::Retryable as _;
                ::resilience::__private::Probe(__e).verdict()
            },
        )
        .await
    }
}

#[tokio::test]
async fn async_site_borrows_self_mutably_and_reports_into_the_global_manager() {
    let clock = ManualSleeper::new();
    let mut connection = Connection { sent: Vec::new(), failures_left: 2 };
    let sent = resilience::with_async_sleeper(&clock, connection.send("hello")).await;
    assert_eq!(sent, Ok(5));
    assert_eq!(connection.sent, ["hello"]);
    assert_eq!(clock.sleeps(), [ms(10), ms(20)]);

    let site = &RetryManager::global().statistics().by_operation["retry_async::Connection::send"];
    assert!(site.successful >= 1 && site.total_retries >= 2, "{site:?}");
}

/// `#[retry(name = "retry_async::always_refused", max = 2, jitter = 0.0, when = ..)]` with a
/// predicate that retries every error, on an `async fn` whose body only needs copies of its
/// arguments: `retry_if_async` with `|| async move`.
async fn always_refused(port: u16) -> Result<(), NetError> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "retry_async::always_refused",
        ::resilience::RetryConfig::new(2).jitter(0.0),
    );
    ::resilience::__private::retry_if_async(
        &__SITE,
        || async move {
            tokio::task::yield_now().await;
            if port == 0 { Ok(()) } else { Err(NetError::Refused) }
        },
        |_| ::resilience::__private::Verdict::Retry,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_async_sleeper_follows_a_spawned_future_across_worker_threads() {
    let clock = ManualSleeper::new();
    let task = tokio::spawn(resilience::with_async_sleeper(&clock, always_refused(8080)));
    let result = task.await.expect("the task does not panic");
    assert_eq!(result, Err(NetError::Refused));
    assert_eq!(clock.sleeps(), [ms(100), ms(200)]);
    let site = &RetryManager::global().statistics().by_operation["retry_async::always_refused"];
    assert_eq!((site.failed, site.total_attempts), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_retry_futures_can_be_spawned() {
    static MANAGER: std::sync::OnceLock<RetryManager> = std::sync::OnceLock::new();
    let manager = MANAGER.get_or_init(|| RetryManager::builder().async_sleeper(NoSleep).build());
    let config = RetryConfig::new(2);
    let handles: Vec<_> = (0..4u32)
        .map(|task| {
            tokio::spawn(async move {
                let mut attempts = 0;
                manager
                    .retry_with_backoff_async("spawned", &config, || {
                        attempts += 1;
                        let attempt = attempts;
                        async move {
                            tokio::task::yield_now().await;
                            if attempt < 2 { Err(NetError::Timeout(task)) } else { Ok(task) }
                        }
                    })
                    .await
            })
        })
        .collect();
    for (task, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.expect("the task does not panic"), Ok(task as u32));
    }
    let spawned = &manager.statistics().by_operation["spawned"];
    assert_eq!((spawned.successful, spawned.total_retries), (4, 4));
}

fn still_zero(value: &u32) -> bool {
    *value == 0
}

fn refused_is_fine(error: NetError) -> Result<u32, NetError> {
    match error {
        NetError::Refused => Ok(u32::MAX),
        other => Err(other),
    }
}

/// `when_ok` and `fallback` on an `async fn` (the `|| async move` form).
#[resilience::retry(max = 3, initial = "10ms", jitter = 0.0, when_ok = still_zero, fallback = refused_is_fine)]
async fn counter(replies: &std::sync::Mutex<Vec<Result<u32, NetError>>>) -> Result<u32, NetError> {
    replies.lock().unwrap().pop().unwrap_or(Ok(0))
}

struct Poller {
    replies: Vec<Result<u32, NetError>>,
}

impl Poller {
    /// The same on an `async fn(&mut self)` (the async-closure form).
    #[resilience::retry(max = 3, initial = "10ms", jitter = 0.0, when_ok = still_zero, fallback = refused_is_fine)]
    async fn poll(&mut self) -> Result<u32, NetError> {
        self.replies.pop().unwrap_or(Ok(0))
    }
}

#[tokio::test]
async fn async_sites_take_when_ok_and_fallback() {
    let clock = ManualSleeper::new();
    let replies = std::sync::Mutex::new(vec![Ok(7), Ok(0), Err(NetError::Timeout(1))]);
    let result = resilience::with_async_sleeper(&clock, counter(&replies)).await;
    assert_eq!(result, Ok(7));
    assert_eq!(clock.take_sleeps(), [ms(10), ms(20)]);

    let mut poller = Poller { replies: vec![Err(NetError::Refused), Ok(0)] };
    let result = resilience::with_async_sleeper(&clock, poller.poll()).await;
    assert_eq!(result, Ok(u32::MAX), "Refused is not retried: the fallback answers");
    assert_eq!(clock.take_sleeps(), [ms(10)]);
}
