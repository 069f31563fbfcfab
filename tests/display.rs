//! `Display` of the states, the health verdict, the statistics and `Summary`.

use std::time::Duration;

use resilience::{
    Error, ErrorContext, ErrorHandler, FailsafeManager, HealthReport, HealthStatus, ProcessState,
    RetryConfig, RetryManager, Summary,
};

#[test]
fn states_and_health_read_as_words() {
    let states = [
        ProcessState::Initialized,
        ProcessState::Running,
        ProcessState::Paused,
        ProcessState::Completed,
        ProcessState::Failed,
    ];
    let words: Vec<String> = states.iter().map(ToString::to_string).collect();
    assert_eq!(words, ["Initialized", "Running", "Paused", "Completed", "Failed"]);
    assert_eq!(format!("[{:<8}]", ProcessState::Paused), "[Paused  ]");
    assert_eq!(HealthStatus::Critical.to_string(), "Critical");
    let healthy = HealthReport { status: HealthStatus::Healthy, issues: vec![] };
    assert_eq!(healthy.to_string(), "Healthy");
    let report = HealthReport {
        status: HealthStatus::Critical,
        issues: vec!["retry success rate 0.50 (below 0.80)".into(), "101 errors recorded".into()],
    };
    assert_eq!(
        report.to_string(),
        "Critical: retry success rate 0.50 (below 0.80); 101 errors recorded"
    );
}

#[test]
fn statistics_use_plurals() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path().join("store")).unwrap();
    store.save_checkpoint("a", "A", ProcessState::Paused, 0.5, &()).unwrap();
    let stats = store.statistics().unwrap();
    assert_eq!(
        stats.to_string(),
        "1 operation (0 running, 1 paused, 0 failed, 0 completed); 0 backups (0 B)"
    );
    let data = tmp.path().join("data.bin");
    std::fs::write(&data, vec![0u8; 3 << 20]).unwrap();
    store.create_backup(&data).unwrap();
    store.create_backup(&data).unwrap();
    store.save_checkpoint("b", "B", ProcessState::Running, 0.5, &()).unwrap();
    assert_eq!(
        store.statistics().unwrap().to_string(),
        "2 operations (1 running, 1 paused, 0 failed, 0 completed); 2 backups (6.0 MiB)"
    );

    let retry = RetryManager::new();
    let config = RetryConfig::new(2).initial_delay(Duration::from_millis(1));
    let _ = retry.retry_with_backoff("a", &config, || Err::<(), _>("down"));
    let _ = retry.retry_with_backoff("b", &config, || Ok::<_, ()>(()));
    assert_eq!(
        retry.statistics().to_string(),
        "2 calls: 1 succeeded, 1 failed; 4 attempts, 2 retries; success rate 50.0%"
    );

    let errors = ErrorHandler::new(10);
    errors.handle_error(&Error::Locked { operation_id: "a".into() }, ErrorContext::new());
    assert_eq!(errors.statistics().to_string(), "1 error: 1 warning; resilience::Locked ×1");
    errors.handle_error(&Error::Paused { operation_id: "a".into() }, ErrorContext::new());
    errors.handle_error(&Error::Paused { operation_id: "b".into() }, ErrorContext::new());
    assert_eq!(
        errors.statistics().to_string(),
        "3 errors: 1 warning, 2 info; resilience::Paused ×2, resilience::Locked ×1"
    );
}

#[test]
fn a_summary_shows_the_three_layers_and_the_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    store.save_checkpoint("a", "A", ProcessState::Completed, 1.0, &()).unwrap();
    let errors = ErrorHandler::new(10);
    let retry = RetryManager::new();
    let config = RetryConfig::new(1).initial_delay(Duration::from_millis(1));
    let _ = retry.retry_with_backoff("a", &config, || Err::<(), _>("down"));
    let summary = Summary::new(&store, &errors, &retry).to_string();
    assert_eq!(
        summary,
        "Operations: 1 operation (0 running, 0 paused, 0 failed, 1 completed); 0 backups (0 B)\n\
         Retries:    1 call: 0 succeeded, 1 failed; 2 attempts, 1 retry; success rate 0.0%\n\
         Errors:     0 errors\n\
         Health:     Critical: retry success rate 0.00 (below 0.80)"
    );
}
