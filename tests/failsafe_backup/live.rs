//! Files that change while they are backed up, and restores whose path changed.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

const SIZE: usize = 32 << 20;

/// The version a backup holds, if it is one whole version (every byte the same letter).
fn whole_version(bytes: &[u8]) -> Option<u8> {
    let first = *bytes.first()?;
    (bytes.len() == SIZE && bytes.iter().all(|&b| b == first)).then_some(first)
}

/// Sets the flag that stops a writer thread when dropped, also while a panic unwinds: a
/// scope joins its threads, and one that never stops would hang the test.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_file_rewritten_in_place_during_backups_is_never_backed_up_torn() {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(100).build().unwrap();
    let file = fx.data.join("large.bin");
    fs::write(&file, vec![b'A'; SIZE]).unwrap();
    let stop = AtomicBool::new(false);
    // Nothing inside the scope panics before `stop` is set: the scope joins the writer, which
    // would otherwise rewrite the file forever.
    let (outcomes, rewrites) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let out = fs::OpenOptions::new().write(true).open(&file).unwrap();
            let mut rewrites = 0u32;
            for letter in [b'B', b'A'].into_iter().cycle() {
                if stop.load(Ordering::SeqCst) {
                    return rewrites;
                }
                let chunk = vec![letter; 1 << 20];
                for i in 0..SIZE / chunk.len() {
                    out.write_all_at(&chunk, (i * chunk.len()) as u64).unwrap();
                }
                rewrites += 1;
                // Quiet moments every third version, for some copies to get through.
                let pause = if rewrites.is_multiple_of(3) { 300 } else { 5 };
                std::thread::sleep(Duration::from_millis(pause));
            }
            unreachable!()
        });
        let _stop = StopOnDrop(&stop);
        let outcomes: Vec<_> = (0..12).map(|_| manager.create_backup(&file)).collect();
        stop.store(true, Ordering::SeqCst);
        (outcomes, writer.join())
    });
    assert!(rewrites.expect("the writer panicked") > 0, "the writer never rewrote the file");
    let (mut published, mut refused) = (Vec::new(), 0);
    for outcome in outcomes {
        match outcome {
            Ok(backup) => published.push(backup),
            Err(Error::SourceChanged { path }) => {
                assert_eq!(path, file);
                refused += 1;
            }
            Err(other) => panic!("expected a backup or Error::SourceChanged, got {other:?}"),
        }
    }
    for backup in &published {
        let bytes = fs::read(&backup.path).unwrap();
        assert!(whole_version(&bytes).is_some(), "a published backup mixes two versions");
        assert_eq!(crc32fast::hash(&bytes), backup.checksum);
    }
    assert!(!published.is_empty(), "no backup succeeded in quiet moments ({refused} refused)");
    assert_eq!(manager.list_backups(&file).unwrap().len(), published.len());
    println!("{} backups published, {refused} refused with SourceChanged", published.len());
}

#[test]
fn refusals_publish_nothing_and_rotate_nothing_out() {
    let fx = fixture();
    let manager = FailsafeManager::builder().dir(&fx.store).max_backups(2).build().unwrap();
    let file = fx.data.join("busy.bin");
    fs::write(&file, vec![b'A'; 4 << 20]).unwrap();
    let old: Vec<_> = (0..2).map(|_| manager.create_backup(&file).unwrap()).collect();
    let stop = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            let out = fs::OpenOptions::new().write(true).open(&file).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                out.write_all_at(b"B", i % (4 << 20)).unwrap();
                i += 4096;
            }
        });
        let _stop = StopOnDrop(&stop);
        (0..20).map(|_| manager.create_backup(&file)).find(|r| r.is_err())
    });
    match outcome {
        Some(Err(Error::SourceChanged { path })) => assert_eq!(path, file),
        other => panic!("expected Error::SourceChanged, got {other:?}"),
    }
    let listed = manager.list_backups(&file).unwrap();
    assert_eq!(listed.len(), 2);
    let folder = old[0].path.parent().unwrap();
    let temps = fs::read_dir(folder)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp-"))
        .count();
    assert_eq!(temps, 0, "a refused copy left its temp file");
}

#[test]
fn a_file_replaced_by_rename_during_the_copy_is_copied_again() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("swapped.bin");
    fs::write(&file, vec![b'A'; SIZE]).unwrap();
    let staging = fx.data.join("staging");
    fs::write(&staging, vec![b'B'; SIZE]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(2));
            fs::rename(&staging, &file).unwrap();
        });
        if let Ok(backup) = manager.create_backup(&file) {
            assert!(whole_version(&fs::read(&backup.path).unwrap()).is_some());
        }
    });
}

#[test]
fn a_restore_through_a_symlink_planted_on_the_path_is_refused() {
    let fx = fixture();
    let manager = FailsafeManager::open(&fx.store).unwrap();
    let file = fx.data.join("x/y/settings.toml");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, b"mine").unwrap();
    let backup = manager.create_backup(&file).unwrap();

    // Another user's directory, planted where `x` was.
    let other = fx.data.join("other");
    fs::create_dir_all(other.join("y")).unwrap();
    fs::write(other.join("y/settings.toml"), b"theirs").unwrap();
    fs::rename(fx.data.join("x"), fx.data.join("x.moved")).unwrap();
    std::os::unix::fs::symlink(&other, fx.data.join("x")).unwrap();

    match manager.restore_backup(&backup) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, fs::canonicalize(&fx.data).unwrap().join("x"));
            assert!(source.to_string().contains("symbolic link"), "{source}");
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert_eq!(fs::read(other.join("y/settings.toml")).unwrap(), b"theirs");
    assert_eq!(files_in(&other), vec![other.join("y/settings.toml")], "wrote into `other`");

    // The last directory replaced by a symlink, and a missing one on the way: refused too.
    fs::remove_file(fx.data.join("x")).unwrap();
    fs::rename(fx.data.join("x.moved"), fx.data.join("x")).unwrap();
    fs::rename(fx.data.join("x/y"), fx.data.join("x/y.moved")).unwrap();
    std::os::unix::fs::symlink(other.join("y"), fx.data.join("x/y")).unwrap();
    assert!(matches!(manager.restore_backup(&backup), Err(Error::Io { .. })));
    assert_eq!(files_in(&other), vec![other.join("y/settings.toml")]);

    // Back as it was: the restore works.
    fs::remove_file(fx.data.join("x/y")).unwrap();
    fs::rename(fx.data.join("x/y.moved"), fx.data.join("x/y")).unwrap();
    fs::write(&file, b"damaged").unwrap();
    manager.restore_backup(&backup).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"mine");
}
