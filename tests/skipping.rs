//! Items that fail and inputs that change: `?` in a tracked loop skips the items whose errors
//! classify as `Skip`; a resume with other arguments is `Error::InputChanged`.

use std::cell::RefCell;

use resilience::ErrorHandler;
use resilience::{
    Checkpointable, Classify, Error, FailsafeManager, ProcessState, checkpointed, protected,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, Classify)]
enum JobError {
    #[error("item {0} is damaged")]
    #[classify(skip, code = "E_DAMAGED")]
    Damaged(u32),
    #[error("item {0}: the disk is full")]
    #[classify(abort)]
    DiskFull(u32),
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] Error),
}

/// An error type without `Classify`: `?` ends the function as usual.
#[derive(Debug, thiserror::Error)]
enum PlainError {
    #[error("item {0} is damaged")]
    Damaged(u32),
    #[error(transparent)]
    Store(#[from] Error),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Tally {
    #[checkpoint(cursor)]
    done: u64,
    sum: u64,
    seen: Vec<u32>,
}

fn store() -> (tempfile::TempDir, FailsafeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(tmp.path()).unwrap();
    (tmp, manager)
}

thread_local! {
    /// What each item does: `Ok`, a damaged item, or a full disk.
    static PLAN: RefCell<Vec<(u32, char)>> = const { RefCell::new(Vec::new()) };
}

fn plan(faults: &[(u32, char)]) {
    PLAN.with(|p| *p.borrow_mut() = faults.to_vec());
}

fn process(item: u32) -> Result<u32, JobError> {
    match PLAN.with(|p| p.borrow().iter().find(|(i, _)| *i == item).map(|(_, f)| *f)) {
        Some('d') => Err(JobError::Damaged(item)),
        Some('f') => Err(JobError::DiskFull(item)),
        _ => Ok(item),
    }
}

#[checkpointed(manager = mgr, errors = handler, every = 4, id = "tally", skip_limit = 3)]
fn tally(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    items: &[u32],
    state: &mut Tally,
) -> Result<u64, JobError> {
    for &item in items {
        let value = process(item)?;
        state.sum += u64::from(value);
        state.seen.push(value);
    }
    Ok(state.sum)
}

#[test]
fn skippable_errors_are_recorded_and_the_loop_goes_on() {
    let (_tmp, mgr) = store();
    let handler = ErrorHandler::new(100);
    plan(&[(2, 'd'), (5, 'd')]);
    let items: Vec<u32> = (0..10).collect();
    let mut state = Tally::default();
    let sum = tally(&mgr, &handler, &items, &mut state).unwrap();
    assert_eq!(state.seen, [0, 1, 3, 4, 6, 7, 8, 9]);
    assert_eq!(sum, 38);
    // Every item counts as done, the skipped ones too.
    let done = mgr.load_checkpoint::<Tally>("tally").unwrap().unwrap();
    assert_eq!((done.state, done.cursor, done.data.done), (ProcessState::Completed, 10, 10));
    let skipped = mgr.skipped("tally").unwrap();
    let positions: Vec<u64> = skipped.iter().map(|s| s.position).collect();
    assert_eq!(positions, [2, 5]);
    assert_eq!(
        (skipped[0].error_code.as_str(), skipped[0].message.as_str()),
        ("E_DAMAGED", "item 2 is damaged")
    );
    // Recorded in the handler named by `errors = ...`, with the operation and the item.
    let history = handler.history();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].context,
        [("operation_id".into(), "tally".into()), ("item".into(), "5".into())]
    );
}

#[test]
fn other_errors_end_the_function_and_a_resume_keeps_the_earlier_skips() {
    let (_tmp, mgr) = store();
    let handler = ErrorHandler::new(100);
    plan(&[(1, 'd'), (6, 'f')]);
    let items: Vec<u32> = (0..10).collect();
    let err = tally(&mgr, &handler, &items, &mut Tally::default()).unwrap_err();
    assert!(matches!(err, JobError::DiskFull(6)), "{err:?}");
    let failed = mgr.load_checkpoint::<Tally>("tally").unwrap().unwrap();
    assert_eq!((failed.state, failed.cursor), (ProcessState::Failed, 4));
    assert_eq!(mgr.skipped("tally").unwrap().len(), 1);

    // The resumed run starts at item 4 and keeps the skip of item 1.
    plan(&[(1, 'd'), (7, 'd')]);
    let mut state = Tally::default();
    tally(&mgr, &handler, &items, &mut state).unwrap();
    assert_eq!(state.seen, [0, 2, 3, 4, 5, 6, 8, 9]);
    let positions: Vec<u64> = mgr.skipped("tally").unwrap().iter().map(|s| s.position).collect();
    assert_eq!(positions, [1, 7]);
}

#[test]
fn the_skip_limit_counts_across_resumed_runs() {
    let (_tmp, mgr) = store();
    let handler = ErrorHandler::new(100);
    let items: Vec<u32> = (0..20).collect();
    // Two skips, then a full disk at item 9: the checkpoint at 8 keeps both skips.
    plan(&[(1, 'd'), (3, 'd'), (9, 'f')]);
    tally(&mgr, &handler, &items, &mut Tally::default()).unwrap_err();
    assert_eq!(mgr.skipped("tally").unwrap().len(), 2);
    // One more skip is allowed (limit 3); the fourth skippable error ends the function.
    plan(&[(10, 'd'), (12, 'd')]);
    let err = tally(&mgr, &handler, &items, &mut Tally::default()).unwrap_err();
    assert!(matches!(err, JobError::Damaged(12)), "{err:?}");
    let failed = mgr.load_checkpoint::<Tally>("tally").unwrap().unwrap();
    assert_eq!((failed.state, failed.cursor), (ProcessState::Failed, 12));
    assert_eq!(mgr.skipped("tally").unwrap().len(), 3);
}

#[checkpointed(manager = mgr, id = "plain")]
fn plain(mgr: &FailsafeManager, items: &[u32]) -> Result<u32, PlainError> {
    #[checkpoint(transient)]
    let mut count = 0;
    for &item in items {
        if item == 3 {
            Err(PlainError::Damaged(item))?;
        }
        count += 1;
    }
    Ok(count)
}

#[test]
fn errors_without_classify_end_the_function() {
    let (_tmp, mgr) = store();
    let err = plain(&mgr, &[0, 1, 2, 3, 4]).unwrap_err();
    assert!(matches!(err, PlainError::Damaged(3)));
    assert!(mgr.skipped("plain").unwrap().is_empty());
}

#[checkpointed(manager = mgr, id = "shapes", input = none)]
fn shapes(mgr: &FailsafeManager, rows: &[Vec<u32>], state: &mut Tally) -> Result<(), JobError> {
    'rows: for row in rows {
        // A closure's `?` is the closure's own.
        let first = || -> Result<u32, JobError> { process(*row.first().unwrap_or(&0)) };
        if first().is_err() {
            state.seen.push(1000);
        }
        for &item in row {
            // From an inner loop, a skip goes on with the next row.
            let value = process(item)?;
            state.seen.push(value);
        }
        if row.is_empty() {
            continue 'rows;
        }
    }
    Ok(())
}

#[test]
fn a_skip_inside_an_inner_loop_skips_the_tracked_item_and_closures_are_left_alone() {
    let (_tmp, mgr) = store();
    plan(&[(11, 'd'), (20, 'd')]);
    let rows = vec![vec![10, 11, 12], vec![], vec![20, 21], vec![30]];
    let mut state = Tally::default();
    shapes(&mgr, &rows, &mut state).unwrap();
    // Row 0 stops at 11; row 2's closure sees 20 damaged, then its loop skips the row at 20.
    assert_eq!(state.seen, [10, 1000, 30]);
    let positions: Vec<u64> = mgr.skipped("shapes").unwrap().iter().map(|s| s.position).collect();
    assert_eq!(positions, [0, 2]);
}

#[protected(manager = mgr, errors = handler, id = "protected-skip", every = 2)]
fn protected_tally(
    mgr: &FailsafeManager,
    handler: &ErrorHandler,
    items: &[u32],
    state: &mut Tally,
) -> Result<u64, JobError> {
    for &item in items {
        state.sum += u64::from(process(item)?);
    }
    Ok(state.sum)
}

#[test]
fn protected_skips_too_and_records_in_its_handler() {
    let (_tmp, mgr) = store();
    let handler = ErrorHandler::new(100);
    plan(&[(4, 'd')]);
    let sum = protected_tally(&mgr, &handler, &[1, 2, 3, 4, 5], &mut Tally::default()).unwrap();
    assert_eq!(sum, 11);
    assert_eq!(handler.history().len(), 1);
    assert_eq!(handler.history()[0].context[1], ("item".into(), "3".into()));
    assert_eq!(mgr.skipped("protected-skip").unwrap()[0].position, 3);
}

// Guarded resume.

thread_local! {
    static FAIL_AT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn line_value(line: &str, index: usize) -> Result<u64, JobError> {
    if FAIL_AT.with(std::cell::Cell::get) == Some(index) {
        return Err(JobError::DiskFull(index as u32));
    }
    Ok(line.len() as u64)
}

#[checkpointed(manager = mgr, id = "sum-file")]
fn sum_file(
    mgr: &FailsafeManager,
    name: &str,
    lines: &[&str],
    state: &mut Tally,
) -> Result<u64, JobError> {
    for (index, line) in lines.iter().enumerate() {
        state.sum += line_value(line, index)?;
    }
    Ok(state.sum)
}

#[test]
fn resuming_with_other_arguments_is_an_error_that_names_them() {
    let (_tmp, mgr) = store();
    let a = ["x"; 100];
    let b = ["yy"; 100];
    FAIL_AT.with(|f| f.set(Some(50)));
    sum_file(&mgr, "a.csv", &a, &mut Tally::default()).unwrap_err();
    FAIL_AT.with(|f| f.set(None));
    let err = sum_file(&mgr, "b.csv", &b, &mut Tally::default()).unwrap_err();
    let JobError::Store(Error::InputChanged { operation_id, changed }) = &err else {
        panic!("expected InputChanged, got {err:?}");
    };
    assert_eq!(operation_id, "sum-file");
    assert_eq!(changed, &["name", "lines"]);
    let text = err.to_string();
    assert!(text.contains("`name` changed") && text.contains("on_input_change"), "{text}");
    // Nothing was mixed: the checkpoint of a.csv is still there, and a.csv resumes.
    assert_eq!(sum_file(&mgr, "a.csv", &a, &mut Tally::default()).unwrap(), 100);
}

#[checkpointed(manager = mgr, id = "restarting", on_input_change = "restart")]
fn restarting(mgr: &FailsafeManager, lines: &[&str], state: &mut Tally) -> Result<u64, JobError> {
    for (index, line) in lines.iter().enumerate() {
        state.sum += line_value(line, index)?;
    }
    Ok(state.sum)
}

#[checkpointed(manager = mgr, id = "unguarded", input = none)]
fn unguarded(mgr: &FailsafeManager, lines: &[&str], state: &mut Tally) -> Result<u64, JobError> {
    for (index, line) in lines.iter().enumerate() {
        state.sum += line_value(line, index)?;
    }
    Ok(state.sum)
}

#[checkpointed(manager = mgr, id = "named", input = [lines])]
fn named(
    mgr: &FailsafeManager,
    lines: &[&str],
    verbose: bool,
    state: &mut Tally,
) -> Result<u64, JobError> {
    for (index, line) in lines.iter().enumerate() {
        if verbose {
            state.seen.push(index as u32);
        }
        state.sum += line_value(line, index)?;
    }
    Ok(state.sum)
}

#[test]
fn restart_none_and_named_inputs() {
    let (_tmp, mgr) = store();
    let a = ["x"; 10];
    let b = ["yy"; 10];

    FAIL_AT.with(|f| f.set(Some(5)));
    restarting(&mgr, &a, &mut Tally::default()).unwrap_err();
    unguarded(&mgr, &a, &mut Tally::default()).unwrap_err();
    named(&mgr, &a, false, &mut Tally::default()).unwrap_err();
    FAIL_AT.with(|f| f.set(None));

    // "restart": b starts afresh, so its sum is b's alone.
    assert_eq!(restarting(&mgr, &b, &mut Tally::default()).unwrap(), 20);
    // `input = none`: the caller chose to resume whatever the arguments (a's 5 + b's 5).
    assert_eq!(unguarded(&mgr, &b, &mut Tally::default()).unwrap(), 5 + 10);
    // `input = [lines]`: `verbose` may change, `lines` may not.
    assert_eq!(named(&mgr, &a, true, &mut Tally::default()).unwrap(), 10);
    FAIL_AT.with(|f| f.set(Some(5)));
    named(&mgr, &a, false, &mut Tally::default()).unwrap_err();
    FAIL_AT.with(|f| f.set(None));
    let err = named(&mgr, &b, false, &mut Tally::default()).unwrap_err();
    assert!(
        matches!(err, JobError::Store(Error::InputChanged { ref changed, .. }) if changed == &["lines"])
    );
}

#[cfg(feature = "tokio")]
mod async_fns {
    use super::*;

    #[checkpointed(manager = mgr, errors = handler, id = "async-tally", every = 2)]
    async fn async_tally(
        mgr: &FailsafeManager,
        handler: &ErrorHandler,
        items: &[u32],
        state: &mut Tally,
    ) -> Result<u64, JobError> {
        for &item in items {
            tokio::task::yield_now().await;
            state.sum += u64::from(process(item)?);
        }
        Ok(state.sum)
    }

    #[tokio::test]
    async fn an_async_tracked_loop_skips_too() {
        let (_tmp, mgr) = store();
        let handler = ErrorHandler::new(10);
        plan(&[(3, 'd')]);
        let sum = async_tally(&mgr, &handler, &[1, 2, 3, 4], &mut Tally::default()).await;
        assert_eq!(sum.unwrap(), 7);
        assert_eq!(mgr.skipped("async-tally").unwrap()[0].position, 2);
        assert_eq!(handler.history().len(), 1);
    }
}
