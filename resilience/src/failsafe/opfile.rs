//! One operation's checkpoint file as a manager knows it: the open file, its slot table, the
//! records buffered for it, and who holds its lock in this process.
//!
//! A durable save is one `pwrite` of the oldest slot plus one `fdatasync`; the file's size never
//! changes, so the sync carries no metadata. The file is created, and rewritten with bigger
//! slots when a record outgrows them, atomically (temporary file, fsync, rename, directory
//! fsync), so a crash leaves either the old or the new file, and within a file a torn write can
//! only damage the slot being written while the previous record stays intact.
//!
//! What a manager caches about a file is trusted only while its lock is held by that manager:
//! every other save and every read reads the slots again (see [`Refresh`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::{self, Layout, Record};
use super::{Durability, OperationSummary, ProcessState};
use super::{files, io};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
/// Slot areas up to this size are re-read on every durable save and kept in memory.
const AREA_CACHE: u64 = 256 << 10;
/// The reason of a read that raced with a writer (which never writes the newest record's slot,
/// but may write several records while a large file is read): read again.
pub(crate) const CHANGED_WHILE_READING: &str = "record changed while reading";
/// Bytes read in one go from the start of a file.
pub(crate) const PREFIX: usize = 64 << 10;

/// What a file needs from the store that writes it ([`Store`](super::store::Store)).
pub(crate) trait Host {
    /// The manager's id: the holder of a lock is a manager.
    fn manager_id(&self) -> u64;
    /// The store directory.
    fn dir(&self) -> &Path;
    /// Slots of a new file: `max_checkpoints + 1`.
    fn slot_count(&self) -> u32;
    fn durability(&self) -> Durability;
    /// Counters shared by the managers of the directory in this process.
    fn counters(&self) -> &Counters;
    /// Opens (creating it if needed) an operation's lock file.
    fn open_lock_file(&self, path: &Path) -> Result<File>;
    /// A file was opened: close idle ones when too many are.
    fn note_opened(&self);
    /// A file was written: a cached listing of it is stale.
    fn note_written(&self, file_name: &str);
    /// A file was created or rewritten.
    fn count_file_written(&self);
}

/// Counters shared by the managers of a directory in one process.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) open_files: AtomicUsize,
    pub(crate) pending_bytes: AtomicUsize,
    pub(crate) pending_ops: AtomicUsize,
    /// Files were created without syncing the directory (`Durability::Buffered`).
    pub(crate) dir_unsynced: AtomicBool,
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
    /// The encoded run section (see `run_info.rs`); empty when there is none.
    pub(crate) run: Vec<u8>,
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
            run: r.run.to_vec(),
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
    pub(crate) run: &'a [u8],
}

/// Encodes `r` with `sequence` into `out`; `seal` computes the checksum now.
pub(crate) fn encode(
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
        run: r.run,
    };
    format::encode_record(&record, out, seal)
        .map_err(|reason| Error::Codec { operation_id: id.to_owned(), reason })
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
    /// Opened read-write; a read-only file system gives a read-only descriptor.
    writable: bool,
    layout: Layout,
    /// The file's length differs from what its layout says: rewrite before writing to it.
    misshapen: bool,
    /// Slots holding something that is not an intact record.
    damaged: usize,
    /// Per slot, the intact record's sequence number and length.
    slots: Vec<Option<(u64, usize)>>,
    /// The whole slot area when it is small enough to keep.
    area: Option<Vec<u8>>,
    /// The newest sequence known to be on the disk (synced); an unsynced write never goes
    /// into its slot, so a power loss always leaves an intact record.
    durable_seq: u64,
}

impl DiskFile {
    fn max_sequence(&self) -> u64 {
        self.slots.iter().flatten().map(|s| s.0).max().unwrap_or(0)
    }

    fn newest_slot(&self) -> Option<usize> {
        (0..self.slots.len()).filter(|&i| self.slots[i].is_some()).max_by_key(|&i| self.slots[i])
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
        let n = files::read_full_at(&self.file, &mut buf, start).map_err(|e| Error::io(path, e))?;
        if n != len {
            return Err(Error::corrupt(path, CHANGED_WHILE_READING));
        }
        Ok(buf)
    }

    /// Reads the slot area again (all of it when small, else record by record).
    fn scan_slots(&mut self, file_len: u64, path: &Path) -> Result<()> {
        let layout = self.layout;
        self.misshapen = file_len != layout.file_len();
        self.damaged = 0;
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
            let n = files::read_full_at(&self.file, &mut area, u64::from(layout.slots_offset))
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
                let n = files::read_full_at(&self.file, &mut head, start)
                    .map_err(|e| Error::io(path, e))?;
                let Some(len) = format::claimed_len(&head[..n]) else { continue };
                if len > layout.slot_size as usize || start + len as u64 > file_len {
                    self.damaged += 1;
                    continue;
                }
                buf.clear();
                buf.resize(len, 0);
                let n = files::read_full_at(&self.file, &mut buf, start)
                    .map_err(|e| Error::io(path, e))?;
                self.slots[i as usize] = slot_info(&buf[..n], &mut self.damaged);
            }
        }
        // What another process wrote, it wrote before releasing the lock we now hold, or it
        // died and the kernel keeps its writes: only a power loss could undo them.
        self.durable_seq = self.max_sequence();
        Ok(())
    }
}

fn slot_info(slot: &[u8], damaged: &mut usize) -> Option<(u64, usize)> {
    match format::parse_record(slot) {
        Ok(Some(r)) => Some((r.sequence, r.encoded_len())),
        Ok(None) => None,
        Err(_) => {
            *damaged += 1;
            None
        }
    }
}

/// How much of the cached file state a caller may trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// The caller's manager holds the lock: the slots are as this process left them, unless the
    /// file was unlinked, replaced or resized behind its back (someone ignoring the lock).
    Trust,
    /// Read the slots again.
    Reread,
}

/// One operation's cached file, buffered records and lock holder, shared by every manager of
/// the directory in this process.
#[derive(Debug)]
pub(crate) struct OpState {
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    /// The file's name in the store directory.
    pub(crate) file_name: String,
    pub(crate) lock_path: PathBuf,
    /// The manager ([`Host::manager_id`]) whose [`OperationLock`](super::OperationLock) holds the lock.
    pub(crate) holder: Option<u64>,
    /// A descriptor of the lock file for the short locks of saves by managers that do not hold
    /// the operation's lock.
    lock_file: Option<File>,
    disk: DiskState,
    /// Buffered records, oldest first (`Durability::Buffered`, lock held).
    pub(crate) pending: VecDeque<Vec<u8>>,
    pub(crate) pending_bytes: usize,
    /// Since the Unix epoch.
    pub(crate) pending_since: Option<Duration>,
    pub(crate) spare: Vec<Vec<u8>>,
    /// Sequence and state of the newest record, disk or pending, when known without reading.
    pub(crate) newest: Option<(u64, ProcessState)>,
    /// Written to the OS since the last sync.
    pub(crate) unsynced: bool,
    pub(crate) scratch: Vec<u8>,
}

impl OpState {
    pub(crate) fn new(id: &str, path: PathBuf, file_name: String, lock_path: PathBuf) -> Self {
        OpState {
            id: id.to_owned(),
            path,
            file_name,
            lock_path,
            holder: None,
            lock_file: None,
            disk: DiskState::Unknown,
            pending: VecDeque::new(),
            pending_bytes: 0,
            pending_since: None,
            spare: Vec::new(),
            newest: None,
            unsynced: false,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.disk, DiskState::Open(_))
    }

    /// Runs `f` with the right to write the file: directly for the lock's holder, else under the
    /// operation's lock taken for the length of `f` ([`Error::Locked`] if someone holds it).
    /// A manager that did not hold the lock reads the file again before writing.
    pub(crate) fn with_write_access<R>(
        &mut self,
        store: &impl Host,
        f: impl FnOnce(&mut OpState, Refresh) -> Result<R>,
    ) -> Result<R> {
        match self.holder {
            Some(holder) if holder == store.manager_id() => return f(self, Refresh::Trust),
            Some(_) => return Err(Error::Locked { operation_id: self.id.clone() }),
            None => {}
        }
        let file = match self.lock_file.take() {
            Some(file) => file,
            None => store.open_lock_file(&self.lock_path)?,
        };
        // A lock just released can stay held for a moment by a child process that another
        // thread is starting (the descriptor is copied between `fork` and `exec`): a short
        // lock tries a few times over about 10 ms before it reports `Locked`.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    self.lock_file = Some(file);
                    return Err(Error::Locked { operation_id: self.id.clone() });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(&self.lock_path, e));
                }
            }
        }
        // Buffered records belong to a holder; nothing may be pending here.
        self.drop_pending(store);
        self.newest = None;
        let result = f(self, Refresh::Reread);
        if let Err(e) = file.unlock() {
            // Closing the descriptor releases the lock as well.
            tracing::debug!(target: TARGET, path = %self.lock_path.display(), error = %e, "unlock failed; closing the lock file");
            return result;
        }
        self.lock_file = Some(file);
        result
    }

    /// Forgets everything read from the file (the lock was just taken: others may have written).
    pub(crate) fn invalidate(&mut self, store: &impl Host) {
        self.close(store);
        self.newest = None;
    }

    pub(crate) fn disk_max_sequence(&self) -> u64 {
        match &self.disk {
            DiskState::Open(d) => d.max_sequence(),
            _ => 0,
        }
    }

    pub(crate) fn disk_newest_state(&self) -> Option<ProcessState> {
        let DiskState::Open(d) = &self.disk else { return None };
        let slot = d.newest_slot()?;
        let bytes = d.record_bytes(slot, &self.path).ok()?;
        format::parse_record(&bytes).ok().flatten().map(|r| r.state)
    }

    pub(crate) fn note_saved(&mut self, sequence: u64, state: ProcessState) {
        let changed = self.newest.is_none_or(|(_, old)| old != state);
        self.newest = Some((sequence, state));
        if changed {
            tracing::info!(target: TARGET, operation_id = %self.id, state = ?state, "operation state changed");
        }
    }

    /// Closes the cached descriptors (the lock file's too, unless a short lock is held, which
    /// never outlives a call).
    pub(crate) fn close(&mut self, store: &impl Host) {
        if matches!(self.disk, DiskState::Open(_)) {
            store.counters().open_files.fetch_sub(1, Ordering::Relaxed);
        }
        self.disk = DiskState::Unknown;
        self.lock_file = None;
    }

    pub(crate) fn drop_pending(&mut self, store: &impl Host) {
        if !self.pending.is_empty() {
            let shared = store.counters();
            shared.pending_ops.fetch_sub(1, Ordering::Relaxed);
            shared.pending_bytes.fetch_sub(self.pending_bytes, Ordering::Relaxed);
            self.pending_bytes = 0;
            self.pending_since = None;
            let drained: Vec<_> = self.pending.drain(..).collect();
            self.spare.extend(drained);
        }
    }

    /// Brings `disk` up to date with the file (see [`Refresh`]).
    pub(crate) fn refresh(&mut self, store: &impl Host, refresh: Refresh) -> Result<()> {
        if let DiskState::Open(d) = &mut self.disk {
            // A file unlinked or replaced behind our back has no links left.
            match files::file_facts(&d.file) {
                Ok(facts) if facts.links > 0 => {
                    if refresh == Refresh::Trust
                        && (d.misshapen || facts.size == d.layout.file_len())
                    {
                        return Ok(());
                    }
                    if refresh == Refresh::Reread && facts.size >= d.layout.slots_offset as u64 {
                        // The same inode: its header never changes in place.
                        return d.scan_slots(facts.size, &self.path);
                    }
                }
                _ => {}
            }
            self.close(store);
        }
        self.disk = match files::open_write(&self.path) {
            Ok(file) => self.read(store, file, true)?,
            Err(e) if files::is_read_only(&e) => match files::open_read(&self.path) {
                Ok(file) => self.read(store, file, false)?,
                Err(e) => self.open_failed(e)?,
            },
            Err(e) => self.open_failed(e)?,
        };
        Ok(())
    }

    fn read(&self, store: &impl Host, file: File, writable: bool) -> Result<DiskState> {
        Ok(match read_disk_file(file, writable, &self.path, &self.id)? {
            Ok(disk) => {
                store.note_opened();
                DiskState::Open(disk)
            }
            Err(reason) => DiskState::Foreign(reason),
        })
    }

    fn open_failed(&self, e: std::io::Error) -> Result<DiskState> {
        if e.kind() == ErrorKind::NotFound {
            Ok(DiskState::Missing)
        } else if files::is_not_a_file(&e) {
            Ok(DiskState::Foreign(format!("cannot be read: {e}")))
        } else {
            Err(Error::io(&self.path, e))
        }
    }

    /// Intact records, newest first. `Error::Corrupt` if the file exists but holds none.
    pub(crate) fn newest_records(&self, limit: usize) -> Result<Vec<OwnedRecord>> {
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
            let scanned = disk.slots[slot].map(|(sequence, _)| sequence);
            match format::parse_record(&bytes) {
                // The record the scan found there, not one written since.
                Ok(Some(r)) if Some(r.sequence) == scanned => {
                    out.push(OwnedRecord::from_record(&r))
                }
                _ => return Err(Error::corrupt(&self.path, CHANGED_WHILE_READING)),
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
    pub(crate) fn write_pending(&mut self, store: &impl Host) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.refresh(store, Refresh::Trust)?;
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

    pub(crate) fn sync(&mut self) -> Result<()> {
        if let DiskState::Open(d) = &mut self.disk {
            io::sync_data(&d.file).map_err(|e| Error::io(&self.path, e))?;
            d.durable_seq = d.max_sequence();
        }
        self.unsynced = false;
        Ok(())
    }

    /// Writes encoded records (oldest first) in place, or rewrites the file when it is missing,
    /// damaged or too small for them. Call `refresh` first.
    pub(crate) fn write_records(
        &mut self,
        store: &impl Host,
        records: &[&[u8]],
        sync: bool,
    ) -> Result<()> {
        let longest = records.iter().map(|r| r.len()).max().unwrap_or(0);
        let in_place = match &self.disk {
            DiskState::Open(d) => {
                !d.misshapen
                    && d.layout.slot_count >= store.slot_count()
                    && longest <= d.layout.slot_size as usize
            }
            _ => false,
        };
        if !in_place {
            return self.rewrite(store, records);
        }
        store.note_written(&self.file_name);
        let durable = sync && store.durability() == Durability::Sync;
        let DiskState::Open(d) = &mut self.disk else { unreachable!("checked above") };
        if !d.writable {
            // Opened read-only: ask for write access again, so that the error names the cause.
            d.file = files::open_write(&self.path).map_err(|e| Error::io(&self.path, e))?;
            d.writable = true;
        }
        for record in records {
            let slot = d.target_slot();
            if !durable && d.slots[slot].is_some_and(|(seq, _)| seq >= d.durable_seq) {
                // Every other record is newer and unsynced: make them durable before this one,
                // the newest on the disk, is overwritten.
                io::sync_data(&d.file).map_err(|e| Error::io(&self.path, e))?;
                d.durable_seq = d.max_sequence();
            }
            let offset = d.layout.slot_offset(slot as u32);
            io::write_all_at(&d.file, record, offset).map_err(|e| Error::io(&self.path, e))?;
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
        if durable {
            io::sync_data(&d.file).map_err(|e| Error::io(&self.path, e))?;
            d.durable_seq = d.max_sequence();
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Replaces the file atomically with one holding the intact old records plus `records`.
    fn rewrite(&mut self, store: &impl Host, records: &[&[u8]]) -> Result<()> {
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
        let keep = all.len().min(store.slot_count() as usize);
        let all = &all[all.len() - keep..];
        let longest = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let layout = Layout::new(self.id.len(), longest, store.slot_count()).ok_or_else(|| {
            Error::Codec {
                operation_id: self.id.clone(),
                reason: format!("a checkpoint record of {longest} bytes is too large"),
            }
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

        files::create_private_dir(store.dir())?;
        let temp = files::TempFile::create(store.dir(), "")?;
        temp.write_all_at(&image, 0, &self.path)?;
        // The data is always synced before the rename: a power loss may then lose the new
        // name (a buffered store may lose its newest checkpoints), never leave a name whose
        // data is missing, which would load as corrupt.
        let file = temp.commit(&self.path, true)?;
        store.note_written(&self.file_name);
        // Replacing a file needs the rename on disk too, or the older checkpoints could go.
        let sync_dir = store.durability() == Durability::Sync || carried_any;
        if sync_dir {
            files::sync_dir(store.dir())?;
        } else {
            store.counters().dir_unsynced.store(true, Ordering::Relaxed);
        }
        self.close(store);
        let area = (layout.area_len() <= AREA_CACHE)
            .then(|| image[layout.slots_offset as usize..].to_vec());
        let durable_seq = slots.iter().flatten().map(|s: &(u64, usize)| s.0).max().unwrap_or(0);
        self.disk = DiskState::Open(DiskFile {
            file,
            writable: true,
            layout,
            misshapen: false,
            damaged: 0,
            slots,
            area,
            durable_seq,
        });
        store.note_opened();
        store.count_file_written();
        self.unsynced = !sync_dir;
        tracing::debug!(target: TARGET, path = %self.path.display(), slot_size = layout.slot_size, "checkpoint file written");
        Ok(())
    }
}

/// Reads the header and slots of an open checkpoint file. `Ok(Err(reason))` when the file is not
/// a checkpoint file of `id`.
fn read_disk_file(
    file: File,
    writable: bool,
    path: &Path,
    id: &str,
) -> Result<Result<DiskFile, String>> {
    let facts = files::file_facts(&file).map_err(|e| Error::io(path, e))?;
    if !facts.regular {
        return Ok(Err("not a regular file".into()));
    }
    let header = match read_header(&file, path, facts.size)? {
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
        writable,
        layout,
        misshapen: false,
        slots: Vec::new(),
        damaged: 0,
        area: None,
        durable_seq: 0,
    };
    disk.scan_slots(facts.size, path)?;
    Ok(Ok(disk))
}

fn read_header(file: &File, path: &Path, file_len: u64) -> Result<Result<Vec<u8>, String>> {
    let mut fixed = [0u8; format::HEADER_FIXED];
    let n = files::read_full_at(file, &mut fixed, 0).map_err(|e| Error::io(path, e))?;
    let Some(len) = format::header_len(&fixed[..n]).filter(|&len| len as u64 <= file_len) else {
        return Ok(Err("file too short for a header".into()));
    };
    let mut header = vec![0; len];
    let n = files::read_full_at(file, &mut header, 0).map_err(|e| Error::io(path, e))?;
    header.truncate(n);
    Ok(Ok(header))
}

/// Reads the summary of one file with as few system calls as possible: one open, one read of
/// the file's first [`PREFIX`] bytes (which hold small files whole), one close.
pub(crate) fn read_summary(path: &Path, stem: &str, buf: &mut [u8]) -> Result<OperationSummary> {
    let mut file = files::open_read(path).map_err(|e| Error::io(path, e))?;
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
    if !super::ids::stem_matches(stem, id) {
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
            let k = files::read_full_at(&file, &mut head, start).map_err(|e| Error::io(path, e))?;
            let Some(len) = format::claimed_len(&head[..k]) else { break };
            if len > layout.slot_size as usize || start + len as u64 > file_len {
                continue;
            }
            slot_buf.resize(len, 0);
            let k =
                files::read_full_at(&file, &mut slot_buf, start).map_err(|e| Error::io(path, e))?;
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
