//! The checkpoint store of one manager: saves, reads, locks, discards and listings over the
//! per-operation files of [`opfile`](super::opfile).
//!
//! Every manager of one directory in a process (however the directory was spelled) shares one
//! [`Shared`] state: the operations' cached files, their lock holders and the listing cache.
//! Between processes the operation's lock decides: a manager writes a file only while it holds
//! the lock, its own ([`FailsafeManager::lock`](super::FailsafeManager::lock)) or one taken for
//! the length of the write, and reads what others wrote again when it takes the lock.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::catalog::Catalog;
use super::files;
use super::ids::{self, CHECKPOINT_EXT, LOCK_EXT};
use super::opfile::{self, Counters, Host, NewRecord, OpState, OwnedRecord, Refresh};
use super::{Durability, OperationSummary, ProcessState};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
/// Open checkpoint files kept by one manager before idle ones are closed.
const MAX_OPEN_FILES: usize = 256;
/// Buffered records kept across all operations before they are all written out.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// Buffered records older than this are written out by the next save.
const MAX_PENDING_AGE: Duration = Duration::from_secs(1);
/// Files written by a manager before its drop refreshes the listing cache.
const REFRESH_CATALOG_AFTER: usize = 256;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The store of one manager.
pub(crate) struct Store {
    /// Unique per manager: the holder of an operation's lock is a manager, not a process.
    id: u64,
    dir: PathBuf,
    slot_count: u32,
    durability: Durability,
    /// Checkpoint files this manager created or rewrote.
    files_written: AtomicUsize,
    shared: Arc<Shared>,
    /// For tests: file timestamps are treated as this coarse (see `Catalog::scan`).
    coarse_timestamps: Option<Duration>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("slot_count", &self.slot_count)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// The state of a directory's operations, shared by every manager of the process that opened
/// the same directory, so that they never work from stale copies of each other's files.
#[derive(Debug, Default)]
struct Shared {
    ops: Mutex<HashMap<String, Arc<Mutex<OpState>>>>,
    counters: Counters,
    catalog: Mutex<Catalog>,
    /// Names of the files written since the last listing: their cached summaries are stale.
    written: Mutex<HashSet<String>>,
}

/// What identifies a store directory.
#[derive(Debug, PartialEq, Eq)]
enum DirKey {
    /// Device and inode of the directory.
    Id(u64, u64),
    /// The absolute path of a directory that could not be opened yet.
    Path(PathBuf),
}

fn shared_for(dir: &Path) -> Arc<Shared> {
    static REGISTRY: Mutex<Vec<(DirKey, std::sync::Weak<Shared>)>> = Mutex::new(Vec::new());
    let key = match files::dir_identity(dir) {
        Ok((dev, ino)) => DirKey::Id(dev, ino),
        Err(_) => DirKey::Path(dir.to_path_buf()),
    };
    let mut registry = lock(&REGISTRY);
    registry.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(shared) = registry.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
        return shared;
    }
    let shared = Arc::new(Shared::default());
    registry.push((key, Arc::downgrade(&shared)));
    shared
}

impl Store {
    /// A store over `dir`, which must be absolute (and canonical when it exists).
    pub(crate) fn new(
        dir: PathBuf,
        max_checkpoints: usize,
        durability: Durability,
        coarse_timestamps: Option<Duration>,
    ) -> Store {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Store {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared: shared_for(&dir),
            dir,
            slot_count: u32::try_from(max_checkpoints).map_or(u32::MAX, |n| n.saturating_add(1)),
            durability,
            files_written: AtomicUsize::new(0),
            coarse_timestamps,
        }
    }

    /// The checkpoint file of `id`.
    pub(crate) fn checkpoint_path(&self, id: &str) -> PathBuf {
        self.path_for(id, CHECKPOINT_EXT)
    }

    fn path_for(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(file_name(id, ext))
    }

    fn op(&self, id: &str) -> Arc<Mutex<OpState>> {
        let mut ops = lock(&self.shared.ops);
        if let Some(op) = ops.get(id) {
            return Arc::clone(op);
        }
        let name = file_name(id, CHECKPOINT_EXT);
        let op = Arc::new(Mutex::new(OpState::new(
            id,
            self.dir.join(&name),
            name,
            self.path_for(id, LOCK_EXT),
        )));
        ops.insert(id.to_owned(), Arc::clone(&op));
        op
    }

    /// Creates the store directory (owner-only) if it is missing.
    pub(crate) fn ensure_dir(&self) -> Result<()> {
        files::create_private_dir(&self.dir)
    }

    pub(crate) fn sync_dir(&self) -> Result<()> {
        files::sync_dir(&self.dir)
    }

    /// Saves a record; returns once it is as durable as the store's [`Durability`] promises.
    pub(crate) fn save(&self, id: &str, record: &NewRecord<'_>) -> Result<()> {
        let op = self.op(id);
        let mut op = lock(&op);
        let saved_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let holder = op.holder == Some(self.id);
        if !holder || self.durability == Durability::Sync {
            op.with_write_access(self, |op, refresh| {
                // Records buffered by a buffered manager of the same directory go first.
                op.write_pending(self)?;
                op.refresh(self, refresh)?;
                let sequence = op.disk_max_sequence() + 1;
                let mut scratch = std::mem::take(&mut op.scratch);
                let encoded = opfile::encode(id, record, sequence, saved_at, &mut scratch, true);
                let written = encoded.and_then(|()| op.write_records(self, &[&scratch], true));
                op.scratch = scratch;
                written?;
                op.note_saved(sequence, record.state);
                Ok(())
            })?;
        } else {
            if op.newest.is_none() {
                op.refresh(self, Refresh::Trust)?;
                let sequence = op.disk_max_sequence();
                let state = op.disk_newest_state();
                op.newest = Some((sequence, state.unwrap_or(ProcessState::Initialized)));
            }
            let (last_sequence, last_state) = op.newest.unwrap_or((0, ProcessState::Initialized));
            let sequence = last_sequence + 1;
            let mut buf = op.spare.pop().unwrap_or_default();
            // Most buffered records are replaced before they are written: checksum later.
            opfile::encode(id, record, sequence, saved_at, &mut buf, false)?;
            let len = buf.len();
            if op.pending.is_empty() {
                op.pending_since = Some(saved_at);
                self.shared.counters.pending_ops.fetch_add(1, Ordering::Relaxed);
            }
            op.pending.push_back(buf);
            op.pending_bytes += len;
            let mut total =
                self.shared.counters.pending_bytes.fetch_add(len, Ordering::Relaxed) + len;
            // Older buffered records would be overwritten on disk anyway.
            while op.pending.len() >= self.slot_count as usize {
                let old = op.pending.pop_front().expect("non-empty");
                op.pending_bytes -= old.len();
                total = self.shared.counters.pending_bytes.fetch_sub(old.len(), Ordering::Relaxed)
                    - old.len();
                op.spare.push(old);
            }
            op.note_saved(sequence, record.state);
            let old_enough = op
                .pending_since
                .and_then(|since| saved_at.checked_sub(since))
                .is_some_and(|age| age >= MAX_PENDING_AGE);
            let ending = matches!(record.state, ProcessState::Completed | ProcessState::Failed);
            if ending || record.state != last_state || old_enough {
                op.write_pending(self)?;
            }
            drop(op);
            if total > MAX_PENDING_BYTES {
                self.flush(false)?;
            }
        }
        tracing::debug!(target: TARGET, operation_id = id, state = ?record.state, cursor = record.cursor, "checkpoint saved");
        Ok(())
    }

    /// Up to `limit` intact records of `id`, newest first; `Ok(vec![])` when there is no file.
    pub(crate) fn records(&self, id: &str, limit: usize) -> Result<Vec<OwnedRecord>> {
        let op = self.op(id);
        let mut op = lock(&op);
        op.write_pending(self)?;
        let mut tries = 0;
        loop {
            op.refresh(self, Refresh::Reread)?;
            match op.newest_records(limit) {
                // A writer that holds the lock overwrote a slot between the scan and the read
                // (it takes as many saves as there are other slots). Scan again; after a few
                // tries, yield first: a thread that starts its scan with a fresh time slice is
                // rarely preempted before the read on a loaded machine.
                Err(Error::Corrupt { reason, .. })
                    if reason == opfile::CHANGED_WHILE_READING && tries < 64 =>
                {
                    tries += 1;
                    if tries > 8 {
                        std::thread::yield_now();
                    }
                }
                result => return result,
            }
        }
    }

    /// Writes buffered records to the OS; with `sync`, also syncs every file written since the
    /// last sync.
    pub(crate) fn flush(&self, sync: bool) -> Result<()> {
        if !sync && self.shared.counters.pending_ops.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let ops: Vec<_> = lock(&self.shared.ops).values().cloned().collect();
        let mut first_error = None;
        for op in ops {
            let mut op = lock(&op);
            let mut result = op.write_pending(self);
            if sync && result.is_ok() && op.unsynced {
                result = op.sync();
            }
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if sync
            && first_error.is_none()
            && self.shared.counters.dir_unsynced.swap(false, Ordering::Relaxed)
            && let Err(e) = self.sync_dir()
        {
            self.shared.counters.dir_unsynced.store(true, Ordering::Relaxed);
            first_error = Some(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes `id`'s checkpoints when `pred` accepts its newest state (or always, for `None`).
    /// [`Error::Locked`] when another manager or process holds the operation's lock.
    pub(crate) fn discard_if(
        &self,
        id: &str,
        pred: Option<fn(ProcessState) -> bool>,
    ) -> Result<bool> {
        let op = self.op(id);
        let mut op = lock(&op);
        let removed = op.with_write_access(self, |op, refresh| {
            if let Some(pred) = pred {
                op.write_pending(self)?;
                op.refresh(self, refresh)?;
                match op.disk_newest_state() {
                    Some(state) if pred(state) => {}
                    _ => return Ok(false),
                }
            }
            op.drop_pending(self);
            op.invalidate(self);
            let path = op.path.clone();
            match super::io::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(Error::io(&path, e)),
            }
            self.note_written(&op.file_name);
            if self.durability == Durability::Sync {
                self.sync_dir()?;
            }
            Ok(true)
        })?;
        if removed {
            tracing::info!(target: TARGET, operation_id = id, "checkpoints discarded");
        }
        Ok(removed)
    }

    /// Takes `id`'s lock for this manager: returns the locked descriptor of its lock file.
    pub(crate) fn acquire(&self, id: &str) -> Result<(File, PathBuf)> {
        let op = self.op(id);
        let mut op = lock(&op);
        if op.holder.is_some() {
            return Err(Error::Locked { operation_id: id.to_owned() });
        }
        let path = op.lock_path.clone();
        let file = self.open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked { operation_id: id.to_owned() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        op.holder = Some(self.id);
        // Whoever held the lock before may have written the file.
        op.drop_pending(self);
        op.invalidate(self);
        Ok((file, path))
    }

    /// Gives up this manager's hold on `id` (before its lock file is closed): buffered records
    /// are written and synced first, so that the next holder reads them.
    pub(crate) fn release(&self, id: &str) {
        let op = self.op(id);
        let mut op = lock(&op);
        if op.holder != Some(self.id) {
            return;
        }
        let mut result = op.write_pending(self);
        if result.is_ok() && op.unsynced {
            result = op.sync();
        }
        if let Err(e) = result {
            tracing::error!(target: TARGET, operation_id = id, error = %e, "buffered checkpoints lost: they could not be written before the lock was released");
            op.drop_pending(self);
        }
        op.holder = None;
    }

    /// The summaries of the operations whose state `keep` accepts, by id; damaged or foreign
    /// files are skipped.
    pub(crate) fn summaries(
        &self,
        keep: fn(ProcessState) -> bool,
    ) -> Result<Vec<OperationSummary>> {
        self.flush(false)?;
        let mut catalog = lock(&self.shared.catalog);
        let written = std::mem::take(&mut *lock(&self.shared.written));
        catalog.forget(written);
        catalog.scan(&self.dir, self.coarse_timestamps, keep)
    }
}

impl Host for Store {
    fn manager_id(&self) -> u64 {
        self.id
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn slot_count(&self) -> u32 {
        self.slot_count
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    fn open_lock_file(&self, path: &Path) -> Result<File> {
        match files::open_or_create(path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.ensure_dir()?;
                files::open_or_create(path).map_err(|e| Error::io(path, e))
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn note_written(&self, file_name: &str) {
        let mut written = lock(&self.shared.written);
        if !written.contains(file_name) {
            written.insert(file_name.to_owned());
        }
    }

    fn count_file_written(&self) {
        self.files_written.fetch_add(1, Ordering::Relaxed);
    }

    fn note_opened(&self) {
        if self.shared.counters.open_files.fetch_add(1, Ordering::Relaxed) < MAX_OPEN_FILES {
            return;
        }
        // Close idle files; busy ones (locked right now, or with unwritten data) stay open.
        let ops: Vec<_> = lock(&self.shared.ops).values().cloned().collect();
        for op in ops {
            if self.shared.counters.open_files.load(Ordering::Relaxed) <= MAX_OPEN_FILES / 2 {
                break;
            }
            if let Ok(mut op) = op.try_lock()
                && op.pending.is_empty()
                && !op.unsynced
                && op.holder.is_none()
                && op.is_open()
            {
                op.close(self);
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flush(true) {
            tracing::warn!(target: TARGET, error = %e, "could not write buffered checkpoints");
        }
        // A manager that wrote many new files leaves the listing cache current, so that the
        // next process lists them without reading each one.
        if self.files_written.load(Ordering::Relaxed) >= REFRESH_CATALOG_AFTER
            && let Err(e) = self.summaries(|_| false)
        {
            tracing::debug!(target: TARGET, error = %e, "could not refresh the catalog");
        }
    }
}

fn file_name(id: &str, ext: &str) -> String {
    let mut name = ids::file_stem(id);
    name.push('.');
    name.push_str(ext);
    name
}
