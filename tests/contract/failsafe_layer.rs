//! Failsafe layer: ProcessState, Checkpointable, Checkpoint, FailsafeManager.

use super::*;

#[test]
fn process_state_variants_and_is_resumable() {
    use ProcessState::*;
    let resumable: Vec<_> = [Initialized, Running, Paused, Completed, Failed]
        .into_iter()
        .filter(|s| s.is_resumable())
        .collect();
    assert_eq!(resumable, [Running, Paused, Failed]);
}

#[test]
fn checkpointable_defaults_and_unit_impl() {
    let _: u64 = <() as Checkpointable>::SCHEMA;
    let mut unit = ();
    assert_eq!(unit.cursor(), 0);
    unit.set_cursor(5);
    assert_eq!(unit.total(), None);

    // A type without cursor/total fields keeps the defaults.
    let mut tally = Tally { sum: 3 };
    tally.set_cursor(9);
    assert_eq!((tally.cursor(), tally.total(), tally.sum), (0, None, 3));
}

#[test]
fn derived_checkpointable_mirrors_cursor_and_total() {
    let mut p = ImportProgress { done: 4, total: 10, imported_bytes: 0 };
    assert_eq!(p.cursor(), 4);
    assert_eq!(p.total(), Some(10));
    p.set_cursor(7);
    assert_eq!(p.done, 7);
}

#[test]
fn cursor_and_total_can_be_any_integer_field() {
    #[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
    struct Small {
        #[checkpoint(cursor)]
        done: u32,
        #[checkpoint(total)]
        total: usize,
    }
    let mut small = Small { done: 2, total: 9 };
    assert_eq!((small.cursor(), small.total()), (2, Some(9)));
    small.set_cursor(5);
    assert_eq!(small.done, 5);
}

mod schema_v1 {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_v1_elsewhere {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_v2 {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    #[checkpoint(version = 2)]
    pub struct Progress {
        pub done: u64,
    }
}

mod schema_renamed_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub finished: u64,
    }
}

mod schema_retyped_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u32,
    }
}

#[test]
fn schema_depends_on_name_fields_types_and_version_not_module_path() {
    let v1 = <schema_v1::Progress as Checkpointable>::SCHEMA;
    assert_eq!(v1, <schema_v1_elsewhere::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_v2::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_renamed_field::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <schema_retyped_field::Progress as Checkpointable>::SCHEMA);
    assert_ne!(v1, <Tally as Checkpointable>::SCHEMA);
}

#[test]
fn builder_takes_every_setting_and_build_returns_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let builder: FailsafeBuilder = FailsafeManager::builder();
    let n: usize = 2;
    let built: resilience::Result<FailsafeManager> = builder
        .dir(dir.path())
        .max_checkpoints(n)
        .max_backups(n)
        .durability(Durability::Buffered)
        .build();
    let manager = built.unwrap();
    for i in 0..4 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: i }).unwrap();
    }
    assert_eq!(manager.history::<Tally>("op").unwrap().len(), 2);
    let _sync = Durability::Sync;
}

#[test]
fn builder_defaults_keep_5_checkpoints_and_5_backups_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::builder().dir(tmp.path().join("store")).build().unwrap();
    for i in 0..8 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: i }).unwrap();
    }
    let history = manager.history::<Tally>("op").unwrap();
    assert_eq!(history.iter().map(|c| c.data.sum).collect::<Vec<_>>(), [7, 6, 5, 4, 3]);

    let file = tmp.path().join("data.db");
    for i in 0..8 {
        std::fs::write(&file, format!("version {i}")).unwrap();
        manager.create_backup(&file).unwrap();
    }
    assert_eq!(manager.list_backups(&file).unwrap().len(), 5);
    assert_eq!(Durability::default(), Durability::Sync);
}

#[test]
fn a_store_file_without_an_intact_record_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let manager = FailsafeManager::open(&dir).unwrap();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &Tally { sum: 7 }).unwrap();
    drop(manager);

    // Overwrite every byte of every file the save created with garbage of the same length.
    fn scramble(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scramble(&path);
            } else {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0xA5; len]).unwrap();
            }
        }
    }
    scramble(&dir);

    let manager = FailsafeManager::open(&dir).unwrap();
    let result = manager.load_checkpoint::<Tally>("op");
    assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
}

#[test]
fn any_operation_id_stays_inside_the_store_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(tmp.path().join("store")).unwrap();
    let ids = ["a/b/c", "..", "../../escape", "nul\0byte", "/absolute", "../store2/x"];
    for id in ids {
        manager.save_checkpoint(id, "Op", ProcessState::Paused, 0.0, &Tally { sum: 1 }).unwrap();
        assert!(manager.load_checkpoint::<Tally>(id).unwrap().is_some());
    }
    let outside: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["store"], "nothing is written outside the store directory");
}
#[cfg(unix)]
#[test]
fn store_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, manager) = store();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Tally { sum: 1 }).unwrap();
    let file = tmp.path().join("data.db");
    std::fs::write(&file, "data").unwrap();
    manager.create_backup(&file).unwrap();
    for path in walk(&tmp.path().join("store")) {
        if path.is_file() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
        }
    }
}

#[test]
fn backups_create_list_newest_first_and_restore() {
    let (tmp, manager) = store();
    let file = tmp.path().join("important.db");
    std::fs::write(&file, "first").unwrap();
    let first: BackupInfo = manager.create_backup(&file).unwrap();
    std::fs::write(&file, "second, longer").unwrap();
    let second = manager.create_backup(&file).unwrap();

    let BackupInfo { source, path, size, checksum, created_at } = second.clone();
    assert_eq!(source.file_name(), file.file_name());
    assert!(path.exists());
    let size: u64 = size;
    assert_eq!(size, "second, longer".len() as u64);
    let _ = checksum;
    let _: SystemTime = created_at;

    let listed = manager.list_backups(&file).unwrap();
    assert_eq!(listed, vec![second.clone(), first.clone()], "newest first");

    std::fs::write(&file, "clobbered").unwrap();
    manager.restore_backup(&first).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
}

#[test]
fn list_backups_of_a_file_never_backed_up_is_empty() {
    let (tmp, manager) = store();
    assert_eq!(manager.list_backups(tmp.path().join("never.db")).unwrap(), vec![]);
    let exists = tmp.path().join("exists.db");
    std::fs::write(&exists, "data").unwrap();
    assert_eq!(manager.list_backups(&exists).unwrap(), vec![]);
}

#[test]
fn backing_up_a_missing_file_is_backup_missing() {
    let (tmp, manager) = store();
    let result = manager.create_backup(tmp.path().join("absent.db"));
    assert!(matches!(result, Err(Error::BackupMissing { .. })), "{result:?}");
}

#[test]
fn auto_backup_backs_up_in_the_background_until_stopped() {
    let (tmp, manager) = store();
    let file = tmp.path().join("results.csv");
    std::fs::write(&file, "id,score\n").unwrap();
    let files: Vec<PathBuf> = vec![file.clone()];
    let auto: AutoBackup = manager.start_auto_backup(&files, Duration::from_millis(1));
    // Wait (without sleeping) for the background pass; the deadline only bounds a broken build.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while manager.list_backups(&file).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no auto backup was taken");
        std::thread::yield_now();
    }
    auto.stop();

    // Dropping the handle stops it too.
    let dropped = manager.start_auto_backup(&files, Duration::from_secs(3600));
    drop(dropped);
}

#[test]
fn failsafe_statistics_count_states_and_backups() {
    let (tmp, manager) = store();
    let unit = ();
    manager.save_checkpoint("i", "I", ProcessState::Initialized, 0.0, &unit).unwrap();
    manager.save_checkpoint("r", "R", ProcessState::Running, 0.0, &unit).unwrap();
    manager.save_checkpoint("p", "P", ProcessState::Paused, 0.0, &unit).unwrap();
    manager.save_checkpoint("f", "F", ProcessState::Failed, 0.0, &unit).unwrap();
    manager.save_checkpoint("c1", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    manager.save_checkpoint("c2", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    let file = tmp.path().join("blob.bin");
    std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
    manager.create_backup(&file).unwrap();

    let stats: FailsafeStats = manager.statistics().unwrap();
    let total_operations: u64 = stats.checkpoints.total_operations;
    let active_operations: u64 = stats.checkpoints.active_operations;
    let completed: u64 = stats.checkpoints.completed;
    let failed: u64 = stats.checkpoints.failed;
    let paused: u64 = stats.checkpoints.paused;
    let count: u64 = stats.backups.count;
    let total_size_bytes: u64 = stats.backups.total_size_bytes;
    assert_eq!((total_operations, active_operations), (6, 2));
    assert_eq!((completed, failed, paused), (2, 1, 1));
    assert_eq!(count, 1);
    assert!(total_size_bytes >= 1 << 20);
    let mb: f64 = stats.total_size_mb();
    assert!((mb - total_size_bytes as f64 / (1024.0 * 1024.0)).abs() < 1e-9);
}

#[test]
fn failsafe_manager_is_a_cheap_send_sync_handle() {
    fn handle<T: Send + Sync + Clone>() {}
    handle::<FailsafeManager>();
    fn shared<T: Send + Sync>() {}
    shared::<RetryManager>();
    shared::<ErrorHandler>();
}

#[test]
fn global_failsafe_manager_uses_resilience_dir() {
    let manager = global_store();
    assert!(std::ptr::eq(manager, FailsafeManager::global()));
    manager.save_checkpoint("contract-global", "G", ProcessState::Paused, 0.0, &()).unwrap();
    let dir = std::env::var_os("RESILIENCE_DIR").unwrap();
    let mut found = false;
    for entry in walk(Path::new(&dir)) {
        found |= entry.is_file();
    }
    assert!(found, "the global store writes under $RESILIENCE_DIR");
    assert!(manager.can_resume("contract-global").unwrap());
    manager.discard("contract-global").unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
