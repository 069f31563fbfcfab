//! Health of a job, judged from the statistics of the three layers.
//!
//! [`check`] reads the global [`FailsafeManager`], [`ErrorHandler`] and [`RetryManager`] and
//! compares their figures with [`HealthThresholds::default`], the thresholds of the failsafe
//! guide. [`check_with`] takes explicit thresholds and instances. Neither ever fails: a store that
//! cannot be read is itself reported as a critical issue.
//!
//! ```
//! use resilience::{HealthStatus, health};
//!
//! let report = health::check();
//! if report.status != HealthStatus::Healthy {
//!     for issue in &report.issues {
//!         eprintln!("health: {issue}");
//!     }
//! }
//! ```

use crate::errors::ErrorHandler;
use crate::failsafe::FailsafeManager;
use crate::retry::RetryManager;
use crate::{HealthReport, HealthStatus, HealthThresholds};

/// Checks the global managers against [`HealthThresholds::default`].
pub fn check() -> HealthReport {
    check_with(
        &HealthThresholds::default(),
        FailsafeManager::global(),
        ErrorHandler::global(),
        RetryManager::global(),
    )
}

/// Checks the given managers against `thresholds`.
///
/// ```
/// use resilience::{HealthStatus, HealthThresholds, health};
/// use resilience::{ErrorHandler, FailsafeManager, RetryManager};
///
/// let dir = tempfile::tempdir()?;
/// let store = FailsafeManager::open(dir.path())?;
/// let report = health::check_with(
///     &HealthThresholds::default(),
///     &store,
///     &ErrorHandler::new(100),
///     &RetryManager::new(),
/// );
/// assert_eq!(report.status, HealthStatus::Healthy);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_with(
    thresholds: &HealthThresholds,
    failsafe: &FailsafeManager,
    errors: &ErrorHandler,
    retry: &RetryManager,
) -> HealthReport {
    let mut issues: Vec<(HealthStatus, String)> = Vec::new();

    match failsafe.statistics() {
        Ok(stats) => {
            let active = stats.checkpoints.active_operations;
            let backup_bytes = stats.backups.total_size_bytes;
            if active > thresholds.max_active_operations {
                issues.push((
                    HealthStatus::Warning,
                    format!(
                        "{} active operations (more than {})",
                        active, thresholds.max_active_operations
                    ),
                ));
            }
            if backup_bytes > thresholds.max_backup_bytes {
                issues.push((
                    HealthStatus::Warning,
                    format!(
                        "backups take {} bytes (more than {})",
                        backup_bytes, thresholds.max_backup_bytes
                    ),
                ));
            }
        }
        Err(error) => issues
            .push((HealthStatus::Critical, format!("cannot read the checkpoint store: {error}"))),
    }

    let total_errors = errors.statistics().total_errors;
    if total_errors > thresholds.max_total_errors {
        issues.push((
            HealthStatus::Warning,
            format!("{} errors recorded (more than {})", total_errors, thresholds.max_total_errors),
        ));
    }

    let success_rate = retry.statistics().success_rate;
    if success_rate < thresholds.min_retry_success_rate {
        issues.push((
            HealthStatus::Critical,
            format!(
                "retry success rate {:.2} (below {:.2})",
                success_rate, thresholds.min_retry_success_rate
            ),
        ));
    }

    issues.sort_by_key(|(status, _)| std::cmp::Reverse(*status));
    let status = issues.first().map_or(HealthStatus::Healthy, |(status, _)| *status);
    if status != HealthStatus::Healthy {
        tracing::warn!(target: "resilience::failsafe", ?status, issues = ?issues, "health check");
    }
    HealthReport { status, issues: issues.into_iter().map(|(_, text)| text).collect() }
}
