//! [`Summary`]: the figures of the three layers and the health verdict, for a job's last lines.

use std::fmt::{self, Display, Formatter};

use crate::errors::{ErrorHandler, ErrorStats};
use crate::failsafe::{FailsafeManager, FailsafeStats};
use crate::health;
use crate::retry::{RetryManager, RetryStats};
use crate::{HealthReport, HealthThresholds};

/// A snapshot of the checkpoint store, the error handler and the retry manager, with the
/// health verdict; its `Display` is a compact block of four lines:
///
/// ```text
/// Operations: 2 operations (0 running, 1 paused, 0 failed, 1 completed); 1 backup (4.0 KiB)
/// Retries:    60 calls: 54 succeeded, 6 failed; 68 attempts, 8 retries; success rate 90.0%
/// Errors:     14 errors: 8 warning, 6 error; E_DAMAGED ×6, E_TIMEOUT ×8
/// Health:     Healthy
/// ```
///
/// ```
/// use resilience::{ErrorHandler, FailsafeManager, RetryManager, Summary};
/// # let tmp = tempfile::tempdir()?;
/// let store = FailsafeManager::open(tmp.path())?;
/// let summary = Summary::new(&store, &ErrorHandler::new(10), &RetryManager::new());
/// assert_eq!(
///     summary.to_string(),
///     "Operations: 0 operations (0 running, 0 paused, 0 failed, 0 completed); 0 backups (0 B)\n\
///      Retries:    0 calls: 0 succeeded, 0 failed; 0 attempts, 0 retries; success rate 100.0%\n\
///      Errors:     0 errors\n\
///      Health:     Healthy"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Summary {
    /// The store's figures, or why they could not be read.
    pub failsafe: Result<FailsafeStats, String>,
    /// The error handler's figures.
    pub errors: ErrorStats,
    /// The retry manager's figures.
    pub retry: RetryStats,
    /// The verdict with the default thresholds.
    pub health: HealthReport,
}

impl Summary {
    /// The figures of `failsafe`, `errors` and `retry` now, and their health with
    /// [`HealthThresholds::default`].
    pub fn new(failsafe: &FailsafeManager, errors: &ErrorHandler, retry: &RetryManager) -> Self {
        Summary {
            failsafe: failsafe.statistics().map_err(|error| error.to_string()),
            errors: errors.statistics(),
            retry: retry.statistics(),
            health: health::check_with(&HealthThresholds::default(), failsafe, errors, retry),
        }
    }

    /// [`Summary::new`] of the process-wide managers.
    pub fn global() -> Self {
        Summary::new(FailsafeManager::global(), ErrorHandler::global(), RetryManager::global())
    }
}

impl Display for Summary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.failsafe {
            Ok(stats) => writeln!(f, "Operations: {stats}")?,
            Err(error) => writeln!(f, "Operations: cannot be read: {error}")?,
        }
        writeln!(f, "Retries:    {}", self.retry)?;
        writeln!(f, "Errors:     {}", self.errors)?;
        write!(f, "Health:     {}", self.health)
    }
}
