//! Hostile operation ids and planted symlinks, through `#[checkpointed]` and backups: everything
//! stays inside the store directory, ids round-trip exactly, nothing outside is ever written,
//! and every file is private.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use resilience::{Error, FailsafeManager, ProcessState, checkpointed};

use crate::JobError;
use crate::crash::{Tally, effect, expected};

#[checkpointed(manager = mgr, every = 3, id = "{key}")]
fn keyed(
    mgr: &FailsafeManager,
    key: &str,
    items: &[u64],
    state: &mut Tally,
) -> Result<(), JobError> {
    for &item in items {
        effect(state, item);
    }
    Ok(())
}

/// Every entry under `dir`, recursively, with its metadata (symlinks not followed).
fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, fs::Metadata)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        out.push((entry.path(), meta.clone()));
        if meta.is_dir() {
            walk(&entry.path(), out);
        }
    }
}

#[test]
fn hostile_ids_round_trip_through_checkpointed_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mgr = FailsafeManager::open(&dir).unwrap();
    let ten_kb = "🦀..//".repeat(10 * 1024 / 10);
    let ids: Vec<String> = [
        "..",
        ".",
        "../../outside",
        "/",
        "/etc/passwd",
        "a/b/../../../c",
        "nul\0byte",
        "\0",
        "",
        "🦀 résumé 🔥",
        "CON",
        "x.ckpt",
        "x.lock",
        "backups",
        "new\nline",
        ten_kb.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{}/{}", "z".repeat(10 * 1024), "..")])
    .collect();
    let items: Vec<u64> = (0..20).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut state = Tally::default();
        // Half of them are interrupted once, so that they resume from a stored checkpoint.
        if i % 2 == 0 {
            mgr.save_checkpoint(id, "keyed", ProcessState::Failed, 0.5, &expected(9)).unwrap();
        }
        keyed(&mgr, id, &items, &mut state).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert_eq!(state, expected(20), "{id:?}");
    }
    let fresh = FailsafeManager::open(&dir).unwrap();
    for id in &ids {
        let cp = fresh.load_checkpoint::<Tally>(id).unwrap().unwrap();
        assert_eq!(&cp.operation_id, id);
        assert_eq!((cp.state, cp.cursor), (ProcessState::Completed, 20), "{id:?}");
        assert_eq!(cp.data, expected(20));
    }
    let mut listed: Vec<String> =
        fresh.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    let mut want = ids.clone();
    listed.sort();
    want.sort();
    assert_eq!(listed, want);

    // Nothing next to the store directory; inside it, private regular files with short names.
    let beside: Vec<_> =
        fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["store"]);
    let mut entries = Vec::new();
    walk(&dir, &mut entries);
    assert!(entries.len() >= 2 * ids.len(), "a checkpoint and a lock file per id");
    for (path, meta) in &entries {
        assert!(meta.is_file(), "{}", path.display());
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", path.display());
        assert!(path.file_name().unwrap().len() <= 255);
    }
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    println!("ids: {} hostile ids round-tripped, {} files, all 0600", ids.len(), entries.len());
}

#[test]
fn planted_symlinks_never_lead_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let mgr = FailsafeManager::open(&dir).unwrap();

    // Links planted before the operation ever ran, pointing at a file and at a directory.
    symlink(&victim, dir.join("planted.ckpt")).unwrap();
    symlink(&outside, dir.join("planted-dir.ckpt")).unwrap();
    symlink(outside.join("new-file"), dir.join("dangling.ckpt")).unwrap();
    let items: Vec<u64> = (0..10).collect();
    for id in ["planted", "planted-dir", "dangling"] {
        let mut state = Tally::default();
        // The link is replaced by a real file of the store, or the run is refused.
        match keyed(&mgr, id, &items, &mut state) {
            Ok(()) => {
                let path = dir.join(format!("{id}.ckpt"));
                assert!(fs::symlink_metadata(&path).unwrap().is_file(), "{id}");
                let cp = mgr.load_checkpoint::<Tally>(id).unwrap().unwrap();
                assert_eq!(cp.data, expected(10));
            }
            Err(JobError::Store(Error::Io { path, .. } | Error::Corrupt { path, .. })) => {
                assert!(path.starts_with(&dir), "{}", path.display());
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    // A planted lock link is refused.
    symlink(&victim, dir.join("locked.lock")).unwrap();
    let mut state = Tally::default();
    match keyed(&mgr, "locked", &items, &mut state) {
        Err(JobError::Store(Error::Io { path, .. })) => assert_eq!(path, dir.join("locked.lock")),
        other => panic!("a planted lock link was followed: {other:?}"),
    }
    // The backups folder replaced by a link to the outside.
    let source = tmp.path().join("data.txt");
    fs::write(&source, b"data").unwrap();
    let info = mgr.create_backup(&source).unwrap();
    assert!(info.path.starts_with(&dir));
    fs::remove_dir_all(dir.join("backups")).unwrap();
    symlink(&outside, dir.join("backups")).unwrap();
    match mgr.create_backup(&source) {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(&dir), "{}", path.display()),
        other => panic!("a planted backups link was followed: {other:?}"),
    }

    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let outside_now: Vec<_> =
        fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside_now, ["victim"], "something was written outside the store");
}
