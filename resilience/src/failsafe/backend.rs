//! The store boundary: a manager keeps its checkpoints in a directory ([`Store`], the default)
//! or in PostgreSQL (`pg::PgStore`, feature `postgres`). Backups stay local files either way.

use std::fs::File;
use std::path::PathBuf;

use super::opfile::{NewRecord, OwnedRecord};
use super::store::Store;
use super::{OperationSummary, ProcessState};
use crate::error::Result;

/// Where a manager keeps its checkpoints.
#[derive(Debug)]
pub(crate) enum Backend {
    Files(Store),
    #[cfg(feature = "postgres")]
    Postgres(super::pg::PgStore),
    /// A store that could not be opened (the global manager's), and why.
    Unavailable(String),
}

/// What holds an operation's lock for an [`OperationLock`](super::OperationLock).
#[derive(Debug)]
pub(crate) enum Held {
    /// A `flock`ed lock file, unlocked on release.
    File(File),
    /// A lease with its fencing token.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Lease(u64),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Files($store) => $call,
            #[cfg(feature = "postgres")]
            Backend::Postgres($store) => $call,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        }
    };
}

fn unavailable(reason: &str) -> crate::error::Error {
    crate::error::Error::Database {
        what: "opening the checkpoint store".to_owned(),
        retryable: false,
        source: reason.to_owned().into(),
    }
}

impl Backend {
    pub(crate) fn save(&self, id: &str, record: &NewRecord<'_>) -> Result<()> {
        dispatch!(self, store => store.save(id, record))
    }

    /// Saves a `Failed` record that carries the newest record's data, cursor and run section.
    ///
    /// Returns `false`, writing nothing, when there is no record or the newest one is
    /// `Completed` (its data belongs to a finished run).
    pub(crate) fn save_failed(&self, id: &str, name: &str, error: &str) -> Result<bool> {
        let Some(last) = self.records(id, 1)?.into_iter().next() else { return Ok(false) };
        if last.state == ProcessState::Completed {
            return Ok(false);
        }
        let record = NewRecord {
            name,
            state: ProcessState::Failed,
            progress: last.progress,
            cursor: last.cursor,
            schema: last.schema,
            codec: last.codec,
            error: Some(error),
            payload: &last.payload,
            run: &last.run,
        };
        self.save(id, &record)?;
        Ok(true)
    }

    pub(crate) fn records(&self, id: &str, limit: usize) -> Result<Vec<OwnedRecord>> {
        dispatch!(self, store => store.records(id, limit))
    }

    pub(crate) fn summaries(
        &self,
        keep: fn(ProcessState) -> bool,
    ) -> Result<Vec<OperationSummary>> {
        dispatch!(self, store => store.summaries(keep))
    }

    pub(crate) fn discard_if(
        &self,
        id: &str,
        pred: Option<fn(ProcessState) -> bool>,
    ) -> Result<bool> {
        dispatch!(self, store => store.discard_if(id, pred))
    }

    /// Takes `id`'s lock for this manager; the path is the lock file's (empty for a lease).
    pub(crate) fn acquire(&self, id: &str) -> Result<(Held, PathBuf)> {
        match self {
            Backend::Files(store) => store.acquire(id).map(|(file, path)| (Held::File(file), path)),
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => {
                store.acquire(id).map(|token| (Held::Lease(token), PathBuf::new()))
            }
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    pub(crate) fn release(&self, id: &str, held: &Held) {
        match (self, held) {
            (Backend::Files(store), held) => {
                store.release(id);
                if let Held::File(file) = held {
                    // Unlocked, not only closed: a child process that another thread is
                    // starting holds a copy of the descriptor between `fork` and `exec`, and
                    // closing ours would leave the lock held by that copy for a moment.
                    let _ = file.unlock();
                }
            }
            #[cfg(feature = "postgres")]
            (Backend::Postgres(store), Held::Lease(token)) => store.release(id, *token),
            #[cfg(feature = "postgres")]
            (Backend::Postgres(_), Held::File(_)) => {}
            (Backend::Unavailable(_), _) => {}
        }
    }

    pub(crate) fn flush(&self, sync: bool) -> Result<()> {
        match self {
            Backend::Files(store) => store.flush(sync),
            // Every save is committed before it returns.
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Ok(()),
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// What a damaged record is reported as: its file, or its row.
    pub(crate) fn record_location(&self, id: &str) -> PathBuf {
        match self {
            Backend::Files(store) => store.checkpoint_path(id),
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => store.location(id),
            Backend::Unavailable(_) => PathBuf::from(id),
        }
    }

    /// The directory store, when this is one.
    pub(crate) fn files(&self) -> Option<&Store> {
        match self {
            Backend::Files(store) => Some(store),
            _ => None,
        }
    }
}
