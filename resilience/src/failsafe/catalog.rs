//! A cache of operation summaries, so that listing 10,000 operations costs one `stat` per file
//! instead of an open, a read and a close.
//!
//! An entry is reused only while the file's inode, size, mtime and ctime are unchanged, so a
//! write by anyone (this process, another one, a person with an editor) is noticed, and only
//! once it is old enough that a later write must show a different ctime: a file whose ctime is
//! within the timestamps' granularity (plus a margin for the kernel's coarse clock) of the
//! moment the listing began is read again next time ("racy" in git's sense). File systems with
//! whole-second timestamps (ext4 with 128-byte inodes, FAT, some network file systems) are
//! recognized by stamps with no sub-second part. Files written by a manager of this process are
//! read again at the next listing whatever their timestamps say.
//!
//! The cache is kept in memory and, after a listing that had to read many files, in a
//! `.catalog` file for the next manager; that file is only a hint: it is checked (magic,
//! checksum, boot id) and, entry by entry, validated like the in-memory cache.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{OperationSummary, ProcessState};
use super::{codec, files, ids, opfile};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
const FILE_NAME: &str = ".catalog";
const MAGIC: [u8; 8] = *b"RSLNCTLG";
const VERSION: u32 = 2;
/// Margin for the kernel's file timestamps, taken from a coarse clock that lags the fine one
/// by up to a scheduler tick.
const RACY_MARGIN: Duration = Duration::from_millis(100);
/// The granularity assumed for timestamps without a sub-second part (FAT's mtime: 2 s).
const COARSE_GRANULARITY: Duration = Duration::from_secs(2);
/// Re-read files before the catalog file is rewritten for the next manager.
const PERSIST_AFTER: usize = 32;
const MAX_FILE: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileKey {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    /// Truncates the timestamps to `granularity`, as a coarse file system stores them.
    fn coarsen(&mut self, granularity: Duration) {
        let g = granularity.as_nanos().max(1) as i128;
        for stamp in [&mut self.mtime, &mut self.ctime] {
            let nanos = i128::from(stamp.0) * 1_000_000_000 + i128::from(stamp.1);
            let nanos = nanos - nanos.rem_euclid(g);
            *stamp =
                (nanos.div_euclid(1_000_000_000) as i64, nanos.rem_euclid(1_000_000_000) as i64);
        }
    }

    /// Whether a later write could leave this key unchanged: the file changed within the
    /// timestamps' granularity (plus [`RACY_MARGIN`]) of `scan_start`, taken before the stat.
    fn is_racy(&self, scan_start: SystemTime, coarse: Option<Duration>) -> bool {
        let granularity = coarse.unwrap_or(if self.ctime.1 == 0 && self.mtime.1 == 0 {
            COARSE_GRANULARITY
        } else {
            Duration::ZERO
        });
        let ctime =
            Duration::new(self.ctime.0.max(0) as u64, self.ctime.1.clamp(0, 999_999_999) as u32);
        let Some(settled) = UNIX_EPOCH.checked_add(ctime + granularity + RACY_MARGIN) else {
            return true;
        };
        settled >= scan_start
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: FileKey,
    racy: bool,
    /// `None` for a file that is damaged or not a checkpoint file.
    summary: Option<OperationSummary>,
    /// The scan that last saw the file.
    #[serde(skip)]
    seen: u64,
}

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    boot_id: String,
    entries: HashMap<String, Entry>,
}

/// Cached summaries of a store directory, by file name.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    loaded: bool,
    generation: u64,
    /// The summaries of `entries`, by operation id.
    sorted: Vec<OperationSummary>,
    /// Entries dropped by `forget` since the last scan.
    forgotten: usize,
    entries: HashMap<String, Entry>,
}

impl Catalog {
    /// Drops the entries of files written since they were read.
    pub(crate) fn forget(&mut self, names: impl IntoIterator<Item = String>) {
        for name in names {
            if self.entries.remove(&name).is_some() {
                self.forgotten += 1;
            }
        }
    }

    /// The summaries of the checkpoint files in `dir` whose state `keep` accepts, by id.
    ///
    /// `coarse`: treat every timestamp as having this granularity (truncated to it), as a file
    /// system with coarse timestamps would store it.
    pub(crate) fn scan(
        &mut self,
        dir: &Path,
        coarse: Option<Duration>,
        keep: impl Fn(ProcessState) -> bool,
    ) -> Result<Vec<OperationSummary>> {
        let Some(dir_fd) = open_dir(dir)? else {
            self.entries.clear();
            self.sorted.clear();
            return Ok(Vec::new());
        };
        let scan_start = SystemTime::now();
        // A first scan decodes the previous manager's catalog on a second thread while this
        // one reads the directory and stats its files: the two take about as long.
        let (names, keys) = std::thread::scope(|scope| {
            let loader = (!self.loaded).then(|| scope.spawn(|| load(dir)));
            let listed = list_checkpoint_files(dir, self.entries.len()).map(|names| {
                let mut keys = stat_all(&dir_fd, &names);
                if let Some(granularity) = coarse {
                    for (key, _) in keys.iter_mut().flatten() {
                        key.coarsen(granularity);
                    }
                }
                (names, keys)
            });
            if let Some(loader) = loader {
                self.loaded = true;
                // `load` answers every failure with an empty catalog; a panic costs the same.
                self.entries = loader.join().unwrap_or_default();
            }
            listed
        })?;

        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let mut misses = Vec::new();
        for (name, key) in names.into_iter().zip(keys) {
            let Some((key, regular)) = key else { continue };
            if let Some(old) = self.entries.get_mut(&name)
                && old.key == key
                && !old.racy
            {
                old.seen = generation;
                continue;
            }
            // Names in the catalog were checked when they were added.
            if ids::parse_stem(&name[..name.len() - ".ckpt".len()]).is_some() {
                misses.push((name, key, regular));
            }
        }
        let reread = misses.len();
        let summaries = read_all(dir, &misses);
        for ((name, key, _), summary) in misses.into_iter().zip(summaries) {
            let Some(summary) = summary else { continue };
            let racy = key.is_racy(scan_start, coarse);
            self.entries.insert(name, Entry { key, racy, summary, seen: generation });
        }
        let before = self.entries.len();
        self.entries.retain(|_, e| e.seen == generation);
        let changed = reread + (before - self.entries.len()) + std::mem::take(&mut self.forgotten);

        if changed > 0 || self.sorted.is_empty() {
            self.sorted = self.entries.values().filter_map(|e| e.summary.clone()).collect();
            self.sorted.sort_unstable_by(|a, b| a.operation_id.cmp(&b.operation_id));
        }
        if changed >= PERSIST_AFTER {
            self.persist(dir);
        }
        Ok(self.sorted.iter().filter(|s| keep(s.state)).cloned().collect())
    }

    /// Writes the catalog for the next manager; a failure only costs that manager time.
    fn persist(&self, dir: &Path) {
        let Some(boot_id) = boot_id() else { return };
        // Serialized like `CatalogFile`, without cloning the entries.
        let view = CatalogView { version: VERSION, boot_id, entries: &self.entries };
        let mut payload = Vec::new();
        if codec::encode_into(&view, &mut payload).is_err() {
            return;
        }
        let mut bytes = Vec::with_capacity(payload.len() + 12);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let path = dir.join(FILE_NAME);
        let written = files::TempFile::create(dir, "catalog").and_then(|temp| {
            temp.write_all_at(&bytes, 0, &path)?;
            temp.commit(&path, false)
        });
        if let Err(e) = written {
            tracing::debug!(target: TARGET, error = %e, "could not write the catalog");
        }
    }
}

#[derive(Serialize)]
struct CatalogView<'a> {
    version: u32,
    boot_id: &'a str,
    entries: &'a HashMap<String, Entry>,
}

/// The names of the checkpoint files in `dir`, removing temporary files left by crashes.
fn list_checkpoint_files(dir: &Path, capacity: usize) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(capacity);
    for entry in fs_err::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if files::remove_if_orphaned(dir, &name) {
            continue;
        }
        // Names in the catalog were checked when they were added.
        if name.ends_with(".ckpt") {
            names.push(name);
        }
    }
    Ok(names)
}

fn load(dir: &Path) -> HashMap<String, Entry> {
    let path = dir.join(FILE_NAME);
    let Some(boot_id) = boot_id() else { return HashMap::new() };
    // Anything but a regular file of ours (a FIFO, a symlink, ...) is ignored at once.
    let Ok(bytes) = files::read_small(&path, MAX_FILE) else { return HashMap::new() };
    if bytes.len() < 12 || bytes[..8] != MAGIC {
        return HashMap::new();
    }
    let payload = &bytes[12..];
    if crc32fast::hash(payload).to_le_bytes() != bytes[8..12] {
        return HashMap::new();
    }
    match codec::decode::<CatalogFile>(codec::BINCODE2, payload) {
        Ok(file) if file.version == VERSION && file.boot_id == boot_id => file.entries,
        _ => HashMap::new(),
    }
}

/// The fuzz target `listing_cache`: the catalog's payload (behind its checksum) decoded from
/// arbitrary bytes; what decodes must encode back to a payload that decodes the same.
pub(crate) fn fuzz_payload(payload: &[u8]) {
    let Ok(file) = codec::decode::<CatalogFile>(codec::BINCODE2, payload) else { return };
    let mut again = Vec::new();
    codec::encode_into(&file, &mut again).expect("a decoded catalog encodes");
    let back = codec::decode::<CatalogFile>(codec::BINCODE2, &again).expect("its encoding decodes");
    assert_eq!(
        (back.version, back.boot_id, back.entries.len()),
        (file.version, file.boot_id, file.entries.len())
    );
}

/// Changes at every boot: a catalog written before a power loss may describe file states that
/// did not reach the disk.
fn boot_id() -> Option<&'static str> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let id = id.trim().to_owned();
            (!id.is_empty()).then_some(id)
        })
        .as_deref()
}

fn open_dir(dir: &Path) -> Result<Option<OwnedFd>> {
    match files::open_dir(dir) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// The summary of each file (`Some(None)` for a damaged one, `None` for one that is gone), on
/// two threads when there are many.
fn read_all(
    dir: &Path,
    files: &[(String, FileKey, bool)],
) -> Vec<Option<Option<OperationSummary>>> {
    let read_part = |part: &[(String, FileKey, bool)]| {
        let mut buf = Vec::new();
        part.iter().map(|(name, _, regular)| read_one(dir, name, *regular, &mut buf)).collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if files.len() < 512 || threads < 2 {
        return read_part(files);
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            files.chunks(chunk).map(|part| scope.spawn(move || read_part(part))).collect();
        let mut out = Vec::with_capacity(files.len());
        for (handle, part) in handles.into_iter().zip(files.chunks(chunk)) {
            match handle.join() {
                Ok(summaries) => out.extend(summaries),
                Err(_) => out.extend(read_part(part)),
            }
        }
        out
    })
}

fn read_one(
    dir: &Path,
    name: &str,
    regular: bool,
    buf: &mut Vec<u8>,
) -> Option<Option<OperationSummary>> {
    let path = dir.join(name);
    if !regular {
        tracing::warn!(target: TARGET, path = %path.display(), "skipping a checkpoint name that is not a regular file");
        return Some(None);
    }
    if buf.is_empty() {
        *buf = vec![0; opfile::PREFIX];
    }
    match opfile::read_summary(&path, &name[..name.len() - ".ckpt".len()], buf) {
        Ok(summary) => Some(Some(summary)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(target: TARGET, path = %path.display(), error = %e, "skipping unreadable checkpoint file");
            Some(None)
        }
    }
}

/// [`stat_at`] for every name, on two threads when there are many.
fn stat_all(dir: &OwnedFd, names: &[String]) -> Vec<Option<(FileKey, bool)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if names.len() < 4096 || threads < 2 {
        return names.iter().map(|name| stat_at(dir, name)).collect();
    }
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|n| stat_at(dir, n)).collect::<Vec<_>>())
            })
            .collect();
        let mut keys = Vec::with_capacity(names.len());
        for (handle, part) in handles.into_iter().zip(names.chunks(chunk)) {
            match handle.join() {
                Ok(part_keys) => keys.extend(part_keys),
                Err(_) => keys.extend(part.iter().map(|n| stat_at(dir, n))),
            }
        }
        keys
    })
}

/// `lstat` relative to the directory: the key, and whether it is a regular file.
fn stat_at(dir: &OwnedFd, name: &str) -> Option<(FileKey, bool)> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out pointer.
    let rc = unsafe {
        libc::fstatat(dir.as_raw_fd(), c_name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
    };
    if rc != 0 {
        return None;
    }
    let key = FileKey {
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
    };
    Some((key, st.st_mode & libc::S_IFMT == libc::S_IFREG))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use crate::failsafe::{FailsafeManager, ProcessState};

    /// Waits until the wall clock is 200–500 ms past a whole second, so that the steps after it
    /// fall within one second and more than the racy margin after its start.
    fn settle_in_a_second() {
        loop {
            let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis();
            if (200..500).contains(&ms) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A write that keeps the file's size and, on a whole-second file system, its timestamps:
    /// another process's save, as this process sees it.
    fn write_in_place(path: &std::path::Path, bytes: &[u8]) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, 0).unwrap();
    }

    #[test]
    fn whole_second_timestamps_never_hide_a_change_from_a_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let manager = FailsafeManager::builder()
            .dir(tmp.path())
            .coarse_timestamps(Duration::from_secs(1))
            .build()
            .unwrap();
        let path = tmp.path().join("op.ckpt");
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &()).unwrap();
        let running = std::fs::read(&path).unwrap();
        manager.save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &()).unwrap();
        let completed = std::fs::read(&path).unwrap();
        assert_eq!(running.len(), completed.len());

        for _ in 0..3 {
            settle_in_a_second();
            write_in_place(&path, &running);
            assert_eq!(manager.recoverable_operations().unwrap().len(), 1);
            // Same size, same inode, and the same whole-second stamps as the listing saw.
            write_in_place(&path, &completed);
            let listed = manager.operations().unwrap();
            assert_eq!(listed[0].state, ProcessState::Completed, "a stale listing");
            assert!(manager.recoverable_operations().unwrap().is_empty());
            assert!(!manager.can_resume("op").unwrap());
        }
    }

    #[test]
    fn own_writes_are_listed_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let manager = FailsafeManager::builder()
            .dir(tmp.path())
            .coarse_timestamps(Duration::from_secs(3600))
            .build()
            .unwrap();
        let other = FailsafeManager::open(tmp.path().join("x/..")).unwrap();
        for state in [ProcessState::Running, ProcessState::Completed, ProcessState::Failed] {
            other.save_checkpoint("op", "Op", state, 0.5, &()).unwrap();
            assert_eq!(manager.operations().unwrap()[0].state, state);
        }
        assert!(other.discard("op").unwrap());
        assert!(manager.operations().unwrap().is_empty());
    }
}
