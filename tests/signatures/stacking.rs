//! The attributes stacked with each other and with `#[tracing::instrument]`, in both orders.
//! The orders that cannot work exactly are compile errors naming the right order
//! (`tests/ui/stacking-*.rs`); the others are here, each resuming at its boundary with the
//! right sum.

use std::cell::Cell;

use resilience::{Classify, Error, FailsafeManager, checkpointed, protected, retry};

use super::checkpointed::{Sum, TOTAL, crash_then_resume};

#[derive(Debug, thiserror::Error, Classify)]
enum JobError {
    #[error("item {0} timed out")]
    #[classify(retry)]
    Flaky(u64),
    #[error(transparent)]
    #[classify(transparent)]
    Resilience(#[from] Error),
}

/// `#[retry]` below `#[checkpointed]`: each attempt is a run that resumes from the last
/// checkpoint.
#[checkpointed(manager = mgr, id = "retry-below", every = 10)]
#[retry(max = 3, initial = "1ms")]
fn retried_inside(
    mgr: &FailsafeManager,
    fail_once: &Cell<bool>,
    state: &mut Sum,
) -> Result<u64, JobError> {
    for item in 0..20u64 {
        if item == 15 && fail_once.replace(false) {
            return Err(JobError::Flaky(item));
        }
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn retry_below_checkpointed_resumes_each_attempt() {
    let (_dir, mgr) = super::checkpointed::store();
    let mut state = Sum::default();
    let fail_once = Cell::new(true);
    assert_eq!(retried_inside(&mgr, &fail_once, &mut state).unwrap(), TOTAL);
    assert_eq!(state.sum, TOTAL);
    assert!(!fail_once.get(), "the first attempt failed");
}

/// `#[retry]` below `#[protected]`: the same, with the protection's restore.
#[protected(manager = mgr, id = "retry-below-protected", every = 10)]
#[retry(max = 3, initial = "1ms")]
fn retried_inside_protected(
    mgr: &FailsafeManager,
    fail_once: &Cell<bool>,
    state: &mut Sum,
) -> Result<u64, JobError> {
    for item in 0..20u64 {
        if item == 15 && fail_once.replace(false) {
            return Err(JobError::Flaky(item));
        }
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn retry_below_protected_resumes_each_attempt() {
    let (_dir, mgr) = super::checkpointed::store();
    let mut state = Sum::default();
    let fail_once = Cell::new(true);
    assert_eq!(retried_inside_protected(&mgr, &fail_once, &mut state).unwrap(), TOTAL);
    assert_eq!(state.sum, TOTAL);
    assert!(!fail_once.get(), "the first attempt failed");
}

/// `#[tracing::instrument]` below `#[checkpointed]`: the span covers the whole run.
#[checkpointed(manager = mgr, id = "instrument-below", every = 10)]
#[tracing::instrument(skip_all)]
fn instrumented_inside(mgr: &FailsafeManager, state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn instrument_below_checkpointed_tracks_the_loop() {
    crash_then_resume("instrument-below", instrumented_inside);
}

#[protected(manager = mgr, id = "instrument-below-protected", every = 10)]
#[tracing::instrument(skip_all, err)]
fn instrumented_inside_protected(mgr: &FailsafeManager, state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn instrument_below_protected_tracks_the_loop() {
    crash_then_resume("instrument-below-protected", instrumented_inside_protected);
}

#[checkpointed(manager = mgr, id = "instrument-below-async", every = 10)]
#[tracing::instrument(skip_all)]
async fn instrumented_inside_async(mgr: &FailsafeManager, state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn instrument_below_checkpointed_async_tracks_the_loop() {
    crash_then_resume("instrument-below-async", |mgr, state| {
        super::checkpointed::block_on(instrumented_inside_async(mgr, state))
    });
}
