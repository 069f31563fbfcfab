//! Health of a job, judged from the statistics of the three layers.
//!
//! [`check`] reads the global [`FailsafeManager`], [`ErrorHandler`] and [`RetryManager`] and
//! compares their figures with [`HealthThresholds::default`], the thresholds of the failsafe
//! guide. [`check_with`] takes explicit thresholds and instances. Neither ever fails: a store that
//! cannot be read is itself reported as a critical issue.
//!
//! ```
//! use resilience::health::{self, HealthStatus};
//!
//! let report = health::check();
//! if report.status != HealthStatus::Healthy {
//!     for issue in &report.issues {
//!         eprintln!("health: {issue}");
//!     }
//! }
//! ```

use serde::Serialize;

use crate::errors::ErrorHandler;
use crate::failsafe::FailsafeManager;
use crate::retry::RetryManager;

/// Overall verdict of a [`HealthReport`], ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum HealthStatus {
    /// Every figure is within its threshold.
    Healthy,
    /// Something needs attention; the job can go on.
    Warning,
    /// The job is failing or its state cannot be read.
    Critical,
}

/// Limits above (or below) which [`check_with`] reports an issue.
///
/// The defaults are the guide's: more than 10 active operations or more than 100 recorded errors
/// is a warning, a retry success rate under 0.8 is critical, more than 1 GiB of backups is a
/// warning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthThresholds {
    /// Operations whose last state is `Initialized` or `Running`; more is a warning.
    pub max_active_operations: u64,
    /// Errors recorded by the error handler; more is a warning.
    pub max_total_errors: u64,
    /// Successful fraction of retried operations; less is critical.
    pub min_retry_success_rate: f64,
    /// Total size of all backups in bytes; more is a warning.
    pub max_backup_bytes: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            max_active_operations: 10,
            max_total_errors: 100,
            min_retry_success_rate: 0.8,
            max_backup_bytes: 1 << 30,
        }
    }
}

/// The result of a health check: a verdict and one sentence per issue found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst status among the issues; `Healthy` when there are none.
    pub status: HealthStatus,
    /// What is wrong, one sentence each (with the figure and its threshold), worst first.
    pub issues: Vec<String>,
}

impl HealthReport {
    /// `true` when no issue was found.
    pub fn is_healthy(&self) -> bool {
        self.status == HealthStatus::Healthy
    }
}

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
/// use resilience::health::{self, HealthStatus, HealthThresholds};
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
