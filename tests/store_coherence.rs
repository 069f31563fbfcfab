//! Many processes and managers on one store: a save that returned `Ok` is never hidden,
//! whoever saves next and however the directory is spelled; locks are honoured; listings agree
//! with loads (also with whole-second timestamps); nothing blocks on a FIFO; a read-only store
//! can be read.
//!
//! Tests that need a second process re-run this binary as a child in a role (see [`child`]).
//! Tests that need a file system of their own (read-only, whole-second timestamps) mount one
//! when the machine allows it (root in a mount namespace that permits it) and say so when not.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use resilience::{Checkpointable, Durability, Error, FailsafeManager, ProcessState};
use serde::{Deserialize, Serialize};

const ROLE: &str = "RESILIENCE_COHERENCE_ROLE";
const DIR: &str = "RESILIENCE_COHERENCE_DIR";
const OP: &str = "RESILIENCE_COHERENCE_OP";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Count {
    n: u64,
}

impl Checkpointable for Count {
    const SCHEMA: u64 = 0xc0c0;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Large {
    n: u64,
    bytes: Vec<u8>,
}

impl Checkpointable for Large {
    const SCHEMA: u64 = 0x1a29e;
}

fn count(n: u64) -> Count {
    Count { n }
}

fn open2(dir: &Path) -> FailsafeManager {
    FailsafeManager::builder().dir(dir).max_checkpoints(2).build().unwrap()
}

fn newest(manager: &FailsafeManager, op: &str) -> u64 {
    manager.load_checkpoint::<Count>(op).unwrap().expect("a checkpoint").data.n
}

/// A child process of this binary in `role`; its stdout is read line by line.
struct ChildRole {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ChildRole {
    fn spawn(role: &str, dir: &Path, op: &str) -> ChildRole {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .env(DIR, dir)
            .env(OP, op)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        ChildRole { child, lines }
    }

    /// The first line starting with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("the child ended without printing `{prefix}`");
    }

    /// Lets a child waiting on stdin go on, and waits for it to exit successfully; returns the
    /// lines its role printed (they start with a word in capitals), without the harness's.
    fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let rest: Vec<String> = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .filter(|line| {
                let word = line.split(' ').next().unwrap_or("");
                word.len() > 1 && word.bytes().all(|b| b.is_ascii_uppercase())
            })
            .collect();
        assert!(self.child.wait().unwrap().success(), "the child failed");
        rest
    }

    /// Runs `role` to its end; its output lines.
    fn run(role: &str, dir: &Path, op: &str) -> Vec<String> {
        ChildRole::spawn(role, dir, op).finish()
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entry point of child processes; does nothing when run as a test.
#[test]
#[ignore = "run by the tests of this file in child processes"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    let op = std::env::var(OP).unwrap();
    let wait_for_parent = || {
        let _ = std::io::stdin().read_line(&mut String::new());
    };
    match role.as_str() {
        // Holds the operation's lock until stdin closes.
        "hold" => {
            let manager = FailsafeManager::open(&dir).unwrap();
            let _lock = manager.lock(&op).unwrap();
            println!("LOCKED");
            wait_for_parent();
        }
        // Takes a turn: lock, resume, save three more, release.
        "turn" => {
            let manager = open2(&dir);
            let _lock = manager.lock(&op).unwrap();
            let start = newest(&manager, &op);
            for n in start + 1..=start + 3 {
                manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.0, &count(n)).unwrap();
            }
            println!("SAVED {}", start + 3);
        }
        "save-completed" => {
            let manager = FailsafeManager::open(&dir).unwrap();
            manager.save_checkpoint(&op, "Job", ProcessState::Completed, 1.0, &count(9)).unwrap();
        }
        "save-running" => {
            let manager = FailsafeManager::open(&dir).unwrap();
            manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.5, &count(9)).unwrap();
        }
        // Prints the listing and, for every operation in it or named in OP, what a load says.
        "list" => {
            let manager = FailsafeManager::open(&dir).unwrap();
            for summary in manager.operations().unwrap() {
                println!("LISTED {} {:?}", summary.operation_id, summary.state);
            }
            for id in op.split(',').filter(|id| !id.is_empty()) {
                let resumable = manager.can_resume(id).unwrap();
                let recoverable =
                    manager.recoverable_operations().unwrap().iter().any(|s| s.operation_id == id);
                println!("CHECK {id} {resumable} {recoverable}");
            }
        }
        // A relative store directory, then a change of the working directory.
        "chdir" => {
            std::env::set_current_dir(&dir).unwrap();
            let manager = FailsafeManager::open("relative-store").unwrap();
            manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.1, &count(1)).unwrap();
            std::env::set_current_dir("/").unwrap();
            manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.2, &count(2)).unwrap();
            println!("LOADED {}", newest(&manager, &op));
            println!("LISTED {}", manager.operations().unwrap().len());
            println!("DIR {}", manager.dir().display());
        }
        // A buffered manager's first save of a new operation, then exit.
        "first-buffered" => {
            let manager = FailsafeManager::builder()
                .dir(&dir)
                .durability(Durability::Buffered)
                .build()
                .unwrap();
            manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.0, &count(1)).unwrap();
            std::mem::forget(manager);
        }
        // Saves large records (slot areas too large to be read in one go) until stdin closes.
        "large-writer" => {
            let manager = FailsafeManager::builder().dir(&dir).max_checkpoints(3).build().unwrap();
            let _lock = manager.lock(&op).unwrap();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            std::thread::spawn(move || {
                let _ = std::io::stdin().read_line(&mut String::new());
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let data = Large { n, bytes: vec![n as u8; 120_000] };
                manager.save_checkpoint(&op, "Job", ProcessState::Running, 0.0, &data).unwrap();
                if n == 1 {
                    println!("WRITING");
                }
            }
        }
        // A buffered job under its lock whose every save changes state (so each one is written),
        // then an exit without a flush.
        "buffered-ring" => {
            let manager = FailsafeManager::builder()
                .dir(&dir)
                .max_checkpoints(2)
                .durability(Durability::Buffered)
                .build()
                .unwrap();
            let lock = manager.lock(&op).unwrap();
            for n in 1..=12 {
                let state = if n % 2 == 0 { ProcessState::Paused } else { ProcessState::Running };
                manager.save_checkpoint(&op, "Job", state, 0.0, &count(n)).unwrap();
            }
            std::mem::forget(lock);
            std::mem::forget(manager);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_save_under_the_lock_is_never_hidden_by_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = open2(dir);
    {
        let _lock = a.lock("job").unwrap();
        for n in 1..=3 {
            a.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(n)).unwrap();
        }
    }
    // Another process takes its turn: it resumes at 3 and saves 4, 5, 6.
    let out = ChildRole::run("turn", dir, "job");
    assert_eq!(out, ["SAVED 6"]);
    assert_eq!(newest(&a, "job"), 6);
    {
        let _lock = a.lock("job").unwrap();
        a.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(100)).unwrap();
        assert_eq!(newest(&a, "job"), 100);
    }
    assert_eq!(newest(&open2(dir), "job"), 100, "a fresh manager loads the newest save");
    let history: Vec<u64> =
        a.history::<Count>("job").unwrap().into_iter().map(|c| c.data.n).collect();
    assert_eq!(history, [100, 6]);

    // Without a lock of its own, a save takes it for the length of the write: the same holds.
    ChildRole::run("turn", dir, "job");
    a.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(200)).unwrap();
    assert_eq!(newest(&open2(dir), "job"), 200);
    assert_eq!(newest(&a, "job"), 200);
}

#[test]
fn turns_of_many_processes_and_managers_keep_every_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let buffered = FailsafeManager::builder()
        .dir(dir)
        .max_checkpoints(2)
        .durability(Durability::Buffered)
        .build()
        .unwrap();
    let other_spelling = open2(&dir.join("x/.."));
    let mut expected = 0;
    for turn in 0..6 {
        match turn % 3 {
            0 => {
                let _lock = buffered.lock("job").unwrap();
                for _ in 0..3 {
                    expected += 1;
                    buffered
                        .save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(expected))
                        .unwrap();
                }
            }
            1 => {
                let out = ChildRole::spawn("turn", dir, "job").finish();
                expected += 3;
                assert_eq!(out, [format!("SAVED {expected}")]);
            }
            _ => {
                let _lock = other_spelling.lock("job").unwrap();
                assert_eq!(newest(&other_spelling, "job"), expected);
                expected += 1;
                other_spelling
                    .save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(expected))
                    .unwrap();
            }
        }
        assert_eq!(newest(&open2(dir), "job"), expected, "turn {turn}");
    }
}

#[test]
fn a_second_manager_gets_locked_while_the_first_holds_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let first = FailsafeManager::open(tmp.path()).unwrap();
    let second = FailsafeManager::open(tmp.path().join(".")).unwrap();
    first.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &count(1)).unwrap();
    let lock = first.lock("op").unwrap();
    let save = second.save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &count(2));
    assert!(
        matches!(save, Err(Error::Locked { ref operation_id }) if operation_id == "op"),
        "{save:?}"
    );
    assert!(matches!(second.discard("op"), Err(Error::Locked { .. })));
    assert!(matches!(second.lock("op"), Err(Error::Locked { .. })));
    assert_eq!(second.clear_completed_checkpoints().unwrap(), 0);
    // The holder and its clones save; everyone reads.
    first.save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &count(3)).unwrap();
    first.clone().save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &count(4)).unwrap();
    assert_eq!(newest(&second, "op"), 4);
    // Locked operations are left alone by `clear_completed_checkpoints`, and not counted.
    assert_eq!(second.clear_completed_checkpoints().unwrap(), 0);
    assert_eq!(newest(&second, "op"), 4);
    drop(lock);
    second.save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &count(5)).unwrap();
    assert_eq!(newest(&first, "op"), 5);
    assert_eq!(second.clear_completed_checkpoints().unwrap(), 1);
    assert!(first.load_checkpoint::<Count>("op").unwrap().is_none());
}

#[test]
fn locks_held_by_another_process_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let manager = FailsafeManager::open(dir).unwrap();
    for id in ["held", "free"] {
        manager.save_checkpoint(id, "Op", ProcessState::Completed, 1.0, &count(1)).unwrap();
    }
    let mut holder = ChildRole::spawn("hold", dir, "held");
    holder.expect("LOCKED");

    assert!(matches!(manager.discard("held"), Err(Error::Locked { .. })));
    let save = manager.save_checkpoint("held", "Op", ProcessState::Running, 0.0, &count(2));
    assert!(matches!(save, Err(Error::Locked { .. })), "{save:?}");
    assert_eq!(manager.clear_completed_checkpoints().unwrap(), 1, "only `free` is cleared");
    assert_eq!(newest(&manager, "held"), 1, "the held operation was not touched");
    assert!(manager.load_checkpoint::<Count>("free").unwrap().is_none());

    holder.finish();
    assert!(manager.discard("held").unwrap());
}

#[test]
fn two_spellings_of_one_directory_see_each_others_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink(&dir, tmp.path().join("link")).unwrap();
    let plain = FailsafeManager::open(&dir).unwrap();
    let dotted = FailsafeManager::builder()
        .dir(dir.join("sub/.."))
        .durability(Durability::Buffered)
        .build()
        .unwrap();
    let linked = FailsafeManager::open(tmp.path().join("link")).unwrap();
    let canonical = dir.canonicalize().unwrap();
    for manager in [&plain, &dotted, &linked] {
        assert_eq!(manager.dir(), canonical);
    }

    {
        let _lock = dotted.lock("op").unwrap();
        for n in 1..=5 {
            dotted.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &count(n)).unwrap();
        }
        // Buffered in `dotted`, and visible to the others at once.
        assert_eq!(newest(&plain, "op"), 5);
        dotted.save_checkpoint("op", "Op", ProcessState::Completed, 1.0, &count(6)).unwrap();
    }
    for manager in [&plain, &dotted, &linked] {
        let checkpoint = manager.load_checkpoint::<Count>("op").unwrap().unwrap();
        assert_eq!((checkpoint.state, checkpoint.data.n), (ProcessState::Completed, 6));
        assert_eq!(manager.operations().unwrap()[0].state, ProcessState::Completed);
        assert!(manager.recoverable_operations().unwrap().is_empty());
    }
    linked.save_checkpoint("op", "Op", ProcessState::Failed, 0.5, &count(7)).unwrap();
    assert_eq!(plain.recoverable_operations().unwrap()[0].state, ProcessState::Failed);
    assert_eq!(newest(&dotted, "op"), 7);
}

#[test]
fn a_relative_store_directory_is_fixed_when_the_manager_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ChildRole::run("chdir", tmp.path(), "job");
    let store = tmp.path().canonicalize().unwrap().join("relative-store");
    assert_eq!(out, ["LOADED 2", "LISTED 1", &format!("DIR {}", store.display())]);
    let manager = FailsafeManager::open(&store).unwrap();
    assert_eq!(newest(&manager, "job"), 2);
    assert!(!Path::new("/relative-store").exists());
}

/// Runs `f` on another thread; fails the test if it has not returned after 20 s (it blocked).
fn returns_promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what} blocked"))
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn nothing_blocks_on_a_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let manager = FailsafeManager::open(&store).unwrap();

    // A FIFO to back up.
    let fifo = tmp.path().join("data.fifo");
    mkfifo(&fifo);
    let m = manager.clone();
    let f = fifo.clone();
    let result = returns_promptly("create_backup of a FIFO", move || m.create_backup(&f));
    match result {
        Err(Error::Io { path, .. }) => assert_eq!(path, fifo),
        other => panic!("expected an I/O error naming the FIFO, got {other:?}"),
    }

    // A FIFO in place of the listing cache: ignored.
    for n in 0..40 {
        manager
            .save_checkpoint(&format!("op-{n}"), "Op", ProcessState::Running, 0.0, &count(n))
            .unwrap();
    }
    mkfifo(&store.join(".catalog"));
    let listed = returns_promptly("a listing with a FIFO as its cache", move || {
        FailsafeManager::open(&store).unwrap().operations().unwrap().len()
    });
    assert_eq!(listed, 40);

    // A FIFO in place of a checkpoint file and of a lock file.
    let store = tmp.path().join("store");
    mkfifo(&store.join("fifo-op.ckpt"));
    mkfifo(&store.join("fifo-lock.lock"));
    let m = manager.clone();
    let (load, lock, listed) = returns_promptly("loads and locks of FIFOs", move || {
        let load = m.load_checkpoint::<Count>("fifo-op").map(|_| ());
        let lock = m.lock("fifo-lock").map(|_| ());
        (load, lock, m.operations().map(|ops| ops.len()))
    });
    assert!(
        matches!(&load, Err(Error::Corrupt { path, .. }) if path.ends_with("fifo-op.ckpt")),
        "{load:?}"
    );
    assert!(
        matches!(&lock, Err(Error::Io { path, .. }) if path.ends_with("fifo-lock.lock")),
        "{lock:?}"
    );
    assert_eq!(listed.unwrap(), 40);
    // Saving over it replaces it with a checkpoint file.
    manager.save_checkpoint("fifo-op", "Op", ProcessState::Running, 0.0, &count(1)).unwrap();
    assert_eq!(newest(&manager, "fifo-op"), 1);

    // A FIFO in place of a backup folder's source record.
    let file = tmp.path().join("data.txt");
    std::fs::write(&file, b"data").unwrap();
    let backup = manager.create_backup(&file).unwrap();
    let record = backup.path.parent().unwrap().join("source");
    std::fs::remove_file(&record).unwrap();
    mkfifo(&record);
    let m = manager.clone();
    let f = file.clone();
    let listed = returns_promptly("list_backups with a FIFO record", move || m.list_backups(&f));
    assert!(matches!(&listed, Err(Error::Io { path, .. }) if *path == record), "{listed:?}");
    let m = manager.clone();
    let stats = returns_promptly("statistics with a FIFO record", move || m.statistics());
    assert_eq!(stats.unwrap().backups.count, 0);
}

/// A file system mounted for one test, unmounted when dropped.
struct Mount {
    at: PathBuf,
    _image: Option<tempfile::TempDir>,
}

impl Mount {
    /// Mounts `args` at `at`; `None` (with a note) where the machine does not allow it.
    fn new(at: &Path, args: &[&str], image: Option<tempfile::TempDir>) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount").args(args).arg(at).output();
        match output {
            Ok(output) if output.status.success() => {
                Some(Mount { at: at.to_path_buf(), _image: image })
            }
            Ok(output) => {
                eprintln!(
                    "note: cannot mount here ({}); this part of the test did not run",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("note: cannot run mount ({e}); this part of the test did not run");
                None
            }
        }
    }

    fn tmpfs(at: &Path) -> Option<Mount> {
        Mount::new(at, &["-t", "tmpfs", "-o", "size=16m", "tmpfs"], None)
    }

    /// An ext4 file system with 128-byte inodes: whole-second timestamps.
    fn coarse_ext4(at: &Path) -> Option<Mount> {
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("ext4.img");
        std::fs::File::create(&image).unwrap().set_len(32 << 20).unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&image)
            .stderr(Stdio::null())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("note: mkfs.ext4 is not available; this part of the test did not run");
            return None;
        }
        let image = image.to_str().unwrap().to_owned();
        Mount::new(at, &["-o", "loop", &image], Some(image_dir))
    }

    fn remount_read_only(&self) {
        let status =
            Command::new("mount").args(["-o", "remount,ro"]).arg(&self.at).status().unwrap();
        assert!(status.success(), "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

#[test]
fn a_read_only_store_can_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&tmp.path().join("mnt")) else { return };
    let store = mount.at.join("store");
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, b"version 1").unwrap();
    {
        let manager = FailsafeManager::open(&store).unwrap();
        for n in 1..=3 {
            manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &count(n)).unwrap();
        }
        manager.create_backup(&data).unwrap();
        let _ = manager.operations().unwrap();
    }
    mount.remount_read_only();

    let manager = FailsafeManager::open(&store).unwrap();
    assert_eq!(newest(&manager, "op"), 3);
    assert_eq!(manager.history::<Count>("op").unwrap().len(), 3);
    assert_eq!(manager.operations().unwrap().len(), 1);
    assert_eq!(manager.recoverable_operations().unwrap().len(), 1);
    assert!(manager.can_resume("op").unwrap());
    assert_eq!(manager.list_backups(&data).unwrap().len(), 1);
    assert_eq!(manager.statistics().unwrap().checkpoints.total_operations, 1);

    // Writes fail, naming a path of the store.
    let save = manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &count(4));
    assert!(matches!(&save, Err(Error::Io { path, .. }) if path.starts_with(&store)), "{save:?}");
    let new = manager.save_checkpoint("new", "Op", ProcessState::Running, 0.5, &count(1));
    assert!(matches!(&new, Err(Error::Io { path, .. }) if path.starts_with(&store)), "{new:?}");
    let backup = manager.create_backup(&data);
    assert!(
        matches!(&backup, Err(Error::Io { path, .. }) if path.starts_with(&store)),
        "{backup:?}"
    );
    assert_eq!(newest(&manager, "op"), 3);
}

#[test]
fn listings_agree_with_loads_on_whole_second_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = Mount::coarse_ext4(&tmp.path().join("mnt"));
    let dir = match &mount {
        Some(mount) => mount.at.join("store"),
        None => tmp.path().join("store"),
    };
    let manager = FailsafeManager::open(&dir).unwrap();
    // Enough operations for the listing cache to be written for the next process.
    let ids: Vec<String> = (0..40).map(|n| format!("op-{n:02}")).collect();
    for id in &ids {
        manager.save_checkpoint(id, "Op", ProcessState::Running, 0.5, &count(1)).unwrap();
    }
    assert_eq!(manager.recoverable_operations().unwrap().len(), 40);

    for round in 0..4 {
        // Another process changes the state of a few operations, within the same second.
        let changed = &ids[round * 4..round * 4 + 4];
        let role = if round % 2 == 0 { "save-completed" } else { "save-running" };
        for id in changed {
            ChildRole::run(role, &dir, id);
        }
        for id in &ids {
            let loaded = manager.can_resume(id).unwrap();
            let listed =
                manager.recoverable_operations().unwrap().iter().any(|s| &s.operation_id == id);
            assert_eq!(listed, loaded, "round {round}: `{id}` listed {listed}, loads {loaded}");
        }
        // A fresh process, which starts from the listing cache, agrees too.
        let out = ChildRole::run("list", &dir, &ids.join(","));
        for line in out.iter().filter(|l| l.starts_with("CHECK ")) {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields[2], fields[3], "round {round}: a fresh process: {line}");
        }
    }
    // This manager's own saves are listed at once.
    manager.save_checkpoint(&ids[39], "Op", ProcessState::Completed, 1.0, &count(2)).unwrap();
    let listed = manager.operations().unwrap();
    assert_eq!(
        listed.iter().find(|s| s.operation_id == ids[39]).unwrap().state,
        ProcessState::Completed
    );
    drop(mount);
}

#[test]
fn a_buffered_first_save_syncs_its_file_before_naming_it() {
    // strace shows the order of the system calls: the new file's data is synced before the
    // rename that names it, so a power loss cannot leave a named, empty file.
    let tmp = tempfile::tempdir().unwrap();
    let calls = traced_calls(
        "first-buffered",
        tmp.path(),
        "fresh",
        "fsync,fdatasync,rename,renameat,renameat2",
    );
    let rename = calls
        .iter()
        .position(|c| c.starts_with("rename") && c.contains("fresh.ckpt"))
        .unwrap_or_else(|| panic!("no rename of the new file:\n{}", calls.join("\n")));
    assert!(
        calls[..rename].iter().any(|c| c.starts_with("fsync(") || c.starts_with("fdatasync(")),
        "the new file was named before its data was synced:\n{}",
        calls.join("\n")
    );
    let manager = FailsafeManager::open(tmp.path().join("store")).unwrap();
    assert_eq!(newest(&manager, "fresh"), 1);
}

/// The system calls of `role`, as `strace -f` writes them (`<call>(<args>) = <result>`).
fn traced_calls(role: &str, dir: &Path, op: &str, calls: &str) -> Vec<String> {
    let log = dir.join("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(DIR, dir.join("store"))
        .env(OP, op)
        .stdout(Stdio::null())
        .status()
        .expect("strace is needed for this test (apt-get install strace)");
    assert!(status.success());
    let log = std::fs::read_to_string(&log).unwrap();
    log.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, call)| call.trim_start().to_owned())
        .collect()
}

#[test]
fn buffered_writes_never_overwrite_the_newest_synced_record() {
    // Three slots: after a sync, at most two unsynced writes may follow before the next sync,
    // or the third would go into the slot of the newest record on the disk.
    let tmp = tempfile::tempdir().unwrap();
    let calls = traced_calls("buffered-ring", tmp.path(), "ring", "pwrite64,fsync,fdatasync");
    let mut unsynced = 0;
    let mut writes = 0;
    for call in &calls {
        if call.starts_with("pwrite64(") {
            writes += 1;
            unsynced += 1;
            assert!(unsynced <= 2, "three writes without a sync:\n{}", calls.join("\n"));
        } else if call.starts_with("fsync(") || call.starts_with("fdatasync(") {
            unsynced = 0;
        }
    }
    assert!(writes >= 10, "the saves were not written:\n{}", calls.join("\n"));
    let manager = FailsafeManager::open(tmp.path().join("store")).unwrap();
    assert_eq!(newest(&manager, "ring"), 12);
}

fn newest_large(manager: &FailsafeManager) -> u64 {
    manager.load_checkpoint::<Large>("large").unwrap().unwrap().data.n
}

#[test]
fn loads_during_another_process_s_saves_of_large_records_never_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = ChildRole::spawn("large-writer", tmp.path(), "large");
    writer.expect("WRITING");
    let reader = FailsafeManager::open(tmp.path()).unwrap();
    let mut last = 0;
    for _ in 0..15 {
        let checkpoint = reader.load_checkpoint::<Large>("large").unwrap().unwrap();
        assert!(checkpoint.data.bytes.iter().all(|&b| b == checkpoint.data.n as u8));
        assert!(checkpoint.data.n >= last, "went back from {last} to {}", checkpoint.data.n);
        last = checkpoint.data.n;
        let history = reader.history::<Large>("large").unwrap();
        assert!(history.windows(2).all(|w| w[0].sequence > w[1].sequence));
    }
    writer.finish();
    assert!(newest_large(&reader) >= last);
}

#[test]
fn a_released_lock_is_free_at_once_while_another_thread_starts_processes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open2(tmp.path()), open2(tmp.path()));
    let stop = AtomicBool::new(false);
    let refused = std::thread::scope(|s| {
        // Each child holds copies of this process's descriptors from `fork` until `exec`.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new("true").status();
            }
        });
        let refused = (0..2000)
            .filter(|_| {
                let first = a.lock("job");
                drop(first);
                b.lock("job").is_err()
            })
            .count();
        stop.store(true, Ordering::Relaxed);
        refused
    });
    assert_eq!(refused, 0, "a lock released by its guard was still held");
}
