//! Pausing tracked loops with SIGINT (`pause_on_signals`) and from code (`request_pause`), and
//! `testing::crash_after`. The pause request is process-wide, so every test that sets it runs
//! in a child process of this binary.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use resilience::{
    Checkpointable, ErrorHandler, FailsafeManager, ProcessState, checkpointed, protected,
};
use serde::{Deserialize, Serialize};

const ROLE: &str = "RESILIENCE_TEST_PAUSE_ROLE";
const DIR: &str = "RESILIENCE_TEST_PAUSE_DIR";
const ITEMS: u64 = 40;

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Sum {
    #[checkpoint(cursor)]
    done: u64,
    total: u64,
}

/// Appends `item` to the side-effect log: each line is one processed item.
fn log_item(dir: &Path, item: u64) {
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("items")).unwrap();
    writeln!(file, "{item}").unwrap();
}

fn logged_items(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("items"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

/// Items take 10 ms each (so that a signal lands mid-item); item 3 tells the parent to signal.
#[checkpointed(manager = store, id = "sum", every = 7)]
fn sum(store: &FailsafeManager, dir: &Path, state: &mut Sum) -> Result<u64, resilience::Error> {
    for item in 0..ITEMS {
        log_item(dir, item);
        if item == 3 {
            println!("SIGNAL ME");
        }
        std::thread::sleep(Duration::from_millis(10));
        state.total += item;
    }
    Ok(state.total)
}

#[checkpointed(manager = store, id = "sum", every = 7)]
async fn sum_async(
    store: &FailsafeManager,
    dir: &Path,
    state: &mut Sum,
) -> Result<u64, resilience::Error> {
    for item in 0..ITEMS {
        log_item(dir, item);
        if item == 3 {
            println!("SIGNAL ME");
        }
        Yield(false).await;
        std::thread::sleep(Duration::from_millis(10));
        state.total += item;
    }
    Ok(state.total)
}

/// Returns `Pending` once, waking itself: an `.await` that really suspends.
struct Yield(bool);

impl Future for Yield {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// A one-future executor.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Under `#[protected(retry)]`: a pause is not retried, and not recorded as an error.
#[protected(manager = store, id = "sum", every = 7, retry(max = 3, initial = "1ms"), errors = handler)]
fn protected_sum(
    store: &FailsafeManager,
    handler: &ErrorHandler,
    dir: &Path,
    state: &mut Sum,
) -> Result<u64, resilience::Error> {
    for item in 0..ITEMS {
        log_item(dir, item);
        if item == 3 {
            resilience::request_pause();
        }
        state.total += item;
    }
    Ok(state.total)
}

/// The entry point of child processes; does nothing when run as a test.
#[test]
#[ignore = "run by the tests of this file in child processes"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    let store = FailsafeManager::open(dir.join("store")).unwrap();
    resilience::pause_on_signals();
    let handler = ErrorHandler::new(100);
    let result = match role.as_str() {
        "sync" => sum(&store, &dir, &mut Sum::default()),
        "async" => block_on(sum_async(&store, &dir, &mut Sum::default())),
        "protected" => protected_sum(&store, &handler, &dir, &mut Sum::default()),
        "stubborn" => {
            println!("SIGNAL ME");
            // Never reaches an item boundary: only a second signal ends it.
            std::thread::sleep(Duration::from_secs(30));
            Ok(0)
        }
        other => panic!("unknown role {other}"),
    };
    match result {
        Ok(total) => println!("DONE {total}"),
        Err(resilience::Error::Paused { operation_id }) => println!("PAUSED {operation_id}"),
        Err(error) => println!("ERROR {error}"),
    }
    println!("RECORDED {}", handler.statistics().total_errors);
}

fn spawn(role: &str, dir: &Path) -> (Child, impl Iterator<Item = String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    (child, lines)
}

/// Runs `role`; with `signal`, sends SIGINT once the child asks for it. Returns its result line.
fn run(role: &str, dir: &Path, signal: bool) -> String {
    let (mut child, lines) = spawn(role, dir);
    let mut result = None;
    for line in lines {
        if line == "SIGNAL ME" && signal {
            // SAFETY: `kill` on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        }
        if line.starts_with("PAUSED") || line.starts_with("DONE") || line.starts_with("ERROR") {
            result = Some(line);
        }
    }
    assert!(child.wait().unwrap().success());
    result.expect("a result line")
}

fn pause_then_resume(role: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    assert_eq!(run(role, dir, true), "PAUSED sum");
    let store = FailsafeManager::open(dir.join("store")).unwrap();
    let paused = store.load_checkpoint::<Sum>("sum").unwrap().unwrap();
    assert_eq!(paused.state, ProcessState::Paused);
    // The item being processed when the signal came was finished: the checkpoint is at the
    // boundary after it, and holds its effect.
    let done = logged_items(dir);
    assert!(done.len() >= 4 && (done.len() as u64) < ITEMS, "{done:?}");
    assert_eq!(paused.cursor, done.len() as u64);
    assert_eq!(paused.data.total, (0..paused.cursor).sum::<u64>());

    let expected: u64 = (0..ITEMS).sum();
    assert_eq!(run(role, dir, false), format!("DONE {expected}"));
    // Every item exactly once over the two runs.
    assert_eq!(logged_items(dir), (0..ITEMS).collect::<Vec<_>>());
    let completed = store.load_checkpoint::<Sum>("sum").unwrap().unwrap();
    assert_eq!((completed.state, completed.cursor), (ProcessState::Completed, ITEMS));
}

#[test]
fn sigint_pauses_a_sync_loop_at_an_item_boundary_and_the_next_run_resumes_there() {
    pause_then_resume("sync");
}

#[test]
fn sigint_pauses_an_async_loop_at_an_item_boundary_and_the_next_run_resumes_there() {
    pause_then_resume("async");
}

#[test]
fn a_pause_is_not_retried_by_protected_nor_recorded_as_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn("protected", tmp.path());
    let lines: Vec<String> = lines.collect();
    assert!(child.wait().unwrap().success());
    assert!(lines.contains(&"PAUSED sum".to_owned()), "{lines:?}");
    assert!(lines.contains(&"RECORDED 0".to_owned()), "{lines:?}");
    // One attempt: items 0..=3, no retry from the checkpoint.
    assert_eq!(logged_items(tmp.path()), [0, 1, 2, 3]);
    let store = FailsafeManager::open(tmp.path().join("store")).unwrap();
    let paused = store.load_checkpoint::<Sum>("sum").unwrap().unwrap();
    assert_eq!((paused.state, paused.cursor), (ProcessState::Paused, 4));
}

#[test]
fn a_second_signal_gets_the_default_action() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn("stubborn", tmp.path());
    for line in lines {
        if line == "SIGNAL ME" {
            for _ in 0..2 {
                // SAFETY: `kill` on our own child's pid.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

#[checkpointed(manager = store, id = "crash", every = 10, state = state)]
fn crashing(
    store: &FailsafeManager,
    seen: &mut Vec<u64>,
    state: &mut Sum,
) -> Result<u64, resilience::Error> {
    for item in 0..100 {
        seen.push(item);
        state.total += item;
    }
    Ok(state.total)
}

#[test]
fn crash_after_leaves_the_store_as_a_kill_would() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    let mut seen = Vec::new();
    resilience::testing::crash_after(37);
    let result = crashing(&store, &mut seen, &mut Sum::default());
    assert!(
        matches!(&result, Err(resilience::Error::SimulatedCrash { operation_id }) if operation_id == "crash"),
        "{result:?}"
    );
    assert_eq!(seen, (0..37).collect::<Vec<_>>());
    // The last `Running` checkpoint, no `Failed` record, the lock released.
    let history = store.history::<Sum>("crash").unwrap();
    assert!(history.iter().all(|c| c.state == ProcessState::Running), "{history:?}");
    assert_eq!(history[0].cursor, 30);
    assert_eq!(history[0].data.total, (0..30).sum::<u64>());
    drop(store.lock("crash").unwrap());

    // The setting was used up: the resume redoes items 30..37 and completes.
    seen.clear();
    assert_eq!(crashing(&store, &mut seen, &mut Sum::default()).unwrap(), (0..100).sum::<u64>());
    assert_eq!(seen, (30..100).collect::<Vec<_>>());
}

#[test]
fn crash_after_more_items_than_the_loop_has_lets_the_run_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    resilience::testing::crash_after(1000);
    let mut seen = Vec::new();
    assert!(crashing(&store, &mut seen, &mut Sum::default()).is_ok());
    assert_eq!(
        store.load_checkpoint::<Sum>("crash").unwrap().unwrap().state,
        ProcessState::Completed
    );
}

#[test]
fn a_pause_is_no_failure_to_retry_and_is_reported_as_info() {
    use resilience::{Classify, Recovery, Severity};
    let paused = resilience::Error::Paused { operation_id: "a".into() };
    assert_eq!((paused.recovery(), paused.severity()), (Recovery::Abort, Severity::Info));
    assert_eq!(paused.error_code(), "resilience::Paused");
    assert_eq!(paused.to_string(), "operation `a` paused; run it again to resume");
    let crash = resilience::Error::SimulatedCrash { operation_id: "a".into() };
    assert_eq!(crash.recovery(), Recovery::Abort);
}

/// Under `#[protected(restore_on_failure)]`, a simulated crash restores nothing and records
/// nothing: a kill would not have either.
#[protected(manager = store, id = "edit", every = 5, backup = "{file}", restore_on_failure, errors = handler)]
fn edit(
    store: &FailsafeManager,
    handler: &ErrorHandler,
    file: &str,
    state: &mut Sum,
) -> Result<(), resilience::Error> {
    for item in 0..20u64 {
        std::fs::write(file, item.to_string()).unwrap();
        state.total += item;
    }
    Ok(())
}

#[test]
fn a_simulated_crash_under_protected_restores_nothing_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path().join("store")).unwrap();
    let handler = ErrorHandler::new(10);
    let file = tmp.path().join("data.txt");
    std::fs::write(&file, "original").unwrap();
    resilience::testing::crash_after(12);
    let result = edit(&store, &handler, file.to_str().unwrap(), &mut Sum::default());
    assert!(matches!(result, Err(resilience::Error::SimulatedCrash { .. })), "{result:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "11", "not restored");
    assert_eq!(handler.statistics().total_errors, 0);
    let last = store.load_checkpoint::<Sum>("edit").unwrap().unwrap();
    assert_eq!((last.state, last.cursor), (ProcessState::Running, 10));
}
