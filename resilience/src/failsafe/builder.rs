//! [`FailsafeBuilder`]: the settings of a store, and where its directory is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::Backend;
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
    postgres: Option<String>,
    pg_schema: String,
    lease_ttl: std::time::Duration,
}

impl Default for FailsafeBuilder {
    fn default() -> Self {
        FailsafeBuilder {
            dir: None,
            max_checkpoints: 5,
            max_backups: 5,
            durability: Durability::Sync,
            coarse_timestamps: None,
            postgres: None,
            pg_schema: "resilience".to_owned(),
            lease_ttl: std::time::Duration::from_secs(30),
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

    /// Keeps the checkpoints in PostgreSQL instead of the directory (feature `postgres`): workers
    /// on many machines then share one store, with leases and fencing tokens (see
    /// [`FailsafeManager::lock`] and [`FailsafeManager::claim_recoverable`]). The tables are
    /// created or migrated when the manager is built. Backups stay files in [`dir`](Self::dir).
    /// Every save is committed before it returns, whatever the [`Durability`].
    ///
    /// ```no_run
    /// # fn main() -> resilience::Result<()> {
    /// use std::time::Duration;
    /// use resilience::FailsafeManager;
    ///
    /// let manager = FailsafeManager::builder()
    ///     .postgres("postgres://postgres@127.0.0.1:5432/test")
    ///     .pg_schema("jobs")
    ///     .lease_ttl(Duration::from_secs(10))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.postgres = Some(url.into());
        self
    }

    /// The schema of the Postgres store's tables (default `resilience`).
    pub fn pg_schema(mut self, name: impl Into<String>) -> Self {
        self.pg_schema = name.into();
        self
    }

    /// How long a lease of the Postgres store lives without renewal (default 30 s, at least
    /// 100 ms): a worker that dies or is cut off loses its operations after this long. Leases
    /// are renewed in the background every third of it.
    pub fn lease_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The store `$RESILIENCE_STORE` names: a `postgres://` URL, or a directory.
    pub(crate) fn with_env_store(self) -> Self {
        match std::env::var("RESILIENCE_STORE") {
            Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                self.postgres(url)
            }
            _ => self,
        }
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
        if self.postgres.is_some() {
            return self.build_postgres();
        }
        let dir = absolute_dir(self.dir.take().unwrap_or_else(default_dir))?;
        files::create_private_dir(&dir)?;
        let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
        self.dir = Some(dir);
        self.build_unopened()
    }

    /// The store in PostgreSQL: connects, creates or migrates the tables. Backups stay files
    /// in `dir` (created when the first backup is taken).
    #[cfg(feature = "postgres")]
    fn build_postgres(self) -> Result<FailsafeManager> {
        self.check()?;
        let url = self.postgres.clone().expect("checked by the caller");
        if !super::pg::valid_schema(&self.pg_schema) {
            return Err(Error::InvalidConfig(format!(
                "`pg_schema` must be a plain SQL name (letters, digits, `_`, at most 63 \
                 characters, not starting with a digit), got {:?}",
                self.pg_schema
            )));
        }
        if self.lease_ttl < std::time::Duration::from_millis(100) {
            return Err(Error::InvalidConfig(format!(
                "`lease_ttl` must be at least 100ms, got {:?}",
                self.lease_ttl
            )));
        }
        let store = super::pg::PgStore::connect(
            &url,
            &self.pg_schema,
            self.lease_ttl,
            self.max_checkpoints,
        )?;
        let dir = absolute_dir(self.dir.clone().unwrap_or_else(default_dir))?;
        Ok(self.with_backend(dir, Backend::Postgres(store)))
    }

    #[cfg(not(feature = "postgres"))]
    fn build_postgres(self) -> Result<FailsafeManager> {
        Err(Error::InvalidConfig(
            "a PostgreSQL store needs the `postgres` feature of `resilience`: \
             `resilience = { ..., features = [\"postgres\"] }`"
                .into(),
        ))
    }

    fn check(&self) -> Result<()> {
        if !(1..=MAX_CHECKPOINTS).contains(&self.max_checkpoints) {
            return Err(Error::InvalidConfig(format!(
                "`max_checkpoints` must be between 1 and {MAX_CHECKPOINTS}, got {}",
                self.max_checkpoints
            )));
        }
        if self.max_backups == 0 {
            return Err(Error::InvalidConfig("`max_backups` must be at least 1, got 0".into()));
        }
        Ok(())
    }

    fn with_backend(self, dir: PathBuf, store: Backend) -> FailsafeManager {
        FailsafeManager {
            inner: Arc::new(Inner {
                store,
                dir,
                max_checkpoints: self.max_checkpoints,
                max_backups: self.max_backups,
                durability: self.durability,
                progress: Default::default(),
            }),
        }
    }

    /// A manager whose every store call fails with `error` (what [`FailsafeManager::global`]
    /// is when its store cannot be opened).
    pub(crate) fn build_failed(self, error: &Error) -> FailsafeManager {
        let dir = self.dir.clone().unwrap_or_else(default_dir);
        let reason = error.to_string();
        self.with_backend(dir, Backend::Unavailable(reason))
    }

    pub(crate) fn build_unopened(self) -> Result<FailsafeManager> {
        self.check()?;
        let dir = absolute_dir(self.dir.clone().unwrap_or_else(default_dir))?;
        let store =
            Store::new(dir.clone(), self.max_checkpoints, self.durability, self.coarse_timestamps);
        Ok(self.with_backend(dir, Backend::Files(store)))
    }
}

fn absolute_dir(dir: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&dir).map_err(|e| Error::io(&dir, e))
}

/// `$RESILIENCE_STORE` when it is a path, else `$RESILIENCE_DIR`, else `./.resilience`.
fn default_dir() -> PathBuf {
    if let Some(store) = std::env::var_os("RESILIENCE_STORE")
        && !store.to_string_lossy().starts_with("postgres")
    {
        return PathBuf::from(store);
    }
    std::env::var_os("RESILIENCE_DIR").map_or_else(|| PathBuf::from(".resilience"), PathBuf::from)
}
