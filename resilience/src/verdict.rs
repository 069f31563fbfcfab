//! The verdict of a health check: [`HealthStatus`], [`HealthThresholds`], [`HealthReport`].
//!
//! The types live at the crate root; the checks that produce them are in [`crate::health`].

use serde::Serialize;

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

/// Limits above (or below) which [`health::check_with`](crate::health::check_with) reports an issue.
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
