//! Health.

use super::*;

#[test]
fn default_thresholds_are_the_guides() {
    let literal = HealthThresholds {
        max_active_operations: 10,
        max_total_errors: 100,
        min_retry_success_rate: 0.8,
        max_backup_bytes: 1 << 30,
    };
    assert_eq!(HealthThresholds::default(), literal);
}

#[test]
fn check_with_is_healthy_on_fresh_managers() {
    let (_tmp, manager) = store();
    let report: HealthReport = health::check_with(
        &HealthThresholds::default(),
        &manager,
        &ErrorHandler::new(10),
        &RetryManager::new(),
    );
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.issues.is_empty());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "Healthy");
    assert_eq!(json["issues"], serde_json::json!([]));
}

#[test]
fn check_with_warns_on_active_operations_errors_and_backups() {
    let (tmp, manager) = store();
    let thresholds = HealthThresholds {
        max_active_operations: 1,
        max_total_errors: 1,
        min_retry_success_rate: 0.8,
        max_backup_bytes: 4,
    };
    manager.save_checkpoint("x", "X", ProcessState::Running, 0.0, &()).unwrap();
    manager.save_checkpoint("y", "Y", ProcessState::Initialized, 0.0, &()).unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "more than four bytes").unwrap();
    manager.create_backup(&file).unwrap();
    let errors = ErrorHandler::new(10);
    errors.handle_error(&ImportError::Fatal, ErrorContext::new());
    errors.handle_error(&ImportError::Fatal, ErrorContext::new());

    let report = health::check_with(&thresholds, &manager, &errors, &RetryManager::new());
    assert_eq!(report.status, HealthStatus::Warning);
    assert_eq!(report.issues.len(), 3, "{:?}", report.issues);
}

#[test]
fn check_with_is_critical_below_the_retry_success_rate() {
    let (_tmp, manager) = store();
    let retry = RetryManager::builder().sleeper(NoSleep).build();
    for _ in 0..3 {
        let _: Result<(), &str> =
            retry.retry_with_backoff("down", &RetryConfig::new(1), || Err("x"));
    }
    let _: Result<(), &str> = retry.retry_with_backoff("up", &RetryConfig::new(1), || Ok(()));
    let report =
        health::check_with(&HealthThresholds::default(), &manager, &ErrorHandler::new(10), &retry);
    assert_eq!(report.status, HealthStatus::Critical);
    assert_eq!(report.issues.len(), 1);
}

#[test]
fn check_uses_the_globals() {
    global_store();
    let report = health::check();
    assert_eq!(report.status == HealthStatus::Healthy, report.issues.is_empty());
    let _ = [HealthStatus::Healthy, HealthStatus::Warning, HealthStatus::Critical];
}
