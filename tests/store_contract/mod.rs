//! The `FailsafeManager` contract that every store keeps, as test bodies over a manager.
//!
//! `tests/contract` runs them on the file store and `tests/postgres.rs` on the Postgres store,
//! through [`store_contract_tests!`]: one body, both stores.

use std::time::{Duration, SystemTime};

use resilience::{Checkpoint, Checkpointable, Error, FailsafeManager, FailsafeStats};
use resilience::{OperationSummary, ProcessState};
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

/// Defines one `#[test]` per body; `$open` is a `fn(&str) -> (Guard, FailsafeManager)` given a
/// short name for the test's store (a guard that removes the store when dropped).
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
        );
    };
    ($open:expr; $($body:ident),* $(,)?) => {
        $(
            #[test]
            fn $body() {
                let (_guard, manager) = $open(stringify!($body));
                store_contract::$body(&manager);
            }
        )*
    };
}

pub fn save_and_load_round_trip_every_field(manager: &FailsafeManager) {
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

pub fn history_is_newest_first(manager: &FailsafeManager) {
    for i in 0..3 {
        manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Sum { sum: i }).unwrap();
    }
    let history: Vec<Checkpoint<Sum>> = manager.history("op").unwrap();
    assert_eq!(history.iter().map(|c| c.data.sum).collect::<Vec<_>>(), [2, 1, 0]);
    assert!(manager.history::<Sum>("missing").unwrap().is_empty());
}

pub fn can_resume_and_resume_operation_follow_the_last_state(manager: &FailsafeManager) {
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

pub fn resume_operation_on_completed_or_missing_is_nothing_to_resume(manager: &FailsafeManager) {
    let missing = manager.resume_operation("never", |c: Checkpoint<Sum>| c.data);
    assert!(matches!(missing, Err(Error::NothingToResume { .. })));

    manager.save_checkpoint("done", "Done", ProcessState::Completed, 1.0, &Sum::default()).unwrap();
    let mut called = false;
    let completed = manager.resume_operation("done", |_: Checkpoint<Sum>| called = true);
    assert!(matches!(completed, Err(Error::NothingToResume { .. })));
    assert!(!called);
}

pub fn operations_recoverable_operations_discard_and_clear_completed(manager: &FailsafeManager) {
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

pub fn loading_with_another_schema_is_schema_mismatch(manager: &FailsafeManager) {
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &Sum { sum: 1 }).unwrap();
    let result = manager.load_checkpoint::<Import>("op");
    assert!(matches!(result, Err(Error::SchemaMismatch { .. })), "{result:?}");
}

pub fn any_operation_id_round_trips(manager: &FailsafeManager) {
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

pub fn statistics_count_the_states(manager: &FailsafeManager) {
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

pub fn skipped_items_are_listed_per_operation(manager: &FailsafeManager) {
    assert!(manager.skipped("never").unwrap().is_empty());
    manager.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &Sum { sum: 1 }).unwrap();
    assert!(manager.skipped("op").unwrap().is_empty(), "a plain save records no skipped item");
}
