//! The `FailsafeManager` contract that every store keeps, as test bodies over the managers of
//! one store.
//!
//! `tests/contract` runs them on the file store and `tests/postgres.rs` on the Postgres store,
//! through [`store_contract_tests!`]: one body, both stores.

use std::time::{Duration, SystemTime};

use resilience::{Checkpoint, Checkpointable, Classify, Error, FailsafeManager, FailsafeStats};
use resilience::{OperationSummary, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Import {
    #[checkpoint(cursor)]
    pub done: u64,
    #[checkpoint(total)]
    pub total: u64,
    pub imported_bytes: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Sum {
    pub sum: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Count {
    #[checkpoint(cursor)]
    pub n: u64,
    pub label: String,
}

pub fn count(n: u64) -> Count {
    Count { n, label: format!("n = {n}") }
}

/// Defines one `#[test]` per body; `$open` is a `fn(&str) -> (Guard, impl Fn() -> FailsafeManager)`
/// given a short name for the test's store: a guard that removes the store when dropped, and a
/// function that opens another manager of that store, keeping at most 3 checkpoints.
#[macro_export]
macro_rules! store_contract_tests {
    ($open:expr) => {
        $crate::store_contract_tests!($open;
            save_and_load_round_trip_every_field,
            history_is_newest_first,
            can_resume_and_resume_operation_follow_the_last_state,
            resume_operation_on_completed_or_missing_is_nothing_to_resume,
            operations_recoverable_operations_discard_and_clear_completed,
            loading_with_another_schema_is_schema_mismatch,
            any_operation_id_round_trips,
            statistics_count_the_states,
            skipped_items_are_listed_per_operation,
            round_trip_and_history,
            listings_discard_and_clear,
            locks_are_honoured,
            claims_take_each_operation_once,
            recovery_shares_the_operations_among_workers,
            checkpointed_runs_resume_and_skip,
        );
    };
    ($open:expr; $($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let (_guard, open) = $open(stringify!($body));
                store_contract::$body(&open);
            }
        )*
    };
}

pub fn save_and_load_round_trip_every_field(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    assert!(manager.load_checkpoint::<Import>("import-1").unwrap().is_none());
    let data = Import { done: 3, total: 10, imported_bytes: 300 };
    let before = SystemTime::now();
    manager.save_checkpoint("import-1", "Photo Import", ProcessState::Running, 0.3, &data).unwrap();
    manager.save_checkpoint("import-1", "Photo Import", ProcessState::Paused, 0.4, &data).unwrap();
    let checkpoint: Checkpoint<Import> = manager.load_checkpoint("import-1").unwrap().unwrap();
    let Checkpoint {
        operation_id,
        operation_name,
        state,
        progress,
        cursor,
        data: loaded,
        sequence,
        saved_at,
        error,
    } = checkpoint;
    assert_eq!(operation_id, "import-1");
    assert_eq!(operation_name, "Photo Import");
    assert_eq!(state, ProcessState::Paused);
    assert_eq!(progress, 0.4);
    assert_eq!(cursor, 3, "the state's cursor field");
    assert_eq!(loaded, data);
    let first = &manager.history::<Import>("import-1").unwrap()[1];
    assert!(sequence > first.sequence, "sequence grows");
    assert!(saved_at >= before - Duration::from_secs(1));
    assert_eq!(error, None);
}

pub fn history_is_newest_first(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    for i in 0..3 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Sum { sum: i }).unwrap();
    }
    let history: Vec<Checkpoint<Sum>> = manager.history("op").unwrap();
    assert_eq!(history.iter().map(|c| c.data.sum).collect::<Vec<_>>(), [2, 1, 0]);
    assert!(manager.history::<Sum>("missing").unwrap().is_empty());
}

pub fn can_resume_and_resume_operation_follow_the_last_state(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    assert!(!manager.can_resume("job").unwrap());
    for state in [ProcessState::Running, ProcessState::Paused, ProcessState::Failed] {
        manager.save_checkpoint("job", "Job", state, 0.5, &Sum { sum: 9 }).unwrap();
        assert!(manager.can_resume("job").unwrap(), "{state:?}");
        let sum =
            manager.resume_operation("job", |checkpoint: Checkpoint<Sum>| checkpoint.data.sum);
        assert_eq!(sum.unwrap(), 9);
    }
    manager.save_checkpoint("job", "Job", ProcessState::Initialized, 0.0, &Sum::default()).unwrap();
    assert!(!manager.can_resume("job").unwrap());
}

pub fn resume_operation_on_completed_or_missing_is_nothing_to_resume(
    open: &dyn Fn() -> FailsafeManager,
) {
    let manager = &open();
    let missing = manager.resume_operation("never", |c: Checkpoint<Sum>| c.data);
    assert!(matches!(missing, Err(Error::NothingToResume { .. })));

    manager.save_checkpoint("done", "Done", ProcessState::Completed, 1.0, &Sum::default()).unwrap();
    let mut called = false;
    let completed = manager.resume_operation("done", |_: Checkpoint<Sum>| called = true);
    assert!(matches!(completed, Err(Error::NothingToResume { .. })));
    assert!(!called);
}

pub fn operations_recoverable_operations_discard_and_clear_completed(
    open: &dyn Fn() -> FailsafeManager,
) {
    let manager = &open();
    let unit = ();
    manager.save_checkpoint("a-running", "A", ProcessState::Running, 0.1, &unit).unwrap();
    manager.save_checkpoint("b-paused", "B", ProcessState::Paused, 0.2, &unit).unwrap();
    manager.save_checkpoint("c-failed", "C", ProcessState::Failed, 0.3, &unit).unwrap();
    manager.save_checkpoint("d-done", "D", ProcessState::Completed, 1.0, &unit).unwrap();
    manager.save_checkpoint("e-new", "E", ProcessState::Initialized, 0.0, &unit).unwrap();

    let ids = |list: Vec<OperationSummary>| {
        let mut ids: Vec<String> = list.into_iter().map(|s| s.operation_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(manager.operations().unwrap()),
        ["a-running", "b-paused", "c-failed", "d-done", "e-new"]
    );
    assert_eq!(
        ids(manager.recoverable_operations().unwrap()),
        ["a-running", "b-paused", "c-failed"]
    );

    let summary =
        manager.operations().unwrap().into_iter().find(|s| s.operation_id == "b-paused").unwrap();
    assert_eq!((summary.operation_id.as_str(), summary.operation_name.as_str()), ("b-paused", "B"));
    assert_eq!((summary.state, summary.progress), (ProcessState::Paused, 0.2));

    assert_eq!(manager.clear_completed_checkpoints().unwrap(), 1);
    assert!(manager.load_checkpoint::<()>("d-done").unwrap().is_none());

    assert!(manager.discard("a-running").unwrap());
    assert!(!manager.discard("a-running").unwrap());
    assert_eq!(ids(manager.operations().unwrap()), ["b-paused", "c-failed", "e-new"]);
}

pub fn loading_with_another_schema_is_schema_mismatch(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Sum { sum: 1 }).unwrap();
    let result = manager.load_checkpoint::<Import>("op");
    assert!(matches!(result, Err(Error::SchemaMismatch { .. })), "{result:?}");
}

pub fn any_operation_id_round_trips(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    let long = "x".repeat(10 * 1024);
    let ids = ["a/b/c", "..", "../../escape", "nul\0byte", "🦀 crab", "/absolute", long.as_str()];
    let mut expected = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let sum = Sum { sum: i as u64 };
        match manager.save_checkpoint(id, "Op", ProcessState::Paused, 0.0, &sum) {
            Ok(()) => expected.push(id.to_string()),
            // A store may refuse an id it cannot hold exactly (Postgres: a NUL), by name, and
            // write nothing; never store it altered.
            Err(Error::InvalidOperationId { operation_id, .. }) => assert_eq!(operation_id, *id),
            Err(other) => panic!("saving `{}`: {other}", id.escape_debug()),
        }
    }
    assert!(expected.len() >= ids.len() - 1, "only the NUL id may be refused: {expected:?}");
    for (i, id) in ids.iter().enumerate() {
        let checkpoint: Option<Checkpoint<Sum>> = manager.load_checkpoint(id).unwrap();
        match checkpoint {
            Some(c) => assert_eq!((c.operation_id.as_str(), c.data.sum), (*id, i as u64)),
            None => assert!(!expected.contains(&id.to_string()), "`{id}` was saved"),
        }
    }
    let mut listed: Vec<String> =
        manager.operations().unwrap().into_iter().map(|s| s.operation_id).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

pub fn statistics_count_the_states(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    let unit = ();
    manager.save_checkpoint("i", "I", ProcessState::Initialized, 0.0, &unit).unwrap();
    manager.save_checkpoint("r", "R", ProcessState::Running, 0.0, &unit).unwrap();
    manager.save_checkpoint("p", "P", ProcessState::Paused, 0.0, &unit).unwrap();
    manager.save_checkpoint("f", "F", ProcessState::Failed, 0.0, &unit).unwrap();
    manager.save_checkpoint("c1", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    manager.save_checkpoint("c2", "C", ProcessState::Completed, 1.0, &unit).unwrap();
    let stats: FailsafeStats = manager.statistics().unwrap();
    let c = &stats.checkpoints;
    assert_eq!((c.total_operations, c.active_operations), (6, 2));
    assert_eq!((c.completed, c.failed, c.paused), (2, 1, 1));
}

pub fn skipped_items_are_listed_per_operation(open: &dyn Fn() -> FailsafeManager) {
    let manager = &open();
    assert!(manager.skipped("never").unwrap().is_empty());
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &Sum { sum: 1 }).unwrap();
    assert!(manager.skipped("op").unwrap().is_empty(), "a plain save records no skipped item");
}

// Bodies that open several managers of one store.

pub fn round_trip_and_history(open: &dyn Fn() -> FailsafeManager) {
    let m = open();
    assert!(m.load_checkpoint::<Count>("op").unwrap().is_none());
    for n in 1..=5 {
        m.save_checkpoint("op", "Op", ProcessState::Running, n as f64 / 10.0, &count(n)).unwrap();
    }
    let newest = m.load_checkpoint::<Count>("op").unwrap().unwrap();
    assert_eq!((newest.data, newest.cursor, newest.sequence), (count(5), 5, 5));
    let history: Vec<u64> =
        m.history::<Count>("op").unwrap().into_iter().map(|c| c.data.n).collect();
    assert_eq!(history, [5, 4, 3], "newest first, max_checkpoints of them");
    // Another manager sees the same.
    assert_eq!(open().load_checkpoint::<Count>("op").unwrap().unwrap().data, count(5));
    // A checkpoint of another type is a schema mismatch, never a misread.
    assert!(matches!(m.load_checkpoint::<()>("op"), Err(Error::SchemaMismatch { .. })));
}

pub fn listings_discard_and_clear(open: &dyn Fn() -> FailsafeManager) {
    let m = open();
    for (id, state) in [
        ("a-running", ProcessState::Running),
        ("b-paused", ProcessState::Paused),
        ("c-failed", ProcessState::Failed),
        ("d-done", ProcessState::Completed),
    ] {
        m.save_checkpoint(id, "Op", state, 0.5, &count(1)).unwrap();
    }
    let ids = |list: Vec<resilience::OperationSummary>| -> Vec<String> {
        list.into_iter().map(|s| s.operation_id).collect()
    };
    assert_eq!(ids(m.operations().unwrap()), ["a-running", "b-paused", "c-failed", "d-done"]);
    assert_eq!(ids(m.recoverable_operations().unwrap()), ["a-running", "b-paused", "c-failed"]);
    let stats = m.statistics().unwrap();
    assert_eq!((stats.checkpoints.total_operations, stats.checkpoints.completed), (4, 1));
    assert_eq!(m.clear_completed_checkpoints().unwrap(), 1);
    assert!(m.discard("a-running").unwrap());
    assert!(!m.discard("a-running").unwrap());
    assert_eq!(ids(open().operations().unwrap()), ["b-paused", "c-failed"]);
}

pub fn locks_are_honoured(open: &dyn Fn() -> FailsafeManager) {
    let (holder, other) = (open(), open());
    holder.save_checkpoint("job", "Job", ProcessState::Completed, 1.0, &count(1)).unwrap();
    let lock = holder.lock("job").unwrap();
    assert!(matches!(other.lock("job"), Err(Error::Locked { .. })));
    let save = other.save_checkpoint("job", "Job", ProcessState::Running, 0.0, &count(2));
    assert!(matches!(save, Err(Error::Locked { .. })), "{save:?}");
    assert!(matches!(other.discard("job"), Err(Error::Locked { .. })));
    assert_eq!(other.clear_completed_checkpoints().unwrap(), 0);
    holder.save_checkpoint("job", "Job", ProcessState::Running, 0.5, &count(3)).unwrap();
    assert_eq!(other.load_checkpoint::<Count>("job").unwrap().unwrap().data, count(3));
    drop(lock);
    other.save_checkpoint("job", "Job", ProcessState::Running, 0.6, &count(4)).unwrap();
    assert_eq!(holder.load_checkpoint::<Count>("job").unwrap().unwrap().data, count(4));
}

pub fn claims_take_each_operation_once(open: &dyn Fn() -> FailsafeManager) {
    let m = open();
    for id in ["x", "y", "z"] {
        m.save_checkpoint(id, "Op", ProcessState::Failed, 0.5, &count(1)).unwrap();
    }
    m.save_checkpoint("done", "Op", ProcessState::Completed, 1.0, &count(1)).unwrap();
    let workers: Vec<FailsafeManager> = (0..4).map(|_| open()).collect();
    let mut claimed = Vec::new();
    let mut locks = Vec::new();
    for worker in workers.iter().cycle().take(8) {
        if let Some((summary, lock)) = worker.claim_recoverable().unwrap() {
            claimed.push(summary.operation_id);
            locks.push(lock);
        }
    }
    claimed.sort();
    assert_eq!(claimed, ["x", "y", "z"]);
    drop(locks);
    assert!(workers[0].claim_recoverable().unwrap().is_some());
}

#[derive(Debug, thiserror::Error, Classify)]
pub enum JobError {
    #[error("item {0} is damaged")]
    #[classify(skip)]
    Damaged(u64),
    #[error("item {0} failed")]
    #[classify(abort)]
    Failed(u64),
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] Error),
}

#[checkpointed(manager = mgr, id = "tracked", every = 2, input = [items])]
fn tracked(
    mgr: &FailsafeManager,
    items: &[u64],
    fail_at: Option<u64>,
    state: &mut Count,
) -> Result<u64, JobError> {
    for &item in items {
        if item == 3 {
            Err(JobError::Damaged(item))?;
        }
        if Some(item) == fail_at {
            return Err(JobError::Failed(item));
        }
        state.label.push_str(&item.to_string());
    }
    Ok(state.n)
}

#[checkpointed(manager = mgr, id = "job-{job}", name = "Job", every = 2, input = [job])]
fn job(
    mgr: &FailsafeManager,
    job: u64,
    fail: bool,
    runs: &std::sync::Mutex<Vec<u64>>,
) -> Result<(), JobError> {
    for item in 0..6 {
        if fail && item == 3 {
            return Err(JobError::Failed(item));
        }
    }
    runs.lock().unwrap().push(job);
    Ok(())
}

/// Workers recovering together: each operation is resumed by exactly one of them, its
/// handler's `#[checkpointed]` call taking over the claimed lock.
pub fn recovery_shares_the_operations_among_workers(open: &dyn Fn() -> FailsafeManager) {
    let m = open();
    let runs = std::sync::Mutex::new(Vec::new());
    for n in 0..8 {
        assert!(job(&m, n, true, &runs).is_err());
    }
    let workers: Vec<FailsafeManager> = (0..3).map(|_| open()).collect();
    let reports: Vec<resilience::recovery::RecoveryReport> = std::thread::scope(|scope| {
        let runs = &runs;
        let handles: Vec<_> = workers
            .iter()
            .map(|w| {
                scope.spawn(move || {
                    resilience::recovery::Recovery::new(w)
                        .handler("Job", |op: &resilience::OperationSummary| {
                            let n = op.operation_id.strip_prefix("job-").unwrap().parse().unwrap();
                            job(w, n, false, runs).map(|()| "done")
                        })
                        .io(std::io::empty(), std::io::sink())
                        .run()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut resumed: Vec<String> = reports.iter().flat_map(|r| r.resumed.clone()).collect();
    resumed.sort();
    let expected: Vec<String> = (0..8).map(|n| format!("job-{n}")).collect();
    assert_eq!(resumed, expected, "{reports:?}");
    assert!(reports.iter().all(|r| r.failed.is_empty() && r.declined.is_empty()), "{reports:?}");
    let mut runs = runs.into_inner().unwrap();
    runs.sort();
    assert_eq!(runs, (0..8).collect::<Vec<_>>(), "every operation ran once");
    assert!(m.recoverable_operations().unwrap().is_empty());
}

pub fn checkpointed_runs_resume_and_skip(open: &dyn Fn() -> FailsafeManager) {
    let m = open();
    let items: Vec<u64> = (0..8).collect();
    let err = tracked(&m, &items, Some(6), &mut Count::default()).unwrap_err();
    assert!(matches!(err, JobError::Failed(6)));
    let failed = m.load_checkpoint::<Count>("tracked").unwrap().unwrap();
    assert_eq!((failed.state, failed.cursor), (ProcessState::Failed, 6));
    let mut state = Count::default();
    assert_eq!(tracked(&m, &items, None, &mut state).unwrap(), 8);
    assert_eq!(state.label, "0124567");
    let skipped = open().skipped("tracked").unwrap();
    assert_eq!(skipped.iter().map(|s| s.position).collect::<Vec<_>>(), [3]);
}
