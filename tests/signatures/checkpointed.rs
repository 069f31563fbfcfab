//! Shapes under `#[checkpointed]`. Each function sums the items `0..20` into its state with a
//! checkpoint every 10 items; [`crash_then_resume`] stops the first run after 15 items, as a
//! killed process would, and checks that the second run resumes at item 10 with the sum of the
//! items before it restored: 190 in the end, not 145 (a resume without the state) or more (a
//! state counted twice).

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed, testing};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
pub(crate) struct Sum {
    #[checkpoint(cursor)]
    done: u64,
    pub(crate) sum: u64,
}

/// The sum of the items `0..20`.
pub(crate) const TOTAL: u64 = 190;

pub(crate) fn store() -> (tempfile::TempDir, FailsafeManager) {
    let dir = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
    (dir, manager)
}

/// Crashes `run` after 15 items, checks the checkpoint it left (item 10, the sum of `0..10`),
/// then runs it again: it must resume there and end with [`TOTAL`].
pub(crate) fn crash_then_resume<E: std::fmt::Debug>(
    id: &str,
    run: impl Fn(&FailsafeManager, &mut Sum) -> Result<u64, E>,
) {
    let (_dir, mgr) = store();
    testing::crash_after(15);
    let crashed = run(&mgr, &mut Sum::default());
    assert!(crashed.is_err(), "{id}: the simulated crash did not stop the run: {crashed:?}");
    let checkpoint = mgr.load_checkpoint::<Sum>(id).unwrap().expect("a checkpoint");
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Running, 10), "{id}");
    assert_eq!(checkpoint.data.sum, 45, "{id}: the checkpoint carries the state");
    let mut state = Sum::default();
    let total = run(&mgr, &mut state).unwrap();
    assert_eq!((total, state.sum), (TOTAL, TOTAL), "{id}");
}

/// The state's type through a `macro_rules!` `$t:ty`, which reaches the attribute inside an
/// invisible group: the whole `&mut Sum`, or the `Sum` of `&mut $t`.
macro_rules! summing_into {
    ($name:ident, $t:ty) => {
        #[checkpointed(manager = mgr, id = "ty-fragment", every = 10)]
        fn $name(mgr: &FailsafeManager, state: $t) -> Result<u64, Error> {
            for item in 0..20u64 {
                state.sum += item;
            }
            Ok(state.sum)
        }
    };
}

macro_rules! summing_into_referent {
    ($name:ident, $t:ty) => {
        #[checkpointed(manager = mgr, id = "ty-referent", every = 10)]
        fn $name(mgr: &FailsafeManager, state: &mut $t) -> Result<u64, Error> {
            for item in 0..20u64 {
                state.sum += item;
            }
            Ok(state.sum)
        }
    };
}

summing_into!(state_type_from_a_macro, &mut Sum);
summing_into_referent!(referent_type_from_a_macro, Sum);

#[test]
fn state_type_passed_through_macro_rules() {
    crash_then_resume("ty-fragment", state_type_from_a_macro);
    crash_then_resume("ty-referent", referent_type_from_a_macro);
}

/// The loop itself through a `macro_rules!` `$e:expr`.
macro_rules! with_loop {
    ($name:ident, $state:ident, $tracked:expr) => {
        #[checkpointed(manager = mgr, id = "expr-fragment", every = 10)]
        fn $name(mgr: &FailsafeManager, $state: &mut Sum) -> Result<u64, Error> {
            $tracked;
            Ok($state.sum)
        }
    };
}

with_loop!(
    loop_from_a_macro,
    state,
    for item in 0..20u64 {
        state.sum += item;
    }
);

#[test]
fn loop_passed_through_macro_rules() {
    crash_then_resume("expr-fragment", loop_from_a_macro);
}

/// A `&mut` parameter under `#[cfg]` is never the state, whether the compiler keeps it or not.
#[checkpointed(manager = mgr, id = "cfg-removed", every = 10)]
fn cfg_removed_param(
    mgr: &FailsafeManager,
    #[cfg(not(test))] log: &mut Vec<u64>,
    state: &mut Sum,
) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn cfg_removed_mut_param_is_not_a_state_candidate() {
    crash_then_resume("cfg-removed", cfg_removed_param);
}

#[checkpointed(manager = mgr, id = "cfg-kept", every = 10)]
fn cfg_kept_param(
    mgr: &FailsafeManager,
    #[cfg(test)] log: &mut Vec<u64>,
    state: &mut Sum,
) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
        log.push(item);
    }
    Ok(state.sum)
}

#[test]
fn cfg_kept_mut_param_is_not_the_state_either() {
    crash_then_resume("cfg-kept", |mgr, state| cfg_kept_param(mgr, &mut Vec::new(), state));
}

mod mut_state {
    #![deny(unused_mut)]

    use super::*;

    fn total(state: &mut &mut Sum) -> u64 {
        state.sum
    }

    /// `mut state`, needed by the body (`&mut state`), is not reported unused.
    #[checkpointed(manager = mgr, id = "mut-state", every = 10)]
    pub(super) fn sum(mgr: &FailsafeManager, mut state: &mut Sum) -> Result<u64, Error> {
        for item in 0..20u64 {
            state.sum += item;
        }
        Ok(total(&mut state))
    }

    #[resilience::protected(manager = mgr, id = "mut-state-protected", every = 10)]
    pub(super) fn protected_sum(mgr: &FailsafeManager, mut state: &mut Sum) -> Result<u64, Error> {
        for item in 0..20u64 {
            state.sum += item;
        }
        Ok(total(&mut state))
    }
}

#[test]
fn mut_state_param_under_deny_unused_mut() {
    crash_then_resume("mut-state", mut_state::sum);
    crash_then_resume("mut-state-protected", mut_state::protected_sum);
}

/// A parameter named in `input = [..]` through a `macro_rules!` `$x:expr`.
macro_rules! guarded_by {
    ($name:ident, $items:ident, $input:expr) => {
        #[checkpointed(manager = mgr, id = "input-fragment", every = 10, input = [$input])]
        fn $name(mgr: &FailsafeManager, $items: &[u64], state: &mut Sum) -> Result<u64, Error> {
            for item in $items {
                state.sum += item;
            }
            Ok(state.sum)
        }
    };
}

guarded_by!(guarded_sum, items, items);

#[test]
fn input_named_through_macro_rules() {
    let items: Vec<u64> = (0..20).collect();
    crash_then_resume("input-fragment", |mgr, state| guarded_sum(mgr, &items, state));
    let (_dir, mgr) = store();
    testing::crash_after(15);
    assert!(guarded_sum(&mgr, &items, &mut Sum::default()).is_err());
    let other = guarded_sum(&mgr, &items[..19], &mut Sum::default());
    assert!(matches!(other, Err(Error::InputChanged { .. })), "{other:?}");
}

/// Runs a future that never waits on anything (the `async fn`s here do not await).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

macro_rules! summing_into_async {
    ($name:ident, $t:ty) => {
        #[checkpointed(manager = mgr, id = "ty-fragment-async", every = 10)]
        async fn $name(mgr: &FailsafeManager, state: $t) -> Result<u64, Error> {
            for item in 0..20u64 {
                state.sum += item;
            }
            Ok(state.sum)
        }
    };
}

summing_into_async!(state_type_from_a_macro_async, &mut Sum);

mod mut_state_async {
    #![deny(unused_mut)]

    use super::*;

    fn total(state: &mut &mut Sum) -> u64 {
        state.sum
    }

    #[checkpointed(manager = mgr, id = "mut-state-async", every = 10)]
    pub(super) async fn sum(mgr: &FailsafeManager, mut state: &mut Sum) -> Result<u64, Error> {
        for item in 0..20u64 {
            state.sum += item;
        }
        Ok(total(&mut state))
    }
}

#[test]
fn async_shapes() {
    crash_then_resume("ty-fragment-async", |mgr, state| {
        block_on(state_type_from_a_macro_async(mgr, state))
    });
    crash_then_resume("mut-state-async", |mgr, state| block_on(mut_state_async::sum(mgr, state)));
}
