//! Backups: create, list, rotate, verify, restore; files written while they are backed up
//! (`live`), SQLite databases (`sqlite`).
//!
//! Tests that need a second process re-run this binary with `RESILIENCE_BACKUP_CHILD` naming
//! the role (see [`child`]).

mod live;
mod sqlite;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use resilience::{BackupInfo, Error, FailsafeManager};

const CHILD_ENV: &str = "RESILIENCE_BACKUP_CHILD";

/// The entry point of child processes; does nothing when run as a test.
#[test]
#[ignore = "run by the tests of this file in child processes"]
fn child() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    match role.as_str() {
        "sqlite-writer" => sqlite::writer_child(),
        "sqlite-stale-wal" => sqlite::stale_wal_child(),
        other => panic!("unknown child role {other}"),
    }
}

/// A child process running one role of this binary; killed (SIGKILL) when dropped. The last
/// number it printed after `committed ` is in `committed`.
pub struct ChildRole {
    child: Child,
    pub committed: Arc<AtomicU64>,
    ready: std::sync::mpsc::Receiver<String>,
}

impl ChildRole {
    pub fn spawn(role: &str, env: &[(&str, &std::ffi::OsStr)]) -> ChildRole {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn a child process");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let committed = Arc::new(AtomicU64::new(0));
        let (lines, ready) = std::sync::mpsc::channel();
        let seen = Arc::clone(&committed);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                match line.strip_prefix("committed ").and_then(|n| n.parse().ok()) {
                    Some(n) => seen.store(n, Ordering::SeqCst),
                    None => {
                        if lines.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        ChildRole { child, committed, ready }
    }

    /// Waits for a line starting with `prefix` (other than `committed` lines).
    pub fn wait_for(&self, prefix: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.ready.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return,
                Ok(_) => {}
                Err(e) => panic!("the child never printed `{prefix}`: {e}"),
            }
        }
    }

    /// Waits until the child reports at least `n` commits.
    pub fn wait_for_commits(&self, n: u64) -> u64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let now = self.committed.load(Ordering::SeqCst);
            if now >= n {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "the child committed {now} of {n}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    Fixture { store, data, _tmp: tmp }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_in(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn create_list_restore_round_trip() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("photos.db");
    let versions: [&[u8]; 3] = [b"first version", b"second, longer version", b"3"];
    let mut created = Vec::new();
    for content in versions {
        fs::write(&file, content).unwrap();
        created.push(manager.create_backup(&file).unwrap());
    }

    let listed = manager.list_backups(&file).unwrap();
    let expected: Vec<BackupInfo> = created.iter().rev().cloned().collect();
    assert_eq!(listed, expected, "newest first");
    for (info, content) in created.iter().zip(versions) {
        assert_eq!(info.source, fs::canonicalize(&file).unwrap());
        assert_eq!(info.size, content.len() as u64);
        assert_eq!(fs::read(&info.path).unwrap(), content);
        assert!(info.path.starts_with(fx.store.join("backups")), "{}", info.path.display());
        assert!(info.path.is_absolute() && info.source.is_absolute());
    }
    assert_ne!(created[0].checksum, created[1].checksum);

    fs::write(&file, b"damaged by a failed job").unwrap();
    manager.restore_backup(&listed[2]).unwrap();
    assert_eq!(fs::read(&file).unwrap(), versions[0]);
    manager.restore_backup(&listed[0]).unwrap();
    assert_eq!(fs::read(&file).unwrap(), versions[2]);
    assert_eq!(files_in(&fx.data), vec![file.clone()], "no temp file left next to the source");
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BackupInfo>();
    check::<resilience::AutoBackup>();
    check::<resilience::FailsafeStats>();
}

#[test]
fn an_empty_file_round_trips() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("empty");
    fs::write(&file, b"").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    assert_eq!(backup.size, 0);
    fs::write(&file, b"not empty").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"");
}

#[test]
fn the_checksum_is_crc32_ieee() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("check");
    fs::write(&file, b"123456789").unwrap();
    assert_eq!(manager.create_backup(&file).unwrap().checksum, 0xCBF4_3926);
}

#[test]
fn a_large_file_spanning_many_chunks_round_trips() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("large.bin");
    let content: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i: u32| (i * 31 % 251) as u8).collect();
    fs::write(&file, &content).unwrap();
    let backup = manager.create_backup(&file).unwrap();
    assert_eq!(backup.size, content.len() as u64);
    fs::write(&file, b"x").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert!(fs::read(&file).unwrap() == content);
}

#[test]
fn buffered_durability_round_trips() {
    let fx = fixture();
    let manager = FailsafeManager::builder()
        .dir(&fx.store)
        .durability(resilience::Durability::Buffered)
        .build()
        .unwrap();
    let file = fx.data.join("scratch.bin");
    fs::write(&file, b"buffered").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    fs::write(&file, b"changed").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"buffered");
    assert_eq!(
        FailsafeManager::open(&fx.store).unwrap().list_backups(&file).unwrap(),
        vec![backup]
    );
}

#[test]
fn restoring_a_long_file_name_works() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("x".repeat(250));
    fs::write(&file, b"long").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    fs::write(&file, b"changed").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"long");
}

#[test]
fn rotation_keeps_the_newest_max_backups_per_source() {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(2).build().unwrap();
    let a = fx.data.join("a.json");
    let b = fx.data.join("b.json");
    fs::write(&b, b"b0").unwrap();
    let b_backup = manager.create_backup(&b).unwrap();

    let mut a_backups = Vec::new();
    for i in 0..5 {
        fs::write(&a, format!("a{i}")).unwrap();
        a_backups.push(manager.create_backup(&a).unwrap());
    }

    let listed = manager.list_backups(&a).unwrap();
    assert_eq!(listed, vec![a_backups[4].clone(), a_backups[3].clone()]);
    for old in &a_backups[..3] {
        assert!(!old.path.exists(), "rotated backup {} still on disk", old.path.display());
    }
    assert_eq!(fs::read(&listed[1].path).unwrap(), b"a3");
    assert_eq!(manager.list_backups(&b).unwrap(), vec![b_backup], "other sources unaffected");
}

#[test]
fn a_tampered_backup_is_corrupt_and_the_source_is_untouched() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("ledger.csv");
    fs::write(&file, b"id,amount\n1,100\n2,250\n").unwrap();
    let backup = manager.create_backup(&file).unwrap();

    let mut bytes = fs::read(&backup.path).unwrap();
    bytes[12] ^= 0x01;
    fs::write(&backup.path, &bytes).unwrap();
    fs::write(&file, b"current content").unwrap();

    match manager.restore_backup(&backup) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, backup.path),
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(&file).unwrap(), b"current content");
    assert_eq!(files_in(&fx.data), vec![file], "no temp file left next to the source");
}

#[test]
fn a_truncated_backup_is_corrupt() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("state.bin");
    fs::write(&file, b"0123456789").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    fs::write(&backup.path, b"01234").unwrap();
    fs::remove_file(&file).unwrap();

    assert!(matches!(manager.restore_backup(&backup), Err(Error::Corrupt { .. })));
    assert!(!file.exists(), "a failed restore must not create the source");
}

#[test]
fn restoring_a_deleted_source_recreates_it_with_its_permissions() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("nested/dir/config.toml");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, b"threads = 4\n").unwrap();
    set_mode(&file, 0o640);
    manager.create_backup(&file).unwrap();
    fs::remove_dir_all(fx.data.join("nested")).unwrap();

    let backups = manager.list_backups(&file).unwrap();
    assert_eq!(backups.len(), 1, "backups are found after the source is gone");
    manager.restore_backup(&backups[0]).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"threads = 4\n");
    assert_eq!(mode(&file), 0o640);
}

#[test]
fn a_failed_restore_names_the_source_and_leaves_no_temp_file() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("report.pdf");
    fs::write(&file, b"%PDF").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    fs::write(file.join("inside"), b"keep me").unwrap();

    match manager.restore_backup(&backup) {
        Err(Error::Io { path, .. }) => assert_eq!(path, backup.source),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert_eq!(fs::read(file.join("inside")).unwrap(), b"keep me");
    assert_eq!(files_in(&fx.data), vec![file.join("inside")]);
}

#[test]
fn a_missing_source_is_backup_missing_naming_the_path() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let missing = fx.data.join("never-written.db");
    match manager.create_backup(&missing) {
        Err(Error::BackupMissing { path }) => assert_eq!(path, missing),
        other => panic!("expected Error::BackupMissing, got {other:?}"),
    }
    let err = manager.create_backup(&missing).unwrap_err();
    assert!(err.to_string().contains("never-written.db"), "{err}");
}

#[test]
fn a_directory_is_not_backed_up() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    match manager.create_backup(&fx.data) {
        Err(Error::Io { path, .. }) => assert_eq!(path, fx.data),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn a_file_never_backed_up_has_no_backups() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let existing = fx.data.join("exists.txt");
    fs::write(&existing, b"x").unwrap();
    assert_eq!(manager.list_backups(&existing).unwrap(), vec![]);
    assert_eq!(manager.list_backups(fx.data.join("missing.txt")).unwrap(), vec![]);
}

#[test]
fn reopening_the_store_sees_the_backups() {
    let fx = fixture();
    let file = fx.data.join("model.ckpt");
    fs::write(&file, b"weights v1").unwrap();
    let before = {
        let manager = FailsafeManager::open(&fx.store).unwrap();
        manager.create_backup(&file).unwrap();
        fs::write(&file, b"weights v2").unwrap();
        manager.create_backup(&file).unwrap();
        manager.list_backups(&file).unwrap()
    };
    let reopened = FailsafeManager::open(&fx.store).unwrap();
    let after = reopened.list_backups(&file).unwrap();
    assert_eq!(after, before);
    reopened.restore_backup(&after[1]).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"weights v1");
}

#[test]
fn garbage_in_the_backup_folders_is_ignored() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("notes.txt");
    fs::write(&file, b"notes").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    let folder = backup.path.parent().unwrap();
    let name = backup.path.file_name().unwrap().to_str().unwrap().to_owned();
    fs::write(folder.join("junk.bak"), b"orphan copy").unwrap();
    let ours = format!(".tmp-{}-0123456789abcdef-backup", std::process::id());
    fs::write(folder.join(&ours), b"a copy in progress").unwrap();
    fs::write(folder.join(".tmp-x-0123456789abcdef-backup"), b"not ours").unwrap();
    fs::write(folder.join("README"), b"hello").unwrap();
    fs::write(folder.join(format!("{name}.orig")), b"notes").unwrap();
    fs::create_dir(folder.join(name.replacen("0000000001_", "0000000007_", 1))).unwrap();
    // A copy cut short: its size is not the one its name records.
    fs::write(folder.join(name.replacen("0000000001_", "0000000009_", 1)), b"no").unwrap();
    fs::write(fx.store.join("backups/stray-file"), b"?").unwrap();

    assert_eq!(manager.list_backups(&file).unwrap(), vec![backup.clone()]);
    fs::write(&file, b"notes v2").unwrap();
    let second = manager.create_backup(&file).unwrap();
    assert_eq!(manager.list_backups(&file).unwrap(), vec![second, backup]);
}

#[cfg(unix)]
#[test]
fn temp_files_of_dead_processes_are_removed_by_the_next_listing() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("big.img");
    fs::write(&file, b"image").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    let folder = backup.path.parent().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let orphan = folder.join(format!(".tmp-{dead}-00000000deadbeef-backup"));
    let live = folder.join(format!(".tmp-{}-00000000deadbeef-backup", std::process::id()));
    fs::write(&orphan, b"half a copy").unwrap();
    fs::write(&live, b"a copy in progress").unwrap();

    assert_eq!(manager.list_backups(&file).unwrap(), vec![backup]);
    assert!(!orphan.exists(), "the dead process's temp file is still there");
    assert!(live.exists(), "a live process's temp file was removed");
}

#[cfg(unix)]
#[test]
fn backup_files_are_private() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("secrets.env");
    fs::write(&file, b"TOKEN=1").unwrap();
    set_mode(&file, 0o644);
    let backup = manager.create_backup(&file).unwrap();
    for path in files_in(&fx.store.join("backups")) {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(backup.path.parent().unwrap()), 0o700);
}

#[cfg(unix)]
#[test]
fn a_symlink_planted_in_the_store_is_not_written_through() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("db.sqlite");
    fs::write(&file, b"data").unwrap();
    let elsewhere = fx.data.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::create_dir_all(&fx.store).unwrap();
    std::os::unix::fs::symlink(&elsewhere, fx.store.join("backups")).unwrap();

    assert!(matches!(manager.create_backup(&file), Err(Error::Io { .. })));
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none(), "wrote through the symlink");
}

#[cfg(unix)]
#[test]
fn backups_of_a_symlinked_path_belong_to_its_target() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let real = fx.data.join("real.db");
    let link = fx.data.join("link.db");
    fs::write(&real, b"real").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let backup = manager.create_backup(&link).unwrap();
    assert_eq!(manager.list_backups(&real).unwrap(), vec![backup.clone()]);
    fs::write(&real, b"changed").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&link).unwrap(), b"real");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn mode(_: &Path) -> u32 {
    0o640
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

mod auto_backup {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_pass_copies_only_files_that_changed() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let (a, b, c) = (fx.data.join("a.txt"), fx.data.join("b.txt"), fx.data.join("c.txt"));
        fs::write(&a, b"alpha").unwrap();
        fs::write(&b, b"bravo").unwrap();
        fs::write(&c, b"charlie").unwrap();
        let b_before = manager.create_backup(&b).unwrap();

        let auto = manager
            .start_auto_backup(&[a.clone(), b.clone(), c.clone()], Duration::from_secs(3600));
        let first = auto.run_now();
        let sources: Vec<_> = first.iter().map(|i| i.source.clone()).collect();
        assert_eq!(
            sources,
            vec![fs::canonicalize(&a).unwrap(), fs::canonicalize(&c).unwrap()],
            "b was backed up before the auto-backup started and has not changed"
        );

        assert_eq!(auto.run_now(), vec![], "nothing changed");

        // Same size, written right away: only the checksum can tell.
        fs::write(&b, b"BRAVO").unwrap();
        let second = auto.run_now();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].source, b_before.source);
        assert_eq!(fs::read(&second[0].path).unwrap(), b"BRAVO");

        fs::write(&a, b"alpha, longer").unwrap();
        let third = auto.run_now();
        assert_eq!(third.len(), 1);
        assert_eq!(fs::read(&third[0].path).unwrap(), b"alpha, longer");

        assert_eq!(auto.run_now(), vec![]);
        assert_eq!(manager.list_backups(&a).unwrap().len(), 2);
        assert_eq!(manager.list_backups(&b).unwrap().len(), 2);
        assert_eq!(manager.list_backups(&c).unwrap().len(), 1);
        auto.stop();
    }

    #[test]
    fn a_restored_file_is_compared_with_the_newest_backup() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let file = fx.data.join("db");
        fs::write(&file, b"good").unwrap();
        let auto =
            manager.start_auto_backup(std::slice::from_ref(&file), Duration::from_secs(3600));
        let good = auto.run_now().remove(0);

        // Damaged and restored between two passes: same content as the newest backup.
        fs::write(&file, b"bad!").unwrap();
        manager.restore_backup(&good).unwrap();
        assert_eq!(auto.run_now(), vec![]);

        // Damaged, backed up, then restored: differs from the newest backup, copied once.
        fs::write(&file, b"bad!").unwrap();
        assert_eq!(auto.run_now().len(), 1);
        manager.restore_backup(&good).unwrap();
        assert_eq!(auto.run_now().len(), 1);
        assert_eq!(auto.run_now(), vec![]);
        assert_eq!(manager.list_backups(&file).unwrap().len(), 3);
    }

    #[test]
    fn missing_files_are_skipped() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let present = fx.data.join("present");
        let missing = fx.data.join("missing");
        fs::write(&present, b"here").unwrap();
        let auto = manager
            .start_auto_backup(&[missing.clone(), present.clone()], Duration::from_secs(3600));
        let copied = auto.run_now();
        assert_eq!(copied.len(), 1);
        assert_eq!(copied[0].source, fs::canonicalize(&present).unwrap());
        assert_eq!(manager.list_backups(&missing).unwrap(), vec![]);
    }

    #[test]
    fn the_background_thread_backs_up_and_stops_promptly() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let file = fx.data.join("live.log");
        fs::write(&file, b"line 1\n").unwrap();
        let auto = manager.start_auto_backup(std::slice::from_ref(&file), Duration::from_millis(2));
        assert!(auto.wait_for_passes(1, Duration::from_secs(30)), "no pass ran");
        assert_eq!(manager.list_backups(&file).unwrap().len(), 1);
        auto.stop();

        // An hour-long interval must not delay stopping, by `stop()` or by drop.
        let (done, stopped) = std::sync::mpsc::channel();
        let slow =
            manager.start_auto_backup(std::slice::from_ref(&file), Duration::from_secs(3600));
        let slower = manager.start_auto_backup(&[file], Duration::from_secs(3600));
        std::thread::spawn(move || {
            slow.stop();
            drop(slower);
            done.send(()).unwrap();
        });
        assert!(stopped.recv_timeout(Duration::from_secs(60)).is_ok(), "stopping waited");
    }
}

#[test]
fn concurrent_backups_all_succeed_share_one_folder_per_file_and_rotate() {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(3).build().unwrap();
    let files = [fx.data.join("one.db"), fx.data.join("two.db")];
    for file in &files {
        fs::write(file, file.file_name().unwrap().as_encoded_bytes()).unwrap();
    }
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    for file in &files {
                        manager.create_backup(file).unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(fs::read_dir(fx.store.join("backups")).unwrap().count(), files.len());
    for file in &files {
        manager.create_backup(file).unwrap();
        let backups = manager.list_backups(file).unwrap();
        assert_eq!(backups.len(), 3);
        for backup in &backups {
            assert_eq!(fs::read(&backup.path).unwrap(), fs::read(file).unwrap());
        }
    }
}

mod statistics {
    use super::*;
    use resilience::ProcessState;

    #[test]
    fn an_empty_store_counts_nothing() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let stats = manager.statistics().unwrap();
        assert_eq!(stats, resilience::FailsafeStats::default());
        assert_eq!(stats.total_size_mb(), 0.0);
    }

    #[test]
    fn operations_are_counted_by_their_newest_state() {
        let fx = fixture();
        let manager = FailsafeManager::open(&fx.store).unwrap();
        let save = |id: &str, state| manager.save_checkpoint(id, "job", state, 0.0, &()).unwrap();
        save("initialized", ProcessState::Initialized);
        save("running", ProcessState::Running);
        save("paused", ProcessState::Paused);
        save("failed-1", ProcessState::Failed);
        save("failed-2", ProcessState::Failed);
        save("done", ProcessState::Running);
        save("done", ProcessState::Completed);
        save("resumed", ProcessState::Failed);
        save("resumed", ProcessState::Running);

        let checkpoints = manager.statistics().unwrap().checkpoints;
        assert_eq!(
            checkpoints,
            resilience::CheckpointStats {
                total_operations: 7,
                active_operations: 3,
                completed: 1,
                failed: 2,
                paused: 1,
            }
        );
    }

    #[test]
    fn backups_are_counted_with_their_sizes_after_rotation() {
        let fx = fixture();
        let manager = FailsafeManager::builder().dir(&fx.store).max_backups(2).build().unwrap();
        let a = fx.data.join("a.bin");
        let b = fx.data.join("b.bin");
        for size in [100usize, 200, 300] {
            fs::write(&a, vec![1u8; size]).unwrap();
            manager.create_backup(&a).unwrap();
        }
        fs::write(&b, vec![2u8; 3 * 1024 * 1024]).unwrap();
        manager.create_backup(&b).unwrap();
        // Garbage is not a backup.
        fs::write(fx.store.join("backups/stray.meta"), b"junk").unwrap();

        let stats = manager.statistics().unwrap();
        assert_eq!(
            stats.backups,
            resilience::BackupStats { count: 3, total_size_bytes: 200 + 300 + 3 * 1024 * 1024 }
        );
        assert!((stats.total_size_mb() - (3.0 + 500.0 / 1048576.0)).abs() < 1e-9);
        assert_eq!(stats.checkpoints.total_operations, 0);
    }
}
