//! #[checkpointed].

use super::*;

thread_local! {
    static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn seen() -> Vec<u64> {
    SEEN.with(|s| s.borrow_mut().drain(..).collect())
}

#[checkpointed(every = 10, id = "import-{batch}", manager = store, input = [photos])]
pub(crate) fn import(
    store: &FailsafeManager,
    batch: u32,
    photos: &[u64],
    fail_at: Option<u64>,
    progress: &mut ImportProgress,
) -> Result<(), ImportError> {
    progress.total = photos.len() as u64;
    for &photo in photos {
        if Some(photo) == fail_at {
            return Err(ImportError::Damaged(photo));
        }
        SEEN.with(|s| s.borrow_mut().push(photo));
        progress.imported_bytes += photo;
    }
    Ok(())
}

#[test]
fn failure_at_item_37_with_every_10_resumes_at_item_30() {
    let (_tmp, manager) = store();
    let photos: Vec<u64> = (0..50).collect();

    let mut progress = ImportProgress::default();
    assert!(matches!(
        import(&manager, 1, &photos, Some(37), &mut progress),
        Err(ImportError::Damaged(37))
    ));
    assert_eq!(seen(), (0..37).collect::<Vec<_>>());

    let failed: Checkpoint<ImportProgress> = manager.load_checkpoint("import-1").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
    assert_eq!(failed.cursor, 30);
    assert_eq!(failed.data.done, 30);
    assert_eq!(failed.data.imported_bytes, (0..30).sum::<u64>(), "state as it was at item 30");
    assert!(failed.error.as_deref().unwrap().contains("item 37 is damaged"));
    assert!(manager.can_resume("import-1").unwrap());

    let mut progress = ImportProgress::default();
    import(&manager, 1, &photos, None, &mut progress).unwrap();
    assert_eq!(seen(), (30..50).collect::<Vec<_>>(), "restarts at item 30");
    assert_eq!(progress.done, 50);
    assert_eq!(progress.imported_bytes, (0..50).sum::<u64>());

    let done: Checkpoint<ImportProgress> = manager.load_checkpoint("import-1").unwrap().unwrap();
    assert_eq!(done.state, ProcessState::Completed);
    assert_eq!(done.progress, 1.0);
    assert!(matches!(
        manager.resume_operation("import-1", |c: Checkpoint<ImportProgress>| c.cursor),
        Err(Error::NothingToResume { .. })
    ));

    // A completed checkpoint starts a fresh run.
    let mut progress = ImportProgress::default();
    import(&manager, 1, &photos[..5], None, &mut progress).unwrap();
    assert_eq!(seen(), (0..5).collect::<Vec<_>>());
}

#[test]
fn running_checkpoints_carry_progress_cursor_over_total() {
    let (_tmp, manager) = store();
    let photos: Vec<u64> = (0..40).collect();
    let mut progress = ImportProgress::default();
    let _ = import(&manager, 2, &photos, Some(25), &mut progress);
    seen();
    let history: Vec<Checkpoint<ImportProgress>> = manager.history("import-2").unwrap();
    let running: Vec<_> = history.iter().filter(|c| c.state == ProcessState::Running).collect();
    assert!(!running.is_empty());
    for checkpoint in running {
        let expected = checkpoint.cursor as f64 / 40.0;
        assert!((checkpoint.progress - expected).abs() < 1e-9, "{checkpoint:?}");
        assert_eq!(checkpoint.cursor % 10, 0);
    }
}

#[test]
fn a_schema_mismatch_on_entry_is_an_error_never_a_misread() {
    let (_tmp, manager) = store();
    manager.save_checkpoint("import-3", "x", ProcessState::Failed, 0.5, &Tally { sum: 1 }).unwrap();
    let mut progress = ImportProgress::default();
    let result = import(&manager, 3, &[1, 2, 3], None, &mut progress);
    assert!(matches!(result, Err(ImportError::Store(Error::SchemaMismatch { .. }))), "{result:?}");
}

#[checkpointed(id = "nested-{depth}", manager = mgr, input = none)]
fn nested(mgr: &FailsafeManager, depth: u32, inner: bool) -> Result<(), ImportError> {
    if inner {
        return nested(mgr, depth, false);
    }
    Ok(())
}

#[test]
fn a_second_concurrent_run_of_the_same_id_is_locked() {
    let (_tmp, manager) = store();
    let result = nested(&manager, 1, true);
    assert!(matches!(result, Err(ImportError::Store(Error::Locked { .. }))), "{result:?}");
    // The lock is released when the run ends.
    nested(&manager, 1, false).unwrap();
}

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Count {
    items: u64,
}

struct Importer {
    store: FailsafeManager,
}

impl Importer {
    #[checkpointed(manager = &self.store, every = 2, interval = "5s", state = counted, name = "Photo Import", input = [items])]
    fn run(
        &self,
        items: &[u64],
        scratch: &mut Vec<u64>,
        counted: &mut Count,
        fail_at: Option<u64>,
    ) -> Result<u64, ImportError> {
        for &item in items {
            if Some(item) == fail_at {
                return Err(ImportError::Fatal);
            }
            scratch.push(item);
            counted.items += 1;
        }
        Ok(counted.items)
    }
}

#[test]
fn checkpointed_method_with_state_name_interval_and_manager_expression() {
    let (_tmp, store) = store();
    let importer = Importer { store };
    let mut scratch = Vec::new();
    let mut count = Count::default();
    assert!(importer.run(&[0, 1, 2, 3, 4], &mut scratch, &mut count, Some(3)).is_err());

    let id = format!("{}::run", module_path!());
    let failed: Checkpoint<Count> = importer.store.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.operation_name, "Photo Import");
    assert_eq!(
        (failed.cursor, failed.data.items),
        (2, 2),
        "no cursor field: kept in the checkpoint"
    );

    let mut count = Count::default();
    assert_eq!(importer.run(&[0, 1, 2, 3, 4], &mut Vec::new(), &mut count, None).unwrap(), 5);
}

static STATELESS_RUNS: AtomicU32 = AtomicU32::new(0);

#[checkpointed(every = 1, manager = mgr, input = [items])]
fn stateless(
    mgr: &FailsafeManager,
    items: &[u32],
    fail_at: Option<u32>,
) -> Result<(), ImportError> {
    for &item in items {
        if Some(item) == fail_at {
            return Err(ImportError::Fatal);
        }
        STATELESS_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[test]
fn checkpointed_without_state_defaults_its_id_and_name_and_carries_unit() {
    let (_tmp, manager) = store();
    let _ = stateless(&manager, &[0, 1, 2, 3], Some(2));
    let id = format!("{}::stateless", module_path!());
    let failed: Checkpoint<()> = manager.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.operation_name, "stateless");
    assert_eq!((failed.state, failed.cursor), (ProcessState::Failed, 2));
    STATELESS_RUNS.store(0, Ordering::Relaxed);
    stateless(&manager, &[0, 1, 2, 3], None).unwrap();
    assert_eq!(STATELESS_RUNS.load(Ordering::Relaxed), 2, "resumed at item 2");
}

#[checkpointed(id = "contract-global-{n}")]
fn on_the_global_store(n: u32, tally: &mut Tally) -> Result<(), ImportError> {
    for i in 0..n {
        tally.sum += u64::from(i);
    }
    Ok(())
}

#[test]
fn checkpointed_without_manager_uses_the_global_store() {
    let global = global_store();
    let mut tally = Tally::default();
    on_the_global_store(4, &mut tally).unwrap();
    let done: Checkpoint<Tally> = global.load_checkpoint("contract-global-4").unwrap().unwrap();
    assert_eq!((done.state, done.data.sum), (ProcessState::Completed, 6));
    global.discard("contract-global-4").unwrap();
}

#[checkpointed(every = 3, id = "progress-from-size-hint", manager = mgr)]
fn counted_items(
    mgr: &FailsafeManager,
    items: &[u64],
    fail_at: u64,
    counted: &mut Count,
) -> Result<(), ImportError> {
    for &item in items {
        if item == fail_at {
            return Err(ImportError::Fatal);
        }
        counted.items += 1;
    }
    Ok(())
}

#[test]
fn progress_without_a_total_field_comes_from_the_loops_exact_size() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (0..10).collect();
    assert!(counted_items(&manager, &items, 7, &mut Count::default()).is_err());
    let failed: Checkpoint<Count> =
        manager.load_checkpoint("progress-from-size-hint").unwrap().unwrap();
    assert_eq!(failed.cursor, 6);
    assert!((failed.progress - 0.6).abs() < 1e-9, "{}", failed.progress);
}

#[checkpointed(every = 1, id = "marked-loop", manager = mgr, input = [items])]
fn two_loops(
    mgr: &FailsafeManager,
    items: &[u64],
    fail_at: Option<u64>,
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    let mut setup = 0;
    for _ in 0..3 {
        setup += 1;
    }
    #[checkpoint]
    for &item in items {
        if Some(item) == fail_at {
            return Err(ImportError::Fatal);
        }
        tally.sum += item;
    }
    Ok(setup)
}

#[test]
fn the_loop_marked_checkpoint_is_the_tracked_one() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (10..20).collect();
    assert!(two_loops(&manager, &items, Some(15), &mut Tally::default()).is_err());
    assert_eq!(manager.load_checkpoint::<Tally>("marked-loop").unwrap().unwrap().cursor, 5);
    let mut tally = Tally::default();
    assert_eq!(two_loops(&manager, &items, None, &mut tally).unwrap(), 3);
    assert_eq!(tally.sum, (10..20).sum::<u64>());
}

#[checkpointed(every = 2, id = "panicky", manager = mgr)]
fn panicky(mgr: &FailsafeManager, items: &[u64], tally: &mut Tally) -> Result<(), ImportError> {
    for &item in items {
        assert!(item != 5, "item 5 explodes");
        tally.sum += item;
    }
    Ok(())
}

#[test]
fn a_panic_saves_failed_with_the_last_checkpointed_data() {
    let (_tmp, manager) = store();
    let items: Vec<u64> = (0..10).collect();
    let mut tally = Tally::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        panicky(&manager, &items, &mut tally)
    }));
    assert!(outcome.is_err());
    let failed: Checkpoint<Tally> = manager.load_checkpoint("panicky").unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
    assert_eq!((failed.cursor, failed.data.sum), (4, 1 + 2 + 3));
    assert!(failed.error.is_some());
}

#[checkpointed(id = "every-default", manager = mgr)]
fn every_default(
    mgr: &FailsafeManager,
    items: &[u64],
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for &item in items {
        if item == 3 {
            return Err(ImportError::Fatal);
        }
        tally.sum += item;
    }
    Ok(())
}

#[test]
fn every_defaults_to_one_item() {
    let (_tmp, manager) = store();
    assert!(every_default(&manager, &[0, 1, 2, 3, 4], &mut Tally::default()).is_err());
    let failed: Checkpoint<Tally> = manager.load_checkpoint("every-default").unwrap().unwrap();
    assert_eq!((failed.cursor, failed.data.sum), (3, 3));
}

/// `manager = expr` takes anything that derefs to a `FailsafeManager`.
#[checkpointed(id = "arc-manager", manager = shared)]
fn with_arc(shared: std::sync::Arc<FailsafeManager>, tally: &mut Tally) -> Result<(), ImportError> {
    tally.sum += 1;
    Ok(())
}

fn shared_store() -> &'static FailsafeManager {
    static STORE: OnceLock<(tempfile::TempDir, FailsafeManager)> = OnceLock::new();
    &STORE.get_or_init(store).1
}

#[checkpointed(id = "fn-call-manager", manager = shared_store())]
fn with_fn_call(tally: &mut Tally) -> Result<(), ImportError> {
    tally.sum += 1;
    Ok(())
}

#[test]
fn manager_accepts_any_expression_that_derefs_to_a_failsafe_manager() {
    let (_tmp, manager) = store();
    let shared = std::sync::Arc::new(manager);
    with_arc(std::sync::Arc::clone(&shared), &mut Tally::default()).unwrap();
    assert_eq!(shared.load_checkpoint::<Tally>("arc-manager").unwrap().unwrap().data.sum, 1);
    with_fn_call(&mut Tally::default()).unwrap();
    let done = shared_store().load_checkpoint::<Tally>("fn-call-manager").unwrap().unwrap();
    assert_eq!(done.state, ProcessState::Completed);
}

#[checkpointed(every = 1, id = "generic-{label}", manager = mgr)]
fn generic_sum<T: Copy + Into<u64>>(
    mgr: &FailsafeManager,
    label: &str,
    items: &[T],
    tally: &mut Tally,
) -> Result<u64, ImportError> {
    for &item in items {
        tally.sum += item.into();
    }
    Ok(tally.sum)
}

trait Job {
    fn run(
        &mut self,
        mgr: &FailsafeManager,
        items: &[u64],
        tally: &mut Tally,
    ) -> Result<u64, ImportError>;
    fn fetch(&self) -> Result<u64, ImportError>;
}

struct Summer {
    runs: u64,
    fetched: AtomicU32,
}

impl Job for Summer {
    #[checkpointed(id = "trait-job", manager = mgr, state = tally)]
    fn run(
        &mut self,
        mgr: &FailsafeManager,
        items: &[u64],
        tally: &mut Tally,
    ) -> Result<u64, ImportError> {
        for &item in items {
            tally.sum += item;
            self.runs += 1;
        }
        Ok(tally.sum)
    }

    #[retry(max = 2, initial = "1ms")]
    fn fetch(&self) -> Result<u64, ImportError> {
        match self.fetched.fetch_add(1, Ordering::Relaxed) {
            0 => Err(ImportError::Timeout),
            n => Ok(u64::from(n)),
        }
    }
}

#[test]
fn attributes_work_on_generic_functions_and_trait_impl_methods() {
    let (_tmp, manager) = store();
    assert_eq!(generic_sum(&manager, "u8", &[1u8, 2, 3], &mut Tally::default()).unwrap(), 6);
    assert_eq!(generic_sum(&manager, "u32", &[10u32, 20], &mut Tally::default()).unwrap(), 30);
    assert!(manager.load_checkpoint::<Tally>("generic-u32").unwrap().is_some());

    let mut summer = Summer { runs: 0, fetched: AtomicU32::new(0) };
    assert_eq!(summer.run(&manager, &[4, 5], &mut Tally::default()).unwrap(), 9);
    assert_eq!(summer.runs, 2);
    assert!(manager.load_checkpoint::<Tally>("trait-job").unwrap().is_some());
    assert_eq!(with_sleeper(&NoSleep, || summer.fetch()).unwrap(), 1);
}
