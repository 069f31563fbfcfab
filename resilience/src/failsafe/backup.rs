//! Backups: byte-exact, checksummed copies of files, kept per source and rotated.
//!
//! Layout under the store directory:
//!
//! ```text
//! backups/<sanitized file name>-<16 hex digits>/   one folder per source file
//!     <seq:020>-<random:016x>.bak                  the copy, byte for byte (mode 0600)
//!     <seq:020>-<random:016x>.meta                 its metadata record
//! ```
//!
//! The folder name is the source's file name (sanitized) plus a 64-bit FNV-1a hash of its full
//! canonical path. A hash can collide, so the folder name is only a locator: every metadata
//! record carries the full source path, and a backup belongs to a source only when that path
//! matches. Files that are not a valid `.meta` + `.bak` pair (temp files of an interrupted copy,
//! anything a user drops there) are ignored.
//!
//! The metadata record (little-endian): magic `RSBK`, format version `1`, sequence number (u64,
//! one more than the newest backup of the source: it orders backups independently of clock
//! jumps), size (u64), CRC-32 of the copy (u32), creation time and the source's modification
//! time (i64 seconds + u32 nanoseconds relative to the Unix epoch), the source's permission
//! bits (u32), the source path (u32 length + bytes), then a CRC-32 of everything before it.
//!
//! Both files are written to a temp file created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode
//! 0600, synced, and renamed into place; the copy goes first, so a crash leaves at worst an
//! orphan copy (ignored), never a record pointing at a partial copy. The folder is synced once
//! at the end. With [`Durability::Buffered`] the syncs are skipped (a crash can then leave a
//! record whose copy is incomplete; restoring it reports [`Error::Corrupt`]).

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs_err as fs;
use serde::{Deserialize, Serialize};

use super::{Durability, FailsafeManager};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
const BACKUPS_DIR: &str = "backups";
const DATA_EXT: &str = "bak";
const META_EXT: &str = "meta";
const META_MAGIC: &[u8; 4] = b"RSBK";
const META_VERSION: u8 = 1;
/// A record is ~60 bytes plus the source path; anything larger is not ours.
const META_MAX_LEN: u64 = 64 * 1024;
/// Large enough to amortize syscalls, small enough to stay in cache between being read, hashed
/// and written (on a 256 MiB file, 2 MiB took the least CPU and wall time of 256 KiB–8 MiB).
const CHUNK: usize = 2 << 20;

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

/// A decoded metadata record plus what is derived from its location.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) info: BackupInfo,
    pub(crate) source_mtime: SystemTime,
    pub(crate) mode: u32,
    meta_path: PathBuf,
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
        let mut source = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BackupMissing { path: path.to_path_buf() });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = source.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "only regular files can be backed up"),
            ));
        }
        let source_mtime = meta.modified().map_err(|e| Error::io(path, e))?;
        let mode = permission_bits(&meta);
        let key = resolve_source(path)?;
        let folder = self.ensure_source_folder(&key)?;
        let durable = self.inner.durability == Durability::Sync;

        let mut entries = read_entries(&folder, Some(&key));
        let seq = entries.iter().map(|e| e.seq).max().map_or(1, |s| s.saturating_add(1));
        let stem = format!("{seq:020}-{:016x}", fastrand::u64(..));
        let data_path = folder.join(format!("{stem}.{DATA_EXT}"));
        let meta_path = folder.join(format!("{stem}.{META_EXT}"));
        let created_at = SystemTime::now();

        let mut temp = TempFile::create(&folder, "backup")?;
        let (size, checksum) = copy_hashed(&mut source, path, &mut temp, &data_path, durable)?;
        temp.commit(&data_path, durable)?;

        let entry = Entry {
            seq,
            info: BackupInfo { source: key, path: data_path, size, checksum, created_at },
            source_mtime,
            mode,
            meta_path,
        };
        let mut meta_temp = TempFile::create(&folder, "record")?;
        meta_temp
            .file
            .write_all(&encode_meta(&entry))
            .map_err(|e| Error::io(&entry.meta_path, e))?;
        meta_temp.commit(&entry.meta_path, durable)?;
        tracing::info!(
            target: TARGET,
            source = %entry.info.source.display(),
            backup = %entry.info.path.display(),
            size,
            "backup created"
        );

        entries.push(entry.clone());
        sort_newest_first(&mut entries);
        for old in entries.iter().skip(self.inner.max_backups) {
            // The record goes first: a crash in between leaves an orphan copy, which is ignored.
            // Not found: a concurrent backup of the same file rotated it already.
            // A copy that cannot be deleted does not make the new backup any less valid.
            let removed = [&old.meta_path, &old.info.path].into_iter().try_for_each(|path| {
                match fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
                    _ => Ok(()),
                }
            });
            if let Err(error) = removed {
                tracing::warn!(target: TARGET, %error, "cannot rotate out an old backup");
                continue;
            }
            tracing::info!(
                target: TARGET,
                source = %old.info.source.display(),
                backup = %old.info.path.display(),
                max_backups = self.inner.max_backups,
                "old backup rotated out"
            );
        }
        if durable {
            sync_dir(&folder)?;
        }
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
        let mut copy = fs::File::open(&backup.path).map_err(|e| Error::io(&backup.path, e))?;
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
            sync_dir(&parent)?;
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
        let recorded = decode_meta_file(&backup.path.with_extension(META_EXT))
            .ok()
            .filter(|e| e.info.source == backup.source)
            .map(|e| e.mode);
        recorded.or_else(|| std::fs::metadata(&backup.source).ok().map(|m| permission_bits(&m)))
    }

    /// The valid backups of `path`, newest first.
    pub(crate) fn backup_entries(&self, path: &Path) -> Result<Vec<Entry>> {
        let key = resolve_source(path)?;
        let folder = self.backups_root().join(folder_name(&key));
        let mut entries = read_entries(&folder, Some(&key));
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
            if dir.file_type().is_ok_and(|t| t.is_dir()) {
                for entry in read_entries(&dir.path(), None) {
                    count += 1;
                    bytes = bytes.saturating_add(entry.info.size);
                }
            }
        }
        Ok((count, bytes))
    }

    fn backups_root(&self) -> PathBuf {
        self.inner.dir.join(BACKUPS_DIR)
    }

    /// Creates `backups/` and the source's folder (0700), refusing symlinks in their place so
    /// nothing is written outside the store directory.
    fn ensure_source_folder(&self, key: &Path) -> Result<PathBuf> {
        let root = self.backups_root();
        let folder = root.join(folder_name(key));
        for dir in [&root, &folder] {
            create_private_dir(dir)?;
            let meta = fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
            if !meta.is_dir() {
                return Err(Error::io(
                    dir,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "expected a directory of the store, found a symlink or a file",
                    ),
                ));
            }
        }
        Ok(folder)
    }
}

/// Reads `reader` to the end in large chunks, hashing each chunk and appending it to `temp`.
///
/// One pass over the source instead of `copy_file_range` plus a second read for the checksum.
/// With durability on, each chunk's writeback is started at once (`sync_file_range`), so the
/// final `fsync` (in [`TempFile::commit`]) finds little left to do: on a 256 MiB file this measured faster than
/// `std::fs::copy` + `sync_all`.
///
/// Errors name `reader_path` or `dest` (what the temp file becomes), never the temp file.
fn copy_hashed(
    reader: &mut fs::File,
    reader_path: &Path,
    temp: &mut TempFile,
    dest: &Path,
    durable: bool,
) -> Result<(u64, u32)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(reader_path, e)),
        };
        hasher.update(&buf[..n]);
        temp.file.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        if durable {
            start_writeback(&temp.file, total, n as u64);
        }
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // Only a hint that starts writeback early; the `fsync` at the end is what guarantees
    // durability, so a failure here is harmless and ignored.
    // SAFETY: the descriptor is open for the duration of the call; the call touches no memory.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as _, len as _, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &fs::File, _offset: u64, _len: u64) {}

/// A private temp file in a directory, deleted on drop unless committed.
struct TempFile {
    file: fs::File,
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates `.<prefix>-<random>.tmp` in `dir`: exclusive (`O_EXCL`, never follows or
    /// reuses an existing name or symlink) and readable by the owner only.
    fn create(dir: &Path, prefix: &str) -> Result<TempFile> {
        loop {
            let path = dir.join(format!(".{prefix}-{:016x}.tmp", fastrand::u64(..)));
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use fs_err::os::unix::fs::OpenOptionsExt;
                options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            match options.open(&path) {
                Ok(file) => return Ok(TempFile { file, path, committed: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Syncs (if `durable`) and renames the file to `dest`.
    fn commit(mut self, dest: &Path, durable: bool) -> Result<()> {
        if durable {
            self.file.sync_all().map_err(|e| Error::io(dest, e))?;
        }
        fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates `dir` (and any missing parent) with mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

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
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
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

/// Every valid record in `folder` (of `source` only, when given). Unreadable and foreign files
/// are skipped: the folder may hold temp files of an interrupted copy.
fn read_entries(folder: &Path, source: Option<&Path>) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in dir.flatten() {
        let path = item.path();
        let is_record = path.extension().is_some_and(|e| e == META_EXT)
            && !item.file_name().to_string_lossy().starts_with('.');
        if !is_record {
            continue;
        }
        match decode_meta_file(&path) {
            Ok(entry) if source.is_none_or(|s| entry.info.source == s) => {
                if std::fs::symlink_metadata(&entry.info.path).is_ok_and(|m| m.is_file()) {
                    entries.push(entry);
                }
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::debug!(target: TARGET, file = %path.display(), %reason, "ignored");
            }
        }
    }
    entries
}

fn encode_meta(entry: &Entry) -> Vec<u8> {
    let source = path_bytes(&entry.info.source);
    let mut out = Vec::with_capacity(72 + source.len());
    out.extend_from_slice(META_MAGIC);
    out.push(META_VERSION);
    out.extend_from_slice(&entry.seq.to_le_bytes());
    out.extend_from_slice(&entry.info.size.to_le_bytes());
    out.extend_from_slice(&entry.info.checksum.to_le_bytes());
    for time in [entry.info.created_at, entry.source_mtime] {
        let (secs, nanos) = time_to_parts(time);
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&nanos.to_le_bytes());
    }
    out.extend_from_slice(&entry.mode.to_le_bytes());
    out.extend_from_slice(&(source.len() as u32).to_le_bytes());
    out.extend_from_slice(&source);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_meta_file(meta_path: &Path) -> std::result::Result<Entry, String> {
    let file = std::fs::File::open(meta_path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(META_MAX_LEN + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > META_MAX_LEN {
        return Err("too large for a backup record".into());
    }
    decode_meta(&bytes, meta_path)
}

fn decode_meta(bytes: &[u8], meta_path: &Path) -> std::result::Result<Entry, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("truncated")?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader(body);
    if r.take(4)? != META_MAGIC {
        return Err("not a backup record".into());
    }
    let version = r.take(1)?[0];
    if version != META_VERSION {
        return Err(format!("unknown backup record version {version}"));
    }
    let seq = r.u64()?;
    let size = r.u64()?;
    let checksum = r.u32()?;
    let created_at = parts_to_time(r.i64()?, r.u32()?)?;
    let source_mtime = parts_to_time(r.i64()?, r.u32()?)?;
    let mode = r.u32()?;
    let len = r.u32()? as usize;
    let source = path_from_bytes(r.take(len)?).ok_or("source path is not valid here")?;
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(Entry {
        seq,
        info: BackupInfo {
            source,
            path: meta_path.with_extension(DATA_EXT),
            size,
            checksum,
            created_at,
        },
        source_mtime,
        mode,
        meta_path: meta_path.to_path_buf(),
    })
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

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
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
            meta_path: PathBuf::from("/store/backups/x/a.meta"),
        }
    }

    #[test]
    fn meta_round_trips() {
        let original = entry("/data/ünïcode file\nwith newline.db");
        let bytes = encode_meta(&original);
        let decoded = decode_meta(&bytes, Path::new("/store/backups/x/a.meta")).unwrap();
        assert_eq!(decoded.info, original.info);
        assert_eq!(decoded.seq, 42);
        assert_eq!(decoded.source_mtime, original.source_mtime);
        assert_eq!(decoded.mode, 0o640);
    }

    #[test]
    fn meta_rejects_any_flipped_bit_and_truncation() {
        let bytes = encode_meta(&entry("/data/file.db"));
        let at = Path::new("/s/a.meta");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_meta(&bad, at).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode_meta(&bytes[..len], at).is_err(), "truncation to {len} accepted");
        }
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

    #[derive(Clone, Default)]
    struct Collector(std::sync::Arc<std::sync::Mutex<Vec<(String, tracing::Level, String)>>>);

    struct Message<'a>(&'a mut String);

    impl tracing::field::Visit for Message<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                *self.0 = format!("{value:?}");
            }
        }
    }

    impl tracing::Subscriber for Collector {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            let meta = event.metadata();
            self.0.lock().unwrap().push((meta.target().to_owned(), *meta.level(), message));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn backups_report_through_tracing() {
        let dir = tempfile::tempdir().unwrap();
        let manager = FailsafeManager::builder()
            .dir(dir.path().join("store"))
            .max_backups(1)
            .build()
            .unwrap();
        let file = dir.path().join("f");
        let missing = dir.path().join("missing");
        std::fs::write(&file, b"1").unwrap();
        let collector = Collector::default();
        tracing::subscriber::with_default(collector.clone(), || {
            let first = manager.create_backup(&file).unwrap();
            std::fs::write(&file, b"2").unwrap();
            manager.create_backup(&file).unwrap();
            manager.restore_backup(&manager.list_backups(&file).unwrap()[0]).unwrap();
            drop(first);
            let auto = manager
                .start_auto_backup(std::slice::from_ref(&missing), Duration::from_secs(3600));
            assert!(auto.run_now().is_empty());
        });
        let events: Vec<_> = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(target, level, _)| target == TARGET && *level <= tracing::Level::INFO)
            .map(|(_, level, message)| (*level, message.clone()))
            .collect();
        use tracing::Level;
        let expected = [
            (Level::INFO, "backup created"),
            (Level::INFO, "backup created"),
            (Level::INFO, "old backup rotated out"),
            (Level::INFO, "backup restored"),
            (Level::INFO, "auto-backup started"),
            (Level::WARN, "auto-backup skipped a missing file"),
            (Level::INFO, "auto-backup stopped"),
        ];
        let expected: Vec<_> = expected.iter().map(|(l, m)| (*l, m.to_string())).collect();
        assert_eq!(events, expected);
    }
}
