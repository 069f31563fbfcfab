//! SQLite databases written by another process while they are backed up and restored.
//!
//! With feature `sqlite` backups and restores go through SQLite; without it, a database in use
//! (a non-empty `-wal`, or a `-journal`) is refused with `Error::Unsupported`.

#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::*;

/// Creates `path` in `mode` (`wal` or `delete`) with rows `1..=rows` of 1 KiB each.
pub fn create_db(path: &Path, mode: &str, rows: u64) {
    let conn = Connection::open(path).unwrap();
    let _: String =
        conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0)).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);").unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO t SELECT i, randomblob(1024) FROM n",
        [rows as i64],
    )
    .unwrap();
}

/// `(count, max id)` of the rows of `path`, read without writing to it.
pub fn rows(path: &Path) -> (u64, u64) {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT count(*), coalesce(max(id), 0) FROM t", [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
}

/// `PRAGMA integrity_check` of `path`: `"ok"` when intact.
pub fn integrity(path: &Path) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

fn env(key: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(key).unwrap_or_else(|| panic!("{key} is not set")))
}

/// Child role: commits one row per transaction to `$DB`, forever, printing each id.
pub fn writer_child() {
    let conn = Connection::open(env("DB")).unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    let mut id: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) FROM t", [], |r| r.get(0)).unwrap();
    println!("ready");
    loop {
        id += 1;
        conn.execute("INSERT INTO t (id, payload) VALUES (?1, randomblob(1024))", [id]).unwrap();
        println!("committed {id}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Child role: deletes the rows after the 50th of the WAL database `$DB`, commits, and waits
/// to be killed, leaving the commit in the `-wal` only.
pub fn stale_wal_child() {
    let conn = Connection::open(env("DB")).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; DELETE FROM t WHERE id > 50;").unwrap();
    println!("deleted");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn stray_files(folder: &Path) -> Vec<String> {
    fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "source" && !n.ends_with(".bak"))
        .collect()
}

#[cfg(feature = "sqlite")]
fn snapshots_hold_every_committed_row(mode: &str) {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(10).build().unwrap();
    let db = fx.data.join(format!("live-{mode}.db"));
    create_db(&db, mode, 4000);
    let writer = ChildRole::spawn("sqlite-writer", &[("DB", db.as_os_str())]);
    writer.wait_for("ready");
    writer.wait_for_commits(4050);
    let mut during = 0;
    for _ in 0..5 {
        let before = writer.committed.load(Ordering::SeqCst);
        let backup = manager.create_backup(&db).unwrap();
        let after = writer.committed.load(Ordering::SeqCst);
        during += after - before;
        let bytes = fs::read(&backup.path).unwrap();
        assert_eq!(crc32fast::hash(&bytes), backup.checksum);
        assert_eq!(bytes.len() as u64, backup.size);
        assert_eq!(integrity(&backup.path), "ok");
        let (count, max) = rows(&backup.path);
        assert_eq!(count, max, "the snapshot has a gap: not one state of the database");
        assert!(max >= before, "the snapshot misses committed rows: {max} < {before}");
        assert!(max <= after + 1, "the snapshot holds rows committed after it: {max} > {after}");
        assert_eq!(stray_files(backup.path.parent().unwrap()), Vec::<String>::new());
    }
    println!("{mode}: the writer committed {during} rows during 5 backups");
    if mode == "wal" {
        assert!(during > 0, "the writer was stalled by every backup");
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn wal_snapshots_hold_every_committed_row_while_another_process_writes() {
    snapshots_hold_every_committed_row("wal");
}

#[cfg(feature = "sqlite")]
#[test]
fn rollback_journal_snapshots_hold_every_committed_row_while_another_process_writes() {
    snapshots_hold_every_committed_row("delete");
}

#[cfg(feature = "sqlite")]
#[test]
fn a_restore_is_not_undone_by_a_stale_wal_left_by_a_killed_writer() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let db = fx.data.join("app.db");
    create_db(&db, "wal", 100);
    let backup = manager.create_backup(&db).unwrap();

    let mut child = ChildRole::spawn("sqlite-stale-wal", &[("DB", db.as_os_str())]);
    child.wait_for("deleted");
    child.kill();
    let wal = fx.data.join("app.db-wal");
    assert!(fs::metadata(&wal).unwrap().len() > 0, "the killed writer left no -wal");
    assert_eq!(rows(&db), (50, 50), "the stale -wal holds the deletion");

    manager.restore_backup(&backup).unwrap();
    assert_eq!(rows(&db), (100, 100));
    assert_eq!(integrity(&db), "ok");
    // A new connection, a checkpoint, and the next: the restore stays.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(conn);
    assert_eq!(rows(&db), (100, 100));
}

#[cfg(feature = "sqlite")]
#[test]
fn a_restore_reaches_connections_that_stay_open() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let db = fx.data.join("open.db");
    create_db(&db, "wal", 10);
    let backup = manager.create_backup(&db).unwrap();
    let conn = Connection::open(&db).unwrap();
    conn.execute("DELETE FROM t", []).unwrap();
    manager.restore_backup(&backup).unwrap();
    let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 10);
    assert_eq!(
        conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).unwrap(),
        "wal"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn a_damaged_database_is_replaced_as_a_file_without_its_logs() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let db = fx.data.join("damaged.db");
    create_db(&db, "wal", 20);
    let backup = manager.create_backup(&db).unwrap();
    fs::write(&db, vec![0xA5; 8192]).unwrap();
    fs::write(fx.data.join("damaged.db-wal"), vec![0x5A; 4096]).unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(rows(&db), (20, 20));
    assert_eq!(integrity(&db), "ok");
}

#[cfg(feature = "sqlite")]
#[test]
fn a_deleted_database_is_restored() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let db = fx.data.join("gone.db");
    create_db(&db, "wal", 30);
    let backup = manager.create_backup(&db).unwrap();
    fs::remove_file(&db).unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(rows(&db), (30, 30));
}

#[cfg(feature = "sqlite")]
#[test]
fn auto_backup_of_a_live_database() {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(50).build().unwrap();
    let db = fx.data.join("auto.db");
    create_db(&db, "wal", 1000);
    let writer = ChildRole::spawn("sqlite-writer", &[("DB", db.as_os_str())]);
    writer.wait_for("ready");
    let auto = manager.start_auto_backup(std::slice::from_ref(&db), Duration::from_millis(50));
    assert!(auto.wait_for_passes(4, Duration::from_secs(60)), "no passes ran");
    auto.stop();
    let backups = manager.list_backups(&db).unwrap();
    assert!(
        backups.len() >= 2,
        "a database written through its -wal was backed up {} times",
        backups.len()
    );
    for backup in &backups {
        assert_eq!(integrity(&backup.path), "ok");
        let (count, max) = rows(&backup.path);
        assert_eq!(count, max);
        assert!(max >= 1000);
    }
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn a_database_in_use_is_unsupported_without_the_feature() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();

    // WAL mode, with commits that are only in the -wal.
    let db = fx.data.join("wal.db");
    create_db(&db, "wal", 10);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; DELETE FROM t WHERE id > 5;").unwrap();
    assert!(fs::metadata(fx.data.join("wal.db-wal")).unwrap().len() > 0);
    match manager.create_backup(&db) {
        Err(Error::Unsupported { path, reason }) => {
            assert_eq!(path, db);
            assert!(reason.contains("enable feature `sqlite`"), "{reason}");
            assert!(reason.contains("wal.db-wal"), "{reason}");
        }
        other => panic!("expected Error::Unsupported, got {other:?}"),
    }
    assert_eq!(manager.list_backups(&db).unwrap(), vec![]);
    drop(conn);

    // Rollback mode with a journal beside it.
    let journaled = fx.data.join("journaled.db");
    create_db(&journaled, "delete", 10);
    fs::write(fx.data.join("journaled.db-journal"), b"a transaction in progress").unwrap();
    let err = manager.create_backup(&journaled).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("sqlite"), "{err}");

    // Neither: copied as a plain file, and restored as one.
    fs::remove_file(fx.data.join("journaled.db-journal")).unwrap();
    let backup = manager.create_backup(&journaled).unwrap();
    assert_eq!(integrity(&backup.path), "ok");
    fs::write(&journaled, b"damaged").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(rows(&journaled), (10, 10));

    // A restore next to a stale -wal is refused too: SQLite would replay it.
    fs::write(fx.data.join("journaled.db-wal"), vec![1u8; 64]).unwrap();
    let err = manager.restore_backup(&backup).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[cfg(feature = "sqlite")]
#[test]
fn databases_and_stores_under_odd_paths_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join("a b?c#d%20é");
    fs::create_dir(&odd).unwrap();
    let manager = FailsafeManager::open(odd.join("store ?#")).unwrap();
    let db = odd.join("data?.db");
    create_db(&db, "wal", 7);
    let backup = manager.create_backup(&db).unwrap();
    Connection::open(&db).unwrap().execute("DELETE FROM t", []).unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(rows(&db), (7, 7));
    let folder = backup.path.parent().unwrap();
    assert_eq!(stray_files(folder), Vec::<String>::new(), "the restore left files in the store");
}

#[cfg(feature = "sqlite")]
#[test]
fn a_database_restore_through_a_symlink_planted_on_the_path_is_refused() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    fs::create_dir(fx.data.join("x")).unwrap();
    let db = fx.data.join("x/app.db");
    create_db(&db, "wal", 10);
    let backup = manager.create_backup(&db).unwrap();

    let other = fx.data.join("other");
    fs::create_dir(&other).unwrap();
    create_db(&other.join("app.db"), "wal", 3);
    fs::rename(fx.data.join("x"), fx.data.join("x.moved")).unwrap();
    std::os::unix::fs::symlink(&other, fx.data.join("x")).unwrap();

    match manager.restore_backup(&backup) {
        Err(Error::Io { path, .. }) => {
            assert_eq!(path, fs::canonicalize(&fx.data).unwrap().join("x"))
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert_eq!(rows(&other.join("app.db")), (3, 3), "restored into the other directory");
}
