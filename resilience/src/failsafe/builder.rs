//! [`FailsafeBuilder`]: the settings of a store, and where its directory is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manager::{FailsafeManager, Inner};
use super::store::Store;
use super::{Durability, files};
use crate::error::{Error, Result};

/// Builds a [`FailsafeManager`].
///
/// ```
/// use resilience::{Durability, FailsafeManager};
/// # let tmp = tempfile::tempdir()?;
/// let manager = FailsafeManager::builder()
///     .dir(tmp.path().join("store"))
///     .max_checkpoints(10)
///     .durability(Durability::Buffered)
///     .build()?;
/// assert!(manager.operations()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FailsafeBuilder {
    dir: Option<PathBuf>,
    max_checkpoints: usize,
    max_backups: usize,
    durability: Durability,
    coarse_timestamps: Option<std::time::Duration>,
}

impl Default for FailsafeBuilder {
    fn default() -> Self {
        FailsafeBuilder {
            dir: None,
            max_checkpoints: 5,
            max_backups: 5,
            durability: Durability::Sync,
            coarse_timestamps: None,
        }
    }
}

/// Most checkpoints kept per operation.
const MAX_CHECKPOINTS: usize = 65_535;

impl FailsafeBuilder {
    /// The store directory (created if missing). Default: `$RESILIENCE_DIR`, else `./.resilience`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Checkpoints kept per operation (default 5, from 1 to 65,535).
    pub fn max_checkpoints(mut self, n: usize) -> Self {
        self.max_checkpoints = n;
        self
    }

    /// Backups kept per source file (default 5, at least 1).
    pub fn max_backups(mut self, n: usize) -> Self {
        self.max_backups = n;
        self
    }

    /// Default [`Durability::Sync`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Listings treat file timestamps as this coarse (tests of whole-second file systems).
    #[cfg(test)]
    pub(crate) fn coarse_timestamps(mut self, granularity: std::time::Duration) -> Self {
        self.coarse_timestamps = Some(granularity);
        self
    }

    /// Checks the settings and opens (creating it `0700` if needed) the store directory.
    ///
    /// The directory is resolved now to its canonical absolute path: a later change of the
    /// working directory changes nothing, and managers of one directory, however its path is
    /// spelled, share what they know of its files.
    pub fn build(mut self) -> Result<FailsafeManager> {
        let dir = absolute_dir(self.dir.take().unwrap_or_else(default_dir))?;
        files::create_private_dir(&dir)?;
        let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
        self.dir = Some(dir);
        self.build_unopened()
    }

    pub(crate) fn build_unopened(self) -> Result<FailsafeManager> {
        if !(1..=MAX_CHECKPOINTS).contains(&self.max_checkpoints) {
            return Err(Error::InvalidConfig(format!(
                "`max_checkpoints` must be between 1 and {MAX_CHECKPOINTS}, got {}",
                self.max_checkpoints
            )));
        }
        if self.max_backups == 0 {
            return Err(Error::InvalidConfig("`max_backups` must be at least 1, got 0".into()));
        }
        let dir = absolute_dir(self.dir.unwrap_or_else(default_dir))?;
        Ok(FailsafeManager {
            inner: Arc::new(Inner {
                store: Store::new(
                    dir.clone(),
                    self.max_checkpoints,
                    self.durability,
                    self.coarse_timestamps,
                ),
                dir,
                max_checkpoints: self.max_checkpoints,
                max_backups: self.max_backups,
                durability: self.durability,
            }),
        })
    }
}

fn absolute_dir(dir: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&dir).map_err(|e| Error::io(&dir, e))
}

fn default_dir() -> PathBuf {
    std::env::var_os("RESILIENCE_DIR").map_or_else(|| PathBuf::from(".resilience"), PathBuf::from)
}
