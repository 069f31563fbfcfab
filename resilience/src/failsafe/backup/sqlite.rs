//! Backups and restores of SQLite databases through SQLite's online backup API (feature
//! `sqlite`).
//!
//! - **Backup**: the live database is copied page by page into the backup's temp file by SQLite
//!   itself, from one snapshot: committed transactions still in the `-wal` are included. In WAL
//!   mode a read transaction pins the snapshot while writers go on committing. In rollback mode
//!   the copy goes in steps with a pause between them, so writers can commit; SQLite restarts
//!   a copy that a commit overtook, and after a few restarts the copy holds a shared lock to
//!   the end (writers then wait, within their busy timeout). The copy is marked as a rollback
//!   mode database (header bytes 18–19), so that it is complete on its own.
//! - **Restore**: the backup is copied into the live database, in one write transaction of the
//!   live database: SQLite journals it, so a crash leaves the old or the new content, and a
//!   stale `-wal` is recovered before the restore overwrites every page, never replayed after.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::copy::start_writeback;
use crate::error::{Error, Result};
use crate::failsafe::files::{DirHandle, TempFile};

/// Pages per step of a backup: 8 MiB of 4 KiB pages.
const PAGES_PER_STEP: i32 = 2048;
/// The pause between steps in rollback mode, when writers can commit.
const PAUSE: Duration = Duration::from_millis(1);
/// Restarts of a rollback-mode copy (each caused by another process's commit) before the copy
/// holds its shared lock to the end.
const RESTARTS_BEFORE_HOLDING: u32 = 3;
/// How long a busy database is waited for.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::io(path, std::io::Error::other(e))
}

fn busy(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            format!("the database stayed locked for {}s", BUSY_TIMEOUT.as_secs()),
        ),
    )
}

/// Opens the live database `db`; read-write when allowed, so that SQLite can roll back a hot
/// journal left by a crashed writer, read-only otherwise.
fn open_live(db: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(db, flags)
        .or_else(|e| {
            if create {
                return Err(e);
            }
            let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(db, read_only)
        })
        .map_err(sql_error(db))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error(db))?;
    Ok(conn)
}

/// Starts a read transaction on `conn`, pinning one snapshot of the database.
fn begin_read(conn: &Connection, db: &Path) -> Result<()> {
    conn.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;").map_err(sql_error(db))
}

/// Copies the live database `db` into `temp` (an empty file) from one snapshot.
pub(super) fn snapshot(db: &Path, temp: &TempFile, durable: bool) -> Result<()> {
    let src = open_live(db, false)?;
    let mode: String =
        src.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(sql_error(db))?;
    let dest = temp.path();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut dst = Connection::open_with_flags(dest, flags).map_err(sql_error(dest))?;
    // The temp file is synced and renamed by the caller; SQLite needs no journal for it.
    // A small page cache: the copy streams out to the file as it is made, and writeback of
    // what is written starts after each step (with `durable`), so that the final `fsync` finds
    // little left to do.
    dst.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA cache_size = 256;",
    )
    .map_err(sql_error(dest))?;

    let mut holding = mode.eq_ignore_ascii_case("wal");
    if holding {
        begin_read(&src, db)?;
    }
    {
        let backup = Backup::new(&src, &mut dst).map_err(sql_error(db))?;
        let (mut restarts, mut last_remaining) = (0, i32::MAX);
        let mut busy_since: Option<Instant> = None;
        let mut written = 0u64;
        loop {
            match backup.step(PAGES_PER_STEP).map_err(sql_error(db))? {
                StepResult::Done => break,
                StepResult::More => {
                    busy_since = None;
                    if durable {
                        // What the steps so far wrote out (the page cache spills in order).
                        let len = temp.file.metadata().map_or(0, |m| m.len());
                        if len > written {
                            start_writeback(&temp.file, written, len - written);
                            written = len;
                        }
                    }
                    if holding {
                        continue;
                    }
                    let remaining = backup.progress().remaining;
                    if remaining >= last_remaining {
                        restarts += 1;
                    }
                    last_remaining = remaining;
                    if restarts >= RESTARTS_BEFORE_HOLDING {
                        begin_read(&src, db)?;
                        holding = true;
                    } else {
                        sleep(PAUSE);
                    }
                }
                StepResult::Busy | StepResult::Locked => {
                    if busy_since.get_or_insert_with(Instant::now).elapsed() > BUSY_TIMEOUT {
                        return Err(busy(db));
                    }
                    sleep(PAUSE);
                }
                _ => {}
            }
        }
    }
    if holding {
        src.execute_batch("COMMIT").map_err(sql_error(db))?;
    }
    dst.close().map_err(|(_, e)| sql_error(dest)(e))?;
    // Bytes 18 and 19 of the header say 2 in WAL mode; the copy has no `-wal` of its own.
    let mut version = [0u8; 2];
    crate::failsafe::files::read_full_at(&temp.file, &mut version, 18)
        .map_err(|e| Error::io(dest, e))?;
    if version == [2, 2] {
        temp.write_all_at(&[1, 1], 18, dest)?;
    }
    Ok(())
}

/// What [`restore`] did.
pub(super) enum Restored {
    /// The live database now holds the backup's content.
    Done,
    /// The live file is not a database (damaged, or something else): nothing was written.
    NotADatabase,
}

/// Restores the database copy `copy` into the live database `target`, inside the directory
/// `dir` (walked without following symlinks from `parent`).
pub(super) fn restore(copy: &Path, target: &Path, dir: &DirHandle) -> Result<Restored> {
    // Immutable: no lock, no `-shm` or `-wal` created in the store, whatever mode the copy's
    // header names (a copy made without feature `sqlite` may name WAL mode).
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let uri = format!("file:{}?immutable=1", uri_path(copy));
    let src = Connection::open_with_flags(uri, read_only).map_err(sql_error(copy))?;
    let mut live = open_live(target, true)?;
    // SQLite opened the target by its path: check that the path still leads through the
    // directory that was reached without following symlinks, before anything is written.
    let again = DirHandle::walk(dir.path(), false)?;
    let same = again.identity().ok().is_some_and(|id| dir.identity().ok() == Some(id));
    let name = target.file_name().unwrap_or_default();
    let plain = dir.entry_stamp(name).ok().flatten().is_some_and(|s| s.is_regular());
    if !same || !plain {
        return Err(Error::io(
            target,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path no longer leads to the file that was backed up (a symbolic link is \
                 in its way); nothing was written",
            ),
        ));
    }
    let backup = Backup::new(&src, &mut live).map_err(sql_error(target))?;
    let mut busy_since: Option<Instant> = None;
    loop {
        match backup.step(-1) {
            Ok(StepResult::Done) => break,
            Ok(StepResult::More) => busy_since = None,
            Ok(StepResult::Busy | StepResult::Locked) => {
                if busy_since.get_or_insert_with(Instant::now).elapsed() > BUSY_TIMEOUT {
                    return Err(busy(target));
                }
                sleep(PAUSE);
            }
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
                return Ok(Restored::NotADatabase);
            }
            Err(e) => return Err(sql_error(target)(e)),
        }
    }
    Ok(Restored::Done)
}

/// `path` as the path of a `file:` URI: every byte but unreserved ones and `/` percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_a_uri_would_read() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%f.db")), "/a%20b/c%3Fd%23e%25f.db");
        assert_eq!(uri_path(Path::new("/ü")), "/%C3%BC");
    }
}
