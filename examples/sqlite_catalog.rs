//! A SQLite catalog under `#[protected]`: backed up through SQLite while another connection
//! writes, auto-backed up while it runs, and rolled back when an import fails.
//!
//! ```text
//! cargo run --example sqlite_catalog --features sqlite    # writes data/sqlite_catalog/
//! cargo run --example sqlite_catalog --features sqlite -- --data /tmp/demo
//! ```
//!
//! - The catalog is a WAL-mode database: most committed rows live in `catalog.db-wal` until a
//!   checkpoint, so a copy of `catalog.db` alone would miss them.
//! - An indexer thread commits thumbnails through its own connection the whole time.
//! - Auto-backup snapshots the live database every 100 ms through SQLite's online backup API.
//! - `import_batch` is `#[protected(backup = "{db}", restore_on_failure = true)]`: batch 1
//!   imports 50 photos; batch 2 fails half-way ("the photo disk went away"), and the database is
//!   restored, through SQLite, to its state at the start of batch 2 — while the indexer's
//!   connection stays open and sees the restored data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use resilience::{Classify, ErrorHandler, FailsafeManager, protected};
use rusqlite::{Connection, OpenFlags};

const PER_BATCH: u32 = 50;

#[derive(Debug, thiserror::Error, Classify)]
enum ImportError {
    #[error("the photo disk went away at photo {0} of the batch")]
    #[classify(abort, code = "E_DISK_GONE", category = "storage")]
    DiskGone(u32),
    #[error("catalog database: {0}")]
    #[classify(abort, code = "E_DATABASE", category = "database")]
    Database(#[from] rusqlite::Error),
    #[error(transparent)]
    #[classify(transparent)]
    Resilience(#[from] resilience::Error),
}

/// Adds a batch of photos to the catalog at `db`, one transaction per photo; fails at photo
/// `fail_at` if given. `#[protected]` backs the database up on entry and restores it when the
/// import fails.
#[protected(
    manager = manager,
    errors = errors,
    id = "catalog-import-{batch}",
    backup = "{db}",
    restore_on_failure = true,
)]
fn import_batch(
    manager: &FailsafeManager,
    errors: &ErrorHandler,
    db: &str,
    batch: u32,
    fail_at: Option<u32>,
) -> Result<u32, ImportError> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    for n in 0..PER_BATCH {
        if fail_at == Some(n) {
            return Err(ImportError::DiskGone(n));
        }
        conn.execute(
            "INSERT INTO photos (name, batch, bytes) VALUES (?1, ?2, ?3)",
            (format!("IMG_{batch:02}{n:03}.jpg"), batch, 100_000 + i64::from(n) * 37),
        )?;
    }
    // Every photo of the batch is in, over however many runs it took (a count kept in a local
    // would restart with a resumed run: `#[protected]` refuses to compile that).
    Ok(PER_BATCH)
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
}

fn create_catalog(db: &Path) -> rusqlite::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let conn = Connection::open(db)?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "CREATE TABLE photos (name TEXT PRIMARY KEY, batch INTEGER NOT NULL, bytes INTEGER NOT NULL);
         CREATE TABLE thumbnails (id INTEGER PRIMARY KEY, made_at INTEGER NOT NULL);",
    )
}

fn run(data: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(data)?;
    let db = data.join("catalog.db");
    create_catalog(&db)?;
    let store = data.join(".resilience");
    let _ = std::fs::remove_dir_all(&store);
    // Room for the auto-backups and the entry backups side by side: a rotated-out entry backup
    // could not be restored.
    let manager = FailsafeManager::builder().dir(&store).max_backups(100).build()?;
    let errors = ErrorHandler::new(100);
    let db_str = db.to_str().ok_or("the data directory's path is not UTF-8")?;

    // Another writer: commits a thumbnail row every millisecond through its own connection.
    let stop = Arc::new(AtomicBool::new(false));
    let thumbnails = Arc::new(AtomicU64::new(0));
    let indexer = {
        let (db, stop, thumbnails) = (db.clone(), Arc::clone(&stop), Arc::clone(&thumbnails));
        std::thread::spawn(move || -> rusqlite::Result<Connection> {
            let conn = Connection::open(db)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            while !stop.load(Ordering::Relaxed) {
                conn.execute("INSERT INTO thumbnails (made_at) VALUES (unixepoch())", [])?;
                thumbnails.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(conn)
        })
    };
    let auto = manager.start_auto_backup(std::slice::from_ref(&db), Duration::from_millis(100));
    let reader = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;

    let added = import_batch(&manager, &errors, db_str, 1, None)?;
    println!("Batch 1: {added} photos imported; the catalog holds {}", count(&reader, "photos")?);
    std::thread::sleep(Duration::from_millis(350));

    let photos_before = count(&reader, "photos")?;
    match import_batch(&manager, &errors, db_str, 2, Some(PER_BATCH / 2)) {
        Ok(n) => return Err(format!("batch 2 was meant to fail, it imported {n}").into()),
        Err(e) => println!("Batch 2 failed: {e}"),
    }
    let photos_after = count(&reader, "photos")?;
    let integrity: String = reader.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    println!(
        "Restored through SQLite: the catalog holds {photos_after} photos again (it held \
         {photos_before} before batch 2); integrity check: {integrity}"
    );
    if photos_after != photos_before || integrity != "ok" {
        return Err("the failed batch was not rolled back".into());
    }

    std::thread::sleep(Duration::from_millis(250));
    stop.store(true, Ordering::Relaxed);
    let indexer_conn = indexer.join().map_err(|_| "the indexer panicked")??;
    auto.stop();
    println!(
        "The indexer committed {} thumbnails meanwhile; its connection, open throughout, sees \
         {} (the restore also rolled back those committed while batch 2 ran)",
        thumbnails.load(Ordering::Relaxed),
        count(&indexer_conn, "thumbnails")?
    );

    let backups = manager.list_backups(&db)?;
    let newest = backups.first().ok_or("no backup was taken")?;
    let copy = Connection::open_with_flags(&newest.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let copy_integrity: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    println!(
        "{} backups in {} (auto-backup and #[protected]); the newest holds {} photos and {} \
         thumbnails, integrity check: {copy_integrity}",
        backups.len(),
        store.join("backups").display(),
        count(&copy, "photos")?,
        count(&copy, "thumbnails")?
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut data = PathBuf::from("data/sqlite_catalog");
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--data") => match args.next() {
                Some(dir) => data = dir.into(),
                None => {
                    eprintln!("`--data` needs a directory");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: sqlite_catalog [--data DIR]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
