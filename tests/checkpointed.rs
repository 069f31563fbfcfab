//! `#[checkpointed]`: resume from the last checkpoint, at-least-once delivery, locks, schema
//! checks, the tracked loop's `continue`/`break`, methods, generics and functions without a
//! state.

use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
enum JobError {
    Item(u32),
    Resilience(Error),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Item(item) => write!(f, "item {item} failed"),
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

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Sum {
    #[checkpoint(cursor)]
    done: u64,
    #[checkpoint(total)]
    total: u64,
    sum: u64,
    seen: Vec<u32>,
}

fn store() -> (tempfile::TempDir, FailsafeManager) {
    let dir = tempfile::tempdir().unwrap();
    let manager = FailsafeManager::open(dir.path().join("store")).unwrap();
    (dir, manager)
}

thread_local! {
    /// Every item processed, in order, across runs (at-least-once shows as repeats).
    static PROCESSED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn processed() -> Vec<u32> {
    PROCESSED.with(|p| p.borrow_mut().drain(..).collect())
}

#[checkpointed(manager = mgr, every = 10, id = "sum-{batch}", name = "Sum items", input = [items])]
fn sum_items(
    mgr: &FailsafeManager,
    batch: u32,
    items: &[u32],
    fail_at: Option<u32>,
    state: &mut Sum,
) -> Result<u64, JobError> {
    for &item in items {
        if Some(item) == fail_at {
            return Err(JobError::Item(item));
        }
        PROCESSED.with(|p| p.borrow_mut().push(item));
        state.sum += u64::from(item);
        state.seen.push(item);
    }
    Ok(state.sum)
}

#[test]
fn resumes_from_the_last_checkpoint_after_a_failure() {
    let (_dir, mgr) = store();
    let items: Vec<u32> = (0..100).collect();
    let mut state = Sum::default();
    let err = sum_items(&mgr, 7, &items, Some(37), &mut state).unwrap_err();
    assert!(matches!(err, JobError::Item(37)));
    assert_eq!(processed(), (0..37).collect::<Vec<_>>());

    // The Failed checkpoint carries the state of item boundary 30, not the half-done 37.
    let checkpoint = mgr.load_checkpoint::<Sum>("sum-7").unwrap().unwrap();
    assert_eq!(checkpoint.state, ProcessState::Failed);
    assert_eq!(checkpoint.cursor, 30);
    assert_eq!(checkpoint.operation_name, "Sum items");
    assert_eq!(checkpoint.error.as_deref(), Some("item 37 failed"));
    assert_eq!(checkpoint.data.seen, (0..30).collect::<Vec<_>>());
    assert_eq!(checkpoint.data.done, 30);
    assert!((checkpoint.progress - 0.3).abs() < 1e-9, "{}", checkpoint.progress);

    // A new run restores the state of item 30 (whatever the caller passes) and goes on.
    let mut fresh = Sum::default();
    let total = sum_items(&mgr, 7, &items, None, &mut fresh).unwrap();
    assert_eq!(processed(), (30..100).collect::<Vec<_>>());
    assert_eq!(total, (0..100).sum::<u32>() as u64);
    assert_eq!(fresh.seen, items);
    assert_eq!(fresh.done, 100);

    let checkpoint = mgr.load_checkpoint::<Sum>("sum-7").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Completed, 100));
    assert_eq!(checkpoint.progress, 1.0);
    assert_eq!(checkpoint.data, fresh);
}

#[test]
fn at_most_every_items_are_processed_again() {
    let (_dir, mgr) = store();
    let items: Vec<u32> = (0..50).collect();
    for fail_at in [9, 10, 11, 19, 20, 49] {
        let _ = processed();
        mgr.discard("sum-1").unwrap();
        let mut state = Sum::default();
        sum_items(&mgr, 1, &items, Some(fail_at), &mut state).unwrap_err();
        let mut state = Sum::default();
        sum_items(&mgr, 1, &items, None, &mut state).unwrap();
        let runs = processed();
        let repeated = runs.len() - items.len();
        assert!(repeated < 10, "fail at {fail_at}: {repeated} items processed twice");
        assert_eq!(state.seen, items, "fail at {fail_at}");
    }
}

#[test]
fn a_completed_operation_starts_fresh() {
    let (_dir, mgr) = store();
    let items = [1, 2, 3];
    let mut state = Sum::default();
    assert_eq!(sum_items(&mgr, 2, &items, None, &mut state).unwrap(), 6);
    let mut state = Sum::default();
    assert_eq!(sum_items(&mgr, 2, &items, None, &mut state).unwrap(), 6);
    assert_eq!(processed(), [1, 2, 3, 1, 2, 3]);
    assert!(!mgr.can_resume("sum-2").unwrap());
}

#[checkpointed(manager = mgr, id = "panicky", input = [items])]
fn panicky(
    mgr: &FailsafeManager,
    items: &[u32],
    panic_at: Option<u32>,
    state: &mut Sum,
) -> Result<(), JobError> {
    for &item in items {
        assert_ne!(Some(item), panic_at, "boom at {item}");
        state.seen.push(item);
    }
    Ok(())
}

#[test]
fn a_panic_records_a_failed_checkpoint_and_the_next_run_resumes() {
    let (_dir, mgr) = store();
    let items: Vec<u32> = (0..10).collect();
    let mut state = Sum::default();
    let panic = catch_unwind(AssertUnwindSafe(|| panicky(&mgr, &items, Some(4), &mut state)));
    assert!(panic.is_err());
    let checkpoint = mgr.load_checkpoint::<Sum>("panicky").unwrap().unwrap();
    assert_eq!(checkpoint.state, ProcessState::Failed);
    assert_eq!(checkpoint.cursor, 4);
    let error = checkpoint.error.unwrap();
    assert!(error.starts_with("panicked: ") && error.contains("boom at 4"), "{error}");
    // The lock went with the unwinding call.
    let mut state = Sum::default();
    panicky(&mgr, &items, None, &mut state).unwrap();
    assert_eq!(state.seen, items);
}

#[test]
fn a_second_concurrent_run_is_locked_out() {
    let (_dir, mgr) = store();
    let _held = mgr.lock("sum-3").unwrap();
    let mut state = Sum::default();
    let err = sum_items(&mgr, 3, &[1, 2], None, &mut state).unwrap_err();
    assert!(
        matches!(err, JobError::Resilience(Error::Locked { ref operation_id }) if operation_id == "sum-3"),
        "{err:?}"
    );
    assert!(state.seen.is_empty());
}

#[checkpointed(manager = mgr, id = "shared")]
fn wait_inside(
    mgr: &FailsafeManager,
    entered: &std::sync::mpsc::Sender<()>,
    release: &std::sync::mpsc::Receiver<()>,
) -> Result<(), JobError> {
    entered.send(()).unwrap();
    release.recv().unwrap();
    Ok(())
}

#[test]
fn a_run_of_the_same_id_on_another_thread_is_locked_out_until_the_first_ends() {
    use std::sync::mpsc::channel;
    let (_dir, mgr) = store();
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    std::thread::scope(|scope| {
        // Owned here, so that a failed assertion drops it and the first run ends: the scope
        // joins it.
        let release_tx = release_tx;
        let mgr = &mgr;
        let first = scope.spawn(move || wait_inside(mgr, &entered_tx, &release_rx));
        entered_rx.recv().unwrap();
        // A second run that got in would find its release channel closed and fail, not wait.
        let (idle_tx, _idle_rx) = channel();
        let second = wait_inside(mgr, &idle_tx, &channel().1);
        assert!(
            matches!(second, Err(JobError::Resilience(Error::Locked { ref operation_id })) if operation_id == "shared"),
            "{second:?}"
        );
        release_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
    });
    // Released with the first run: a third one goes through.
    let (entered_tx, _entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    release_tx.send(()).unwrap();
    wait_inside(&mgr, &entered_tx, &release_rx).unwrap();
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OldSum {
    sum: u32,
}

impl Checkpointable for OldSum {
    const SCHEMA: u64 = 0x01d;
}

#[test]
fn a_resumable_checkpoint_of_another_schema_is_an_error() {
    let (_dir, mgr) = store();
    mgr.save_checkpoint("sum-4", "old", ProcessState::Running, 0.5, &OldSum { sum: 3 }).unwrap();
    let mut state = Sum::default();
    let err = sum_items(&mgr, 4, &[1, 2], None, &mut state).unwrap_err();
    assert!(
        matches!(
            err,
            JobError::Resilience(Error::SchemaMismatch { expected: Sum::SCHEMA, found: 0x01d, .. })
        ),
        "{err:?}"
    );
    assert!(processed().is_empty());

    // A finished run of the old version is no obstacle: the new one starts fresh.
    mgr.save_checkpoint("sum-4", "old", ProcessState::Completed, 1.0, &OldSum { sum: 3 }).unwrap();
    assert_eq!(sum_items(&mgr, 4, &[1, 2], None, &mut state).unwrap(), 3);
    assert_eq!(processed(), [1, 2]);
}

#[checkpointed(manager = mgr, id = "two-loops", input = [items])]
fn two_loops(
    mgr: &FailsafeManager,
    items: &[u32],
    fail_at: Option<u32>,
    state: &mut Sum,
) -> Result<u64, JobError> {
    let mut setup = 0;
    for _ in 0..3 {
        setup += 1;
    }
    #[checkpoint]
    for &item in items {
        if Some(item) == fail_at {
            return Err(JobError::Item(item));
        }
        state.seen.push(item);
    }
    Ok(setup)
}

#[test]
fn the_marked_loop_is_the_tracked_one() {
    let (_dir, mgr) = store();
    let items: Vec<u32> = (10..20).collect();
    let mut state = Sum::default();
    two_loops(&mgr, &items, Some(15), &mut state).unwrap_err();
    assert_eq!(mgr.load_checkpoint::<Sum>("two-loops").unwrap().unwrap().cursor, 5);
    let mut state = Sum::default();
    assert_eq!(two_loops(&mgr, &items, None, &mut state).unwrap(), 3);
    assert_eq!(state.seen, items);
}

#[checkpointed(manager = mgr, id = "filter")]
fn filtered(
    mgr: &FailsafeManager,
    items: &[u32],
    stop_at: u32,
    state: &mut Sum,
) -> Result<(), JobError> {
    'items: for &item in items {
        if item % 2 == 1 {
            continue;
        }
        for divisor in [3, 5] {
            if item % divisor == 0 {
                continue 'items;
            }
        }
        if item == stop_at {
            break;
        }
        state.seen.push(item);
    }
    Ok(())
}

#[test]
fn continue_and_break_in_the_tracked_loop() {
    let (_dir, mgr) = store();
    let items: Vec<u32> = (0..20).collect();
    let mut state = Sum::default();
    filtered(&mgr, &items, 14, &mut state).unwrap();
    assert_eq!(state.seen, [2, 4, 8]);
    // `continue` counts the item as done; `break` leaves the current one uncounted.
    assert_eq!(state.done, 14);
    let checkpoint = mgr.load_checkpoint::<Sum>("filter").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Completed, 14));
}

struct Importer {
    mgr: FailsafeManager,
    prefix: &'static str,
    calls: u32,
}

impl Importer {
    #[checkpointed(manager = self.mgr, id = "import-{tag}")]
    fn import(&self, tag: &str, items: &[u32], state: &mut Sum) -> Result<usize, JobError> {
        for &item in items {
            state.seen.push(item);
        }
        Ok(self.prefix.len())
    }

    #[checkpointed(manager = self.mgr.clone(), every = 2)]
    fn count(&mut self, items: &[u32], state: &mut Sum) -> Result<u32, JobError> {
        for &item in items {
            self.calls += 1;
            state.sum += u64::from(item);
        }
        Ok(self.calls)
    }
}

#[test]
fn methods_with_receivers_and_interpolated_ids() {
    let (_dir, mgr) = store();
    let mut importer = Importer { mgr: mgr.clone(), prefix: "ab", calls: 0 };
    let mut state = Sum::default();
    assert_eq!(importer.import("x/1", &[5, 6], &mut state).unwrap(), 2);
    assert_eq!(mgr.load_checkpoint::<Sum>("import-x/1").unwrap().unwrap().data.seen, [5, 6]);

    let mut state = Sum::default();
    assert_eq!(importer.count(&[1, 2, 3], &mut state).unwrap(), 3);
    let id = concat!(module_path!(), "::", "count");
    let checkpoint = mgr.load_checkpoint::<Sum>(id).unwrap().unwrap();
    assert_eq!((checkpoint.operation_name.as_str(), checkpoint.data.sum), ("count", 6));
}

#[checkpointed(manager = mgr, id = "generic")]
fn generic<T: Copy + Into<u64>, S>(
    mgr: &FailsafeManager,
    items: &[T],
    state: &mut Sum,
    _marker: S,
) -> Result<u64, JobError>
where
    S: Clone,
{
    for &item in items {
        state.sum += item.into();
    }
    Ok(state.sum)
}

#[test]
fn generic_functions() {
    let (_dir, mgr) = store();
    let mut state = Sum::default();
    assert_eq!(generic(&mgr, &[1u8, 2, 3], &mut state, "m").unwrap(), 6);
}

trait Job {
    fn store(&self) -> &FailsafeManager;

    /// A default method, generic over its state.
    #[checkpointed(manager = self.store(), id = "default-method")]
    fn run<S: Checkpointable + Extend<u32>>(
        &self,
        items: &[u32],
        state: &mut S,
    ) -> Result<(), JobError> {
        for &item in items {
            state.extend([item]);
        }
        Ok(())
    }

    fn check(&mut self, items: &[u32], state: &mut Sum) -> Result<u64, JobError>;
}

impl Extend<u32> for Sum {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, items: I) {
        self.seen.extend(items);
    }
}

struct Nightly(FailsafeManager);

impl Job for Nightly {
    fn store(&self) -> &FailsafeManager {
        &self.0
    }

    // The resumed call passes other items on purpose: no input guard.
    #[checkpointed(manager = self.0, id = "trait-impl", every = 2, input = none)]
    fn check(&mut self, items: &[u32], state: &mut Sum) -> Result<u64, JobError> {
        for &item in items {
            if item == 99 {
                return Err(JobError::Item(item));
            }
            state.sum += u64::from(item);
        }
        Ok(state.sum)
    }
}

#[test]
fn trait_methods_default_and_implemented() {
    let (_dir, mgr) = store();
    let mut job = Nightly(mgr.clone());
    let mut state = Sum::default();
    job.run(&[3, 4], &mut state).unwrap();
    assert_eq!(state.seen, [3, 4]);
    job.check(&[1, 2, 3, 99, 5], &mut Sum::default()).unwrap_err();
    assert_eq!(mgr.load_checkpoint::<Sum>("trait-impl").unwrap().unwrap().cursor, 2);
    // Resumed at item 2: 1 + 2 from the checkpoint, then 3 and 5.
    assert_eq!(job.check(&[1, 2, 3, 0, 5], &mut Sum::default()).unwrap(), 11);
}

#[checkpointed(manager = mgr, id = "stateless", every = 3, input = none)]
fn stateless(
    mgr: &FailsafeManager,
    out: &RefCell<Vec<u32>>,
    fail_at: Option<u32>,
) -> Result<(), JobError> {
    for item in 0..10u32 {
        if Some(item) == fail_at {
            return Err(JobError::Item(item));
        }
        out.borrow_mut().push(item);
    }
    Ok(())
}

#[test]
fn without_a_state_the_loop_position_is_still_kept() {
    let (_dir, mgr) = store();
    let out = RefCell::new(Vec::new());
    stateless(&mgr, &out, Some(7)).unwrap_err();
    let checkpoint = mgr.load_checkpoint::<()>("stateless").unwrap().unwrap();
    assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Failed, 6));
    assert!((checkpoint.progress - 0.6).abs() < 1e-9);
    out.borrow_mut().clear();
    stateless(&mgr, &out, None).unwrap();
    assert_eq!(*out.borrow(), (6..10).collect::<Vec<_>>());
}

#[checkpointed(manager = mgr, id = "no-loop", input = none)]
fn no_loop(mgr: &FailsafeManager, state: &mut Sum, fail: bool) -> Result<(), JobError> {
    state.sum += 1;
    if fail { Err(JobError::Item(0)) } else { Ok(()) }
}

#[test]
fn without_a_loop_only_the_state_transitions_are_checkpointed() {
    let (_dir, mgr) = store();
    let mut state = Sum::default();
    no_loop(&mgr, &mut state, true).unwrap_err();
    let checkpoint = mgr.load_checkpoint::<Sum>("no-loop").unwrap().unwrap();
    // The failed run's change is not in the checkpoint: only the entry state was saved.
    assert_eq!((checkpoint.state, checkpoint.data.sum), (ProcessState::Failed, 0));
    no_loop(&mgr, &mut state, false).unwrap();
    assert_eq!(state.sum, 1);
    let history = mgr.history::<Sum>("no-loop").unwrap();
    let states: Vec<_> = history.iter().map(|c| c.state).collect();
    assert_eq!(
        states[..4],
        [
            ProcessState::Completed,
            ProcessState::Running,
            ProcessState::Failed,
            ProcessState::Running
        ]
    );
}

#[cfg(feature = "tokio")]
mod async_fns {
    use super::*;

    #[checkpointed(manager = mgr, every = 2, id = "async-sum", input = [items])]
    async fn async_sum(
        mgr: &FailsafeManager,
        items: &[u32],
        fail_at: Option<u32>,
        state: &mut Sum,
    ) -> Result<u64, JobError> {
        for &item in items {
            tokio::task::yield_now().await;
            if Some(item) == fail_at {
                return Err(JobError::Item(item));
            }
            state.sum += u64::from(item);
            state.seen.push(item);
        }
        Ok(state.sum)
    }

    struct Uploader {
        store: FailsafeManager,
        sent: Vec<u32>,
    }

    impl Uploader {
        #[checkpointed(manager = self.store.clone(), id = "upload", every = 3, input = [items])]
        async fn upload(
            &mut self,
            items: &[u32],
            fail_at: Option<u32>,
            state: &mut Sum,
        ) -> Result<usize, JobError> {
            for &item in items {
                tokio::task::yield_now().await;
                if Some(item) == fail_at {
                    return Err(JobError::Item(item));
                }
                self.sent.push(item);
                state.sum += u64::from(item);
            }
            Ok(self.sent.len())
        }
    }

    #[tokio::test]
    async fn an_async_method_with_mut_self() {
        let (_dir, mgr) = store();
        let mut uploader = Uploader { store: mgr.clone(), sent: Vec::new() };
        let items: Vec<u32> = (0..7).collect();
        uploader.upload(&items, Some(4), &mut Sum::default()).await.unwrap_err();
        let mut state = Sum::default();
        // Items 3.. again (the checkpoint is at 3): 0, 1, 2, 3 sent before the failure.
        assert_eq!(uploader.upload(&items, None, &mut state).await.unwrap(), 8);
        assert_eq!(uploader.sent, [0, 1, 2, 3, 3, 4, 5, 6]);
        assert_eq!(state.sum, 21);
    }

    fn assert_send<T: Send>(value: T) -> T {
        value
    }

    #[tokio::test]
    async fn an_async_fn_resumes_too_and_its_future_is_send() {
        let (_dir, mgr) = store();
        let items: Vec<u32> = (0..9).collect();
        let mut state = Sum::default();
        let err = assert_send(async_sum(&mgr, &items, Some(5), &mut state)).await.unwrap_err();
        assert!(matches!(err, JobError::Item(5)));
        assert_eq!(mgr.load_checkpoint::<Sum>("async-sum").unwrap().unwrap().cursor, 4);
        let mut state = Sum::default();
        assert_eq!(async_sum(&mgr, &items, None, &mut state).await.unwrap(), 36);
        assert_eq!(state.seen, items);
    }
}
