//! File-system benchmarks: durable and buffered checkpoints, backups, listing a big store.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use resilience::{Checkpointable, Durability, FailsafeManager, ProcessState};

use crate::Config;
use crate::harness::{Batch, Variant, compare, fmt_rate, fmt_time, goal, print_table};

/// The small progress struct every checkpoint benchmark saves.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, Checkpointable)]
pub struct Progress {
    #[checkpoint(cursor)]
    done: u64,
    #[checkpoint(total)]
    total: u64,
    bytes: u64,
}

const NAME: &str = "bench";
/// What our store writes for one `Progress` checkpoint named `NAME`: a 68-byte record header,
/// the name and the 24-byte payload. The peers write a record of the same size.
const RECORD_LEN: usize = 68 + NAME.len() + 24;

fn record(i: u64) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&i.to_le_bytes());
    r[RECORD_LEN - 8..].copy_from_slice(&i.wrapping_mul(31).to_le_bytes());
    r
}

fn progress(i: u64) -> Progress {
    Progress { done: i, total: 1 << 40, bytes: i * 4096 }
}

fn sync_dir(dir: &Path) {
    File::open(dir).and_then(|d| d.sync_all()).expect("sync the directory");
}

fn sqlite(dir: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(dir.join("checkpoints.sqlite")).expect("open sqlite");
    db.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    db.pragma_update(None, "synchronous", "FULL").expect("synchronous=FULL");
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS checkpoints (
            id TEXT PRIMARY KEY, name TEXT, state INTEGER, progress REAL, cursor INTEGER,
            sequence INTEGER, saved_at INTEGER, data BLOB)",
    )
    .expect("create table");
    db
}

pub fn durable(cfg: &Config) -> bool {
    let dir = cfg.scratch("durable");
    let manager = FailsafeManager::open(dir.join("store")).expect("open the store");
    let db = sqlite(&dir);
    let in_place = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("in-place.bin"))
        .expect("create in-place file");
    in_place.write_all_at(&[0; 4096], 0).expect("preallocate");
    in_place.sync_all().expect("sync");
    sync_dir(&dir);
    let seq = std::cell::Cell::new(0u64);
    let bump = || {
        seq.set(seq.get() + 1);
        seq.get()
    };
    let lock = manager.lock("bench-durable-locked").expect("lock");
    let mut insert = db
        .prepare(
            "INSERT OR REPLACE INTO checkpoints
             (id, name, state, progress, cursor, sequence, saved_at, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .expect("prepare");
    let mut variants = [
        Variant::looped("save_checkpoint (Sync)", || {
            let i = bump();
            manager
                .save_checkpoint("bench-durable", NAME, ProcessState::Running, 0.5, &progress(i))
                .expect("save");
        }),
        Variant::looped("save_checkpoint (Sync), lock held", || {
            let i = bump();
            manager
                .save_checkpoint(
                    "bench-durable-locked",
                    NAME,
                    ProcessState::Running,
                    0.5,
                    &progress(i),
                )
                .expect("save");
        }),
        Variant::looped("write_at + fdatasync", || {
            let i = bump();
            in_place.write_all_at(&record(i), 0).expect("write");
            in_place.sync_data().expect("fdatasync");
        }),
        Variant::looped("SQLite WAL, synchronous=FULL", || {
            let i = bump();
            let data = &record(i)[68 + NAME.len()..];
            insert
                .execute(rusqlite::params![
                    "bench-durable",
                    NAME,
                    1,
                    0.5,
                    i as i64,
                    i as i64,
                    i as i64,
                    data
                ])
                .expect("insert");
        }),
        Variant::looped("temp + fsync + rename + dir fsync", || {
            let i = bump();
            let temp = dir.join("checkpoint.tmp");
            let mut f = File::create(&temp).expect("create temp");
            f.write_all(&record(i)).expect("write temp");
            f.sync_all().expect("fsync temp");
            drop(f);
            fs::rename(&temp, dir.join("checkpoint.bin")).expect("rename");
            sync_dir(&dir);
        }),
    ];
    let r = compare(cfg.reps(9), Batch::Fixed(cfg.ops(400)), &mut variants);
    print_table(
        "3. Durable checkpoint of a small struct (same directory)",
        &r,
        "SQLite WAL, synchronous=FULL",
        true,
    );
    let ratio = r.paired_speedup("save_checkpoint (Sync)", "SQLite WAL, synchronous=FULL");
    let vs_limit = r.paired_speedup("save_checkpoint (Sync)", "write_at + fdatasync");
    let locked =
        r.paired_speedup("save_checkpoint (Sync), lock held", "SQLite WAL, synchronous=FULL");
    println!(
        "save_checkpoint: {} = {ratio:.2}× SQLite's rate, {vs_limit:.2}× write_at + fdatasync; \
         with the lock held: {locked:.2}× SQLite's rate",
        fmt_rate(r.median("save_checkpoint (Sync)"))
    );
    drop(variants);
    drop(lock);
    drop(insert);
    drop(db);
    let _ = fs::remove_dir_all(&dir);
    goal(
        &format!("≥ 1.0× SQLite's rate ({ratio:.2}×; lock held {locked:.2}×)"),
        ratio >= 1.0 && locked >= 1.0,
    )
}

pub fn buffered(cfg: &Config) -> bool {
    let dir = cfg.scratch("buffered");
    let manager = FailsafeManager::builder()
        .dir(dir.join("store"))
        .durability(Durability::Buffered)
        .build()
        .expect("open the store");
    // A job holds its operation's lock while it saves (as a `#[checkpointed]` run does); a save
    // without it takes the lock and writes through.
    let lock = manager.lock("bench-buffered").expect("lock");
    let raw = BufWriter::new(File::create(dir.join("raw.bin")).expect("create raw file"));
    let i = std::cell::Cell::new(0u64);
    let raw = std::cell::RefCell::new(raw);
    let write_raw = || {
        i.set(i.get() + 1);
        raw.borrow_mut().write_all(black_box(&record(i.get()))).expect("write");
    };
    let save = || {
        i.set(i.get() + 1);
        manager
            .save_checkpoint("bench-buffered", NAME, ProcessState::Running, 0.5, &progress(i.get()))
            .expect("save");
    };
    let mut variants = [
        Variant::looped("raw BufWriter write of the record", write_raw),
        Variant::looped("save_checkpoint (Buffered)", save),
        Variant::cpu("raw BufWriter write, CPU time", write_raw),
        Variant::cpu("save_checkpoint (Buffered), CPU time", save),
    ];
    let r = compare(cfg.reps(15), Batch::Lasting(Duration::from_millis(50)), &mut variants);
    print_table(
        "4. Buffered checkpoint of a small struct",
        &r,
        "raw BufWriter write of the record",
        true,
    );
    let per_sec = 1e9 / r.median("save_checkpoint (Buffered)");
    println!(
        "save_checkpoint (Buffered): {} wall clock, {} by CPU time",
        fmt_rate(r.median("save_checkpoint (Buffered)")),
        fmt_rate(r.median("save_checkpoint (Buffered), CPU time"))
    );
    drop(variants);
    drop(lock);
    manager.flush().expect("flush");
    let _ = fs::remove_dir_all(&dir);
    goal(&format!("≥ 1M saves/s, lock held ({:.2}M/s)", per_sec / 1e6), per_sec >= 1e6)
}

pub fn backup(cfg: &Config) -> bool {
    let dir = cfg.scratch("backup");
    let size: usize = cfg.backup_mib() << 20;
    let source = dir.join("source.bin");
    if fs::metadata(&source).map(|m| m.len()).ok() != Some(size as u64) {
        let mut f = BufWriter::new(File::create(&source).expect("create source"));
        let mut block = vec![0u8; 1 << 20];
        for k in 0..size >> 20 {
            for (n, b) in block.iter_mut().enumerate() {
                *b = (n as u64).wrapping_mul(2654435761).wrapping_add(k as u64) as u8;
            }
            f.write_all(&block).expect("write source");
        }
        f.into_inner().expect("flush").sync_all().expect("sync source");
    }
    let manager = FailsafeManager::builder()
        .dir(dir.join("store"))
        .max_backups(1000)
        .build()
        .expect("open the store");
    let copy = dir.join("copy.bin");
    let timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let mut variants = [
        Variant::new("std::fs::copy + sync_all", |iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += timed(&mut || {
                    fs::copy(&source, &copy).expect("copy");
                    File::open(&copy).and_then(|f| f.sync_all()).expect("sync copy");
                });
                fs::remove_file(&copy).expect("remove copy");
            }
            total
        }),
        Variant::new("create_backup (Sync)", |iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut info = None;
                total +=
                    timed(&mut || info = Some(manager.create_backup(&source).expect("backup")));
                let info = info.expect("taken");
                assert_eq!(info.size, size as u64);
                fs::remove_file(&info.path).expect("remove backup");
            }
            total
        }),
        Variant::new("cp + sync", |iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += timed(&mut || {
                    let cp = Command::new("cp").arg(&source).arg(&copy).status().expect("run cp");
                    let sync = Command::new("sync").arg(&copy).status().expect("run sync");
                    assert!(cp.success() && sync.success());
                });
                fs::remove_file(&copy).expect("remove copy");
            }
            total
        }),
    ];
    let r = compare(cfg.reps(5), Batch::Fixed(1), &mut variants);
    print_table(
        &format!("6. Durable backup of a {} MiB file", size >> 20),
        &r,
        "std::fs::copy + sync_all",
        false,
    );
    let ratio = r.paired_speedup("create_backup (Sync)", "std::fs::copy + sync_all");
    let mib_s = |name: &str| size as f64 / (1 << 20) as f64 / (r.median(name) / 1e9);
    println!(
        "throughput: create_backup {:.0} MiB/s, fs::copy + sync_all {:.0} MiB/s, cp + sync {:.0} MiB/s",
        mib_s("create_backup (Sync)"),
        mib_s("std::fs::copy + sync_all"),
        mib_s("cp + sync")
    );
    drop(variants);
    if !cfg.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    goal(&format!("≥ 0.9× std::fs::copy + sync_all ({ratio:.2}×)"), ratio >= 0.9)
}

/// A SQLite database of about `mib` MiB in WAL mode at `path`, kept between runs.
fn sqlite_database(path: &Path, mib: usize) {
    let want = (mib as u64) << 20;
    if fs::metadata(path).is_ok_and(|m| m.len() >= want && m.len() < want + (16 << 20)) {
        return;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = rusqlite::Connection::open(path).expect("create the database");
    let _: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).expect("WAL mode");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         CREATE TABLE log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL);",
    )
    .expect("create tables");
    // A 3,000-byte row fills a 4 KiB page: 65,536 rows make 256 MiB.
    let rows = want / 4096;
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO t SELECT i, randomblob(3000) FROM n",
        [rows as i64],
    )
    .expect("fill the database");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").expect("checkpoint");
}

/// SQLite online backup (feature `sqlite`) of a live database while a writer commits one small
/// row per transaction (WAL, `synchronous = FULL`), against `std::fs::copy` + `sync_all` of the
/// same file (which, unlike the backup, is not a consistent copy of a database in use).
pub fn sqlite_backup(cfg: &Config) -> bool {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = cfg.scratch_kept("sqlite-backup");
    let mib = cfg.backup_mib();
    let db = dir.join("live.db");
    sqlite_database(&db, mib);
    let _ = fs::remove_dir_all(dir.join("store"));
    let manager = FailsafeManager::builder()
        .dir(dir.join("store"))
        .max_backups(1000)
        .build()
        .expect("open the store");
    let commits = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, commits, stop) = (db.clone(), Arc::clone(&commits), Arc::clone(&stop));
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).expect("open the database");
            conn.busy_timeout(Duration::from_secs(60)).expect("busy timeout");
            conn.execute_batch("PRAGMA synchronous = FULL;").expect("synchronous");
            while !stop.load(Ordering::Relaxed) {
                conn.execute("INSERT INTO log (at, note) VALUES (unixepoch(), 'commit')", [])
                    .expect("commit");
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let rate = |during: &mut dyn FnMut()| {
        let (start, before) = (Instant::now(), commits.load(Ordering::Relaxed));
        during();
        (commits.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64()
    };
    let idle_rate = rate(&mut || std::thread::sleep(Duration::from_secs(2)));

    let copy = dir.join("copy.db");
    let size = fs::metadata(&db).expect("database size").len();
    let timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let (mut backup_commits, mut backup_time) = (0u64, Duration::ZERO);
    let mut variants = [
        Variant::new("std::fs::copy + sync_all", |iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += timed(&mut || {
                    fs::copy(&db, &copy).expect("copy");
                    File::open(&copy).and_then(|f| f.sync_all()).expect("sync copy");
                });
                fs::remove_file(&copy).expect("remove copy");
            }
            total
        }),
        Variant::new("create_backup (SQLite online)", |iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut info = None;
                let before = commits.load(Ordering::Relaxed);
                let took = timed(&mut || info = Some(manager.create_backup(&db).expect("backup")));
                backup_commits += commits.load(Ordering::Relaxed) - before;
                backup_time += took;
                total += took;
                fs::remove_file(&info.expect("taken").path).expect("remove backup");
            }
            total
        }),
    ];
    let r = compare(cfg.reps(3), Batch::Fixed(1), &mut variants);
    drop(variants);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer");
    print_table(
        &format!(
            "6b. SQLite online backup of a {} MiB database while a writer commits",
            size >> 20
        ),
        &r,
        "std::fs::copy + sync_all",
        false,
    );
    let ratio = r.paired_speedup("create_backup (SQLite online)", "std::fs::copy + sync_all");
    let mib_s = |name: &str| size as f64 / (1 << 20) as f64 / (r.median(name) / 1e9);
    let during = backup_commits as f64 / backup_time.as_secs_f64();
    println!(
        "throughput: SQLite online backup {:.0} MiB/s, fs::copy + sync_all {:.0} MiB/s",
        mib_s("create_backup (SQLite online)"),
        mib_s("std::fs::copy + sync_all"),
    );
    println!(
        "writer: {during:.0} commits/s during the backups ({backup_commits} commits in {:.2} s), \
         {idle_rate:.0} commits/s with no backup running",
        backup_time.as_secs_f64()
    );
    if !cfg.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    let stalled = backup_commits == 0;
    goal(&format!("≥ 0.5× std::fs::copy + sync_all ({ratio:.2}×)"), ratio >= 0.5)
        & goal(&format!("writer not stalled ({during:.0} commits/s during backups)"), !stalled)
}

const OPERATIONS: u64 = 10_000;

/// A store holding `OPERATIONS` operations, a quarter in each of Running, Paused, Failed and
/// Completed; kept between runs (it takes a while to create: each new file is synced).
pub fn big_store(cfg: &Config) -> std::path::PathBuf {
    let dir = cfg.scratch_kept("recover-10k");
    let marker = dir.join("complete");
    if marker.exists() {
        return dir.join("store");
    }
    let _ = fs::remove_dir_all(dir.join("store"));
    let start = Instant::now();
    let manager = FailsafeManager::builder()
        .dir(dir.join("store"))
        .durability(Durability::Buffered)
        .build()
        .expect("open the store");
    let states = [
        ProcessState::Running,
        ProcessState::Paused,
        ProcessState::Failed,
        ProcessState::Completed,
    ];
    for i in 0..OPERATIONS {
        let state = states[(i % 4) as usize];
        let id = format!("import-{i}");
        manager.save_checkpoint(&id, NAME, ProcessState::Running, 0.1, &progress(i)).expect("save");
        if state != ProcessState::Running {
            manager.save_checkpoint(&id, NAME, state, 0.2, &progress(i + 1)).expect("save");
        }
    }
    manager.flush().expect("flush");
    File::create(&marker).expect("marker");
    println!("(created a store of {OPERATIONS} operations in {:.1?})", start.elapsed());
    dir.join("store")
}

/// The least a listing that validates a cache can do: one `stat` per file.
fn stat_all(store: &Path) {
    let mut n = 0u64;
    for entry in fs::read_dir(store).expect("read_dir") {
        n += entry.expect("entry").metadata().expect("stat").len();
    }
    black_box(n);
}

fn fresh(store: &Path, expected: usize) {
    let manager = FailsafeManager::open(store).expect("open the store");
    assert_eq!(manager.recoverable_operations().expect("list").len(), expected);
}

fn warm_list(manager: &FailsafeManager, expected: usize) {
    assert_eq!(manager.recoverable_operations().expect("list").len(), expected);
}

pub fn recover(cfg: &Config) -> bool {
    let store = big_store(cfg);
    let expected = (OPERATIONS / 4 * 3) as usize;
    // Managers of one directory in a process share their listing cache: a "fresh" manager is
    // only fresh while no other manager of the store is alive, so the two are measured apart.
    let mut buf = vec![0u8; 4096];
    let mut variants = [
        Variant::looped("readdir + open/read 4 KiB/close each", || {
            let mut n = 0usize;
            for entry in fs::read_dir(&store).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "ckpt") {
                    let mut f = File::open(&path).expect("open");
                    n += f.read(&mut buf).expect("read");
                }
            }
            black_box(n);
        }),
        Variant::looped("readdir + stat each", || stat_all(&store)),
        Variant::looped("fresh manager", || fresh(&store, expected)),
        Variant::cpu("readdir + stat each, CPU time", || stat_all(&store)),
        Variant::cpu("fresh manager, CPU time", || fresh(&store, expected)),
    ];
    let fresh_r = compare(cfg.reps(9), Batch::Fixed(1), &mut variants);
    print_table(
        &format!(
            "7. `recoverable_operations()` over {OPERATIONS} stored operations, freshly opened \
             manager (page cache warm)"
        ),
        &fresh_r,
        "readdir + open/read 4 KiB/close each",
        false,
    );
    drop(variants);

    let warm = FailsafeManager::open(&store).expect("open the store");
    assert_eq!(warm.recoverable_operations().expect("list").len(), expected);
    let mut variants = [
        Variant::looped("readdir + stat each", || stat_all(&store)),
        Variant::looped("warm manager", || warm_list(&warm, expected)),
        Variant::cpu("readdir + stat each, CPU time", || stat_all(&store)),
        Variant::cpu("warm manager, CPU time", || warm_list(&warm, expected)),
    ];
    let warm_r = compare(cfg.reps(9), Batch::Fixed(1), &mut variants);
    print_table(
        &format!("7b. `recoverable_operations()` over {OPERATIONS} operations, open manager"),
        &warm_r,
        "readdir + stat each",
        false,
    );
    let worst = fresh_r.median("fresh manager").max(warm_r.median("warm manager"));
    let cpu =
        fresh_r.median("fresh manager, CPU time").max(warm_r.median("warm manager, CPU time"));
    println!("slowest: {} wall clock, {} CPU time", fmt_time(worst), fmt_time(cpu));
    goal(&format!("≤ 50 ms ({} wall clock)", fmt_time(worst)), worst <= 50e6)
}
