//! `#[protected]`: backups at entry, restore on failure, a retry of the whole operation that
//! resumes from the last checkpoint, and error recording with context.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use resilience::ErrorHandler;
use resilience::{
    Checkpointable, Classify, Error, FailsafeManager, ManualSleeper, ProcessState, Recovery,
    Severity, protected,
};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
enum JobError {
    Flaky(u32),
    Fatal(u32),
    Resilience(Error),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Flaky(item) => write!(f, "item {item} timed out"),
            JobError::Fatal(item) => write!(f, "item {item} is broken"),
            JobError::Resilience(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for JobError {}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        JobError::Resilience(e)
    }
}

impl Classify for JobError {
    fn recovery(&self) -> Recovery {
        match self {
            JobError::Flaky(_) => Recovery::Retry,
            _ => Recovery::Abort,
        }
    }
    fn error_code(&self) -> Cow<'_, str> {
        match self {
            JobError::Flaky(_) => "E_FLAKY".into(),
            JobError::Fatal(_) => "E_FATAL".into(),
            JobError::Resilience(_) => "E_STORE".into(),
        }
    }
    fn category(&self) -> Cow<'_, str> {
        "job".into()
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Lines {
    written: Vec<u32>,
}

impl Checkpointable for Lines {
    const SCHEMA: u64 = 0x11e5;
}

fn store() -> (tempfile::TempDir, FailsafeManager) {
    let dir = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
    (dir, manager)
}

fn append(path: &Path, item: u32) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(&format!("{item}\n"));
    std::fs::write(path, text).unwrap();
}

/// Appends each item to `{dir}/out.txt`, failing as `fail` says for each item.
#[protected(
    manager = mgr,
    errors = handler,
    id = "append",
    backup = "{dir}/out.txt",
    restore_on_failure = true,
    retry(max = 2, initial = "1s", jitter = 0.0),
)]
fn append_all(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
    items: &[u32],
    fail: &dyn Fn(u32) -> Option<JobError>,
    lines: &mut Lines,
) -> Result<usize, JobError> {
    let path = Path::new(dir).join("out.txt");
    for &item in items {
        if let Some(error) = fail(item) {
            return Err(error);
        }
        append(&path, item);
        lines.written.push(item);
    }
    Ok(lines.written.len())
}

#[test]
fn a_retry_resumes_from_the_last_checkpoint() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("out.txt"), "start\n").unwrap();
    let failures = Cell::new(0);
    // Item 5 times out twice, then goes through.
    let fail = |item| {
        (item == 5 && failures.replace(failures.get() + 1) < 2).then_some(JobError::Flaky(item))
    };
    let clock = ManualSleeper::new();
    let mut lines = Lines::default();
    let items: Vec<u32> = (0..8).collect();
    let n = resilience::with_sleeper(&clock, || {
        append_all(&mgr, &handler, dir, &items, &fail, &mut lines)
    });
    assert_eq!(n.unwrap(), 8);
    assert_eq!(clock.sleeps(), [Duration::from_secs(1), Duration::from_secs(2)]);
    // Each retry restarted at item 5, with the state of item 5: nothing twice, nothing lost.
    assert_eq!(lines.written, items);
    let text = std::fs::read_to_string(tmp.path().join("out.txt")).unwrap();
    assert_eq!(text, "start\n0\n1\n2\n3\n4\n5\n6\n7\n");

    // Both failed attempts were recorded, classified, with the operation and the item.
    let history = handler.history();
    assert_eq!(history.len(), 2);
    for record in &history {
        assert_eq!(record.error_code, "E_FLAKY");
        assert_eq!(record.message, "item 5 timed out");
        assert_eq!(
            record.context,
            [("operation_id".into(), "append".into()), ("item".into(), "5".into())]
        );
    }
    // One backup, taken at entry (not one per attempt).
    assert_eq!(mgr.list_backups(tmp.path().join("out.txt")).unwrap().len(), 1);
    let checkpoint = mgr.load_checkpoint::<Lines>("append").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Completed, 8));
}

#[test]
fn a_failure_restores_the_backed_up_files_and_the_entry_state() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("out.txt"), "start\n").unwrap();
    let fail = |item| (item == 3).then_some(JobError::Fatal(item));
    let mut lines = Lines::default();
    let err = append_all(&mgr, &handler, dir, &[0, 1, 2, 3, 4], &fail, &mut lines).unwrap_err();
    assert!(matches!(err, JobError::Fatal(3)));
    // Not retryable: one attempt. The file, the state and the checkpoint are back at the entry.
    assert_eq!(std::fs::read_to_string(tmp.path().join("out.txt")).unwrap(), "start\n");
    assert_eq!(lines, Lines::default());
    let checkpoint = mgr.load_checkpoint::<Lines>("append").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Failed, 0));
    assert_eq!(checkpoint.data, Lines::default());
    assert_eq!(checkpoint.error.as_deref(), Some("item 3 is broken"));
    // Entry (Running), item 1 and item 2 (Running), then one Failed with the entry state.
    let states: Vec<_> =
        mgr.history::<Lines>("append").unwrap().iter().map(|c| (c.state, c.cursor)).collect();
    assert_eq!(states[..2], [(ProcessState::Failed, 0), (ProcessState::Running, 3)]);
    let history = handler.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].error_code, "E_FATAL");
    assert_eq!(history[0].context[1], ("item".into(), "3".into()));

    // The next run starts from the entry state and the restored file: a consistent result.
    let mut lines = Lines::default();
    append_all(&mgr, &handler, dir, &[0, 1, 2, 3, 4], &|_| None, &mut lines).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out.txt")).unwrap(),
        "start\n0\n1\n2\n3\n4\n"
    );
}

#[test]
fn a_panic_restores_the_files_and_the_entry_checkpoint() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("out.txt"), "start\n").unwrap();
    let fail = |item| {
        assert_ne!(item, 2, "disk on fire");
        None
    };
    let mut lines = Lines::default();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        append_all(&mgr, &handler, dir, &[0, 1, 2], &fail, &mut lines)
    }));
    assert!(panic.is_err());
    assert_eq!(std::fs::read_to_string(tmp.path().join("out.txt")).unwrap(), "start\n");
    let checkpoint = mgr.load_checkpoint::<Lines>("append").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Failed, 0));
    assert_eq!(checkpoint.data, Lines::default());
    let error = checkpoint.error.unwrap();
    assert!(error.starts_with("panicked: ") && error.contains("disk on fire"), "{error}");
    // The lock went with the unwinding call.
    append_all(&mgr, &handler, dir, &[0, 1, 2], &|_| None, &mut Lines::default()).unwrap();
}

#[test]
fn a_locked_operation_is_an_error_that_is_recorded_too() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    let _held = mgr.lock("append").unwrap();
    let mut lines = Lines::default();
    let clock = ManualSleeper::new();
    let err = resilience::with_sleeper(&clock, || {
        append_all(&mgr, &handler, dir, &[1], &|_| None, &mut lines)
    })
    .unwrap_err();
    assert!(matches!(err, JobError::Resilience(Error::Locked { .. })), "{err:?}");
    let history = handler.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].context, [("operation_id".into(), "append".into())]);
}

#[test]
fn a_missing_backup_source_fails_the_call() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    let mut lines = Lines::default();
    let err = append_all(&mgr, &handler, dir, &[1], &|_| None, &mut lines).unwrap_err();
    assert!(matches!(err, JobError::Resilience(Error::BackupMissing { .. })), "{err:?}");
    assert!(lines.written.is_empty());
    assert_eq!(handler.history().len(), 1);
    assert_eq!(
        mgr.load_checkpoint::<Lines>("append").unwrap().unwrap().state,
        ProcessState::Failed
    );
}

thread_local! {
    static CALLS: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

#[protected(manager = mgr, errors = handler, backup = ["{dir}/a.txt", "{dir}/b.txt"], backup_missing = "skip")]
fn no_state(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
    fail: bool,
) -> Result<(), JobError> {
    CALLS.with(|c| c.borrow_mut().push("no_state"));
    if fail { Err(JobError::Fatal(0)) } else { Ok(()) }
}

#[test]
fn skipped_missing_backups_and_no_state() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("b.txt"), "b").unwrap();
    no_state(&mgr, &handler, dir, false).unwrap();
    assert_eq!(mgr.list_backups(tmp.path().join("b.txt")).unwrap().len(), 1);
    assert!(mgr.list_backups(tmp.path().join("a.txt")).unwrap().is_empty());
    // Without `retry(..)` a failure is recorded once and returned.
    assert!(matches!(no_state(&mgr, &handler, dir, true), Err(JobError::Fatal(0))));
    assert_eq!(CALLS.with(|c| c.borrow().len()), 2);
    let id = concat!(module_path!(), "::", "no_state");
    let checkpoint = mgr.load_checkpoint::<()>(id).unwrap().unwrap();
    assert_eq!(checkpoint.state, ProcessState::Failed);
    assert_eq!(handler.history()[0].context[0], ("operation_id".into(), id.into()));
}

fn only_flaky(error: &JobError) -> bool {
    matches!(error, JobError::Flaky(_))
}

#[protected(manager = mgr, errors = handler, every = 2, retry(max = 5, when = only_flaky))]
fn counted(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    plan: &RefCell<Vec<Option<JobError>>>,
    lines: &mut Lines,
) -> Result<(), JobError> {
    for item in 0..4 {
        let next = plan.borrow_mut().pop().flatten();
        if let Some(error) = next {
            return Err(error);
        }
        lines.written.push(item);
    }
    Ok(())
}

#[test]
fn when_decides_which_errors_are_retried() {
    let (_tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    // Popped from the end: item 0 ok, item 1 ok, item 2 ok, item 3 flaky; retry from
    // checkpoint 2 (every = 2): item 2 broken, not retried.
    let plan =
        RefCell::new(vec![Some(JobError::Fatal(2)), Some(JobError::Flaky(3)), None, None, None]);
    let clock = ManualSleeper::new();
    let mut lines = Lines::default();
    let err = resilience::with_sleeper(&clock, || counted(&mgr, &handler, &plan, &mut lines))
        .unwrap_err();
    assert!(matches!(err, JobError::Fatal(2)));
    assert_eq!(clock.sleeps().len(), 1);
    assert_eq!(
        handler.history().iter().map(|r| r.error_code.as_str()).collect::<Vec<_>>(),
        ["E_FLAKY", "E_FATAL"]
    );
    // The retry restored the state of checkpoint 2 before it went on.
    assert_eq!(lines.written, [0, 1]);
}

#[cfg(feature = "tokio")]
mod async_fns {
    use super::*;

    #[protected(manager = mgr, errors = handler, id = "async-append", retry(max = 3, initial = "2s", jitter = 0.0))]
    async fn flaky_async(
        mgr: &FailsafeManager,
        handler: &ErrorHandler,
        failures: &Cell<u32>,
        lines: &mut Lines,
    ) -> Result<(), JobError> {
        for item in 0..6 {
            tokio::task::yield_now().await;
            if item == 4 && failures.get() > 0 {
                failures.set(failures.get() - 1);
                return Err(JobError::Flaky(item));
            }
            lines.written.push(item);
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_async_retry_resumes_from_the_last_checkpoint() {
        let (_tmp, mgr) = store();
        let handler = ErrorHandler::new(10);
        let failures = Cell::new(2);
        let clock = ManualSleeper::new();
        let mut lines = Lines::default();
        let future = flaky_async(&mgr, &handler, &failures, &mut lines);
        resilience::with_async_sleeper(&clock, future).await.unwrap();
        assert_eq!(lines.written, (0..6).collect::<Vec<_>>());
        assert_eq!(clock.sleeps(), [Duration::from_secs(2), Duration::from_secs(4)]);
        assert_eq!(handler.history().len(), 2);
        assert_eq!(handler.history()[1].context[1], ("item".into(), "4".into()));
    }
}

/// Two files, `{dir}/a.txt` and `{dir}/sub/b.txt`; `sabotage` runs before the failing item.
#[protected(
    manager = mgr,
    errors = handler,
    id = "two-files",
    backup = ["{dir}/a.txt", "{dir}/sub/b.txt"],
    restore_on_failure = true,
)]
fn write_both(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &str,
    items: &[u32],
    sabotage: &dyn Fn(),
    lines: &mut Lines,
) -> Result<(), JobError> {
    for &item in items {
        if item == 3 {
            sabotage();
            return Err(JobError::Fatal(item));
        }
        append(&Path::new(dir).join("a.txt"), item);
        append(&Path::new(dir).join("sub/b.txt"), item);
        lines.written.push(item);
    }
    Ok(())
}

#[test]
fn a_failed_restore_rolls_back_no_checkpoint_and_names_the_file() {
    let (tmp, mgr) = store();
    let handler = ErrorHandler::new(10);
    let dir = tmp.path().to_str().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("a.txt"), "a\n").unwrap();
    std::fs::write(tmp.path().join("sub/b.txt"), "b\n").unwrap();
    // `sub` becomes a plain file: `sub/b.txt` cannot be written back.
    let sabotage = || {
        std::fs::remove_dir_all(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("sub"), "in the way").unwrap();
    };
    let mut lines = Lines::default();
    let err = write_both(&mgr, &handler, dir, &[0, 1, 2, 3, 4], &sabotage, &mut lines).unwrap_err();

    let JobError::Resilience(Error::RestoreFailed { operation_id, path, failure, .. }) = &err
    else {
        panic!("expected RestoreFailed, got {err:?}");
    };
    assert_eq!(operation_id, "two-files");
    assert!(path.ends_with("sub/b.txt"), "{}", path.display());
    assert_eq!(failure, "item 3 is broken");
    let text = err.to_string();
    assert!(text.contains("sub/b.txt") && text.contains("not rolled back"), "{text}");
    // The other file was restored all the same.
    assert_eq!(std::fs::read_to_string(tmp.path().join("a.txt")).unwrap(), "a\n");
    // The checkpoint was not rolled back to the entry state: it holds the last checkpointed
    // item's state, and says why.
    let checkpoint = mgr.load_checkpoint::<Lines>("two-files").unwrap().unwrap();
    assert_eq!(checkpoint.state, ProcessState::Failed);
    assert_eq!((checkpoint.cursor, &checkpoint.data.written), (3, &vec![0, 1, 2]));
    assert!(checkpoint.error.as_deref().unwrap().contains("could not be restored"));
    // The failure and the restore error were both recorded.
    let codes: Vec<_> = handler.history().into_iter().map(|r| r.error_code).collect();
    assert_eq!(codes, ["E_FATAL", "E_STORE"]);
}
