//! The public operations: create, list and restore backups.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs_err as fs;

use super::copy::{copy_hashed, copy_unchanged, hash_file, permission_bits, set_mode};
use super::database;
use super::naming::{
    BackupInfo, Entry, decode_name, encode_name, folder_name, holds_no_backups, read_entries,
    read_source_record, resolve_source, sort_newest_first, write_source_record,
};
use crate::error::{Error, Result};
use crate::failsafe::files::{self, DirHandle, TempFile, create_private_dir, ensure_real_dir};
use crate::failsafe::{Durability, FailsafeManager};

const TARGET: &str = "resilience::failsafe";
const BACKUPS_DIR: &str = "backups";
/// Folders probed for one source; more than one is already a 64-bit hash collision.
const MAX_FOLDER_PROBES: u32 = 64;

impl FailsafeManager {
    /// Copies `path` into the store's backup folder and returns what was stored.
    ///
    /// A backup is a state the file really had. A plain file is copied while its size,
    /// modification and change times and inode are watched (on its descriptor and its path,
    /// before and after the copy); a copy during which any of them moved is thrown away and
    /// made again, up to 3 times. A SQLite database (feature `sqlite`) is copied by SQLite's
    /// online backup API from one snapshot, committed transactions in its `-wal` included, while
    /// writers go on.
    ///
    /// The copy is written to a private temp file (mode 0600), synced and renamed into place,
    /// so a crash never leaves a half-written backup that looks complete. Its CRC-32 is
    /// computed as the copy is made (for a database, over the finished copy). Only after that are older backups
    /// of the same file beyond [`max_backups`](crate::FailsafeBuilder::max_backups) deleted,
    /// oldest first: a failed attempt never costs an older backup.
    ///
    /// # Errors
    /// [`Error::BackupMissing`] if `path` does not exist; [`Error::SourceChanged`] if it
    /// changed during each of 3 copies; [`Error::Unsupported`] for a SQLite database with a
    /// non-empty `-wal` or a `-journal` beside it, without feature `sqlite`; [`Error::Io`]
    /// naming the file or folder if it is not a regular file or any file operation fails.
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
        let durable = self.inner.durability == Durability::Sync;
        for attempt in 1..=COPY_TRIES {
            let (source, is_database) = match files::open_source(path) {
                Ok(opened) => opened,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::BackupMissing { path: path.to_path_buf() });
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            let meta = source.metadata().map_err(|e| Error::io(path, e))?;
            let mode = permission_bits(&meta);
            let mut source_mtime = meta.modified().map_err(|e| Error::io(path, e))?;
            // Resolved at each attempt: a symlink may point elsewhere now.
            let key = resolve_source(path)?;
            let folder = self.source_folder(&key, true)?.expect("created on demand");
            let mut temp = TempFile::create(&folder, "backup")?;
            let copied = if is_database {
                source_mtime = database::changed_at(&key, source_mtime);
                self.copy_database(&key, &source, path, &mut temp, &folder, durable)?
            } else {
                copy_unchanged(&source, path, &mut temp, &folder, durable)?
            };
            let Some((size, checksum)) = copied else {
                tracing::debug!(
                    target: TARGET,
                    source = %path.display(),
                    attempt,
                    "the file changed while it was copied; copying it again"
                );
                continue;
            };
            let info = BackupInfo {
                source: key,
                path: PathBuf::new(),
                size,
                checksum,
                created_at: SystemTime::now(),
            };
            let entry = Entry { seq: 0, info, source_mtime, mode };
            return self.publish(temp, &folder, entry, durable);
        }
        tracing::warn!(
            target: TARGET,
            source = %path.display(),
            tries = COPY_TRIES,
            "no backup made: the file changed during every copy"
        );
        Err(Error::SourceChanged { path: path.to_path_buf() })
    }

    /// Copies the SQLite database `key` (open as `source`) into `temp`: through SQLite with
    /// feature `sqlite`; as a watched plain file without it, unless a `-wal` or `-journal` is
    /// in use beside it.
    fn copy_database(
        &self,
        key: &Path,
        source: &std::fs::File,
        path: &Path,
        temp: &mut TempFile,
        folder: &Path,
        durable: bool,
    ) -> Result<Option<(u64, u32)>> {
        #[cfg(feature = "sqlite")]
        {
            let _ = (source, folder);
            super::sqlite::snapshot(key, temp, durable)?;
            hash_file(&temp.file, path).map(Some)
        }
        #[cfg(not(feature = "sqlite"))]
        {
            if let Some(beside) = database::live_sidecar(key) {
                return Err(database::unsupported(path, &beside, false));
            }
            let copied = copy_unchanged(source, path, temp, folder, durable)?;
            // A transaction that started during the copy leaves its journal behind it.
            if let Some(beside) = database::live_sidecar(key) {
                return Err(database::unsupported(path, &beside, false));
            }
            Ok(copied)
        }
    }

    /// Numbers the copy in `temp` after the newest backup in `folder`, names it after what
    /// `entry` records, renames it into `folder`, and rotates out the oldest backups beyond
    /// `max_backups`.
    fn publish(
        &self,
        temp: TempFile,
        folder: &Path,
        mut entry: Entry,
        durable: bool,
    ) -> Result<BackupInfo> {
        let mut entries = read_entries(folder, &entry.info.source);
        entry.seq = entries.iter().map(|e| e.seq).max().map_or(1, |s| s.saturating_add(1));
        entry.info.path = folder.join(encode_name(&entry, fastrand::u64(..)));
        temp.commit(&entry.info.path, durable)?;

        entries.push(entry.clone());
        sort_newest_first(&mut entries);
        for old in entries.iter().skip(self.inner.max_backups) {
            // A copy that cannot be deleted does not make the new backup any less valid;
            // not found: a concurrent backup of the same file rotated it already.
            match crate::failsafe::io::remove_file(&old.info.path) {
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
            files::sync_dir(folder)?;
        }
        tracing::info!(
            target: TARGET,
            source = %entry.info.source.display(),
            backup = %entry.info.path.display(),
            size = entry.info.size,
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
    /// The restore writes only to the path that was backed up: the folders leading to it are
    /// opened one by one without following symbolic links, and the file is written through the
    /// last one's handle. If one of them is now a symlink (or not a directory), the restore
    /// fails and writes nothing. Missing folders are created.
    ///
    /// A plain file is verified while it is written to a temp file next to the source; only a
    /// copy that matches its recorded size and CRC-32 is synced and renamed over the source,
    /// so on any error the source is left as it was. A deleted source is recreated, with the
    /// permission bits it had when it was backed up.
    ///
    /// A SQLite database (feature `sqlite`) is restored through SQLite into the live database,
    /// in one transaction: connections open on it see the restored content, and a stale `-wal`
    /// beside it is never replayed over it. A database that is no longer one (damaged) is
    /// replaced as a file, and the `-wal` and `-journal` beside it removed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the backup if it does not match its checksum or size;
    /// [`Error::Io`] naming the file or the folder in the way if a folder on the path is now a
    /// symlink, or if a file operation fails; [`Error::Unsupported`] for a database with a
    /// non-empty `-wal` or a `-journal` beside it, without feature `sqlite`.
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
        let (parent, name) = split_target(target)?;
        let durable = self.inner.durability == Durability::Sync;
        let copy = files::open_read(&backup.path).map_err(|e| Error::io(&backup.path, e))?;
        let dir = DirHandle::walk(&parent, true)?;
        let is_database = files::is_sqlite(&copy).map_err(|e| Error::io(&backup.path, e))?;
        let existed = dir.entry_stamp(name).map_err(|e| Error::io(target, e))?.is_some();
        let beside = database::live_sidecar(target);
        if is_database && (existed || beside.is_some()) {
            self.verify_copy(&copy, backup)?;
            #[cfg(feature = "sqlite")]
            {
                use super::sqlite::{Restored, restore};
                if let Restored::Done = restore(&backup.path, target, &dir)? {
                    if !existed && let Some(mode) = self.restore_mode(backup) {
                        let _ = std::fs::set_permissions(target, files_mode(mode));
                    }
                    restored(target, backup);
                    return Ok(());
                }
                // Not a database any more: replaced as a file, without its stale logs.
                for suffix in ["-wal", "-journal"] {
                    let log = database::sidecar(target, suffix);
                    dir.remove_entry(log.file_name().unwrap_or_default())
                        .map_err(|e| Error::io(&log, e))?;
                }
            }
            #[cfg(not(feature = "sqlite"))]
            if let Some(beside) = beside {
                return Err(database::unsupported(target, &beside, true));
            }
        }

        // Named after the file, so that one left by a crash is recognizable.
        let tag: String = name.to_string_lossy().chars().take(64).collect();
        let mut temp = dir.temp_file(&format!("{tag}.restore"))?;
        let (size, checksum) = copy_hashed(&copy, &backup.path, &mut temp, target, durable)?;
        check_copy(size, checksum, backup)?;
        if let Some(mode) = self.restore_mode(backup) {
            set_mode(&temp.file, mode).map_err(|e| Error::io(target, e))?;
        }
        temp.commit(target, durable)?;
        if durable {
            dir.sync()?;
        }
        restored(target, backup);
        Ok(())
    }

    /// Reads the whole copy and checks it against its recorded size and checksum.
    fn verify_copy(&self, copy: &std::fs::File, backup: &BackupInfo) -> Result<()> {
        let (size, checksum) = hash_file(copy, &backup.path)?;
        check_copy(size, checksum, backup)
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

/// Attempts at a copy that the source's changes spoil, before [`Error::SourceChanged`].
const COPY_TRIES: u32 = 3;

/// The folder and the file name of a backed-up path.
fn split_target(target: &Path) -> Result<(PathBuf, &OsStr)> {
    match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            Ok((parent.to_path_buf(), name))
        }
        _ => Err(Error::io(
            target,
            io::Error::new(io::ErrorKind::InvalidInput, "backup source is not a file path"),
        )),
    }
}

fn check_copy(size: u64, checksum: u32, backup: &BackupInfo) -> Result<()> {
    if size == backup.size && checksum == backup.checksum {
        return Ok(());
    }
    Err(Error::corrupt(
        &backup.path,
        format!(
            "backup of `{}` holds {size} bytes with CRC-32 {checksum:#010x}, \
             expected {} bytes with CRC-32 {:#010x}",
            backup.source.display(),
            backup.size,
            backup.checksum
        ),
    ))
}

#[cfg(feature = "sqlite")]
fn files_mode(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(mode)
}

fn restored(target: &Path, backup: &BackupInfo) {
    tracing::info!(
        target: TARGET,
        source = %target.display(),
        backup = %backup.path.display(),
        size = backup.size,
        "backup restored"
    );
}

#[cfg(test)]
mod tests {
    use super::super::naming::tests::entry;
    use super::super::naming::{SOURCE_FILE, encode_source};
    use super::*;

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
}
