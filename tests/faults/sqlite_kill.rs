//! Kills during SQLite backups and restores (feature `sqlite`): a child process backs up a
//! live database while a thread commits to it, or restores two backups into it in turn, and is
//! SIGKILLed at a random instant. After each kill the database and every listed backup must be
//! intact (`PRAGMA integrity_check`), each one whole state: rows `1..=n` without a gap, and
//! after a restore exactly the rows of one of the two backups.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use resilience::FailsafeManager;
use rusqlite::Connection;

use crate::ChildRole;

fn env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set")))
}

/// Creates `path` in journal mode `mode` with rows `1..=rows` of 512 bytes each.
fn create_db(path: &Path, mode: &str, rows: i64) {
    let conn = Connection::open(path).unwrap();
    let _: String =
        conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0)).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);").unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO t SELECT i, randomblob(512) FROM n",
        [rows],
    )
    .unwrap();
}

/// Opens `path` read-write (so that SQLite rolls back what a kill left behind) and returns
/// its integrity check and `(count, max id)`.
fn check(path: &Path) -> (String, i64, i64) {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    let (count, max) = conn
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    (ok, count, max)
}

/// Child role `sqlite-backup`: a thread commits rows to `$FAULTS_DB` while the main thread
/// backs it up in a loop.
pub fn backup_child() {
    let db = env("FAULTS_DB");
    let mgr = FailsafeManager::builder().dir(env("FAULTS_DIR")).max_backups(3).build().unwrap();
    let writer_db = db.clone();
    std::thread::spawn(move || {
        let conn = Connection::open(writer_db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut id: i64 = conn.query_row("SELECT max(id) FROM t", [], |r| r.get(0)).unwrap();
        loop {
            id += 1;
            conn.execute("INSERT INTO t VALUES (?1, randomblob(512))", [id]).unwrap();
        }
    });
    println!("ready");
    loop {
        mgr.create_backup(&db).unwrap();
        println!("backed up");
    }
}

/// Child role `sqlite-restore`: restores the two backups of `$FAULTS_DB` in turn, forever,
/// starting with backup number `$FAULTS_START` (newest first).
pub fn restore_child() {
    let db = env("FAULTS_DB");
    let mgr = FailsafeManager::open(env("FAULTS_DIR")).unwrap();
    let backups = mgr.list_backups(&db).unwrap();
    let start: usize = std::env::var("FAULTS_START").unwrap().parse().unwrap();
    println!("ready");
    for (n, backup) in backups.iter().cycle().skip(start).enumerate() {
        mgr.restore_backup(backup).unwrap();
        println!("restored {n}");
    }
}

#[test]
fn killed_sqlite_backups_leave_intact_databases_and_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let db = tmp.path().join("live.db");
    create_db(&db, "wal", 4000);
    let mut rng = crate::rng("sqlite-backup-kills");
    let kills = crate::scale(12, 120);
    let mut listed = 0;
    for round in 0..kills {
        let mut child = ChildRole::spawn(
            "sqlite-backup",
            &[("FAULTS_DIR", dir.as_os_str()), ("FAULTS_DB", db.as_os_str())],
        );
        assert!(child.wait_for("ready").is_some(), "the child did not start");
        // On a loaded machine every random instant may come before the first backup ends: the
        // last round kills only after one did, so that some backups are always checked.
        if round + 1 == kills && listed == 0 {
            assert!(child.wait_for("backed up").is_some(), "the child made no backup");
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..60_000)));
        let _ = child.child.kill();
        let status = child.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the backup loop failed: {status}");

        let (ok, count, max) = check(&db);
        assert_eq!((ok.as_str(), count), ("ok", max), "the live database after a kill");
        let mgr = FailsafeManager::builder().dir(&dir).max_backups(3).build().unwrap();
        for backup in mgr.list_backups(&db).unwrap() {
            let bytes = std::fs::read(&backup.path).unwrap();
            assert_eq!(crc32fast::hash(&bytes), backup.checksum);
            let (ok, count, max) = check(&backup.path);
            assert_eq!((ok.as_str(), count), ("ok", max), "a backup after a kill");
            assert!(max >= 4000);
            listed += 1;
        }
    }
    println!(
        "sqlite: {kills} kills of a SQLite backup loop with a writer, live database and \
         {listed} listed backups intact after them"
    );
    assert!(listed > 0);
}

#[test]
fn killed_sqlite_restores_leave_the_old_or_the_new_database() {
    let mut rng = crate::rng("sqlite-restore-kills");
    let kills = crate::scale(12, 120);
    let (mut seen, mut restores) = ([0usize; 2], 0);
    for (round, mode) in ["wal", "delete"].iter().cycle().take(kills).enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let db = tmp.path().join("restored.db");
        create_db(&db, mode, 3000);
        let mgr = FailsafeManager::open(&dir).unwrap();
        mgr.create_backup(&db).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute("DELETE FROM t WHERE id > 1000", []).unwrap();
        drop(conn);
        mgr.create_backup(&db).unwrap();

        let start = rng.usize(0..2).to_string();
        let mut child = ChildRole::spawn(
            "sqlite-restore",
            &[
                ("FAULTS_DIR", dir.as_os_str()),
                ("FAULTS_DB", db.as_os_str()),
                ("FAULTS_START", start.as_ref()),
            ],
        );
        assert!(child.wait_for("ready").is_some(), "the child did not start");
        std::thread::sleep(Duration::from_micros(rng.u64(0..150_000)));
        let _ = child.child.kill();
        let status = child.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the restore loop failed: {status}");
        restores += child.drain().len();

        let (ok, count, max) = check(&db);
        assert_eq!(ok, "ok", "round {round} ({mode}): the database after a kill");
        assert_eq!(count, max, "round {round} ({mode}): rows with a gap");
        match count {
            1000 => seen[0] += 1,
            3000 => seen[1] += 1,
            other => panic!("round {round} ({mode}): {other} rows, neither backup"),
        }
    }
    println!(
        "sqlite: {kills} kills of a SQLite restore loop (WAL and rollback journal; {restores} \
         restores done), the database intact after each: {} times the 1,000-row backup, {} \
         times the 3,000-row one",
        seen[0], seen[1]
    );
}
