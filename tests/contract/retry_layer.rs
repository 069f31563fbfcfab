//! Retry layer: RetryConfig, RetryManager, RetryStats.

use super::*;

fn manual() -> (ManualSleeper, RetryManager) {
    let clock = ManualSleeper::new();
    let manager = RetryManager::builder().sleeper(clock.clone()).build();
    (clock, manager)
}

#[test]
fn retry_config_builder_chain_takes_every_setting() {
    let max_retries: u32 = 4;
    let config = RetryConfig::new(max_retries)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .multiplier(3.0)
        .jitter(0.0)
        .max_elapsed(Duration::from_secs(60));
    assert!(config.validate().is_ok());

    let (clock, manager) = manual();
    let result: Result<(), String> =
        manager.retry_with_backoff("config-chain", &config, || Err("down".to_string()));
    assert_eq!(result, Err("down".to_string()));
    // 10ms, then ×3 = 30ms, then capped at max_delay = 50ms.
    assert_eq!(clock.sleeps(), [10, 30, 50, 50].map(Duration::from_millis));
}

#[test]
fn retry_config_default_is_new_3_100ms_30s_2_0_5() {
    let expected = RetryConfig::new(3)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(30))
        .multiplier(2.0)
        .jitter(0.5);
    assert_eq!(RetryConfig::default(), expected);
    assert!(RetryConfig::default().validate().is_ok());

    // Behaviour of the default: 3 retries, delays 100ms·2^k each within ±50%.
    let (clock, manager) = manual();
    let mut attempts = 0;
    let result: Result<(), &str> =
        manager.retry_with_backoff("config-default", &RetryConfig::default(), || {
            attempts += 1;
            Err("down")
        });
    assert_eq!(result, Err("down"));
    assert_eq!(attempts, 4);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (k, delay) in sleeps.iter().enumerate() {
        let base = 100.0 * 2f64.powi(k as i32);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((base * 0.5 - 1e-6..=base * 1.5 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

#[test]
fn retry_config_without_max_elapsed_is_unbounded_in_time() {
    // `max_elapsed` unset by default: a long schedule runs every attempt.
    let config = RetryConfig::new(12).jitter(0.0);
    let (_clock, manager) = manual();
    let mut attempts = 0;
    let _: Result<(), &str> = manager.retry_with_backoff("no-budget", &config, || {
        attempts += 1;
        Err("down")
    });
    assert_eq!(attempts, 13);
}

#[test]
fn invalid_retry_config_is_invalid_config_from_validate() {
    for config in [
        RetryConfig::new(3).jitter(1.5),
        RetryConfig::new(3).jitter(-0.1),
        RetryConfig::new(3).multiplier(f64::NAN),
        RetryConfig::new(3)
            .initial_delay(Duration::from_secs(60))
            .max_delay(Duration::from_secs(1)),
    ] {
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig(..))),
            "{config:?} should be invalid"
        );
    }
}

#[test]
fn retry_with_backoff_makes_max_plus_one_attempts_and_returns_the_last_error() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let mut calls = 0;
    let result: Result<u32, String> =
        manager.retry_with_backoff("exhaust", &RetryConfig::new(3), || {
            calls += 1;
            Err(format!("failure {calls}"))
        });
    assert_eq!(result, Err("failure 4".to_string()));

    let mut calls = 0;
    let result: Result<u32, String> =
        manager.retry_with_backoff("recover", &RetryConfig::new(3), || {
            calls += 1;
            if calls < 3 { Err("transient".into()) } else { Ok(7) }
        });
    assert_eq!((result, calls), (Ok(7), 3));
}

#[test]
fn retry_delays_are_drawn_within_the_jitter_band() {
    let config = RetryConfig::new(6).initial_delay(Duration::from_millis(100)).jitter(0.25);
    let (clock, manager) = manual();
    let _: Result<(), &str> = manager.retry_with_backoff("jitter-band", &config, || Err("x"));
    for (k, delay) in clock.sleeps().iter().enumerate() {
        let d = (100.0 * 2f64.powi(k as i32)).min(30_000.0);
        let ms = delay.as_secs_f64() * 1000.0;
        assert!((d * 0.75 - 1e-6..=d * 1.25 + 1e-6).contains(&ms), "delay {k}: {ms}ms");
    }
}

#[test]
fn no_attempt_starts_after_max_elapsed() {
    let config = RetryConfig::new(10)
        .initial_delay(Duration::from_millis(100))
        .jitter(0.0)
        .max_elapsed(Duration::from_millis(250));
    let (clock, manager) = manual();
    let mut attempts = 0u32;
    let _: Result<(), &str> = manager.retry_with_backoff("budget", &config, || {
        attempts += 1;
        Err("down")
    });
    // Attempts at 0ms and 100ms; the third would start at 300ms > 250ms.
    assert_eq!(attempts, 2);
    assert!(clock.elapsed() <= Duration::from_millis(250));
}

#[test]
fn retry_with_backoff_if_returns_rejected_errors_at_once() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let mut calls = 0;
    let result: Result<(), io::Error> = manager.retry_with_backoff_if(
        "reject",
        &RetryConfig::new(5),
        || {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::NotFound))
        },
        |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
    );
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(calls, 1);

    let mut calls = 0;
    let result: Result<(), io::Error> = manager.retry_with_backoff_if(
        "accept",
        &RetryConfig::new(2),
        || {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::TimedOut))
        },
        |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
    );
    assert!(result.is_err());
    assert_eq!(calls, 3);
}

#[test]
fn retry_stats_fields_and_success_rate() {
    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let empty: RetryStats = manager.statistics();
    assert_eq!(empty.success_rate, 1.0, "1.0 when nothing ran");
    assert_eq!(empty.total_operations, 0);

    let config = RetryConfig::new(2);
    let _: Result<u8, &str> = manager.retry_with_backoff("op-a", &config, || Ok(1)); // first try
    let mut n = 0;
    let _: Result<u8, &str> = manager.retry_with_backoff("op-a", &config, || {
        n += 1;
        if n == 1 { Err("once") } else { Ok(2) }
    });
    let _: Result<u8, &str> = manager.retry_with_backoff("op-b", &config, || Err("never"));

    let stats = manager.statistics();
    let total_operations: u64 = stats.total_operations;
    let successful: u64 = stats.successful;
    let failed: u64 = stats.failed;
    let total_attempts: u64 = stats.total_attempts;
    let total_retries: u64 = stats.total_retries;
    let success_rate: f64 = stats.success_rate;
    let by_operation: &BTreeMap<String, OperationRetryStats> = &stats.by_operation;
    assert_eq!((total_operations, successful, failed), (3, 2, 1));
    assert_eq!(total_attempts, 1 + 2 + 3);
    assert_eq!(total_retries, 1 + 2);
    assert!((success_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(by_operation.keys().collect::<Vec<_>>(), ["op-a", "op-b"]);
    assert_eq!(by_operation["op-a"].successful, 2);
    assert_eq!(by_operation["op-b"].failed, 1);

    manager.clear_history();
    let cleared = manager.statistics();
    assert_eq!((cleared.total_operations, cleared.total_attempts), (0, 0));
    assert_eq!(cleared.success_rate, 1.0);
}

#[test]
fn retry_manager_global_is_one_instance() {
    assert!(std::ptr::eq(RetryManager::global(), RetryManager::global()));
    let _fresh: RetryManager = RetryManager::new();
}

#[test]
fn with_sleeper_swaps_the_sleeper_of_the_global_manager() {
    let clock = ManualSleeper::new();
    let config = RetryConfig::new(2).jitter(0.0);
    let result: Result<(), &str> = with_sleeper(&clock, || {
        RetryManager::global().retry_with_backoff("contract::with_sleeper", &config, || Err("x"))
    });
    assert_eq!(result, Err("x"));
    assert_eq!(clock.sleeps(), [100, 200].map(Duration::from_millis));
}
