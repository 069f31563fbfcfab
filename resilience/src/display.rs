//! `Display` for the states, the health verdict and the statistics of the three layers: plain
//! words and figures, with correct plurals ("1 call", "2 calls"), for a job's own output.

use std::fmt::{self, Display, Formatter};

use crate::errors::ErrorStats;
use crate::failsafe::{FailsafeStats, ProcessState};
use crate::retry::RetryStats;
use crate::{HealthReport, HealthStatus};

/// `count` followed by `one` or `many`: "1 call", "2 calls", "0 calls".
pub(crate) struct Count(pub(crate) u64, pub(crate) &'static str, pub(crate) &'static str);

impl Display for Count {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Count(count, one, many) = *self;
        write!(f, "{count} {}", if count == 1 { one } else { many })
    }
}

/// A size in bytes, in the largest binary unit that keeps it at 1 or more: "512 B", "85.5 KiB".
pub(crate) struct Bytes(pub(crate) u64);

impl Display for Bytes {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut size = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while size >= 1024.0 && unit + 1 < UNITS.len() {
            size /= 1024.0;
            unit += 1;
        }
        write!(f, "{size:.1} {}", UNITS[unit])
    }
}

/// The state's name: `Initialized`, `Running`, `Paused`, `Completed`, `Failed`.
///
/// ```
/// assert_eq!(resilience::ProcessState::Paused.to_string(), "Paused");
/// ```
impl Display for ProcessState {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ProcessState::Initialized => "Initialized",
            ProcessState::Running => "Running",
            ProcessState::Paused => "Paused",
            ProcessState::Completed => "Completed",
            ProcessState::Failed => "Failed",
        })
    }
}

/// `Healthy`, `Warning` or `Critical`.
impl Display for HealthStatus {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Warning => "Warning",
            HealthStatus::Critical => "Critical",
        })
    }
}

/// The status, then the issues, worst first.
///
/// ```
/// use resilience::{HealthReport, HealthStatus};
/// let report = HealthReport {
///     status: HealthStatus::Warning,
///     issues: vec!["12 active operations (more than 10)".into()],
/// };
/// assert_eq!(report.to_string(), "Warning: 12 active operations (more than 10)");
/// ```
impl Display for HealthReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        for (i, issue) in self.issues.iter().enumerate() {
            write!(f, "{}{issue}", if i == 0 { ": " } else { "; " })?;
        }
        Ok(())
    }
}

/// Operations by state, then the backups.
///
/// ```
/// let mut stats = resilience::FailsafeStats::default();
/// stats.checkpoints.total_operations = 3;
/// stats.checkpoints.active_operations = 1;
/// stats.checkpoints.completed = 2;
/// stats.backups.count = 1;
/// stats.backups.total_size_bytes = 1536;
/// assert_eq!(
///     stats.to_string(),
///     "3 operations (1 running, 0 paused, 0 failed, 2 completed); 1 backup (1.5 KiB)"
/// );
/// ```
impl Display for FailsafeStats {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let c = &self.checkpoints;
        write!(
            f,
            "{} ({} running, {} paused, {} failed, {} completed); {} ({})",
            Count(c.total_operations, "operation", "operations"),
            c.active_operations,
            c.paused,
            c.failed,
            c.completed,
            Count(self.backups.count, "backup", "backups"),
            Bytes(self.backups.total_size_bytes),
        )
    }
}

/// Calls, their outcome, attempts and retries, and the success rate.
///
/// ```
/// use std::time::Duration;
/// use resilience::{RetryConfig, RetryManager};
///
/// let retry = RetryManager::new();
/// let config = RetryConfig::new(3).initial_delay(Duration::from_millis(1));
/// let mut timeouts = 1;
/// let fetched = retry.retry_with_backoff("fetch", &config, || {
///     if timeouts > 0 { timeouts -= 1; Err("timeout") } else { Ok(()) }
/// });
/// assert!(fetched.is_ok());
/// assert_eq!(
///     retry.statistics().to_string(),
///     "1 call: 1 succeeded, 0 failed; 2 attempts, 1 retry; success rate 100.0%"
/// );
/// ```
impl Display for RetryStats {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} succeeded, {} failed; {}, {}; success rate {:.1}%",
            Count(self.total_operations, "call", "calls"),
            self.successful,
            self.failed,
            Count(self.total_attempts, "attempt", "attempts"),
            Count(self.total_retries, "retry", "retries"),
            self.success_rate * 100.0,
        )
    }
}

/// The count, then by severity (worst first) and by code (most frequent first).
///
/// ```
/// use resilience::{Error, ErrorContext, ErrorHandler};
/// let handler = ErrorHandler::new(10);
/// let locked = Error::Locked { operation_id: "a".into() };
/// handler.handle_error(&locked, ErrorContext::new());
/// handler.handle_error(&locked, ErrorContext::new());
/// assert_eq!(handler.statistics().to_string(), "2 errors: 2 warning; resilience::Locked ×2");
/// assert_eq!(ErrorHandler::new(10).statistics().to_string(), "0 errors");
/// ```
impl Display for ErrorStats {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Count(self.total_errors, "error", "errors"))?;
        if self.total_errors == 0 {
            return Ok(());
        }
        for (i, (severity, count)) in self.by_severity.iter().rev().enumerate() {
            write!(f, "{}{count} {severity}", if i == 0 { ": " } else { ", " })?;
        }
        let mut codes: Vec<(&String, &u64)> = self.by_code.iter().collect();
        codes.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (i, (code, count)) in codes.iter().enumerate() {
            write!(f, "{}{code} ×{count}", if i == 0 { "; " } else { ", " })?;
        }
        Ok(())
    }
}
