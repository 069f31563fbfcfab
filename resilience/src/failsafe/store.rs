//! The checkpoint store: one file per operation, a fixed ring of checksummed slots per file.
//!
//! A durable save is one `pwrite` of the oldest slot plus one `fdatasync`; the file's size never
//! changes, so the sync carries no metadata. The file is created, and rewritten with bigger
//! slots when a record outgrows them, atomically (temporary file, fsync, rename, directory
//! fsync), so a crash leaves either the old or the new file, and within a file a torn write can
//! only damage the slot being written while the previous record stays intact.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::catalog::Catalog;
use super::format::{self, Layout, Record};
use super::ids::{self, CHECKPOINT_EXT, LOCK_EXT};
use super::lock::OperationLock;
use super::{Durability, OperationSummary, ProcessState};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
/// Slot areas up to this size are re-read on every durable save and kept in memory.
const AREA_CACHE: u64 = 256 << 10;
/// Bytes read in one go from the start of a file.
pub(crate) const PREFIX: usize = 64 << 10;
/// Open checkpoint files kept by one manager before idle ones are closed.
const MAX_OPEN_FILES: usize = 256;
/// Buffered records kept across all operations before they are all written out.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// Buffered records older than this are written out by the next save.
const MAX_PENDING_AGE: Duration = Duration::from_secs(1);
/// Files written by a manager before its drop refreshes the listing cache.
const REFRESH_CATALOG_AFTER: usize = 256;

/// `OpenOptions` that never follow a symbolic link and create files readable by the owner only.
pub(crate) fn open_options(write: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(write).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The file's link count and size, asked without its timestamps: a query of the timestamps
/// makes the kernel (Linux ≥ 6.13, multigrain timestamps) give the next write a fine-grained
/// mtime, which dirties the inode, and `fdatasync` then writes the inode table block as well.
fn links_and_size(file: &File) -> io::Result<(u32, u64)> {
    file_facts(file).map(|(_, links, size)| (links, size))
}

/// Whether the file is a regular file, its link count and its size (see [`links_and_size`]).
fn file_facts(file: &File) -> io::Result<(bool, u32, u64)> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `statx` is a valid value for the kernel to overwrite.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, empty C string with AT_EMPTY_PATH, valid out pointer.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_SIZE,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let regular = u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFREG;
    Ok((regular, stx.stx_nlink, stx.stx_size))
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A decoded record, owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedRecord {
    pub(crate) sequence: u64,
    pub(crate) schema: u64,
    pub(crate) cursor: u64,
    pub(crate) progress: f64,
    pub(crate) saved_at: SystemTime,
    pub(crate) state: ProcessState,
    pub(crate) codec: u8,
    pub(crate) name: String,
    pub(crate) error: Option<String>,
    pub(crate) payload: Vec<u8>,
}

impl OwnedRecord {
    fn from_record(r: &Record<'_>) -> OwnedRecord {
        OwnedRecord {
            sequence: r.sequence,
            schema: r.schema,
            cursor: r.cursor,
            progress: r.progress,
            saved_at: UNIX_EPOCH + r.saved_at,
            state: r.state,
            codec: r.codec,
            name: r.name.to_owned(),
            error: r.error.map(str::to_owned),
            payload: r.payload.to_vec(),
        }
    }
}

/// What a save writes, apart from the sequence number the store assigns.
pub(crate) struct NewRecord<'a> {
    pub(crate) name: &'a str,
    pub(crate) state: ProcessState,
    pub(crate) progress: f64,
    pub(crate) cursor: u64,
    pub(crate) schema: u64,
    pub(crate) codec: u8,
    pub(crate) error: Option<&'a str>,
    pub(crate) payload: &'a [u8],
}

/// The store of one manager.
pub(crate) struct Store {
    dir: PathBuf,
    slot_count: u32,
    durability: Durability,
    temp_counter: AtomicU64,
    /// Checkpoint files this manager created or rewrote.
    files_written: AtomicUsize,
    catalog: Mutex<Catalog>,
    shared: Arc<Shared>,
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

/// The cached state of a directory's operations, shared by every manager of the process that
/// opened the directory under the same absolute path, so that they never work from stale
/// copies of each other's files.
#[derive(Debug, Default)]
struct Shared {
    ops: Mutex<HashMap<String, Arc<Mutex<OpState>>>>,
    open_files: AtomicUsize,
    pending_bytes: AtomicUsize,
    pending_ops: AtomicUsize,
    /// Files were created without syncing the directory (`Durability::Buffered`).
    dir_unsynced: AtomicBool,
}

fn shared_for(dir: &Path) -> Arc<Shared> {
    static REGISTRY: Mutex<Vec<(PathBuf, std::sync::Weak<Shared>)>> = Mutex::new(Vec::new());
    let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut registry = lock(&REGISTRY);
    registry.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(shared) = registry.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
        return shared;
    }
    let shared = Arc::new(Shared::default());
    registry.push((key, Arc::downgrade(&shared)));
    shared
}

/// The state of one checkpoint file on disk, as last read.
#[derive(Debug)]
enum DiskState {
    /// Not read since the last change.
    Unknown,
    /// No file.
    Missing,
    /// Something that is not a readable checkpoint file of this operation.
    Foreign(String),
    /// An open checkpoint file.
    Open(DiskFile),
}

#[derive(Debug)]
struct DiskFile {
    file: File,
    layout: Layout,
    /// The file's length differs from what its layout says: rewrite before writing to it.
    misshapen: bool,
    /// Slots holding something that is not an intact record.
    damaged: usize,
    /// Per slot, the intact record's sequence number and length.
    slots: Vec<Option<(u64, usize)>>,
    /// The whole slot area when it is small enough to keep.
    area: Option<Vec<u8>>,
}

impl DiskFile {
    fn newest_slot(&self) -> Option<usize> {
        (0..self.slots.len()).filter(|&i| self.slots[i].is_some()).max_by_key(|&i| self.slots[i])
    }

    fn max_sequence(&self) -> u64 {
        self.slots.iter().flatten().map(|s| s.0).max().unwrap_or(0)
    }

    /// An empty or damaged slot if there is one, else the oldest record's.
    fn target_slot(&self) -> usize {
        (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].map_or((0, 0), |s| (1, s.0)))
            .unwrap_or(0)
    }

    /// Slot indexes of intact records, newest first.
    fn newest_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> =
            (0..self.slots.len()).filter(|&i| self.slots[i].is_some()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.slots[i]));
        order
    }

    fn record_bytes(&self, slot: usize, path: &Path) -> Result<Vec<u8>> {
        let (_, len) = self.slots[slot].expect("an intact slot");
        let start = self.layout.slot_offset(slot as u32);
        if let Some(area) = &self.area {
            let at = (start - u64::from(self.layout.slots_offset)) as usize;
            return Ok(area[at..at + len].to_vec());
        }
        let mut buf = vec![0; len];
        let n = read_full_at(&self.file, &mut buf, start).map_err(|e| Error::io(path, e))?;
        if n != len {
            return Err(Error::corrupt(path, "record changed while reading"));
        }
        Ok(buf)
    }

    /// Reads the slot area again (all of it when small, else record by record).
    fn scan_slots(&mut self, file_len: u64, path: &Path) -> Result<()> {
        let layout = self.layout;
        let present =
            file_len.saturating_sub(u64::from(layout.slots_offset)).min(layout.area_len());
        // Only slots that begin inside the file can hold a record: a forged slot count in a
        // small file must cost neither memory nor reads.
        let in_file = present.div_ceil(u64::from(layout.slot_size)) as u32;
        self.slots.clear();
        self.slots.resize(in_file as usize, None);
        if layout.area_len() <= AREA_CACHE {
            let mut area = self.area.take().unwrap_or_default();
            area.clear();
            area.resize(present as usize, 0);
            let n = read_full_at(&self.file, &mut area, u64::from(layout.slots_offset))
                .map_err(|e| Error::io(path, e))?;
            area.truncate(n);
            for i in 0..in_file as usize {
                let start = i * layout.slot_size as usize;
                let end = (start + layout.slot_size as usize).min(area.len());
                if start < end {
                    self.slots[i] = slot_info(&area[start..end], &mut self.damaged);
                }
            }
            self.area = Some(area);
        } else {
            self.area = None;
            let mut buf = Vec::new();
            for i in 0..in_file {
                let start = layout.slot_offset(i);
                let mut head = [0u8; 8];
                let n =
                    read_full_at(&self.file, &mut head, start).map_err(|e| Error::io(path, e))?;
                let Some(len) = format::claimed_len(&head[..n]) else { continue };
                if len > layout.slot_size as usize || start + len as u64 > file_len {
                    self.damaged += 1;
                    continue;
                }
                buf.clear();
                buf.resize(len, 0);
                let n =
                    read_full_at(&self.file, &mut buf, start).map_err(|e| Error::io(path, e))?;
                self.slots[i as usize] = slot_info(&buf[..n], &mut self.damaged);
            }
        }
        Ok(())
    }
}

fn slot_info(slot: &[u8], damaged: &mut usize) -> Option<(u64, usize)> {
    match format::parse_record(slot) {
        Ok(Some(r)) => Some((r.sequence, format::record_len(r.name, r.error, r.payload))),
        Ok(None) => None,
        Err(_) => {
            *damaged += 1;
            None
        }
    }
}

/// One operation's cached file and buffered records.
#[derive(Debug)]
struct OpState {
    id: String,
    path: PathBuf,
    disk: DiskState,
    /// Buffered records, oldest first (`Durability::Buffered` only).
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// Since the Unix epoch.
    pending_since: Option<Duration>,
    spare: Vec<Vec<u8>>,
    /// Sequence and state of the newest record, disk or pending, when known without reading.
    newest: Option<(u64, ProcessState)>,
    /// Written to the OS since the last sync.
    unsynced: bool,
    scratch: Vec<u8>,
}

impl Store {
    pub(crate) fn new(dir: PathBuf, max_checkpoints: usize, durability: Durability) -> Store {
        Store {
            shared: shared_for(&dir),
            dir,
            slot_count: u32::try_from(max_checkpoints).map_or(u32::MAX, |n| n.saturating_add(1)),
            durability,
            temp_counter: AtomicU64::new(0),
            files_written: AtomicUsize::new(0),
            catalog: Mutex::new(Catalog::default()),
        }
    }

    fn path_for(&self, id: &str, ext: &str) -> PathBuf {
        let mut name = ids::file_stem(id);
        name.push('.');
        name.push_str(ext);
        self.dir.join(name)
    }

    fn op(&self, id: &str) -> Arc<Mutex<OpState>> {
        let mut ops = lock(&self.shared.ops);
        if let Some(op) = ops.get(id) {
            return Arc::clone(op);
        }
        let op = Arc::new(Mutex::new(OpState {
            id: id.to_owned(),
            path: self.path_for(id, CHECKPOINT_EXT),
            disk: DiskState::Unknown,
            pending: VecDeque::new(),
            pending_bytes: 0,
            pending_since: None,
            spare: Vec::new(),
            newest: None,
            unsynced: false,
            scratch: Vec::new(),
        }));
        ops.insert(id.to_owned(), Arc::clone(&op));
        op
    }

    /// Creates the store directory (owner-only) if it is missing.
    pub(crate) fn ensure_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&self.dir, e))
    }

    /// Saves a record; returns once it is as durable as the store's [`Durability`] promises.
    pub(crate) fn save(&self, id: &str, record: &NewRecord<'_>) -> Result<()> {
        let op = self.op(id);
        let mut op = lock(&op);
        let saved_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        match self.durability {
            Durability::Sync => {
                // Records buffered by a buffered manager of the same directory go first.
                op.write_pending(self)?;
                op.refresh(self, false)?;
                let sequence = op.disk_max_sequence() + 1;
                let mut scratch = std::mem::take(&mut op.scratch);
                let encoded = encode(id, record, sequence, saved_at, &mut scratch, true);
                let written = encoded.and_then(|()| op.write_records(self, &[&scratch], true));
                op.scratch = scratch;
                written?;
                op.note_saved(sequence, record.state);
            }
            Durability::Buffered => {
                if op.newest.is_none() {
                    op.refresh(self, false)?;
                    let sequence = op.disk_max_sequence();
                    let state = op.disk_newest_state();
                    op.newest = Some((sequence, state.unwrap_or(ProcessState::Initialized)));
                }
                let (last_sequence, last_state) =
                    op.newest.unwrap_or((0, ProcessState::Initialized));
                let sequence = last_sequence + 1;
                let mut buf = op.spare.pop().unwrap_or_default();
                // Most buffered records are replaced before they are written: checksum later.
                encode(id, record, sequence, saved_at, &mut buf, false)?;
                let len = buf.len();
                if op.pending.is_empty() {
                    op.pending_since = Some(saved_at);
                    self.shared.pending_ops.fetch_add(1, Ordering::Relaxed);
                }
                op.pending.push_back(buf);
                op.pending_bytes += len;
                let mut total = self.shared.pending_bytes.fetch_add(len, Ordering::Relaxed) + len;
                // Older buffered records would be overwritten on disk anyway.
                while op.pending.len() >= self.slot_count as usize {
                    let old = op.pending.pop_front().expect("non-empty");
                    op.pending_bytes -= old.len();
                    total = self.shared.pending_bytes.fetch_sub(old.len(), Ordering::Relaxed)
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
        }
        tracing::debug!(target: TARGET, operation_id = id, state = ?record.state, cursor = record.cursor, "checkpoint saved");
        Ok(())
    }

    /// Saves a `Failed` record that carries the newest record's data and cursor.
    ///
    /// Returns `false`, writing nothing, when there is no record or the newest one is
    /// `Completed` (its data belongs to a finished run).
    pub(crate) fn save_failed(&self, id: &str, name: &str, error: &str) -> Result<bool> {
        let newest = {
            let op = self.op(id);
            let mut op = lock(&op);
            op.write_pending(self)?;
            op.refresh(self, true)?;
            op.newest_records(self, 1)?.into_iter().next()
        };
        let Some(last) = newest else { return Ok(false) };
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
        };
        self.save(id, &record)?;
        Ok(true)
    }

    /// Up to `limit` intact records of `id`, newest first; `Ok(vec![])` when there is no file.
    pub(crate) fn records(&self, id: &str, limit: usize) -> Result<Vec<OwnedRecord>> {
        let op = self.op(id);
        let mut op = lock(&op);
        op.write_pending(self)?;
        op.refresh(self, true)?;
        op.newest_records(self, limit)
    }

    /// Writes buffered records to the OS; with `sync`, also syncs every file written since the
    /// last sync.
    pub(crate) fn flush(&self, sync: bool) -> Result<()> {
        if !sync && self.shared.pending_ops.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let ops: Vec<_> = lock(&self.shared.ops).values().cloned().collect();
        let mut first_error = None;
        for op in ops {
            let mut op = lock(&op);
            let mut result = op.write_pending(self);
            if sync && result.is_ok() && op.unsynced {
                result = op.sync(self);
            }
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if sync
            && first_error.is_none()
            && self.shared.dir_unsynced.swap(false, Ordering::Relaxed)
            && let Err(e) = self.sync_dir()
        {
            self.shared.dir_unsynced.store(true, Ordering::Relaxed);
            first_error = Some(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes `id`'s checkpoints when `pred` accepts its newest state (or always, for `None`).
    pub(crate) fn discard_if(
        &self,
        id: &str,
        pred: Option<fn(ProcessState) -> bool>,
    ) -> Result<bool> {
        let op = self.op(id);
        let mut op = lock(&op);
        if let Some(pred) = pred {
            op.write_pending(self)?;
            op.refresh(self, true)?;
            match op.disk_newest_state() {
                Some(state) if pred(state) => {}
                _ => return Ok(false),
            }
        }
        op.drop_pending(self);
        op.close(self);
        op.newest = None;
        op.disk = DiskState::Unknown;
        match fs_err::remove_file(&op.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&op.path, e)),
        }
        if self.durability == Durability::Sync {
            self.sync_dir()?;
        }
        tracing::info!(target: TARGET, operation_id = id, "checkpoints discarded");
        Ok(true)
    }

    pub(crate) fn lock(&self, id: &str) -> Result<OperationLock> {
        self.ensure_dir()?;
        OperationLock::acquire(id, self.path_for(id, LOCK_EXT))
    }

    /// The summaries of the operations whose state `keep` accepts, by id; damaged or foreign
    /// files are skipped.
    pub(crate) fn summaries(
        &self,
        keep: fn(ProcessState) -> bool,
    ) -> Result<Vec<OperationSummary>> {
        self.flush(false)?;
        lock(&self.catalog).scan(&self.dir, || self.temp_path(), keep)
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(".tmp-{}-{n}-{:08x}", std::process::id(), fastrand::u32(..)))
    }

    fn note_opened(&self) {
        if self.shared.open_files.fetch_add(1, Ordering::Relaxed) < MAX_OPEN_FILES {
            return;
        }
        // Close idle files; busy ones (locked right now, or with unwritten data) stay open.
        let ops: Vec<_> = lock(&self.shared.ops).values().cloned().collect();
        for op in ops {
            if self.shared.open_files.load(Ordering::Relaxed) <= MAX_OPEN_FILES / 2 {
                break;
            }
            if let Ok(mut op) = op.try_lock()
                && op.pending.is_empty()
                && !op.unsynced
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

fn encode(
    id: &str,
    r: &NewRecord<'_>,
    sequence: u64,
    saved_at: Duration,
    out: &mut Vec<u8>,
    seal: bool,
) -> Result<()> {
    let record = Record {
        sequence,
        schema: r.schema,
        cursor: r.cursor,
        progress: r.progress,
        saved_at,
        state: r.state,
        codec: r.codec,
        name: r.name,
        error: r.error,
        payload: r.payload,
    };
    format::encode_record(&record, out, seal)
        .map_err(|reason| Error::Codec { operation_id: id.to_owned(), reason })
}

impl OpState {
    fn disk_max_sequence(&self) -> u64 {
        match &self.disk {
            DiskState::Open(d) => d.max_sequence(),
            _ => 0,
        }
    }

    fn disk_newest_state(&self) -> Option<ProcessState> {
        let DiskState::Open(d) = &self.disk else { return None };
        let slot = d.newest_slot()?;
        let bytes = d.record_bytes(slot, &self.path).ok()?;
        format::parse_record(&bytes).ok().flatten().map(|r| r.state)
    }

    fn note_saved(&mut self, sequence: u64, state: ProcessState) {
        let changed = self.newest.is_none_or(|(_, old)| old != state);
        self.newest = Some((sequence, state));
        if changed {
            tracing::info!(target: TARGET, operation_id = %self.id, state = ?state, "operation state changed");
        }
    }

    fn close(&mut self, store: &Store) {
        if matches!(self.disk, DiskState::Open(_)) {
            store.shared.open_files.fetch_sub(1, Ordering::Relaxed);
        }
        self.disk = DiskState::Unknown;
    }

    fn drop_pending(&mut self, store: &Store) {
        if !self.pending.is_empty() {
            store.shared.pending_ops.fetch_sub(1, Ordering::Relaxed);
            store.shared.pending_bytes.fetch_sub(self.pending_bytes, Ordering::Relaxed);
            self.pending_bytes = 0;
            self.pending_since = None;
            let drained: Vec<_> = self.pending.drain(..).collect();
            self.spare.extend(drained);
        }
    }

    /// Brings `disk` up to date with the file.
    ///
    /// Saves (`reread == false`) trust the cached slots while the file still has a link and the
    /// size its layout says: managers of one process share this cache, and processes that save
    /// the same operation concurrently must hold its lock. Reads (`reread`) read the file again.
    fn refresh(&mut self, store: &Store, reread: bool) -> Result<()> {
        if reread && self.pending.is_empty() {
            // Learn the newest sequence from the file again at the next buffered save.
            self.newest = None;
        }
        if let DiskState::Open(d) = &self.disk {
            // A file unlinked or replaced behind our back has no links left.
            let current = !reread
                && links_and_size(&d.file).is_ok_and(|(links, len)| {
                    links > 0 && (d.misshapen || len == d.layout.file_len())
                });
            if current {
                return Ok(());
            }
            self.close(store);
        }
        self.disk = match open_options(true).open(&self.path) {
            Ok(file) => match read_disk_file(file, &self.path, &self.id)? {
                Ok(disk) => {
                    store.note_opened();
                    DiskState::Open(disk)
                }
                Err(reason) => DiskState::Foreign(reason),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => DiskState::Missing,
            Err(e) if is_symlink_error(&e) => DiskState::Foreign("is a symbolic link".into()),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                DiskState::Foreign("is a directory".into())
            }
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        Ok(())
    }

    /// Intact records, newest first. `Error::Corrupt` if the file exists but holds none.
    fn newest_records(&self, _store: &Store, limit: usize) -> Result<Vec<OwnedRecord>> {
        let disk = match &self.disk {
            DiskState::Open(d) => d,
            DiskState::Missing | DiskState::Unknown => return Ok(Vec::new()),
            DiskState::Foreign(reason) => return Err(Error::corrupt(&self.path, reason.clone())),
        };
        let order = disk.newest_first();
        if order.is_empty() {
            return Err(Error::corrupt(&self.path, "no intact checkpoint record"));
        }
        let mut out = Vec::with_capacity(order.len().min(limit));
        for slot in order.into_iter().take(limit) {
            let bytes = disk.record_bytes(slot, &self.path)?;
            match format::parse_record(&bytes) {
                Ok(Some(r)) => out.push(OwnedRecord::from_record(&r)),
                _ => return Err(Error::corrupt(&self.path, "record changed while reading")),
            }
        }
        if disk.damaged > 0 || disk.misshapen {
            tracing::warn!(
                target: TARGET,
                path = %self.path.display(),
                damaged_records = disk.damaged,
                truncated_or_extended = disk.misshapen,
                "damaged checkpoint file: using the newest intact record"
            );
        }
        Ok(out)
    }

    /// Writes the buffered records, if any, to the OS.
    fn write_pending(&mut self, store: &Store) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.refresh(store, false)?;
        for record in &mut self.pending {
            format::seal(record);
        }
        let pending = std::mem::take(&mut self.pending);
        let refs: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
        let written = self.write_records(store, &refs, false);
        drop(refs);
        self.pending = pending;
        written?;
        self.drop_pending(store);
        Ok(())
    }

    fn sync(&mut self, _store: &Store) -> Result<()> {
        if let DiskState::Open(d) = &self.disk {
            d.file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Writes encoded records (oldest first) in place, or rewrites the file when it is missing,
    /// damaged or too small for them. Call `refresh` first.
    fn write_records(&mut self, store: &Store, records: &[&[u8]], sync: bool) -> Result<()> {
        let longest = records.iter().map(|r| r.len()).max().unwrap_or(0);
        let in_place = match &self.disk {
            DiskState::Open(d) => {
                !d.misshapen
                    && d.layout.slot_count >= store.slot_count
                    && longest <= d.layout.slot_size as usize
            }
            _ => false,
        };
        if !in_place {
            return self.rewrite(store, records);
        }
        let DiskState::Open(d) = &mut self.disk else { unreachable!("checked above") };
        for record in records {
            let slot = d.target_slot();
            let offset = d.layout.slot_offset(slot as u32);
            d.file.write_all_at(record, offset).map_err(|e| Error::io(&self.path, e))?;
            d.slots[slot] = Some((format::sequence_of(record), record.len()));
            if let Some(area) = &mut d.area {
                let at = slot * d.layout.slot_size as usize;
                if area.len() >= at + record.len() {
                    area[at..at + record.len()].copy_from_slice(record);
                } else {
                    d.area = None;
                }
            }
        }
        if sync && store.durability == Durability::Sync {
            d.file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Replaces the file atomically with one holding the intact old records plus `records`.
    fn rewrite(&mut self, store: &Store, records: &[&[u8]]) -> Result<()> {
        let mut carried: Vec<Vec<u8>> = Vec::new();
        if let DiskState::Open(d) = &self.disk {
            for slot in d.newest_first().into_iter().rev() {
                carried.push(d.record_bytes(slot, &self.path)?);
            }
        } else if let DiskState::Foreign(reason) = &self.disk {
            tracing::warn!(target: TARGET, path = %self.path.display(), reason = %reason, "replacing a damaged checkpoint file");
        }
        let carried_any = !carried.is_empty();
        let mut all: Vec<&[u8]> = carried.iter().map(Vec::as_slice).collect();
        all.extend_from_slice(records);
        let keep = all.len().min(store.slot_count as usize);
        let all = &all[all.len() - keep..];
        let longest = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let layout =
            Layout::new(self.id.len(), longest, store.slot_count).ok_or_else(|| Error::Codec {
                operation_id: self.id.clone(),
                reason: format!("a checkpoint record of {longest} bytes is too large"),
            })?;
        let mut image = Vec::with_capacity(layout.file_len() as usize);
        format::encode_header(&self.id, &layout, &mut image);
        let mut slots = vec![None; layout.slot_count as usize];
        for (i, record) in all.iter().enumerate() {
            image.extend_from_slice(record);
            image.resize(layout.slots_offset as usize + (i + 1) * layout.slot_size as usize, 0);
            slots[i] = Some((format::sequence_of(record), record.len()));
        }
        // Really write the empty slots: later in-place writes must not allocate blocks.
        image.resize(layout.file_len() as usize, 0);

        // A buffered store may lose its newest checkpoints to a power loss, so a new file needs
        // no sync there; replacing a file always does, or the older checkpoints could go too.
        let sync = store.durability == Durability::Sync || carried_any;
        store.ensure_dir()?;
        let temp = store.temp_path();
        let file = write_new_file(&temp, &image, sync).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })?;
        if let Err(e) = fs_err::rename(&temp, &self.path) {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::io(&self.path, e));
        }
        if sync {
            store.sync_dir()?;
        } else {
            store.shared.dir_unsynced.store(true, Ordering::Relaxed);
        }
        self.close(store);
        let area = (layout.area_len() <= AREA_CACHE)
            .then(|| image[layout.slots_offset as usize..].to_vec());
        self.disk =
            DiskState::Open(DiskFile { file, layout, misshapen: false, damaged: 0, slots, area });
        store.note_opened();
        store.files_written.fetch_add(1, Ordering::Relaxed);
        self.unsynced = !sync;
        tracing::debug!(target: TARGET, path = %self.path.display(), slot_size = layout.slot_size, "checkpoint file written");
        Ok(())
    }
}

/// Creates `path` (which must not exist) with `contents`.
fn write_new_file(path: &Path, contents: &[u8], sync: bool) -> Result<File> {
    let file = open_options(true).create_new(true).open(path).map_err(|e| Error::io(path, e))?;
    file.write_all_at(contents, 0).map_err(|e| Error::io(path, e))?;
    if sync {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(file)
}

/// Reads the header and slots of an open checkpoint file. `Ok(Err(reason))` when the file is not
/// a checkpoint file of `id`.
fn read_disk_file(file: File, path: &Path, id: &str) -> Result<Result<DiskFile, String>> {
    let (regular, _, file_len) = file_facts(&file).map_err(|e| Error::io(path, e))?;
    if !regular {
        return Ok(Err("not a regular file".into()));
    }
    let header = match read_header(&file, path, file_len)? {
        Ok(header) => header,
        Err(reason) => return Ok(Err(reason)),
    };
    let (layout, stored_id) = match format::parse_header(&header) {
        Ok(parsed) => parsed,
        Err(reason) => return Ok(Err(reason)),
    };
    if stored_id != id {
        return Ok(Err("the file belongs to another operation".into()));
    }
    let mut disk = DiskFile {
        file,
        layout,
        misshapen: file_len != layout.file_len(),
        slots: Vec::new(),
        damaged: 0,
        area: None,
    };
    disk.scan_slots(file_len, path)?;
    Ok(Ok(disk))
}

fn read_header(file: &File, path: &Path, file_len: u64) -> Result<Result<Vec<u8>, String>> {
    let mut fixed = [0u8; format::HEADER_FIXED];
    let n = read_full_at(file, &mut fixed, 0).map_err(|e| Error::io(path, e))?;
    let Some(len) = format::header_len(&fixed[..n]).filter(|&len| len as u64 <= file_len) else {
        return Ok(Err("file too short for a header".into()));
    };
    let mut header = vec![0; len];
    let n = read_full_at(file, &mut header, 0).map_err(|e| Error::io(path, e))?;
    header.truncate(n);
    Ok(Ok(header))
}

/// Reads the summary of one file with as few system calls as possible: one open, one read of
/// the file's first [`PREFIX`] bytes (which hold small files whole), one close.
pub(crate) fn read_summary(path: &Path, stem: &str, buf: &mut [u8]) -> Result<OperationSummary> {
    let mut file = open_options(false).open(path).map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let prefix = &buf[..n];
    let whole = n < buf.len();
    let owned_header;
    let header = match format::header_len(prefix) {
        Some(len) if len <= prefix.len() => prefix,
        Some(_) if !whole => {
            let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
            owned_header = read_header(&file, path, len)?.map_err(|r| Error::corrupt(path, r))?;
            &owned_header[..]
        }
        _ => return Err(Error::corrupt(path, "file too short for a header")),
    };
    let (layout, id) = format::parse_header(header).map_err(|r| Error::corrupt(path, r))?;
    if !ids::stem_matches(stem, id) {
        return Err(Error::corrupt(path, "the file name does not match the operation id inside"));
    }
    let file_len =
        if whole { n as u64 } else { file.metadata().map_err(|e| Error::io(path, e))?.len() };
    let mut best: Option<OperationSummary> = None;
    let mut slot_buf = Vec::new();
    for i in 0..layout.slot_count {
        let start = layout.slot_offset(i);
        let end = start + u64::from(layout.slot_size);
        let slot: &[u8] = if end <= n as u64 || (whole && start < n as u64) {
            &prefix[start as usize..(end as usize).min(n)]
        } else if whole {
            break;
        } else {
            // Read the record's length first: a forged slot size must not cost memory.
            let mut head = [0u8; 8];
            let k = read_full_at(&file, &mut head, start).map_err(|e| Error::io(path, e))?;
            let Some(len) = format::claimed_len(&head[..k]) else { break };
            if len > layout.slot_size as usize || start + len as u64 > file_len {
                continue;
            }
            slot_buf.resize(len, 0);
            let k = read_full_at(&file, &mut slot_buf, start).map_err(|e| Error::io(path, e))?;
            &slot_buf[..k]
        };
        if let Ok(Some(r)) = format::parse_record(slot)
            && best.as_ref().is_none_or(|b| r.sequence > b.sequence)
        {
            best = Some(OperationSummary {
                operation_id: id.to_owned(),
                operation_name: r.name.to_owned(),
                state: r.state,
                progress: r.progress,
                cursor: r.cursor,
                sequence: r.sequence,
                saved_at: UNIX_EPOCH + r.saved_at,
                error: r.error.map(str::to_owned),
            });
        }
    }
    best.ok_or_else(|| Error::corrupt(path, "no intact checkpoint record"))
}
