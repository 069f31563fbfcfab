//! #[protected].

use super::*;

/// What a protected run does: which item fails on which run, and what it saw.
struct Script {
    fail: fn(item: u64, run: u32) -> Option<ImportError>,
    runs: AtomicU32,
    processed: std::sync::Mutex<Vec<u64>>,
}

impl Script {
    fn new(fail: fn(u64, u32) -> Option<ImportError>) -> Self {
        Script { fail, runs: AtomicU32::new(0), processed: std::sync::Mutex::new(Vec::new()) }
    }
}

#[protected(
    manager = mgr,
    errors = handler,
    id = "protected-{name}",
    every = 1,
    backup = "{dir}/important.db",
    restore_on_failure = true,
    retry(max = 3, initial = "1s"),
)]
fn protected_job(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
    name: &str,
    items: &[u64],
    script: &Script,
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    let run = script.runs.fetch_add(1, Ordering::Relaxed);
    for &item in items {
        if let Some(error) = (script.fail)(item, run) {
            std::fs::write(Path::new(dir).join("important.db"), "half-written").unwrap();
            return Err(error);
        }
        script.processed.lock().unwrap().push(item);
        tally.sum += item;
    }
    Ok(tally.sum)
}

#[test]
fn protected_retries_resume_from_the_last_checkpoint_and_record_errors() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(100);
    let dir = tmp.path().to_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("important.db"), "original").unwrap();
    // The first run times out at item 3, the retry finishes.
    let script = Script::new(|item, run| (run == 0 && item == 3).then_some(ImportError::Timeout));
    let mut tally = Tally::default();
    let result = with_sleeper(&NoSleep, || {
        protected_job(&manager, &handler, &dir, "a", &[1, 2, 3, 4], &script, &mut tally)
    });
    assert_eq!(result.unwrap(), 10);
    assert_eq!(script.runs.load(Ordering::Relaxed), 2);
    assert_eq!(*script.processed.lock().unwrap(), [1, 2, 3, 4], "the retry resumed at item 3");
    // One backup, taken at entry, not on the retry.
    let backups = manager.list_backups(tmp.path().join("important.db")).unwrap();
    assert_eq!(backups.len(), 1);
    let records = handler.history();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].error_code, "E_TIMEOUT");
    assert!(
        records[0].context.iter().any(|(_, v)| v == "protected-a"),
        "the context names the operation id: {:?}",
        records[0].context
    );
}

#[test]
fn protected_restores_backups_on_failure() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(100);
    let dir = tmp.path().to_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("important.db"), "original").unwrap();
    let script = Script::new(|item, _run| (item == 2).then_some(ImportError::Fatal));
    let mut tally = Tally::default();
    let result = with_sleeper(&NoSleep, || {
        protected_job(&manager, &handler, &dir, "b", &[1, 2, 3], &script, &mut tally)
    });
    assert!(matches!(result, Err(ImportError::Fatal)));
    assert_eq!(script.runs.load(Ordering::Relaxed), 1, "Abort errors are not retried");
    assert_eq!(std::fs::read_to_string(tmp.path().join("important.db")).unwrap(), "original");
    assert_eq!(handler.statistics().by_code["ImportError::Fatal"], 1);
    // The record's context names the operation id and the index of the failing item.
    let context = &handler.history()[0].context;
    let values: Vec<&str> = context.iter().map(|(_, v)| v.as_str()).collect();
    assert!(values.contains(&"protected-b") && values.contains(&"1"), "{context:?}");
    let failed: Checkpoint<Tally> = manager.load_checkpoint("protected-b").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
}

#[protected(manager = mgr, errors = handler, backup = "{dir}/missing.db")]
fn needs_backup(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
) -> Result<(), ImportError> {
    Ok(())
}

#[protected(
    manager = mgr,
    errors = handler,
    backup = ["{dir}/a.db", "{dir}/missing.db"],
    backup_missing = "skip"
)]
fn skips_missing(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
) -> Result<(), ImportError> {
    Ok(())
}

#[test]
fn protected_backup_of_a_missing_file_fails_unless_skipped() {
    let (tmp, manager) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap().to_owned();
    let result = needs_backup(&manager, &handler, &dir);
    assert!(matches!(result, Err(ImportError::Store(Error::BackupMissing { .. }))), "{result:?}");

    std::fs::write(tmp.path().join("a.db"), "a").unwrap();
    skips_missing(&manager, &handler, &dir).unwrap();
    assert_eq!(manager.list_backups(tmp.path().join("a.db")).unwrap().len(), 1);
}
