//! A cache of operation summaries, so that listing 10,000 operations costs one `stat` per file
//! instead of an open, a read and a close.
//!
//! An entry is reused only while the file's inode, size, mtime and ctime are unchanged, so a
//! write by anyone (this process, another one, a person with an editor) is noticed. Timestamps
//! are coarse, so an entry whose ctime is close to the moment it was read is re-read next time
//! ("racy" in git's sense). The cache is kept in memory and, after a listing that had to read
//! many files, in a `.catalog` file for the next manager; that file is only a hint: it is checked
//! (magic, checksum, boot id) and, entry by entry, validated like the in-memory cache.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{OperationSummary, ProcessState};
use super::{codec, ids, store};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
const FILE_NAME: &str = ".catalog";
const MAGIC: [u8; 8] = *b"RSLNCTLG";
const VERSION: u32 = 2;
/// Larger than any file system's timestamp granularity.
const RACY_WINDOW: Duration = Duration::from_millis(100);
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
    entries: HashMap<String, Entry>,
}

impl Catalog {
    /// The summaries of the checkpoint files in `dir` whose state `keep` accepts, by id.
    pub(crate) fn scan(
        &mut self,
        dir: &Path,
        temp: impl FnOnce() -> std::path::PathBuf,
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
                let keys = stat_all(&dir_fd, &names);
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
            let ctime = UNIX_EPOCH
                .checked_add(Duration::new(
                    key.ctime.0.max(0) as u64,
                    key.ctime.1.clamp(0, 999_999_999) as u32,
                ))
                .unwrap_or(UNIX_EPOCH);
            let racy = ctime + RACY_WINDOW >= scan_start;
            self.entries.insert(name, Entry { key, racy, summary, seen: generation });
        }
        let before = self.entries.len();
        self.entries.retain(|_, e| e.seen == generation);
        let changed = reread + (before - self.entries.len());

        if changed > 0 || self.sorted.is_empty() {
            self.sorted = self.entries.values().filter_map(|e| e.summary.clone()).collect();
            self.sorted.sort_unstable_by(|a, b| a.operation_id.cmp(&b.operation_id));
        }
        if changed >= PERSIST_AFTER {
            self.persist(dir, temp());
        }
        Ok(self.sorted.iter().filter(|s| keep(s.state)).cloned().collect())
    }

    /// Writes the catalog for the next manager; a failure only costs that manager time.
    fn persist(&self, dir: &Path, temp: std::path::PathBuf) {
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
        let written = store::open_options(true)
            .create_new(true)
            .open(&temp)
            .and_then(|f| f.write_all_at(&bytes, 0))
            .and_then(|()| std::fs::rename(&temp, dir.join(FILE_NAME)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
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
        if name.starts_with(".tmp-") {
            remove_if_orphaned(dir, &name);
            continue;
        }
        // Names in the catalog were checked when they were added.
        if name.ends_with(".ckpt") {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes a temporary file left behind by a process that died while writing it (its name
/// starts with `.tmp-<pid>-`).
fn remove_if_orphaned(dir: &Path, name: &str) {
    let Some(pid) = name[".tmp-".len()..].split('-').next().and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    if pid <= 0 || pid == std::process::id() as i32 {
        return;
    }
    // SAFETY: signal 0 only checks whether the process exists.
    let gone = unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    if gone && std::fs::remove_file(dir.join(name)).is_ok() {
        tracing::debug!(target: TARGET, file = name, "removed a temporary file left by a crash");
    }
}

fn load(dir: &Path) -> HashMap<String, Entry> {
    let path = dir.join(FILE_NAME);
    let Some(boot_id) = boot_id() else { return HashMap::new() };
    let Ok(file) = store::open_options(false).open(&path) else { return HashMap::new() };
    let mut bytes = Vec::new();
    if file.take(MAX_FILE).read_to_end(&mut bytes).is_err()
        || bytes.len() < 12
        || bytes[..8] != MAGIC
    {
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
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::io(dir, std::io::Error::from(ErrorKind::InvalidInput)))?;
    // SAFETY: `c_dir` is a valid C string; the returned descriptor is owned by the `OwnedFd`.
    let fd =
        unsafe { libc::open(c_dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == ErrorKind::NotFound { Ok(None) } else { Err(Error::io(dir, e)) };
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
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
        *buf = vec![0; store::PREFIX];
    }
    match store::read_summary(&path, &name[..name.len() - ".ckpt".len()], buf) {
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
