//! `FailsafeManager::on_progress`: when the callbacks are called, and what they get.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::{
    Checkpointable, Classify, FailsafeManager, ProcessState, ProgressUpdate, checkpointed,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Count {
    #[checkpoint(cursor)]
    done: u64,
}

#[derive(Debug, thiserror::Error, Classify)]
enum JobError {
    #[error("item {0} is damaged")]
    #[classify(skip)]
    Damaged(u64),
    #[error("item {0} failed")]
    Failed(u64),
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] resilience::Error),
}

fn check(item: u64, fail_at: Option<u64>) -> Result<(), JobError> {
    if Some(item) == fail_at {
        return Err(JobError::Failed(item));
    }
    if item % 100 == 7 { Err(JobError::Damaged(item)) } else { Ok(()) }
}

#[checkpointed(manager = store, id = "count", every = 250, input = [items])]
fn count(
    store: &FailsafeManager,
    items: u64,
    fail_at: Option<u64>,
    state: &mut Count,
) -> Result<(), JobError> {
    for item in 0..items {
        check(item, fail_at)?;
    }
    Ok(())
}

#[checkpointed(manager = store, id = "slow", every = 1000)]
fn slow(store: &FailsafeManager, items: u64) -> Result<(), JobError> {
    for _ in 0..items {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn recorder(store: &FailsafeManager) -> Arc<Mutex<Vec<ProgressUpdate>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    store.on_progress(move |p| log.lock().unwrap().push(p.clone()));
    seen
}

#[test]
fn one_update_at_the_start_one_per_checkpoint_and_one_at_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    let seen = recorder(&store);
    let second = Arc::new(Mutex::new(0));
    let calls = Arc::clone(&second);
    store.on_progress(move |_| *calls.lock().unwrap() += 1);

    count(&store, 1000, None, &mut Count::default()).unwrap();
    let seen = seen.lock().unwrap();
    let done: Vec<(u64, ProcessState)> = seen.iter().map(|p| (p.done, p.state)).collect();
    use ProcessState::{Completed, Running};
    // 10,000 fast items: no clock-driven update falls between the checkpoints (they take less
    // than 200 ms), and none per item.
    assert_eq!(
        done,
        [
            (0, Running),
            (250, Running),
            (500, Running),
            (750, Running),
            (1000, Running),
            (1000, Completed)
        ]
    );
    assert_eq!(*second.lock().unwrap(), seen.len(), "every callback is called");
    let last = seen.last().unwrap();
    assert_eq!(last.operation_id, "count");
    assert_eq!(last.operation_name, "count");
    assert_eq!(last.total, Some(1000));
    assert_eq!(last.skipped, 10);
    assert_eq!(last.eta, Some(Duration::ZERO));
    assert!(last.rate_per_sec > 0.0);
}

#[test]
fn a_failed_run_ends_with_a_failed_update_and_a_resume_counts_from_its_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    let seen = recorder(&store);
    assert!(count(&store, 1000, Some(600), &mut Count::default()).is_err());
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.state, ProcessState::Failed);
    assert_eq!(last.done, 600);

    seen.lock().unwrap().clear();
    count(&store, 1000, None, &mut Count::default()).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!((seen[0].done, seen[0].state), (500, ProcessState::Running));
    assert_eq!(seen.last().unwrap().state, ProcessState::Completed);
}

#[test]
fn between_checkpoints_an_update_comes_at_most_every_200_ms() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    let seen = recorder(&store);
    // 60 items of 10 ms, no checkpoint before the end: about 600 ms.
    slow(&store, 60).unwrap();
    let seen = seen.lock().unwrap();
    let running = seen.iter().filter(|p| p.state == ProcessState::Running).count();
    // The start, the end of the loop, and 1 to 3 clock-driven updates in between.
    assert!((3..=6).contains(&running), "{seen:#?}");
    let done: Vec<u64> = seen.iter().map(|p| p.done).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(seen.last().unwrap().state, ProcessState::Completed);
    assert_eq!(seen.last().unwrap().total, Some(60));
}

#[test]
fn a_run_without_callbacks_reports_nothing_and_a_manager_registers_for_its_own_runs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path().join("a")).unwrap();
    let other = FailsafeManager::open(tmp.path().join("b")).unwrap();
    let seen = recorder(&other);
    count(&store, 300, None, &mut Count::default()).unwrap();
    assert!(seen.lock().unwrap().is_empty());
}

#[cfg(feature = "progress")]
#[test]
fn the_progress_bar_takes_every_kind_of_update() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    store.on_progress(resilience::progress::bar());
    let seen = recorder(&store);
    count(&store, 1000, Some(600), &mut Count::default()).unwrap_err();
    count(&store, 1000, None, &mut Count::default()).unwrap();
    slow(&store, 3).unwrap();
    assert_eq!(seen.lock().unwrap().last().unwrap().state, ProcessState::Completed);
}
