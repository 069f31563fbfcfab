//! Behaviour of the retry layer: delays, limits, predicates, classification, statistics and
//! the per-call-site runtime that `#[retry]` expands to. No test sleeps for real.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use resilience::{
    Classify, Error, ManualSleeper, NoSleep, OperationRetryStats, Recovery, RetryConfig,
    RetryManager, Severity,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn manual() -> (ManualSleeper, RetryManager) {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().sleeper(clock.clone()).build();
    (clock, manager)
}

/// Tests that use the global manager run one at a time, since one of them asserts that
/// `clear_history` on the global manager zeroes every counter.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, PartialEq)]
enum JobError {
    Timeout(u32),
    BadRecord,
    DiskFull,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Timeout(n) => write!(f, "timeout #{n}"),
            JobError::BadRecord => f.write_str("bad record"),
            JobError::DiskFull => f.write_str("disk full"),
        }
    }
}

impl Classify for JobError {
    fn recovery(&self) -> Recovery {
        match self {
            JobError::Timeout(_) => Recovery::Retry,
            JobError::BadRecord => Recovery::Skip,
            JobError::DiskFull => Recovery::Abort,
        }
    }
    fn error_code(&self) -> Cow<'_, str> {
        "JobError".into()
    }
    fn category(&self) -> Cow<'_, str> {
        "job".into()
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
}

/// An error type that does not implement `Classify`.
#[derive(Debug, PartialEq)]
struct Plain(u32);

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plain failure {}", self.0)
    }
}

#[test]
fn defaults_match_the_documented_values() {
    let config = RetryConfig::default();
    assert_eq!(config, RetryConfig::new(3));
    assert_eq!(config.max_retries(), 3);
    assert_eq!(config.get_initial_delay(), ms(100));
    assert_eq!(config.get_max_delay(), Duration::from_secs(30));
    assert_eq!(config.get_multiplier(), 2.0);
    assert_eq!(config.get_jitter(), 0.5);
    assert_eq!(config.get_max_elapsed(), None);
}

#[test]
fn without_jitter_the_delays_are_the_exact_exponential_sequence() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(5).initial_delay(ms(10)).multiplier(3.0).jitter(0.0);
    let result: Result<(), Plain> = manager.retry_with_backoff("seq", &config, || Err(Plain(1)));
    assert_eq!(result, Err(Plain(1)));
    let expected = [10, 30, 90, 270, 810].map(ms);
    assert_eq!(clock.sleeps(), expected);
    assert_eq!(clock.elapsed(), ms(1210));
    assert_eq!(config.delays().collect::<Vec<_>>(), expected);
    assert_eq!(config.delays().len(), 5);
}

#[test]
fn the_base_delay_is_capped_at_max_delay() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(8).initial_delay(ms(100)).max_delay(ms(500)).jitter(0.0);
    let _: Result<(), Plain> = manager.retry_with_backoff("cap", &config, || Err(Plain(0)));
    assert_eq!(clock.sleeps(), [100, 200, 400, 500, 500, 500, 500, 500].map(ms));

    // A huge multiplier or retry count saturates at the cap instead of overflowing.
    let wild = RetryConfig::new(u32::MAX).multiplier(1e300).max_delay(Duration::from_secs(60));
    let mut delays = wild.jitter(0.0).delays();
    assert_eq!(delays.next(), Some(ms(100)));
    assert_eq!(delays.nth(1000), Some(Duration::from_secs(60)));
}

#[test]
fn jitter_stays_within_its_bounds_and_spreads_over_them() {
    let config = RetryConfig::new(6).initial_delay(ms(100)).max_delay(ms(1000)).jitter(0.5);
    let mut lowest = [f64::MAX; 6];
    let mut highest = [0f64; 6];
    for seed in 0..2000 {
        for (n, delay) in config.delays_seeded(seed).enumerate() {
            let base = [100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0][n];
            let got = delay.as_secs_f64() * 1000.0;
            assert!(got >= base * 0.5 && got <= base * 1.5, "delay {n} = {got} ms, base {base}");
            lowest[n] = lowest[n].min(got / base);
            highest[n] = highest[n].max(got / base);
        }
    }
    for n in 0..6 {
        assert!(lowest[n] < 0.55 && highest[n] > 1.45, "draws {n} span {lowest:?}..{highest:?}");
    }
}

#[test]
fn a_seed_pins_the_jitter() {
    let config = RetryConfig::new(4);
    assert_eq!(
        config.delays_seeded(42).collect::<Vec<_>>(),
        config.delays_seeded(42).collect::<Vec<_>>()
    );
    let run = || {
        let clock = ManualSleeper::new();
        let manager = RetryManager::builder().sleeper(clock.clone()).seed(7).build();
        let _: Result<(), Plain> = manager.retry_with_backoff("seeded", &config, || Err(Plain(0)));
        clock.sleeps()
    };
    let first = run();
    assert_eq!(first.len(), 4);
    assert_eq!(first, run());
}

#[test]
fn max_retries_n_makes_n_plus_one_attempts_and_returns_the_last_error() {
    let (clock, manager) = manual();
    for max in [0, 1, 4] {
        let mut attempts = 0;
        let result: Result<(), JobError> =
            manager.retry_with_backoff("count", &RetryConfig::new(max).jitter(0.0), || {
                attempts += 1;
                Err(JobError::Timeout(attempts))
            });
        assert_eq!(attempts, max + 1);
        assert_eq!(result, Err(JobError::Timeout(max + 1)));
    }
    assert_eq!(clock.sleeps().len(), 5);
    let stats = manager.statistics();
    assert_eq!((stats.total_operations, stats.failed, stats.total_attempts), (3, 3, 8));
}

#[test]
fn a_later_success_is_returned_and_counted_with_its_retries() {
    let (clock, manager) = manual();
    let mut attempts = 0;
    let result = manager.retry_with_backoff("eventually", &RetryConfig::new(5).jitter(0.0), || {
        attempts += 1;
        if attempts < 3 { Err(Plain(attempts)) } else { Ok("done") }
    });
    assert_eq!(result, Ok("done"));
    assert_eq!(clock.sleeps(), [ms(100), ms(200)]);
    let stats = manager.statistics();
    assert_eq!(
        stats.by_operation["eventually"],
        OperationRetryStats {
            total_operations: 1,
            successful: 1,
            failed: 0,
            total_attempts: 3,
            total_retries: 2,
            budget_exhausted: 0,
            success_rate: 1.0,
        }
    );
}

#[test]
fn no_attempt_starts_after_max_elapsed() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(10)
        .initial_delay(Duration::from_secs(1))
        .jitter(0.0)
        .max_elapsed(Duration::from_secs(10));
    let mut starts = Vec::new();
    let result: Result<(), Plain> = manager.retry_with_backoff("budget", &config, || {
        starts.push(clock.elapsed());
        clock.advance(Duration::from_secs(1)); // each attempt takes a second
        Err(Plain(starts.len() as u32))
    });
    // Starts at 0s, 2s, 5s and 10s (exactly on the budget); the next would start at 19s.
    assert_eq!(starts, [0, 2, 5, 10].map(Duration::from_secs));
    assert_eq!(result, Err(Plain(4)));
    assert_eq!(clock.sleeps(), [1, 2, 4].map(Duration::from_secs));
}

#[test]
fn max_elapsed_counts_the_first_attempt() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(3).jitter(0.0).max_elapsed(Duration::from_secs(5));
    let mut attempts = 0;
    let result: Result<(), Plain> = manager.retry_with_backoff("slow-first", &config, || {
        attempts += 1;
        clock.advance(Duration::from_secs(5)); // the first attempt uses the whole budget
        Err(Plain(attempts))
    });
    assert_eq!(result, Err(Plain(1)));
    assert!(clock.sleeps().is_empty());
}

#[test]
fn a_rejected_error_is_returned_at_once() {
    let (clock, manager) = manual();
    let mut attempts = 0;
    let result: Result<(), JobError> = manager.retry_with_backoff_if(
        "predicate",
        &RetryConfig::new(5),
        || {
            attempts += 1;
            Err(if attempts < 3 { JobError::Timeout(attempts) } else { JobError::DiskFull })
        },
        |e| matches!(e, JobError::Timeout(_)),
    );
    assert_eq!(result, Err(JobError::DiskFull));
    assert_eq!(attempts, 3);
    assert_eq!(clock.sleeps().len(), 2);
    assert_eq!(manager.statistics().by_operation["predicate"].failed, 1);
}

#[test]
fn classified_errors_retry_only_on_recovery_retry() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(2).jitter(0.0);
    for (error, expected_attempts) in
        [(JobError::Timeout(0), 3), (JobError::BadRecord, 1), (JobError::DiskFull, 1)]
    {
        let mut attempts = 0;
        let result: Result<(), JobError> = manager.retry_classified("classified", &config, || {
            attempts += 1;
            Err(error.clone())
        });
        assert_eq!(result, Err(error.clone()));
        assert_eq!(attempts, expected_attempts, "{error}");
    }
    assert_eq!(clock.sleeps(), [ms(100), ms(200)]);
}

#[test]
fn the_success_path_neither_sleeps_nor_records_a_retry() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(3).max_elapsed(Duration::from_secs(1));
    for _ in 0..10 {
        assert_eq!(manager.retry_with_backoff("fast", &config, || Ok::<_, Plain>(1)), Ok(1));
        assert_eq!(
            manager.retry_with_backoff("fast", &RetryConfig::new(3), || Ok::<_, Plain>(2)),
            Ok(2)
        );
    }
    assert!(clock.sleeps().is_empty());
    let fast = &manager.statistics().by_operation["fast"];
    assert_eq!((fast.total_operations, fast.total_attempts, fast.total_retries), (20, 20, 0));
    assert_eq!(fast.success_rate, 1.0);
}

#[test]
fn statistics_add_up_exactly_across_eight_threads() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let config = RetryConfig::new(2);
    std::thread::scope(|scope| {
        for thread in 0..8u32 {
            let manager = &manager;
            let config = &config;
            scope.spawn(move || {
                for i in 0..250u32 {
                    let name = if i % 2 == 0 { "even" } else { "odd" };
                    // i % 4 == 0: first-try success; 1: success after one retry;
                    // 2: failure after all retries; 3: failure that is not retried.
                    let mut attempt = 0;
                    let _ = manager.retry_with_backoff_if(
                        name,
                        config,
                        || {
                            attempt += 1;
                            match (i % 4, attempt) {
                                (0, _) | (1, 2) => Ok(thread),
                                (3, _) => Err(JobError::DiskFull),
                                _ => Err(JobError::Timeout(attempt)),
                            }
                        },
                        |e| *e != JobError::DiskFull,
                    );
                }
            });
        }
    });
    let stats = manager.statistics();
    // Per thread and 250 calls: 63 first-try, 63 one retry, 62 two retries, 62 not retried.
    assert_eq!(stats.total_operations, 2000);
    assert_eq!(stats.successful, 8 * (63 + 63));
    assert_eq!(stats.failed, 8 * (62 + 62));
    assert_eq!(stats.total_retries, 8 * (63 + 2 * 62));
    assert_eq!(stats.total_attempts, stats.total_operations + stats.total_retries);
    assert_eq!(stats.successful + stats.failed, stats.total_operations);
    assert_eq!(stats.success_rate, 1008.0 / 2000.0);
    let even = &stats.by_operation["even"]; // i % 4 in {0, 2}
    let odd = &stats.by_operation["odd"]; // i % 4 in {1, 3}
    assert_eq!((even.successful, even.failed, even.total_retries), (8 * 63, 8 * 62, 8 * 62 * 2));
    assert_eq!((odd.successful, odd.failed, odd.total_retries), (8 * 63, 8 * 62, 8 * 63));
    assert_eq!(stats.by_operation.len(), 2);
}

#[test]
fn clear_history_zeroes_every_counter() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let _: Result<(), Plain> =
        manager.retry_with_backoff("a", &RetryConfig::new(1), || Err(Plain(0)));
    assert_eq!(
        manager.retry_with_backoff("b", &RetryConfig::new(1), || Ok::<_, Plain>(())),
        Ok(())
    );
    assert_eq!(manager.statistics().total_operations, 2);
    manager.clear_history();
    let stats = manager.statistics();
    assert_eq!((stats.total_operations, stats.total_attempts, stats.total_retries), (0, 0, 0));
    assert_eq!(stats.success_rate, 1.0);
    // Counting starts again from zero.
    assert_eq!(
        manager.retry_with_backoff("b", &RetryConfig::new(1), || Ok::<_, Plain>(())),
        Ok(())
    );
    assert_eq!(manager.statistics().by_operation["b"].successful, 1);
}

#[test]
fn an_unused_manager_reports_a_perfect_success_rate() {
    let stats = RetryManager::new().statistics();
    assert_eq!((stats.total_operations, stats.success_rate), (0, 1.0));
    assert!(stats.by_operation.is_empty());
}

#[test]
fn validation_errors_name_the_setting() {
    let cases = [
        (RetryConfig::default().jitter(1.5), "jitter"),
        (RetryConfig::default().jitter(-0.1), "jitter"),
        (RetryConfig::default().jitter(f64::NAN), "jitter"),
        (RetryConfig::default().multiplier(0.5), "multiplier"),
        (RetryConfig::default().multiplier(f64::INFINITY), "multiplier"),
        (RetryConfig::default().initial_delay(ms(10)).max_delay(ms(5)), "initial_delay"),
    ];
    for (config, setting) in cases {
        match config.validate() {
            Err(Error::InvalidConfig(message)) => {
                assert!(message.starts_with(setting), "{message:?} should name {setting}")
            }
            other => panic!("{config:?}: expected InvalidConfig, got {other:?}"),
        }
    }
    assert!(RetryConfig::new(0).jitter(0.0).multiplier(1.0).validate().is_ok());
    assert!(RetryConfig::new(1).jitter(1.0).initial_delay(Duration::ZERO).validate().is_ok());
}

#[test]
fn out_of_range_values_are_clamped_at_run_time() {
    let (clock, manager) = manual();
    let config = RetryConfig::new(2).jitter(7.0).multiplier(-3.0).initial_delay(ms(100));
    let _: Result<(), Plain> = manager.retry_with_backoff("clamped", &config, || Err(Plain(0)));
    for delay in clock.sleeps() {
        // jitter clamped to 1 and multiplier to 1: each delay within [0, 200 ms].
        assert!(delay <= ms(200), "{delay:?}");
    }
    assert_eq!(clock.sleeps().len(), 2);
}

#[test]
fn scoped_sleepers_stay_on_their_thread() {
    let _global = global_lock();
    let config = RetryConfig::new(3).jitter(0.0).initial_delay(ms(1));
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let config = &config;
            scope.spawn(move || {
                let clock = ManualSleeper::new();
                let config = config.initial_delay(ms(thread + 1));
                let result: Result<(), Plain> = resilience::with_sleeper(&clock, || {
                    RetryManager::global().retry_with_backoff("scoped", &config, || Err(Plain(0)))
                });
                assert!(result.is_err());
                let base = thread + 1;
                assert_eq!(clock.sleeps(), [base, 2 * base, 4 * base].map(ms));
            });
        }
    });
}

#[test]
fn scoped_sleepers_nest_and_restore() {
    let _global = global_lock();
    let outer = ManualSleeper::new();
    let inner = ManualSleeper::new();
    let config = RetryConfig::new(1).jitter(0.0);
    let fail = || -> Result<(), Plain> {
        RetryManager::global().retry_with_backoff("nested", &config, || Err(Plain(0)))
    };
    resilience::with_sleeper(&outer, || {
        let _ = fail();
        resilience::with_sleeper(&inner, || {
            let _ = fail();
        });
        let _ = fail();
    });
    assert_eq!(outer.sleeps().len(), 2);
    assert_eq!(inner.sleeps().len(), 1);
}

#[test]
fn statistics_are_serializable_values() {
    fn assert_value<T: serde::Serialize + Clone + PartialEq + fmt::Debug + Send + Sync>() {}
    assert_value::<resilience::RetryStats>();
    assert_value::<OperationRetryStats>();
}

#[test]
fn managers_configs_and_sleepers_are_shareable_across_threads() {
    fn assert_shareable<T: Send + Sync + 'static>() {}
    assert_shareable::<RetryManager>();
    assert_shareable::<RetryConfig>();
    assert_shareable::<ManualSleeper>();
    assert_shareable::<resilience::__private::RetrySite>();
    let clock = ManualSleeper::new();
    let clone = clock.clone();
    std::thread::spawn(move || resilience::Sleeper::sleep(&clone, ms(5))).join().unwrap();
    assert_eq!(clock.sleeps(), [ms(5)], "clones share one clock");
}

// --- The per-call-site runtime, written exactly as `#[retry]` expands ---------------------

/// `#[retry(max = 2, initial = "10ms", jitter = 0.0)]` on a function returning a Classify error.
fn classified_site(attempts: &mut u32, error: JobError) -> Result<u32, JobError> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::classified_site"),
        ::resilience::RetryConfig::new(2)
            .initial_delay(::core::time::Duration::from_millis(10))
            .jitter(0.0),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || {
            *attempts += 1;
            if *attempts > 2 { Ok(*attempts) } else { Err(error.clone()) }
        },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict()
        },
    )
}

/// The same attribute on a function whose error type does not implement Classify.
fn plain_site(attempts: &mut u32) -> Result<u32, Plain> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::plain_site"),
        ::resilience::RetryConfig::new(2)
            .initial_delay(::core::time::Duration::from_millis(10))
            .jitter(0.0),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || {
            *attempts += 1;
            Err(Plain(*attempts))
        },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict()
        },
    )
}

/// Inside a generic function the error type is a parameter: every error is retried, even
/// when the concrete type implements Classify.
fn generic_site<E: fmt::Debug>(attempts: &mut u32, make: impl Fn() -> E) -> Result<(), E> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "tests::generic_site",
        ::resilience::RetryConfig::new(1).jitter(0.0),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || {
            *attempts += 1;
            Err(make())
        },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict()
        },
    )
}

/// `#[retry(max = 1, name = "site-with-when", when = is_timeout)]`, the predicate form.
fn predicate_site(attempts: &mut u32) -> Result<(), JobError> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "site-with-when",
        ::resilience::RetryConfig::new(1).jitter(0.0),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || {
            *attempts += 1;
            Err(JobError::Timeout(*attempts))
        },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict_when(is_timeout(__e))
        },
    )
}

fn is_timeout(e: &JobError) -> bool {
    matches!(e, JobError::Timeout(_))
}

/// `#[retry(name = "shared-name")]` retrying every error (`retry`, no predicate).
fn shared_name_site(fail: bool) -> Result<(), Plain> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "shared-name",
        ::resilience::RetryConfig::new(1).jitter(0.0),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || if fail { Err(Plain(0)) } else { Ok(()) },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict()
        },
    )
}

fn classified_name() -> String {
    format!("{}::classified_site", module_path!())
}

#[test]
fn expansion_with_a_classify_error_retries_only_recovery_retry() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        let mut attempts = 0;
        assert_eq!(classified_site(&mut attempts, JobError::Timeout(0)), Ok(3));
        assert_eq!(clock.take_sleeps(), [ms(10), ms(20)]);

        for error in [JobError::BadRecord, JobError::DiskFull] {
            let mut attempts = 0;
            assert_eq!(classified_site(&mut attempts, error.clone()), Err(error));
            assert_eq!(attempts, 1);
        }
        assert!(clock.sleeps().is_empty());
    });
    let site = &RetryManager::global().statistics().by_operation[&classified_name()];
    assert!(site.successful >= 1 && site.failed >= 2, "{site:?}");
}

#[test]
fn expansion_with_a_plain_error_retries_every_error() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        let mut attempts = 0;
        assert_eq!(plain_site(&mut attempts), Err(Plain(3)));
        assert_eq!(attempts, 3);
        assert_eq!(clock.sleeps(), [ms(10), ms(20)]);
    });
}

#[test]
fn expansion_inside_a_generic_function_retries_every_error() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        let mut attempts = 0;
        assert_eq!(generic_site(&mut attempts, || JobError::DiskFull), Err(JobError::DiskFull));
        assert_eq!(attempts, 2);
    });
}

#[test]
fn expansion_with_when_uses_the_predicate() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        let mut attempts = 0;
        assert_eq!(predicate_site(&mut attempts), Err(JobError::Timeout(2)));
        assert_eq!(attempts, 2);
    });
}

#[test]
fn site_statistics_appear_in_the_global_statistics_merged_by_name() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        RetryManager::global().clear_history();
        for _ in 0..5 {
            assert_eq!(shared_name_site(false), Ok(()));
        }
        assert_eq!(shared_name_site(true), Err(Plain(0)));
        let _: Result<(), Plain> =
            RetryManager::global()
                .retry_with_backoff("shared-name", &RetryConfig::new(2), || Err(Plain(1)));
    });
    assert_eq!(clock.sleeps().len(), 1 + 2);
    let stats = RetryManager::global().statistics();
    assert_eq!(
        stats.by_operation["shared-name"],
        OperationRetryStats {
            total_operations: 7,
            successful: 5,
            failed: 2,
            total_attempts: 10,
            total_retries: 3,
            budget_exhausted: 0,
            success_rate: 5.0 / 7.0,
        }
    );
    assert_eq!(stats.total_attempts, stats.total_operations + stats.total_retries);

    RetryManager::global().clear_history();
    let cleared = RetryManager::global().statistics();
    assert_eq!(cleared.by_operation["shared-name"].total_operations, 0);
    assert_eq!(cleared.total_operations, 0);
}

#[test]
fn site_success_path_counts_without_sleeping() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    let before = RetryManager::global()
        .statistics()
        .by_operation
        .get(&classified_name())
        .map_or(0, |s| s.successful);
    resilience::with_sleeper(&clock, || {
        for _ in 0..100 {
            let mut attempts = 2; // the body succeeds on its first run
            assert_eq!(classified_site(&mut attempts, JobError::DiskFull), Ok(3));
        }
    });
    assert!(clock.sleeps().is_empty());
    let site = &RetryManager::global().statistics().by_operation[&classified_name()];
    assert_eq!(site.successful, before + 100);
}

// --- The attribute itself, over this runtime ---------------------------------------------

#[resilience::retry(max = 2, initial = "10ms", jitter = 0.0, name = "tests::attribute")]
fn attribute_flaky(attempts: &mut u32, succeed_on: u32) -> Result<u32, Plain> {
    *attempts += 1;
    if *attempts >= succeed_on { Ok(*attempts) } else { Err(Plain(*attempts)) }
}

#[test]
fn the_attribute_retries_through_the_scoped_sleeper() {
    let _global = global_lock();
    let clock = ManualSleeper::new();
    resilience::with_sleeper(&clock, || {
        let mut attempts = 0;
        assert_eq!(attribute_flaky(&mut attempts, 3), Ok(3));
        let mut attempts = 0;
        assert_eq!(attribute_flaky(&mut attempts, 10), Err(Plain(3)));
        let mut attempts = 0;
        assert_eq!(attribute_flaky(&mut attempts, 1), Ok(1));
    });
    assert_eq!(clock.sleeps(), [10, 20, 10, 20].map(ms));
    assert!(RetryManager::global().statistics().by_operation.contains_key("tests::attribute"));
}

/// `#[retry(max = 10, initial = "1s", jitter = 0.0, max_elapsed = "5s")]`, each attempt
/// taking one second on the scoped clock.
fn budget_site(clock: &ManualSleeper, starts: &mut Vec<Duration>) -> Result<(), Plain> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "tests::budget_site",
        ::resilience::RetryConfig::new(10)
            .initial_delay(::core::time::Duration::from_secs(1))
            .jitter(0.0)
            .max_elapsed(::core::time::Duration::from_secs(5)),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || {
            starts.push(clock.elapsed());
            clock.advance(Duration::from_secs(1));
            Err(Plain(starts.len() as u32))
        },
        |__e| {
            use ::resilience::__private::Retryable as _;
            ::resilience::__private::Probe(__e).verdict()
        },
    )
}

#[test]
fn a_site_with_max_elapsed_measures_from_the_first_attempt_on_the_scoped_clock() {
    let _global = global_lock();
    for _ in 0..2 {
        // The first run registers the site, the second takes the registered path.
        let clock = ManualSleeper::new();
        let mut starts = Vec::new();
        let result = resilience::with_sleeper(&clock, || budget_site(&clock, &mut starts));
        // Starts at 0 s, 2 s and 5 s (exactly on the budget); the next would start at 10 s.
        assert_eq!(starts, [0, 2, 5].map(Duration::from_secs));
        assert_eq!(result, Err(Plain(3)));
        assert_eq!(clock.sleeps(), [1, 2].map(Duration::from_secs));
    }
}
