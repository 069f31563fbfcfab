//! The checkpoint store: round trips, history, resume states, damage, hostile ids, locks.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use resilience::{
    Checkpointable, Durability, Error, FailsafeManager, OperationSummary, ProcessState,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    done: u64,
    total: u64,
    label: String,
    bytes: Vec<u8>,
}

impl Checkpointable for Progress {
    const SCHEMA: u64 = 0x1111;
    fn cursor(&self) -> u64 {
        self.done
    }
    fn set_cursor(&mut self, n: u64) {
        self.done = n;
    }
    fn total(&self) -> Option<u64> {
        Some(self.total)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProgressV2 {
    done: u64,
    extra: u32,
}

impl Checkpointable for ProgressV2 {
    const SCHEMA: u64 = 0x2222;
}

fn progress(done: u64) -> Progress {
    Progress { done, total: 100, label: format!("item {done}"), bytes: vec![done as u8; 3] }
}

fn store() -> (tempfile::TempDir, FailsafeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(tmp.path().join("store")).unwrap();
    (tmp, manager)
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn only_checkpoint_file(dir: &Path) -> PathBuf {
    let files = files_with_ext(dir, "ckpt");
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn every_field_round_trips() {
    let (_tmp, m) = store();
    let before = SystemTime::now();
    m.save_checkpoint("op", "Photo Import", ProcessState::Paused, 0.25, &progress(25)).unwrap();
    let after = SystemTime::now();
    let cp = m.load_checkpoint::<Progress>("op").unwrap().unwrap();
    assert_eq!(cp.operation_id, "op");
    assert_eq!(cp.operation_name, "Photo Import");
    assert_eq!(cp.state, ProcessState::Paused);
    assert_eq!(cp.progress, 0.25);
    assert_eq!(cp.cursor, 25);
    assert_eq!(cp.data, progress(25));
    assert_eq!(cp.sequence, 1);
    assert!(before <= cp.saved_at && cp.saved_at <= after);
    assert_eq!(cp.error, None);

    m.save_with_cursor("op", "Other", ProcessState::Running, 0.5, 77, &progress(1)).unwrap();
    let cp = m.load_checkpoint::<Progress>("op").unwrap().unwrap();
    assert_eq!((cp.cursor, cp.sequence, cp.operation_name.as_str()), (77, 2, "Other"));

    m.save_checkpoint("unit", "", ProcessState::Completed, 1.0, &()).unwrap();
    let cp = m.load_checkpoint::<()>("unit").unwrap().unwrap();
    assert_eq!((cp.state, cp.progress, cp.cursor), (ProcessState::Completed, 1.0, 0));
    assert!(m.load_checkpoint::<Progress>("missing").unwrap().is_none());
}

#[test]
fn history_is_bounded_and_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let m = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(3).build().unwrap();
    assert!(m.history::<Progress>("op").unwrap().is_empty());
    for i in 1..=10 {
        m.save_checkpoint("op", "n", ProcessState::Running, i as f64 / 10.0, &progress(i)).unwrap();
    }
    let history = m.history::<Progress>("op").unwrap();
    let seen: Vec<_> = history.iter().map(|c| (c.sequence, c.data.done)).collect();
    assert_eq!(seen, [(10, 10), (9, 9), (8, 8)]);

    // A manager keeping fewer checkpoints shows fewer; one keeping more grows the file.
    let small = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(1).build().unwrap();
    assert_eq!(small.history::<Progress>("op").unwrap().len(), 1);
    let big = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(6).build().unwrap();
    for i in 11..=15 {
        big.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(i)).unwrap();
    }
    let seen: Vec<_> = big.history::<Progress>("op").unwrap().iter().map(|c| c.data.done).collect();
    assert_eq!(seen, [15, 14, 13, 12, 11, 10]);
}

#[test]
fn resume_follows_the_newest_state() {
    let (_tmp, m) = store();
    let states = [
        (ProcessState::Initialized, false),
        (ProcessState::Running, true),
        (ProcessState::Paused, true),
        (ProcessState::Completed, false),
        (ProcessState::Failed, true),
    ];
    for (i, (state, resumable)) in states.into_iter().enumerate() {
        let id = format!("op-{i}");
        m.save_checkpoint(&id, "n", state, 0.5, &progress(i as u64)).unwrap();
        assert_eq!(m.can_resume(&id).unwrap(), resumable, "{state:?}");
        let resumed = m.resume_operation(&id, |cp: resilience::Checkpoint<Progress>| cp.data.done);
        match resumed {
            Ok(done) => assert!(resumable && done == i as u64, "{state:?}"),
            Err(Error::NothingToResume { operation_id }) => {
                assert!(!resumable, "{state:?}");
                assert_eq!(operation_id, id);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(!m.can_resume("missing").unwrap());
    assert!(matches!(
        m.resume_operation("missing", |_: resilience::Checkpoint<()>| ()),
        Err(Error::NothingToResume { .. })
    ));

    let ids =
        |list: Vec<OperationSummary>| list.into_iter().map(|s| s.operation_id).collect::<Vec<_>>();
    assert_eq!(ids(m.recoverable_operations().unwrap()), ["op-1", "op-2", "op-4"]);
    assert_eq!(ids(m.operations().unwrap()), ["op-0", "op-1", "op-2", "op-3", "op-4"]);

    // A later state replaces the earlier one in the listings.
    m.save_checkpoint("op-1", "n", ProcessState::Completed, 1.0, &progress(9)).unwrap();
    assert_eq!(ids(m.recoverable_operations().unwrap()), ["op-2", "op-4"]);
}

#[test]
fn summaries_carry_the_newest_checkpoint() {
    let (_tmp, m) = store();
    m.save_checkpoint("a", "First", ProcessState::Running, 0.1, &progress(1)).unwrap();
    m.save_encoded_failed_for_test();
    let list = m.operations().unwrap();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!((s.operation_id.as_str(), s.operation_name.as_str()), ("a", "Second"));
    assert_eq!((s.state, s.progress, s.sequence), (ProcessState::Failed, 0.1, 2));
    assert_eq!(s.error.as_deref(), Some("disk full"));
}

trait FailHelper {
    fn save_encoded_failed_for_test(&self);
}

impl FailHelper for FailsafeManager {
    fn save_encoded_failed_for_test(&self) {
        assert!(self.save_failed("a", "Second", "disk full").unwrap());
    }
}

#[test]
fn a_new_manager_sees_what_the_old_one_saved() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let m = FailsafeManager::open(tmp.path()).unwrap();
        for i in 0..4 {
            m.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &progress(i)).unwrap();
        }
    }
    let m = FailsafeManager::open(tmp.path()).unwrap();
    let cp = m.load_checkpoint::<Progress>("job").unwrap().unwrap();
    assert_eq!((cp.sequence, cp.data), (4, progress(3)));
    m.save_checkpoint("job", "Job", ProcessState::Completed, 1.0, &progress(4)).unwrap();
    assert_eq!(m.load_checkpoint::<Progress>("job").unwrap().unwrap().sequence, 5);
}

#[test]
fn another_schema_is_refused() {
    let (_tmp, m) = store();
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    match m.load_checkpoint::<ProgressV2>("op") {
        Err(Error::SchemaMismatch { operation_id, expected, found }) => {
            assert_eq!((operation_id.as_str(), expected, found), ("op", 0x2222, 0x1111));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(m.history::<ProgressV2>("op"), Err(Error::SchemaMismatch { .. })));
    assert!(matches!(
        m.resume_operation("op", |_: resilience::Checkpoint<ProgressV2>| ()),
        Err(Error::SchemaMismatch { .. })
    ));
    // The new version's history stops where the old version's records begin.
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &ProgressV2 { done: 2, extra: 7 })
        .unwrap();
    let history = m.history::<ProgressV2>("op").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].data, ProgressV2 { done: 2, extra: 7 });
}

/// Saves two checkpoints and returns the file's bytes; the second is the newest.
fn two_checkpoint_file(dir: &Path) -> Vec<u8> {
    let m = FailsafeManager::builder().dir(dir).max_checkpoints(2).build().unwrap();
    m.save_checkpoint("op", "n", ProcessState::Running, 0.1, &progress(1)).unwrap();
    m.save_checkpoint("op", "n", ProcessState::Failed, 0.2, &progress(2)).unwrap();
    fs::read(only_checkpoint_file(dir)).unwrap()
}

/// A damaged file yields one of the records as written, or `Error::Corrupt` naming it.
fn check_damaged(dir: &Path, path: &Path, what: &str) -> Option<u64> {
    let m = FailsafeManager::builder().dir(dir).max_checkpoints(2).build().unwrap();
    let result = match m.load_checkpoint::<Progress>("op") {
        Ok(Some(cp)) => {
            let expected = match cp.sequence {
                1 => (progress(1), ProcessState::Running, 0.1),
                2 => (progress(2), ProcessState::Failed, 0.2),
                n => panic!("{what}: sequence {n}"),
            };
            assert_eq!((cp.data.clone(), cp.state, cp.progress), expected, "{what}");
            assert_eq!(cp.operation_name, "n", "{what}");
            Some(cp.sequence)
        }
        Ok(None) => panic!("{what}: a damaged file read as no checkpoint"),
        Err(Error::Corrupt { path: p, .. }) => {
            assert_eq!(p, path, "{what}");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    };
    // Listings never fail over a damaged file.
    let listed = m.operations().unwrap();
    assert!(listed.len() <= 1, "{what}");
    result
}

#[test]
fn truncation_at_every_offset_yields_an_intact_record_or_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = two_checkpoint_file(tmp.path());
    let path = only_checkpoint_file(tmp.path());
    let mut newest_survived = 0;
    // Shrinking one open file in place (no rewrite) keeps this fast on every file system.
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    for len in (0..bytes.len()).rev() {
        file.set_len(len as u64).unwrap();
        if check_damaged(tmp.path(), &path, &format!("truncated to {len}")) == Some(2) {
            newest_survived += 1;
        }
    }
    assert!(newest_survived > 0);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(check_damaged(tmp.path(), &path, "whole"), Some(2));
}

#[test]
fn every_single_bit_flip_yields_an_intact_record_or_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = two_checkpoint_file(tmp.path());
    let path = only_checkpoint_file(tmp.path());
    let mut outcomes = [0usize; 3];
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            file.write_all_at(&[bytes[i] ^ 1 << bit], i as u64).unwrap();
            let got = check_damaged(tmp.path(), &path, &format!("byte {i} bit {bit}"));
            outcomes[got.map_or(0, |s| s as usize)] += 1;
        }
        file.write_all_at(&bytes[i..=i], i as u64).unwrap();
    }
    // Some flips hit the header (corrupt), some the newest record (fall back to the older one).
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}

#[test]
fn saving_over_a_damaged_file_recovers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = two_checkpoint_file(tmp.path());
    let path = only_checkpoint_file(tmp.path());
    for len in [0, 10, 40, bytes.len() - 1] {
        fs::write(&path, &bytes[..len]).unwrap();
        let m = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(2).build().unwrap();
        m.save_checkpoint("op", "n", ProcessState::Running, 0.3, &progress(3)).unwrap();
        let cp = m.load_checkpoint::<Progress>("op").unwrap().unwrap();
        assert_eq!(cp.data, progress(3), "truncated to {len}");
        assert_eq!(fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }
}

#[test]
fn foreign_files_are_ignored() {
    let (tmp, m) = store();
    let dir = tmp.path().join("store");
    m.save_checkpoint("real", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    fs::write(dir.join("notes.txt"), "hello").unwrap();
    fs::write(dir.join("x.ckpt"), "garbage").unwrap();
    fs::write(dir.join("X.ckpt"), "not our spelling").unwrap();
    fs::write(dir.join("%zz.ckpt"), "bad escape").unwrap();
    fs::write(dir.join(".ckpt"), "").unwrap();
    fs::write(dir.join("%%0123.ckpt"), "").unwrap();
    fs::create_dir(dir.join("sub.ckpt")).unwrap();
    // A valid file renamed to another id's name is not that id's.
    fs::copy(dir.join("real.ckpt"), dir.join("copy.ckpt")).unwrap();

    let ids: Vec<_> = m.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    assert_eq!(ids, ["real"]);
    assert!(
        matches!(m.load_checkpoint::<Progress>("x"), Err(Error::Corrupt { path, .. }) if path == dir.join("x.ckpt"))
    );
    assert!(matches!(m.load_checkpoint::<Progress>("copy"), Err(Error::Corrupt { .. })));
    assert!(matches!(m.load_checkpoint::<Progress>("sub"), Err(Error::Corrupt { .. })));
    assert_eq!(m.clear_completed_checkpoints().unwrap(), 0);
    // Saving over a damaged file replaces it.
    m.save_checkpoint("x", "n", ProcessState::Running, 0.0, &progress(5)).unwrap();
    assert_eq!(m.load_checkpoint::<Progress>("x").unwrap().unwrap().data, progress(5));
}

#[test]
fn hostile_ids_round_trip_inside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let m = FailsafeManager::open(&dir).unwrap();
    let long = "é/".repeat(5_000);
    let mut ids = vec![
        "..",
        ".",
        "/",
        "a/../../etc",
        "../escape",
        "nul\0byte",
        "🦀 crab",
        "",
        "UPPER",
        "upper",
        "%2f",
        "a.ckpt",
        "tab\there",
        "x".repeat(10_240).leak(),
        long.as_str(),
    ];
    ids.push("y".repeat(300).leak());
    for (i, id) in ids.iter().enumerate() {
        m.save_checkpoint(id, id, ProcessState::Running, 0.0, &progress(i as u64)).unwrap();
        let _lock = m.lock(id).unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let cp = m.load_checkpoint::<Progress>(id).unwrap().unwrap();
        assert_eq!((cp.operation_id.as_str(), cp.data.done), (*id, i as u64));
        assert_eq!(cp.operation_name, *id);
    }
    let mut listed: Vec<_> = m.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    let mut expected: Vec<_> = ids.iter().map(|s| s.to_string()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    // Everything stayed inside the store directory, as plain files with short names.
    let outside: Vec<_> =
        fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["store"]);
    for entry in fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_file());
        assert!(entry.file_name().len() <= 255);
    }
    for id in &ids {
        assert!(m.discard(id).unwrap());
    }
    assert!(m.operations().unwrap().is_empty());
}

#[test]
fn locks_conflict_within_a_process() {
    let (tmp, m) = store();
    let guard = m.lock("job").unwrap();
    assert_eq!(guard.operation_id(), "job");
    match m.lock("job") {
        Err(Error::Locked { operation_id }) => assert_eq!(operation_id, "job"),
        other => panic!("{other:?}"),
    }
    // Another manager on the same directory conflicts too; other ids are independent.
    let other = FailsafeManager::open(tmp.path().join("store")).unwrap();
    assert!(matches!(other.lock("job"), Err(Error::Locked { .. })));
    let _other_job = other.lock("other-job").unwrap();
    drop(guard);
    let _again = other.lock("job").unwrap();
    assert!(matches!(m.lock("job"), Err(Error::Locked { .. })));
}

const CHILD_ENV: &str = "RESILIENCE_TEST_LOCK_CHILD_DIR";

/// Run by `locks_conflict_between_processes` in a child process: takes the lock, says so, and
/// holds it until killed.
#[test]
#[ignore = "helper run in a child process"]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let m = FailsafeManager::open(dir).unwrap();
    let _guard = m.lock("shared-job").unwrap();
    println!("LOCKED");
    let mut line = String::new();
    // Blocks until the parent kills this process (or closes stdin).
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn locks_conflict_between_processes() {
    let (tmp, m) = store();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, tmp.path().join("store"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut locked = false;
    for line in stdout.lines() {
        if line.unwrap().contains("LOCKED") {
            locked = true;
            break;
        }
    }
    assert!(locked, "the child did not take the lock");
    let result = m.lock("shared-job");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(result, Err(Error::Locked { .. })), "{result:?}");
    // The lock died with its holder.
    let _guard = m.lock("shared-job").unwrap();
}

#[test]
fn discard_and_clear_completed() {
    let (_tmp, m) = store();
    m.save_checkpoint("done-1", "n", ProcessState::Completed, 1.0, &progress(1)).unwrap();
    m.save_checkpoint("done-2", "n", ProcessState::Completed, 1.0, &progress(2)).unwrap();
    m.save_checkpoint("running", "n", ProcessState::Running, 0.5, &progress(3)).unwrap();
    m.save_checkpoint("failed", "n", ProcessState::Failed, 0.5, &progress(4)).unwrap();
    assert_eq!(m.clear_completed_checkpoints().unwrap(), 2);
    let ids: Vec<_> = m.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    assert_eq!(ids, ["failed", "running"]);
    assert!(m.load_checkpoint::<Progress>("done-1").unwrap().is_none());
    assert!(m.discard("running").unwrap());
    assert!(!m.discard("running").unwrap());
    assert!(m.load_checkpoint::<Progress>("running").unwrap().is_none());
    // A discarded operation starts over.
    m.save_checkpoint("running", "n", ProcessState::Running, 0.0, &progress(0)).unwrap();
    assert_eq!(m.load_checkpoint::<Progress>("running").unwrap().unwrap().sequence, 1);
    assert_eq!(m.clear_completed_checkpoints().unwrap(), 0);
}

#[test]
fn buffered_checkpoints_reach_the_disk_when_the_manager_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let m = FailsafeManager::builder()
            .dir(tmp.path())
            .durability(Durability::Buffered)
            .build()
            .unwrap();
        for i in 1..=100 {
            m.save_checkpoint("job", "n", ProcessState::Running, 0.0, &progress(i)).unwrap();
        }
        // Reads through the same manager see the buffered checkpoints.
        assert_eq!(m.load_checkpoint::<Progress>("job").unwrap().unwrap().data, progress(100));
        for i in 101..=103 {
            m.save_checkpoint("job", "n", ProcessState::Running, 0.0, &progress(i)).unwrap();
        }
        m.save_checkpoint("other", "n", ProcessState::Paused, 0.0, &progress(7)).unwrap();
    }
    let m = FailsafeManager::open(tmp.path()).unwrap();
    let history = m.history::<Progress>("job").unwrap();
    let seen: Vec<_> = history.iter().map(|c| (c.sequence, c.data.done)).collect();
    assert_eq!(seen, [(103, 103), (102, 102), (101, 101), (100, 100), (99, 99)]);
    assert_eq!(m.load_checkpoint::<Progress>("other").unwrap().unwrap().data, progress(7));

    let b = FailsafeManager::builder()
        .dir(tmp.path())
        .durability(Durability::Buffered)
        .build()
        .unwrap();
    b.save_checkpoint("job", "n", ProcessState::Running, 0.0, &progress(104)).unwrap();
    b.flush().unwrap();
    assert_eq!(m.load_checkpoint::<Progress>("job").unwrap().unwrap().sequence, 104);
    // Completing an operation writes it out at once.
    b.save_checkpoint("job", "n", ProcessState::Completed, 1.0, &progress(105)).unwrap();
    assert_eq!(
        m.load_checkpoint::<Progress>("job").unwrap().unwrap().state,
        ProcessState::Completed
    );
}

#[test]
fn files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/store");
    let m = FailsafeManager::open(&dir).unwrap();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    let _lock = m.lock("op").unwrap();
    for ext in ["ckpt", "lock"] {
        let file = &files_with_ext(&dir, ext)[0];
        assert_eq!(fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600, "{ext}");
    }
}

#[test]
fn planted_symlinks_are_not_followed() {
    let (tmp, m) = store();
    let dir = tmp.path().join("store");
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    let path = only_checkpoint_file(&dir);
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();

    let fresh = FailsafeManager::open(&dir).unwrap();
    assert!(matches!(fresh.load_checkpoint::<Progress>("op"), Err(Error::Corrupt { .. })));
    assert!(fresh.operations().unwrap().is_empty());
    fresh.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(2)).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert_eq!(fresh.load_checkpoint::<Progress>("op").unwrap().unwrap().data, progress(2));

    // A planted lock file link is refused, not followed.
    let lock_path = path.with_extension("lock");
    let _ = fs::remove_file(&lock_path);
    std::os::unix::fs::symlink(&victim, &lock_path).unwrap();
    assert!(matches!(fresh.lock("op"), Err(Error::Io { .. })));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn save_failed_keeps_the_last_checkpointed_data() {
    for durability in [Durability::Sync, Durability::Buffered] {
        let tmp = tempfile::tempdir().unwrap();
        let m = FailsafeManager::builder().dir(tmp.path()).durability(durability).build().unwrap();
        assert!(!m.save_failed("job", "Job", "early").unwrap());
        m.save_with_cursor("job", "Job", ProcessState::Running, 0.3, 30, &progress(30)).unwrap();
        assert!(m.save_failed("job", "Job", "network down").unwrap());
        let cp = m.load_checkpoint::<Progress>("job").unwrap().unwrap();
        assert_eq!((cp.state, cp.cursor, cp.progress), (ProcessState::Failed, 30, 0.3));
        assert_eq!((cp.data, cp.error.as_deref()), (progress(30), Some("network down")));
        assert_eq!(cp.sequence, 2);
        m.save_checkpoint("job", "Job", ProcessState::Completed, 1.0, &progress(100)).unwrap();
        assert!(!m.save_failed("job", "Job", "late").unwrap());
        assert_eq!(
            m.load_checkpoint::<Progress>("job").unwrap().unwrap().state,
            ProcessState::Completed
        );
    }
}

#[test]
fn a_growing_state_keeps_its_history() {
    let (_tmp, m) = store();
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    let mut big = progress(2);
    big.bytes = vec![7; 100_000];
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &big).unwrap();
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(3)).unwrap();
    let history = m.history::<Progress>("op").unwrap();
    let seen: Vec<_> = history.iter().map(|c| c.data.clone()).collect();
    assert_eq!(seen, [progress(3), big, progress(1)]);
    let failed = "e".repeat(50_000);
    assert!(m.save_failed("op", "n", &failed).unwrap());
    assert_eq!(m.load_checkpoint::<Progress>("op").unwrap().unwrap().error, Some(failed));
}

#[test]
fn invalid_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for result in [
        FailsafeManager::builder().dir(tmp.path()).max_checkpoints(0).build(),
        FailsafeManager::builder().dir(tmp.path()).max_backups(0).build(),
    ] {
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
    }
    let file = tmp.path().join("file");
    fs::write(&file, "").unwrap();
    match FailsafeManager::open(&file) {
        Err(Error::Io { path, .. }) => assert_eq!(path, file),
        other => panic!("{other:?}"),
    }
}

#[test]
fn listings_notice_changes_made_behind_the_managers_back() {
    let (tmp, m) = store();
    let dir = tmp.path().join("store");
    for i in 0..40 {
        m.save_checkpoint(&format!("op-{i}"), "n", ProcessState::Running, 0.0, &progress(i))
            .unwrap();
    }
    assert_eq!(m.recoverable_operations().unwrap().len(), 40);
    // Another manager completes one, a person damages another, one file disappears.
    let other = FailsafeManager::open(&dir).unwrap();
    other.save_checkpoint("op-1", "n", ProcessState::Completed, 1.0, &progress(1)).unwrap();
    fs::write(dir.join("op-2.ckpt"), b"garbage").unwrap();
    fs::remove_file(dir.join("op-3.ckpt")).unwrap();
    for manager in [&m, &other, &FailsafeManager::open(&dir).unwrap()] {
        let list = manager.operations().unwrap();
        assert_eq!(list.len(), 38);
        let one = list.iter().find(|s| s.operation_id == "op-1").unwrap();
        assert_eq!(one.state, ProcessState::Completed);
        assert!(list.iter().all(|s| s.operation_id != "op-2" && s.operation_id != "op-3"));
        assert_eq!(manager.recoverable_operations().unwrap().len(), 37);
    }
}

const CRASH_ENV: &str = "RESILIENCE_TEST_CRASH_CHILD";

/// Run by `a_killed_writer_leaves_an_intact_checkpoint` in a child process: saves until killed,
/// printing each sequence number once its save has returned.
#[test]
#[ignore = "helper run in a child process"]
fn crash_writer_child() {
    let Some(spec) = std::env::var_os(CRASH_ENV) else { return };
    let spec = spec.into_string().unwrap();
    let (mode, dir) = spec.split_once(':').unwrap();
    let durability = if mode == "sync" { Durability::Sync } else { Durability::Buffered };
    let m = FailsafeManager::builder()
        .dir(dir)
        .max_checkpoints(3)
        .durability(durability)
        .build()
        .unwrap();
    let mut done = m.load_checkpoint::<Progress>("job").unwrap().map_or(0, |c| c.data.done);
    loop {
        done += 1;
        let mut p = progress(done);
        // Vary the record size so that some saves grow the file.
        p.bytes = vec![done as u8; (done as usize * 37) % 700];
        m.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &p).unwrap();
        println!("saved {done}");
    }
}

#[test]
fn a_killed_writer_leaves_an_intact_checkpoint() {
    for (round, mode) in ["sync", "sync", "sync", "buffered", "buffered"].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let mut acknowledged = 0;
        for kill_after in [1 + round as u64, 25, 60] {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_writer_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_ENV, format!("{mode}:{}", tmp.path().display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let mut seen = 0;
            for line in stdout.lines() {
                let Some(n) =
                    line.unwrap().strip_prefix("saved ").map(|n| n.parse::<u64>().unwrap())
                else {
                    continue;
                };
                acknowledged = n;
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();

            let m = FailsafeManager::open(tmp.path()).unwrap();
            let cp = m.load_checkpoint::<Progress>("job").unwrap();
            let Some(cp) = cp else {
                assert_eq!(mode, "buffered", "a durable save was lost");
                continue;
            };
            let done = cp.data.done;
            let mut expected = progress(done);
            expected.bytes = vec![done as u8; (done as usize * 37) % 700];
            assert_eq!(cp.data, expected, "{mode}: a mixed record");
            assert_eq!(cp.cursor, done);
            if mode == "sync" {
                assert!(done >= acknowledged, "acknowledged {acknowledged}, found {done}");
            }
            let history = m.history::<Progress>("job").unwrap();
            assert!(history.windows(2).all(|w| w[0].sequence > w[1].sequence));
        }
    }
}

#[test]
fn managers_of_one_directory_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let a = FailsafeManager::open(tmp.path()).unwrap();
    let b = FailsafeManager::builder().dir(tmp.path()).max_checkpoints(3).build().unwrap();
    for i in 1..=8 {
        let m = if i % 2 == 0 { &a } else { &b };
        m.save_checkpoint("job", "n", ProcessState::Running, 0.0, &progress(i)).unwrap();
        for reader in [&a, &b] {
            let cp = reader.load_checkpoint::<Progress>("job").unwrap().unwrap();
            assert_eq!((cp.sequence, cp.data.done), (i, i));
        }
    }
    // A file removed behind a manager's back is created again by its next save.
    fs::remove_file(only_checkpoint_file(tmp.path())).unwrap();
    a.save_checkpoint("job", "n", ProcessState::Running, 0.0, &progress(9)).unwrap();
    let fresh = FailsafeManager::open(tmp.path()).unwrap();
    assert_eq!(fresh.load_checkpoint::<Progress>("job").unwrap().unwrap().data, progress(9));
}

#[test]
fn temporary_files_of_dead_processes_are_cleaned_up() {
    let (tmp, m) = store();
    let dir = tmp.path().join("store");
    m.save_checkpoint("op", "n", ProcessState::Running, 0.0, &progress(1)).unwrap();
    // pid_max is at most 2^22, so no process has this id.
    let orphan = dir.join(".tmp-999999999-0-0");
    let ours = dir.join(format!(".tmp-{}-77-0", std::process::id()));
    fs::write(&orphan, "half a file").unwrap();
    fs::write(&ours, "in flight").unwrap();
    assert_eq!(m.operations().unwrap().len(), 1);
    assert!(!orphan.exists());
    assert!(ours.exists());
}

const GLOBAL_ENV: &str = "RESILIENCE_TEST_GLOBAL_CHILD";

/// Run by `the_global_manager_uses_resilience_dir` in a child process, whose environment sets
/// `RESILIENCE_DIR`.
#[test]
#[ignore = "helper run in a child process"]
fn global_manager_child() {
    if std::env::var_os(GLOBAL_ENV).is_none() {
        return;
    }
    let m = FailsafeManager::global();
    assert!(std::ptr::eq(m, FailsafeManager::global()));
    match m.save_checkpoint("global-job", "n", ProcessState::Paused, 0.5, &progress(5)) {
        Ok(()) => println!("SAVED {}", m.dir().display()),
        Err(e) => println!("ERROR {e}"),
    }
}

#[test]
fn the_global_manager_uses_resilience_dir() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, expect_saved) in
        [(tmp.path().join("global"), true), (tmp.path().join("file/sub"), false)]
    {
        // A path under a regular file cannot be created: global() still returns a manager,
        // whose saves report the directory.
        fs::write(tmp.path().join("file"), "").unwrap();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "global_manager_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GLOBAL_ENV, "1")
            .env("RESILIENCE_DIR", &dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.contains(&format!("SAVED {}", dir.display())), expect_saved, "{stdout}");
        if expect_saved {
            let m = FailsafeManager::open(&dir).unwrap();
            let cp = m.load_checkpoint::<Progress>("global-job").unwrap().unwrap();
            assert_eq!((cp.state, cp.data), (ProcessState::Paused, progress(5)));
        } else {
            let error = format!("ERROR I/O error on `{}", dir.display());
            assert!(stdout.contains(&error), "{stdout}");
        }
    }
}
