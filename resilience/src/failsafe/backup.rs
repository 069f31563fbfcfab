//! Backups: byte-exact, checksummed copies of files, kept per source and rotated.
//!
//! Layout under the store directory:
//!
//! ```text
//! backups/<sanitized file name>-<16 hex digits>[-<n>]/  one folder per source file
//!     source                                           the source's full path (a record)
//!     <seq>_<created>_<mtime>_<size>_<crc>_<mode>_<random>.bak   a copy, byte for byte
//! ```
//!
//! Each copy is a plain file (mode 0600) whose metadata lives in its name: the sequence number
//! (one more than the newest backup of the source; it orders backups independently of clock
//! jumps), creation time and the source's modification time (`<seconds>_<nanoseconds>` since
//! the Unix epoch), size in bytes, CRC-32 (8 hex digits), the source's permission bits
//! (octal) and a random tag. The name is set by the `rename` that publishes the copy, so data
//! and metadata appear together, atomically, with one `fsync` for the data and one for the
//! folder: no sidecar file to sync. A name that does not parse back to itself, or whose size
//! differs from the file's, is not a backup and is ignored (temp files of an interrupted copy
//! start with a dot and never parse).
//!
//! The folder name is the source's file name (sanitized) plus a 64-bit FNV-1a hash of its
//! canonical path; the `source` record in the folder holds the full path (magic `RSBS`, format
//! version `1`, u32 length, the path's bytes, CRC-32 of all that, little-endian). Folders are
//! probed as `<name>-<hash>`, `<name>-<hash>-1`, … until the one whose record matches, so two
//! paths with the same hash never share a folder.
//!
//! Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600, folders with mode
//! 0700, and a symlink in place of a folder is refused: nothing is written outside the store.
//! With [`Durability::Buffered`] the syncs are skipped (a crash can then leave a copy whose
//! content is incomplete; restoring it reports [`Error::Corrupt`]).

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs_err as fs;
use serde::{Deserialize, Serialize};

use super::files::{self, TempFile, create_private_dir, ensure_real_dir};
use super::{Durability, FailsafeManager};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
const BACKUPS_DIR: &str = "backups";
const DATA_EXT: &str = ".bak";
const SOURCE_FILE: &str = "source";
const SOURCE_MAGIC: &[u8; 4] = b"RSBS";
const SOURCE_VERSION: u8 = 1;
/// A record is 13 bytes plus the source path; anything larger is not ours.
const SOURCE_MAX_LEN: u64 = 64 * 1024;
/// Folders probed for one source; more than one is already a 64-bit hash collision.
const MAX_FOLDER_PROBES: u32 = 64;
/// Small enough to stay in a 512 KiB L2 cache between being read, hashed and written, large
/// enough to amortize syscalls: copying 256 MiB took the least CPU with it among 128 KiB–4 MiB
/// (about 1.1× that of `std::fs::copy`, which computes no checksum).
const CHUNK: usize = 512 << 10;
/// Writeback of the copy is started every this many bytes (see `copy_hashed`).
const WRITEBACK_EVERY: u64 = 8 << 20;

/// One backup of a file, as returned by [`FailsafeManager::create_backup`] and
/// [`FailsafeManager::list_backups`].
///
/// `checksum` is the CRC-32 (IEEE, as computed by `crc32fast`) of the copy's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The backed-up file: its canonical absolute path at the time of the backup.
    pub source: PathBuf,
    /// The copy inside the store directory.
    pub path: PathBuf,
    /// Size of the copy in bytes.
    pub size: u64,
    /// CRC-32 of the copy's bytes.
    pub checksum: u32,
    /// When the backup was taken.
    pub created_at: SystemTime,
}

/// A backup with everything its file name records.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) info: BackupInfo,
    pub(crate) source_mtime: SystemTime,
    pub(crate) mode: u32,
}

impl FailsafeManager {
    /// Copies `path` into the store's backup folder and returns what was stored.
    ///
    /// The copy is written to a private temp file (mode 0600), synced and renamed into place,
    /// so a crash never leaves a half-written backup that looks complete. Its CRC-32 is
    /// computed while the source is read, in a single pass. Older backups of the same file
    /// beyond [`max_backups`](super::FailsafeBuilder::max_backups) are deleted, oldest first.
    ///
    /// # Errors
    /// [`Error::BackupMissing`] if `path` does not exist; [`Error::Io`] naming the file or
    /// folder if it is not a regular file or any file operation fails.
    ///
    /// # Example
    /// ```
    /// # fn main() -> resilience::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let store_dir = tmp.path().join("store");
    /// # let data = tmp.path().join("data.db");
    /// use resilience::FailsafeManager;
    ///
    /// let manager = FailsafeManager::open(&store_dir)?;
    /// std::fs::write(&data, b"version 1").unwrap();
    /// let backup = manager.create_backup(&data)?;
    /// assert_eq!(backup.size, 9);
    ///
    /// std::fs::write(&data, b"version 2, broken").unwrap();
    /// manager.restore_backup(&backup)?;
    /// assert_eq!(std::fs::read(&data).unwrap(), b"version 1");
    /// # Ok(()) }
    /// ```
    pub fn create_backup(&self, path: impl AsRef<Path>) -> Result<BackupInfo> {
        let path = path.as_ref();
        let mut source = match files::open_user_file(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BackupMissing { path: path.to_path_buf() });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = source.metadata().map_err(|e| Error::io(path, e))?;
        let source_mtime = meta.modified().map_err(|e| Error::io(path, e))?;
        let mode = permission_bits(&meta);
        let key = resolve_source(path)?;
        let durable = self.inner.durability == Durability::Sync;
        let folder = self.source_folder(&key, true)?.expect("created on demand");

        let mut entries = read_entries(&folder, &key);
        let seq = entries.iter().map(|e| e.seq).max().map_or(1, |s| s.saturating_add(1));
        let created_at = SystemTime::now();
        let mut temp = TempFile::create(&folder, "backup")?;
        let (size, checksum) = copy_hashed(&mut source, path, &mut temp, &folder, durable)?;
        let mut entry = Entry {
            seq,
            info: BackupInfo { source: key, path: PathBuf::new(), size, checksum, created_at },
            source_mtime,
            mode,
        };
        entry.info.path = folder.join(encode_name(&entry, fastrand::u64(..)));
        temp.commit(&entry.info.path, durable)?;

        entries.push(entry.clone());
        sort_newest_first(&mut entries);
        for old in entries.iter().skip(self.inner.max_backups) {
            // A copy that cannot be deleted does not make the new backup any less valid;
            // not found: a concurrent backup of the same file rotated it already.
            match fs::remove_file(&old.info.path) {
                Ok(()) => tracing::info!(
                    target: TARGET,
                    source = %old.info.source.display(),
                    backup = %old.info.path.display(),
                    max_backups = self.inner.max_backups,
                    "old backup rotated out"
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let error = Error::io(&old.info.path, e);
                    tracing::warn!(target: TARGET, %error, "cannot rotate out an old backup");
                }
            }
        }
        if durable {
            files::sync_dir(&folder)?;
        }
        tracing::info!(
            target: TARGET,
            source = %entry.info.source.display(),
            backup = %entry.info.path.display(),
            size,
            "backup created"
        );
        Ok(entry.info)
    }

    /// The backups of `path`, newest first; empty if it was never backed up.
    ///
    /// `path` does not need to exist any more (that is when backups matter most): it is
    /// resolved the same way as when it was backed up.
    ///
    /// # Errors
    /// [`Error::Io`] if the current directory (for a relative path) cannot be read.
    ///
    /// # Example
    /// ```
    /// # fn main() -> resilience::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let data = tmp.path().join("data.db");
    /// use resilience::FailsafeManager;
    ///
    /// let manager = FailsafeManager::open(tmp.path().join("store"))?;
    /// assert!(manager.list_backups(&data)?.is_empty());
    ///
    /// std::fs::write(&data, b"one").unwrap();
    /// manager.create_backup(&data)?;
    /// std::fs::write(&data, b"two!").unwrap();
    /// manager.create_backup(&data)?;
    ///
    /// let backups = manager.list_backups(&data)?;
    /// assert_eq!(backups.len(), 2);
    /// assert_eq!(backups[0].size, 4); // newest first
    /// # Ok(()) }
    /// ```
    pub fn list_backups(&self, path: impl AsRef<Path>) -> Result<Vec<BackupInfo>> {
        Ok(self.backup_entries(path.as_ref())?.into_iter().map(|e| e.info).collect())
    }

    /// Replaces the backed-up file with the copy in `backup`, after verifying its checksum.
    ///
    /// The copy is verified while it is written to a temp file next to the source; only a
    /// copy that matches its recorded size and CRC-32 is synced and renamed over the source,
    /// so on any error the source is left as it was. A deleted source (and its folder) is
    /// recreated, with the permission bits it had when it was backed up.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the backup if it does not match its checksum or size;
    /// [`Error::Io`] naming the file if a file operation fails.
    ///
    /// # Example
    /// ```
    /// # fn main() -> resilience::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let data = tmp.path().join("settings.json");
    /// use resilience::FailsafeManager;
    ///
    /// let manager = FailsafeManager::open(tmp.path().join("store"))?;
    /// std::fs::write(&data, br#"{"ok":true}"#).unwrap();
    /// manager.create_backup(&data)?;
    /// std::fs::remove_file(&data).unwrap();
    ///
    /// let newest = &manager.list_backups(&data)?[0];
    /// manager.restore_backup(newest)?;
    /// assert_eq!(std::fs::read(&data).unwrap(), br#"{"ok":true}"#);
    /// # Ok(()) }
    /// ```
    pub fn restore_backup(&self, backup: &BackupInfo) -> Result<()> {
        let target = &backup.source;
        let parent = parent_of(target)?;
        let durable = self.inner.durability == Durability::Sync;
        let mut copy = files::open_read(&backup.path).map_err(|e| Error::io(&backup.path, e))?;
        if !parent.is_dir() {
            fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        }

        // Named after the file, so that one left by a crash is recognizable.
        let name: String = target
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(64).collect())
            .unwrap_or_default();
        let mut temp = TempFile::create(&parent, &format!("{name}.restore"))?;
        let (size, checksum) = copy_hashed(&mut copy, &backup.path, &mut temp, target, durable)?;
        if size != backup.size || checksum != backup.checksum {
            return Err(Error::corrupt(
                &backup.path,
                format!(
                    "backup of `{}` holds {size} bytes with CRC-32 {checksum:#010x}, \
                     expected {} bytes with CRC-32 {:#010x}",
                    target.display(),
                    backup.size,
                    backup.checksum
                ),
            ));
        }
        if let Some(mode) = self.restore_mode(backup) {
            set_mode(&temp.file, mode).map_err(|e| Error::io(target, e))?;
        }
        temp.commit(target, durable)?;
        if durable {
            files::sync_dir(&parent)?;
        }
        tracing::info!(
            target: TARGET,
            source = %target.display(),
            backup = %backup.path.display(),
            size,
            "backup restored"
        );
        Ok(())
    }

    /// Permission bits for a restored file: those recorded with the backup, else the current
    /// source's, else the temp file's 0600.
    fn restore_mode(&self, backup: &BackupInfo) -> Option<u32> {
        let recorded = backup
            .path
            .file_name()
            .and_then(|name| decode_name(name.to_str()?, &backup.path, &backup.source))
            .map(|e| e.mode);
        recorded.or_else(|| std::fs::metadata(&backup.source).ok().map(|m| permission_bits(&m)))
    }

    /// The valid backups of `path`, newest first.
    pub(crate) fn backup_entries(&self, path: &Path) -> Result<Vec<Entry>> {
        let key = resolve_source(path)?;
        let Some(folder) = self.source_folder(&key, false)? else {
            return Ok(Vec::new());
        };
        let mut entries = read_entries(&folder, &key);
        sort_newest_first(&mut entries);
        Ok(entries)
    }

    /// `(count, total bytes)` of every valid backup in the store.
    pub(crate) fn backup_totals(&self) -> Result<(u64, u64)> {
        let root = self.backups_root();
        let dirs = match fs::read_dir(&root) {
            Ok(dirs) => dirs,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(Error::io(&root, e)),
        };
        let (mut count, mut bytes) = (0u64, 0u64);
        for dir in dirs.flatten() {
            if !dir.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let folder = dir.path();
            if let Ok(Ok(Some(source))) = read_source_record(&folder) {
                for entry in read_entries(&folder, &source) {
                    count += 1;
                    bytes = bytes.saturating_add(entry.info.size);
                }
            }
        }
        Ok((count, bytes))
    }

    /// Absolute, so that a [`BackupInfo`] stays valid if the working directory changes.
    fn backups_root(&self) -> PathBuf {
        let root = self.inner.dir.join(BACKUPS_DIR);
        std::path::absolute(&root).unwrap_or(root)
    }

    /// The folder holding the backups of `key`: the first of `<name>-<hash>`,
    /// `<name>-<hash>-1`, … whose `source` record names `key`. With `create`, a free (or
    /// abandoned, empty) folder is claimed for it; without, `None` if there is none.
    fn source_folder(&self, key: &Path, create: bool) -> Result<Option<PathBuf>> {
        let root = self.backups_root();
        if create {
            create_private_dir(&root)?;
            ensure_real_dir(&root)?;
        }
        let base = folder_name(key);
        for n in 0..MAX_FOLDER_PROBES {
            let folder = match n {
                0 => root.join(&base),
                n => root.join(format!("{base}-{n}")),
            };
            match read_source_record(&folder)? {
                Ok(Some(source)) if source == key => {
                    if create {
                        ensure_real_dir(&folder)?;
                    }
                    return Ok(Some(folder));
                }
                Ok(Some(_)) | Err(_) => continue,
                Ok(None) => {}
            }
            // No record: a free name, or a folder whose creation was interrupted.
            let exists = std::fs::symlink_metadata(&folder).is_ok();
            if !create {
                if exists {
                    continue;
                }
                return Ok(None);
            }
            if exists && !holds_no_backups(&folder) {
                // Claimed since the record was read, by a concurrent first backup of `key`?
                if read_source_record(&folder)?.ok().flatten().as_deref() == Some(key) {
                    ensure_real_dir(&folder)?;
                    return Ok(Some(folder));
                }
                continue;
            }
            create_private_dir(&folder)?;
            ensure_real_dir(&folder)?;
            write_source_record(&folder, key, self.inner.durability == Durability::Sync)?;
            return Ok(Some(folder));
        }
        Err(Error::io(
            root.join(base),
            io::Error::other(
                "no free backup folder for this file: too many folders share its name",
            ),
        ))
    }
}

fn holds_no_backups(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|mut items| {
        items.all(|item| item.is_ok_and(|i| !i.file_name().to_string_lossy().ends_with(DATA_EXT)))
    })
}

/// Reads `reader` to the end in large chunks, hashing each chunk and appending it to `temp`.
///
/// One pass over the source: `copy_file_range` plus a second read for the checksum costs more
/// CPU. With durability on, writeback is started as the copy grows (`sync_file_range`), so the
/// disk works while the copy is made and the final `fsync` (in [`TempFile::commit`]) finds
/// little left to do.
///
/// Errors name `reader_path` or `dest` (what the temp file becomes), never the temp file.
fn copy_hashed(
    reader: &mut std::fs::File,
    reader_path: &Path,
    temp: &mut TempFile,
    dest: &Path,
    durable: bool,
) -> Result<(u64, u32)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut unsynced = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(reader_path, e)),
        };
        hasher.update(&buf[..n]);
        temp.file.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        total += n as u64;
        unsynced += n as u64;
        if durable && unsynced >= WRITEBACK_EVERY {
            start_writeback(&temp.file, total - unsynced, unsynced);
            unsynced = 0;
        }
    }
    Ok((total, hasher.finalize()))
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // Only a hint that starts writeback early; the `fsync` at the end is what guarantees
    // durability, so a failure here is harmless and ignored.
    // SAFETY: the descriptor is open for the duration of the call; the call touches no memory.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as _, len as _, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

#[cfg(unix)]
fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() { 0o444 } else { 0o644 }
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    let mut perms = file.metadata()?.permissions();
    perms.set_readonly(mode & 0o200 == 0);
    file.set_permissions(perms)
}

/// The key a source is stored under: its canonical absolute path.
///
/// An existing file is canonicalized fully (a symlink resolves to its target, which is what a
/// restore then writes). A missing one resolves through its canonical parent folder, or
/// lexically when that is gone too, so its backups can still be found after it was deleted.
pub(crate) fn resolve_source(path: &Path) -> Result<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Ok(canonical);
    }
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        cwd.join(path)
    };
    let absolute = normalize_lexically(&absolute);
    if let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name())
        && let Ok(parent) = std::fs::canonicalize(parent)
    {
        return Ok(parent.join(name));
    }
    Ok(absolute)
}

fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn parent_of(target: &Path) -> Result<PathBuf> {
    match (target.parent(), target.file_name()) {
        (Some(parent), Some(_)) if !parent.as_os_str().is_empty() => Ok(parent.to_path_buf()),
        _ => Err(Error::io(
            target,
            io::Error::new(io::ErrorKind::InvalidInput, "backup source is not a file path"),
        )),
    }
}

/// `<sanitized file name>-<FNV-1a 64 of the full path>`: readable, bounded, and free of
/// separators, dots-only names and other surprises whatever the source path holds.
fn folder_name(key: &Path) -> String {
    let name = key.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let mut safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(48)
        .collect();
    if safe.starts_with('.') || safe.is_empty() {
        safe.insert(0, '_');
    }
    format!("{safe}-{:016x}", fnv1a(&path_bytes(key)))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(bytes).ok().map(PathBuf::from)
}

fn sort_newest_first(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (b.seq, b.info.created_at, &b.info.path).cmp(&(a.seq, a.info.created_at, &a.info.path))
    });
}

/// Every valid backup of `source` in `folder`. Foreign and damaged files are skipped: the
/// folder may hold temp files of an interrupted copy, or anything a user dropped there.
fn read_entries(folder: &Path, source: &Path) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in dir.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            files::remove_if_orphaned(folder, name);
            continue;
        }
        let Some(entry) = decode_name(name, &item.path(), source) else {
            continue;
        };
        // A copy cut short (by hand, or unsynced before a crash) is not a backup.
        if item.metadata().is_ok_and(|m| m.is_file() && m.len() == entry.info.size) {
            entries.push(entry);
        }
    }
    entries
}

/// The file name that records `entry`; `tag` keeps concurrent backups apart.
fn encode_name(entry: &Entry, tag: u64) -> String {
    let (created_s, created_ns) = time_to_parts(entry.info.created_at);
    let (mtime_s, mtime_ns) = time_to_parts(entry.source_mtime);
    format!(
        "{:020}_{created_s}_{created_ns:09}_{mtime_s}_{mtime_ns:09}_{}_{:08x}_{:o}_{tag:016x}{DATA_EXT}",
        entry.seq, entry.info.size, entry.info.checksum, entry.mode
    )
}

/// Parses a name written by [`encode_name`]; anything that does not encode back to exactly
/// the same name is rejected.
fn decode_name(name: &str, path: &Path, source: &Path) -> Option<Entry> {
    let fields: Vec<&str> = name.strip_suffix(DATA_EXT)?.split('_').collect();
    let [seq, created_s, created_ns, mtime_s, mtime_ns, size, crc, mode, tag] = fields[..] else {
        return None;
    };
    let entry = Entry {
        seq: seq.parse().ok()?,
        info: BackupInfo {
            source: source.to_path_buf(),
            path: path.to_path_buf(),
            size: size.parse().ok()?,
            checksum: u32::from_str_radix(crc, 16).ok()?,
            created_at: parts_to_time(created_s.parse().ok()?, created_ns.parse().ok()?).ok()?,
        },
        source_mtime: parts_to_time(mtime_s.parse().ok()?, mtime_ns.parse().ok()?).ok()?,
        mode: u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?,
    };
    let tag = u64::from_str_radix(tag, 16).ok()?;
    (encode_name(&entry, tag) == name).then_some(entry)
}

/// Writes the folder's `source` record atomically (temp file, sync, rename, folder sync).
fn write_source_record(folder: &Path, source: &Path, durable: bool) -> Result<()> {
    let path = folder.join(SOURCE_FILE);
    let temp = TempFile::create(folder, SOURCE_FILE)?;
    temp.write_all_at(&encode_source(source), 0, &path)?;
    temp.commit(&path, durable)?;
    if durable {
        files::sync_dir(folder)?;
        if let Some(root) = folder.parent() {
            files::sync_dir(root)?;
        }
    }
    Ok(())
}

/// The source path recorded in `folder`: `None` if there is no record, `Err(reason)` if there
/// is one that does not decode (a folder of someone else's), and an error naming the record if
/// it cannot be read (a FIFO or a directory in its place, for example).
fn read_source_record(folder: &Path) -> Result<std::result::Result<Option<PathBuf>, String>> {
    let path = folder.join(SOURCE_FILE);
    let bytes = match files::read_small(&path, SOURCE_MAX_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Err(e.to_string())),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(decode_source(&bytes).map(Some))
}

fn encode_source(source: &Path) -> Vec<u8> {
    let path = path_bytes(source);
    let mut out = Vec::with_capacity(13 + path.len());
    out.extend_from_slice(SOURCE_MAGIC);
    out.push(SOURCE_VERSION);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(&path);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_source(bytes: &[u8]) -> std::result::Result<PathBuf, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("truncated")?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader(body);
    if r.take(4)? != SOURCE_MAGIC {
        return Err("not a source record".into());
    }
    let version = r.take(1)?[0];
    if version != SOURCE_VERSION {
        return Err(format!("unknown source record version {version}"));
    }
    let len = r.u32()? as usize;
    let source = path_from_bytes(r.take(len)?).ok_or("source path is not valid here")?;
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(source)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

fn time_to_parts(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn parts_to_time(secs: i64, nanos: u32) -> std::result::Result<SystemTime, String> {
    if nanos >= 1_000_000_000 {
        return Err("invalid timestamp".into());
    }
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    base.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .ok_or_else(|| "timestamp out of range".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(source: &str) -> Entry {
        Entry {
            seq: 42,
            info: BackupInfo {
                source: PathBuf::from(source),
                path: PathBuf::from("/store/backups/x/a.bak"),
                size: 1234,
                checksum: 0xdead_beef,
                created_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            },
            source_mtime: UNIX_EPOCH - Duration::new(5, 250),
            mode: 0o640,
        }
    }

    #[test]
    fn names_round_trip() {
        let original = entry("/data/ünïcode file.db");
        let name = encode_name(&original, 7);
        assert!(name.len() < 160, "{name}");
        let path = Path::new("/store/backups/x").join(&name);
        let decoded = decode_name(&name, &path, &original.info.source).unwrap();
        assert_eq!(decoded.info, BackupInfo { path, ..original.info.clone() });
        assert_eq!(decoded.seq, 42);
        assert_eq!(decoded.source_mtime, original.source_mtime);
        assert_eq!(decoded.mode, 0o640);
    }

    #[test]
    fn names_that_do_not_encode_back_are_rejected() {
        let name = encode_name(&entry("/d"), 7);
        let at = Path::new("/s/x");
        for bad in [
            name.replacen("00000000000000000042", "42", 1),
            name.replacen("_640_", "_0640_", 1),
            name.replacen("_640_", "_20000_", 1),
            name.replacen("_1234_", "_+1234_", 1),
            name.replacen(".bak", ".bak.tmp", 1),
            format!(".{name}"),
            name.replacen('_', "__", 1),
            "junk.bak".to_owned(),
            ".bak".to_owned(),
        ] {
            assert!(decode_name(&bad, at, Path::new("/d")).is_none(), "accepted {bad}");
        }
    }

    #[test]
    fn source_records_round_trip_and_reject_any_flipped_bit() {
        let source = Path::new("/data/ünïcode file\nwith newline.db");
        let bytes = encode_source(source);
        assert_eq!(decode_source(&bytes).unwrap(), source);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_source(&bad).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode_source(&bytes[..len]).is_err(), "truncation to {len} accepted");
        }
    }

    #[test]
    fn sources_whose_folder_names_collide_get_their_own_folders() {
        let dir = tempfile::tempdir().unwrap();
        let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, b"mine").unwrap();
        let key = resolve_source(&file).unwrap();
        // Another path already owns the folder this one hashes to.
        let taken = manager.backups_root().join(folder_name(&key));
        std::fs::create_dir_all(&taken).unwrap();
        std::fs::write(taken.join(SOURCE_FILE), encode_source(Path::new("/else/f.txt"))).unwrap();
        let foreign =
            Entry { info: BackupInfo { size: 3, ..entry("/else/f.txt").info }, ..entry("") };
        std::fs::write(taken.join(encode_name(&foreign, 1)), b"abc").unwrap();

        let backup = manager.create_backup(&file).unwrap();
        assert_eq!(
            backup.path.parent().unwrap(),
            taken.with_file_name(format!("{}-1", folder_name(&key)))
        );
        assert_eq!(manager.list_backups(&file).unwrap(), vec![backup]);
        assert_eq!(manager.backup_totals().unwrap(), (2, 7));
    }

    #[test]
    fn an_abandoned_empty_folder_is_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, b"mine").unwrap();
        let folder = manager.backups_root().join(folder_name(&resolve_source(&file).unwrap()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(".source-0123456789abcdef.tmp"), b"interrupted").unwrap();
        assert_eq!(manager.list_backups(&file).unwrap(), vec![]);
        let backup = manager.create_backup(&file).unwrap();
        assert_eq!(backup.path.parent().unwrap(), folder);
    }

    #[test]
    fn folder_names_are_safe_and_distinct() {
        let a = folder_name(Path::new("/x/../../etc/passwd"));
        assert!(!a.contains('/') && !a.starts_with('.'));
        let b = folder_name(Path::new("/data/a b.db"));
        let c = folder_name(Path::new("/data/a_b.db"));
        assert_ne!(b, c, "same sanitized name, different paths");
        assert!(b.starts_with("a_b.db-"));
        assert_eq!(folder_name(Path::new("/")).len(), 1 + 1 + 16);
        assert!(folder_name(Path::new(&"x".repeat(5000))).len() <= 48 + 1 + 16);
    }

    #[test]
    fn missing_sources_resolve_like_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gone.txt");
        std::fs::write(&file, b"x").unwrap();
        let before = resolve_source(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(resolve_source(&file).unwrap(), before);
        let odd = dir.path().join("sub/../gone.txt");
        assert_eq!(resolve_source(&odd).unwrap(), before);
    }
}
