//! Health checks: each threshold of the guide, and an unreadable store.

use resilience::health;
use resilience::{
    Durability, ErrorContext, ErrorHandler, FailsafeManager, NoSleep, ProcessState, RetryConfig,
    RetryManager,
};
use resilience::{HealthStatus, HealthThresholds};

fn store() -> (tempfile::TempDir, FailsafeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::builder()
        .dir(tmp.path().join("store"))
        .durability(Durability::Buffered)
        .build()
        .unwrap();
    (tmp, manager)
}

fn retry_manager() -> RetryManager {
    RetryManager::builder().sleeper(NoSleep).build()
}

#[test]
fn default_thresholds_are_the_guides() {
    let t = HealthThresholds::default();
    assert_eq!(t.max_active_operations, 10);
    assert_eq!(t.max_total_errors, 100);
    assert_eq!(t.min_retry_success_rate, 0.8);
    assert_eq!(t.max_backup_bytes, 1 << 30);
}

#[test]
fn fresh_managers_are_healthy() {
    let (_tmp, store) = store();
    let report = health::check_with(
        &HealthThresholds::default(),
        &store,
        &ErrorHandler::new(10),
        &retry_manager(),
    );
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.issues);
    assert!(report.issues.is_empty());
    assert!(report.is_healthy());
}

#[test]
fn more_than_ten_running_operations_is_a_warning() {
    let (_tmp, store) = store();
    let (errors, retry) = (ErrorHandler::new(10), retry_manager());
    for i in 0..10 {
        store.save_checkpoint(&format!("op-{i}"), "op", ProcessState::Running, 0.5, &()).unwrap();
    }
    store.save_checkpoint("done", "op", ProcessState::Completed, 1.0, &()).unwrap();
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.issues);

    store.save_checkpoint("op-10", "op", ProcessState::Running, 0.5, &()).unwrap();
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Warning);
    assert_eq!(report.issues.len(), 1);
    assert!(report.issues[0].contains("11 active operations"), "{}", report.issues[0]);
}

#[test]
fn more_than_a_hundred_errors_is_a_warning() {
    let (_tmp, store) = store();
    let (errors, retry) = (ErrorHandler::new(10), retry_manager());
    let error = std::io::Error::other("disk on fire");
    for _ in 0..100 {
        errors.handle_error(&error, ErrorContext::new());
    }
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.issues);

    errors.handle_error(&error, ErrorContext::new());
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Warning);
    assert!(report.issues[0].contains("101 errors"), "{}", report.issues[0]);
}

#[test]
fn low_retry_success_rate_is_critical_and_listed_first() {
    let (_tmp, store) = store();
    let (errors, retry) = (ErrorHandler::new(10), retry_manager());
    let config = RetryConfig::new(1);
    for _ in 0..4 {
        retry.retry_with_backoff("ok", &config, || Ok::<_, std::io::Error>(())).unwrap();
    }
    let _ = retry.retry_with_backoff("bad", &config, || {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut))
    });
    // 4 of 5 succeeded: exactly at the threshold, still healthy.
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.issues);

    let _ = retry.retry_with_backoff("bad", &config, || {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut))
    });
    for i in 0..11 {
        store.save_checkpoint(&format!("op-{i}"), "op", ProcessState::Running, 0.5, &()).unwrap();
    }
    let report = health::check_with(&HealthThresholds::default(), &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Critical);
    assert_eq!(report.issues.len(), 2);
    assert!(report.issues[0].starts_with("retry success rate 0.67"), "{}", report.issues[0]);
    assert!(report.issues[1].contains("active operations"), "{}", report.issues[1]);
}

#[test]
fn backup_size_over_the_threshold_is_a_warning() {
    let (tmp, store) = store();
    let (errors, retry) = (ErrorHandler::new(10), retry_manager());
    let file = tmp.path().join("catalog.json");
    std::fs::write(&file, vec![b'x'; 4096]).unwrap();
    store.create_backup(&file).unwrap();
    let thresholds = HealthThresholds { max_backup_bytes: 4096, ..HealthThresholds::default() };
    let report = health::check_with(&thresholds, &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.issues);

    store.create_backup(&file).unwrap();
    let report = health::check_with(&thresholds, &store, &errors, &retry);
    assert_eq!(report.status, HealthStatus::Warning);
    assert!(report.issues[0].contains("8192 bytes"), "{}", report.issues[0]);
}

#[test]
fn an_unreadable_store_is_critical_not_a_panic() {
    let (tmp, store) = store();
    std::fs::remove_dir_all(tmp.path().join("store")).unwrap();
    std::fs::write(tmp.path().join("store"), b"not a directory").unwrap();
    let report = health::check_with(
        &HealthThresholds::default(),
        &store,
        &ErrorHandler::new(10),
        &retry_manager(),
    );
    assert_eq!(report.status, HealthStatus::Critical);
    assert!(report.issues[0].contains("store"), "{}", report.issues[0]);
}

#[test]
fn the_report_serializes() {
    let (_tmp, store) = store();
    let report = health::check_with(
        &HealthThresholds::default(),
        &store,
        &ErrorHandler::new(10),
        &retry_manager(),
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json, serde_json::json!({ "status": "Healthy", "issues": [] }));
}
