//! Untyped inspection of the store, for operators and tools such as the `resilience` command.
//!
//! A checkpoint's data can only be decoded with its type, so these functions report what every
//! record says about itself: sequence, state, progress, cursor, time, error text, schema
//! fingerprint and data size. They read the files on disk (read-only, never following a
//! symbolic link, never blocking on a FIFO or device) and change nothing.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::files;
use super::format::{self, Layout};
use super::ids::{self, CHECKPOINT_EXT};
use super::{FailsafeManager, ProcessState};
use crate::error::{Error, Result};

/// The backup module's folder in the store directory.
const BACKUPS_DIR: &str = "backups";

/// Opens `path` for reading through the store's policy (no symlink followed, never blocking,
/// regular files only). `Ok(Err(reason))` when it is not a regular file.
fn open_regular(path: &Path) -> io::Result<std::result::Result<(File, u64), &'static str>> {
    match files::open_read(path) {
        Ok(file) => {
            let size = files::file_facts(&file)?.size;
            Ok(Ok((file, size)))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(Err("a symbolic link")),
        Err(e) if files::is_not_a_file(&e) => Ok(Err("not a regular file")),
        Err(e) => Err(e),
    }
}

/// One record of an operation's checkpoint file, without its data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordInfo {
    /// Increases by one with every checkpoint of the operation.
    pub sequence: u64,
    /// The operation's name when the record was saved.
    pub operation_name: String,
    /// The state the operation was in.
    pub state: ProcessState,
    /// Completed fraction in `[0, 1]`.
    pub progress: f64,
    /// Items of the tracked loop completed.
    pub cursor: u64,
    /// When it was saved.
    pub saved_at: SystemTime,
    /// The error text of a `Failed` record.
    pub error: Option<String>,
    /// [`Checkpointable::SCHEMA`](super::Checkpointable::SCHEMA) of the stored data's type.
    pub schema: u64,
    /// Size of the encoded data in bytes.
    pub data_size: u64,
}

/// What [`FailsafeManager::verify`] found in the store directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Checkpoint files whose header and newest records are sound, by path.
    pub intact: Vec<IntactFile>,
    /// Checkpoint files that cannot be loaded, or were not written whole, by path.
    pub corrupt: Vec<CorruptFile>,
    /// Temporary files left by an interrupted write (`.tmp-*`, in the store and in backup
    /// folders). A listing removes those whose process is gone; they are harmless.
    pub temporary: Vec<PathBuf>,
    /// Entries named like a store file (`*.ckpt`, `*.lock`, `.catalog`) that are not regular
    /// files: a symbolic link, directory, FIFO, socket or device.
    pub not_regular: Vec<PathBuf>,
}

impl VerifyReport {
    /// `true` when no file is corrupt and every store file is a regular file.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.not_regular.is_empty()
    }
}

/// A checkpoint file that passed [`FailsafeManager::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntactFile {
    /// The file.
    pub path: PathBuf,
    /// The operation id stored in its header.
    pub operation_id: String,
    /// Intact records in the file.
    pub records: usize,
    /// Slots holding a damaged record. A write torn by a crash damages the one slot it was
    /// writing, which the store ignores and reuses, so this is not corruption by itself.
    pub damaged_records: usize,
}

/// A checkpoint file that failed [`FailsafeManager::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptFile {
    /// The file.
    pub path: PathBuf,
    /// What the check found.
    pub reason: String,
}

/// The records of one file, newest first.
struct Scanned {
    id: String,
    records: Vec<RecordInfo>,
    damaged: usize,
}

/// Reads the header and every slot of a checkpoint file; `Ok(Err(reason))` when it is not a
/// sound checkpoint file.
fn scan(file: &File, file_len: u64) -> io::Result<std::result::Result<Scanned, String>> {
    let mut fixed = [0u8; format::HEADER_FIXED];
    let n = files::read_full_at(file, &mut fixed, 0)?;
    let Some(header_len) = format::header_len(&fixed[..n]).filter(|&l| l as u64 <= file_len) else {
        return Ok(Err("file too short for a header".into()));
    };
    let mut header = vec![0; header_len];
    let n = files::read_full_at(file, &mut header, 0)?;
    let (layout, id) = match format::parse_header(&header[..n]) {
        Ok(parsed) => parsed,
        Err(reason) => return Ok(Err(reason)),
    };
    if file_len != layout.file_len() {
        return Ok(Err(format!(
            "the file is {file_len} bytes, its header describes {} bytes",
            layout.file_len()
        )));
    }
    let mut scanned = Scanned { id: id.to_owned(), records: Vec::new(), damaged: 0 };
    scan_slots(file, &layout, &mut scanned)?;
    if scanned.records.is_empty() {
        return Ok(Err(match scanned.damaged {
            0 => "no checkpoint record".into(),
            n => format!("no intact checkpoint record ({n} damaged)"),
        }));
    }
    scanned.records.sort_by_key(|r| std::cmp::Reverse(r.sequence));
    Ok(Ok(scanned))
}

fn scan_slots(file: &File, layout: &Layout, out: &mut Scanned) -> io::Result<()> {
    let mut buf = Vec::new();
    for slot in 0..layout.slot_count {
        let start = layout.slot_offset(slot);
        // The record's length first: a forged length must cost neither memory nor reads.
        let mut head = [0u8; 8];
        let n = files::read_full_at(file, &mut head, start)?;
        let Some(len) = format::claimed_len(&head[..n]) else {
            out.damaged += 1;
            continue;
        };
        let len = len.clamp(8, layout.slot_size as usize);
        buf.resize(len, 0);
        let n = files::read_full_at(file, &mut buf, start)?;
        match format::parse_record(&buf[..n]) {
            Ok(Some(r)) => out.records.push(RecordInfo {
                sequence: r.sequence,
                operation_name: r.name.to_owned(),
                state: r.state,
                progress: r.progress,
                cursor: r.cursor,
                saved_at: UNIX_EPOCH + r.saved_at,
                error: r.error.map(str::to_owned),
                schema: r.schema,
                data_size: r.payload.len() as u64,
            }),
            Ok(None) => {}
            Err(_) => out.damaged += 1,
        }
    }
    Ok(())
}

impl FailsafeManager {
    /// The intact records of `operation_id` as they are on disk, newest first, without their
    /// data (which needs its type to be decoded); empty if the operation has no checkpoint.
    ///
    /// Unlike [`history`](Self::history), this reads records of any schema and any number of
    /// them (every slot of the file). This manager's buffered checkpoints
    /// ([`Durability::Buffered`](super::Durability::Buffered)) are written first; those of other
    /// managers that are not written yet are not seen.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the file if it is not a regular file, has a damaged header,
    /// belongs to another operation or holds no intact record; [`Error::Io`] if it cannot be read.
    ///
    /// ```
    /// use resilience::{FailsafeManager, ProcessState};
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// manager.save_checkpoint("import-7", "Import", ProcessState::Running, 0.25, &())?;
    /// manager.save_checkpoint("import-7", "Import", ProcessState::Completed, 1.0, &())?;
    ///
    /// let records = manager.records("import-7")?;
    /// assert_eq!(records.len(), 2);
    /// assert_eq!((records[0].sequence, records[0].state), (2, ProcessState::Completed));
    /// assert!(manager.records("never-saved")?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records(&self, operation_id: &str) -> Result<Vec<RecordInfo>> {
        self.flush()?;
        if self.inner.store.files().is_none() {
            // A database store: its records, as the store reads them.
            let limit = self.inner.max_checkpoints;
            let records = self.inner.store.records(operation_id, limit)?;
            return Ok(records
                .into_iter()
                .map(|r| RecordInfo {
                    sequence: r.sequence,
                    operation_name: r.name,
                    state: r.state,
                    progress: r.progress,
                    cursor: r.cursor,
                    saved_at: r.saved_at,
                    error: r.error,
                    schema: r.schema,
                    data_size: r.payload.len() as u64,
                })
                .collect());
        }
        let path = self.dir().join(format!("{}.{CHECKPOINT_EXT}", ids::file_stem(operation_id)));
        let (file, len) = match open_regular(&path) {
            Ok(Ok(opened)) => opened,
            Ok(Err(reason)) => return Err(Error::corrupt(path, reason)),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        match scan(&file, len).map_err(|e| Error::io(&path, e))? {
            Ok(scanned) if scanned.id == operation_id => Ok(scanned.records),
            Ok(_) => Err(Error::corrupt(path, "the file belongs to another operation")),
            Err(reason) => Err(Error::corrupt(path, reason)),
        }
    }

    /// Reads every checkpoint file of the store, every slot of each, and reports the intact
    /// files, the corrupt ones (with the reason), stray temporary files and entries that should
    /// be regular files but are not. Changes nothing.
    ///
    /// A checkpoint file is corrupt when its header is damaged, its name does not match the
    /// operation id inside, its size is not the one its header describes (it was not written
    /// whole), or it holds no intact record.
    ///
    /// # Errors
    /// [`Error::Io`] if the store directory cannot be listed.
    ///
    /// ```
    /// use resilience::{FailsafeManager, ProcessState};
    /// # let tmp = tempfile::tempdir()?;
    /// let manager = FailsafeManager::open(tmp.path())?;
    /// manager.save_checkpoint("import-7", "Import", ProcessState::Running, 0.25, &())?;
    /// std::fs::write(tmp.path().join("broken.ckpt"), b"garbage")?;
    ///
    /// let report = manager.verify()?;
    /// assert_eq!(report.intact.len(), 1);
    /// assert_eq!(report.corrupt.len(), 1);
    /// assert!(!report.is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.flush()?;
        if self.inner.store.files().is_none() {
            return Err(Error::InvalidConfig(
                "`verify` checks the files of a directory store; a database store is checked \
                 by its database (every save is one committed statement)"
                    .into(),
            ));
        }
        let dir = self.dir();
        let mut report = VerifyReport::default();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with(files::TEMP_PREFIX) {
                report.temporary.push(path);
                continue;
            }
            if name == BACKUPS_DIR {
                find_backup_temporaries(&path, &mut report.temporary);
                continue;
            }
            let lock_ext = format!(".{}", ids::LOCK_EXT);
            if name == ".catalog" || name.ends_with(&lock_ext) {
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    report.not_regular.push(path);
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(&format!(".{CHECKPOINT_EXT}")) else { continue };
            verify_file(path, stem, &mut report);
        }
        report.intact.sort_by(|a, b| a.path.cmp(&b.path));
        report.corrupt.sort_by(|a, b| a.path.cmp(&b.path));
        report.temporary.sort();
        report.not_regular.sort();
        Ok(report)
    }
}

fn verify_file(path: PathBuf, stem: &str, report: &mut VerifyReport) {
    let (file, len) = match open_regular(&path) {
        Ok(Ok(opened)) => opened,
        Ok(Err(_)) => return report.not_regular.push(path),
        // Removed since the directory was read.
        Err(e) if e.kind() == ErrorKind::NotFound => return,
        Err(e) => {
            let reason = format!("cannot be read: {e}");
            return report.corrupt.push(CorruptFile { path, reason });
        }
    };
    let corrupt = |path, reason: String| CorruptFile { path, reason };
    match scan(&file, len) {
        Ok(Ok(scanned)) if ids::stem_matches(stem, &scanned.id) => {
            report.intact.push(IntactFile {
                path,
                operation_id: scanned.id,
                records: scanned.records.len(),
                damaged_records: scanned.damaged,
            });
        }
        Ok(Ok(_)) => report
            .corrupt
            .push(corrupt(path, "the file name does not match the operation id inside".into())),
        Ok(Err(reason)) => report.corrupt.push(corrupt(path, reason)),
        Err(e) => report.corrupt.push(corrupt(path, format!("cannot be read: {e}"))),
    }
}

/// Temporary files of interrupted backups: `.tmp-<pid>-<random>-<tag>` in each folder.
fn find_backup_temporaries(backups: &Path, out: &mut Vec<PathBuf>) {
    let Ok(folders) = std::fs::read_dir(backups) else { return };
    for folder in folders.flatten() {
        if !folder.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(folder.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(files::TEMP_PREFIX) {
                out.push(file.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::failsafe::{Checkpointable, Durability};

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct V2 {
        a: u64,
        b: String,
    }

    impl Checkpointable for V2 {
        const SCHEMA: u64 = 2;
        fn cursor(&self) -> u64 {
            self.a
        }
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn records_cover_every_slot_and_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let m = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(3).build().unwrap();
        let id = "a/../b \u{1f980}";
        m.save_checkpoint(id, "old", ProcessState::Running, 0.1, &()).unwrap();
        for i in 1..=3 {
            let data = V2 { a: i, b: "x".repeat(i as usize) };
            m.save_checkpoint(id, "new", ProcessState::Running, 0.5, &data).unwrap();
        }
        // `history` stops at the first record of another schema; `records` reads them all.
        assert_eq!(m.history::<V2>(id).unwrap().len(), 3);
        let records = m.records(id).unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, [4, 3, 2, 1]);
        assert_eq!((records[0].schema, records[0].cursor), (2, 3));
        assert_eq!(records[0].data_size, 8 + 8 + 3);
        assert_eq!((records[3].schema, records[3].operation_name.as_str()), (<()>::SCHEMA, "old"));
    }

    #[test]
    fn records_see_this_managers_buffered_saves() {
        let tmp = tempfile::tempdir().unwrap();
        let m = FailsafeManager::builder()
            .dir(tmp.path())
            .durability(Durability::Buffered)
            .build()
            .unwrap();
        for _ in 0..3 {
            m.save_checkpoint("op", "n", ProcessState::Running, 0.5, &()).unwrap();
        }
        assert_eq!(m.records("op").unwrap().len(), 3);
    }

    #[test]
    fn non_regular_files_are_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let m = FailsafeManager::open(tmp.path()).unwrap();
        m.save_checkpoint("ok", "n", ProcessState::Completed, 1.0, &()).unwrap();
        mkfifo(&tmp.path().join("fifo.ckpt"));
        mkfifo(&tmp.path().join("fifo.lock"));
        std::os::unix::fs::symlink(tmp.path().join("ok.ckpt"), tmp.path().join("link.ckpt"))
            .unwrap();
        assert!(
            matches!(m.records("fifo"), Err(Error::Corrupt { reason, .. }) if reason == "not a regular file")
        );
        assert!(
            matches!(m.records("link"), Err(Error::Corrupt { reason, .. }) if reason == "a symbolic link")
        );
        let report = m.verify().unwrap();
        let names: Vec<_> =
            report.not_regular.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["fifo.ckpt", "fifo.lock", "link.ckpt"]);
        assert_eq!(report.intact.len(), 1);
        assert!(!report.is_clean());
    }

    #[test]
    fn verify_names_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let m = FailsafeManager::open(tmp.path()).unwrap();
        for id in ["a", "b", "c"] {
            m.save_checkpoint(id, "n", ProcessState::Running, 0.5, &()).unwrap();
        }
        // A file copied under another operation's name.
        std::fs::copy(tmp.path().join("a.ckpt"), tmp.path().join("d.ckpt")).unwrap();
        // A damaged header.
        let mut bytes = std::fs::read(tmp.path().join("b.ckpt")).unwrap();
        bytes[13] ^= 1;
        std::fs::write(tmp.path().join("b.ckpt"), &bytes).unwrap();
        // Grown past the size its header describes.
        let mut bytes = std::fs::read(tmp.path().join("c.ckpt")).unwrap();
        bytes.extend_from_slice(&[0; 7]);
        std::fs::write(tmp.path().join("c.ckpt"), &bytes).unwrap();
        std::fs::write(tmp.path().join(".tmp-1-2-3"), b"").unwrap();
        let folder = tmp.path().join("backups/data-0123456789abcdef");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(".tmp-1-00-backup"), b"").unwrap();
        // Not the store's: ignored.
        std::fs::write(tmp.path().join("notes.txt"), b"").unwrap();

        let report = m.verify().unwrap();
        let reasons: Vec<(String, &str)> = report
            .corrupt
            .iter()
            .map(|c| (c.path.file_name().unwrap().to_string_lossy().into(), c.reason.as_str()))
            .collect();
        assert_eq!(reasons[0], ("b.ckpt".into(), "header checksum mismatch"));
        assert_eq!(reasons[1].0, "c.ckpt");
        assert!(reasons[1].1.starts_with("the file is "), "{}", reasons[1].1);
        assert_eq!(
            reasons[2],
            ("d.ckpt".into(), "the file name does not match the operation id inside")
        );
        assert_eq!(report.intact.len(), 1);
        assert_eq!(report.temporary.len(), 2);
        assert!(matches!(m.records("d"), Err(Error::Corrupt { .. })));
    }
}
