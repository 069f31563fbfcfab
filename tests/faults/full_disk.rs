//! Full disk: a child process whose writes fail part-way (`RLIMIT_FSIZE`, with `SIGXFSZ`
//! ignored so that `write` returns `EFBIG`) tries to save checkpoints (in place, by rewriting the
//! file, and for a new operation) and to back a file up. Every attempt must fail with an error
//! naming a path in the store, and the parent must then find the previous checkpoint and the
//! existing backups intact, no temporary file left behind, and the store working again.

use std::fs;
use std::path::Path;

use resilience::{FailsafeManager, ProcessState};

use crate::ChildRole;
use crate::crash::{Tally, expected};

fn report(what: &str, result: resilience::Result<impl std::fmt::Debug>) {
    match result {
        Ok(v) => println!("@{what} ok {v:?}"),
        Err(e) => println!("@{what} err {e}"),
    }
}

/// The child side: limits the size of files it may write, then tries everything.
pub fn child() {
    let limit: u64 = std::env::var("FAULTS_LIMIT").unwrap().parse().unwrap();
    // SAFETY: plain libc calls with valid arguments, before any other thread writes files.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit), 0);
    }
    let mgr = FailsafeManager::open(std::env::var("FAULTS_DIR").unwrap()).unwrap();
    let source = std::env::var("FAULTS_SOURCE").unwrap();
    let save =
        |id: &str, data: &Tally| mgr.save_checkpoint(id, "job", ProcessState::Running, 0.5, data);
    // Fits the file's slots: a partial write in place.
    report("in-place", save("job", &expected(11)));
    // Outgrows the slots: the file is rewritten through a temporary file.
    report("rewrite", save("job", &expected(5_000)));
    // A new operation: its file is created through a temporary file.
    report("new", save("fresh", &expected(3)));
    report("backup", mgr.create_backup(&source));
    println!("@end");
}

fn temp_files(dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            temp_files(&entry.path(), out);
        } else if entry.file_name().to_string_lossy().contains("tmp") {
            out.push(entry.path().display().to_string());
        }
    }
}

#[test]
fn failed_writes_leave_the_previous_state_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let source = tmp.path().join("data.bin");
    let mut rng = crate::rng("full-disk");
    let content: Vec<u8> = (0..256 * 1024).map(|_| rng.u8(..)).collect();
    fs::write(&source, &content).unwrap();

    let mgr = FailsafeManager::open(&dir).unwrap();
    mgr.save_checkpoint("job", "job", ProcessState::Running, 0.1, &expected(10)).unwrap();
    let backup = mgr.create_backup(&source).unwrap();
    let ckpt = dir.join("job.ckpt");
    let before = fs::read(&ckpt).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(before[at..at + 4].try_into().unwrap()) as u64;
    let (slot_size, slots_offset) = (u32_at(16), u32_at(20));
    // The next in-place save goes to the second slot: let 20 bytes of it through.
    let limits = [slots_offset + slot_size + 20, slots_offset + 3, 0];
    let mut failures = 0;
    for limit in limits {
        let limit_text = limit.to_string();
        let mut child = ChildRole::spawn(
            "full-disk",
            &[
                ("FAULTS_DIR", dir.as_os_str()),
                ("FAULTS_SOURCE", source.as_os_str()),
                ("FAULTS_LIMIT", limit_text.as_ref()),
            ],
        );
        let mut lines = Vec::new();
        while let Some(line) = child.wait_for("@") {
            if line == "@end" {
                break;
            }
            lines.push(line);
        }
        assert!(child.child.wait().unwrap().success(), "limit {limit}: {lines:?}");
        assert_eq!(lines.len(), 4, "limit {limit}: {lines:?}");
        for line in &lines {
            let (what, rest) = line.split_once(' ').unwrap();
            let message =
                rest.strip_prefix("err ").unwrap_or_else(|| panic!("{what} succeeded: {rest}"));
            assert!(message.contains(dir.to_str().unwrap()), "{what}: {message}");
            assert!(message.contains("too large"), "{what}: {message}");
            failures += 1;
        }

        // The parent, without a limit, finds everything as it was.
        let fresh = FailsafeManager::open(&dir).unwrap();
        let cp = fresh.load_checkpoint::<Tally>("job").unwrap().unwrap();
        assert_eq!((cp.sequence, cp.data), (1, expected(10)), "limit {limit}");
        assert_eq!(fresh.history::<Tally>("job").unwrap().len(), 1);
        assert!(fresh.load_checkpoint::<Tally>("fresh").unwrap().is_none(), "limit {limit}");
        assert_eq!(fresh.list_backups(&source).unwrap(), std::slice::from_ref(&backup));
        assert_eq!(fs::read(&backup.path).unwrap(), content);
        let mut temps = Vec::new();
        temp_files(&dir, &mut temps);
        assert!(temps.is_empty(), "left behind: {temps:?}");
    }
    // The store works again once the disk has room.
    fs::write(&source, b"changed").unwrap();
    mgr.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&source).unwrap(), content);
    mgr.save_checkpoint("job", "job", ProcessState::Running, 0.2, &expected(5_000)).unwrap();
    let fresh = FailsafeManager::open(&dir).unwrap();
    assert_eq!(fresh.load_checkpoint::<Tally>("job").unwrap().unwrap().data, expected(5_000));
    println!(
        "full disk: {failures} failed writes under RLIMIT_FSIZE ({} limits), each an error \
         naming its path; previous checkpoint and backups intact, no temporary file left",
        limits.len()
    );
}
