//! Aids for testing code that uses `resilience`: [`crash_after`] stops a `#[checkpointed]`
//! run as a kill would, so that a test can check its own resume.

use std::cell::Cell;

thread_local! {
    static CRASH_AFTER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes the next `#[checkpointed]` (or `#[protected]`) run on this thread stop as if the
/// process were killed after `n` items of its tracked loop (counted from where the run starts,
/// so after a resume from `n` more).
///
/// The function returns `Err(Error::SimulatedCrash { operation_id })`, converted into its error
/// type, and leaves the store exactly as `kill -9` would: the last `Running` checkpoint (taken
/// on the run's `every`/`interval` schedule), no `Failed` record, the lock released. A run
/// whose loop ends before `n` items completes as usual; either way the setting is used up by
/// that run.
///
/// ```
/// use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
/// struct Sum { total: u64 }
///
/// #[checkpointed(manager = store, id = "sum", every = 10, state = state)]
/// fn sum(store: &FailsafeManager, calls: &mut u64, state: &mut Sum) -> Result<u64, Error> {
///     for item in 0..100u64 {
///         *calls += 1; // a side effect a resume may repeat
///         state.total += item;
///     }
///     Ok(state.total)
/// }
///
/// # let tmp = tempfile::tempdir()?;
/// let store = FailsafeManager::open(tmp.path())?;
/// let mut calls = 0;
/// resilience::testing::crash_after(37);
/// let crashed = sum(&store, &mut calls, &mut Sum::default());
/// assert!(matches!(crashed, Err(Error::SimulatedCrash { .. })));
/// let checkpoint = store.load_checkpoint::<Sum>("sum")?.unwrap();
/// assert_eq!((checkpoint.state, checkpoint.cursor), (ProcessState::Running, 30));
///
/// // The resume redoes at most `every` items and gets the same answer.
/// assert_eq!(sum(&store, &mut calls, &mut Sum::default())?, (0..100).sum::<u64>());
/// assert!(calls - 100 <= 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn crash_after(n: u64) {
    CRASH_AFTER.with(|cell| cell.set(Some(n)));
}

/// Takes this thread's [`crash_after`] setting, for the run that starts.
pub(crate) fn take_crash() -> Option<u64> {
    CRASH_AFTER.with(Cell::take)
}

#[cfg(test)]
pub(crate) use capture::capture_events;

/// Capturing the `tracing` events a piece of code emits.
#[cfg(test)]
mod capture {
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Metadata, span};

    /// One captured event.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Logged {
        pub(crate) target: String,
        pub(crate) level: Level,
        /// Each field's name and `Debug` text (the `Display` text for fields recorded with `%`).
        pub(crate) fields: Vec<(String, String)>,
    }

    impl Logged {
        pub(crate) fn field(&self, name: &str) -> Option<&str> {
            self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    #[derive(Clone, Default)]
    struct Collector(Arc<Mutex<Vec<Logged>>>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl tracing::Subscriber for Collector {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Vec::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(Logged {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields,
            });
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    /// Runs `f` on this thread with a subscriber that records every event, and returns them.
    pub(crate) fn capture_events(f: impl FnOnce()) -> Vec<Logged> {
        let collector = Collector::default();
        // Callsite interest is cached process-wide. With a single registered dispatcher, a callsite
        // first hit on another test's thread is cached with that thread's (absent) subscriber, i.e.
        // as "never". A second registered dispatcher makes tracing ask every registered one instead.
        let _second = tracing::Dispatch::new(collector.clone());
        tracing::subscriber::with_default(collector.clone(), || {
            tracing::callsite::rebuild_interest_cache();
            f();
        });
        std::mem::take(&mut *collector.0.lock().unwrap())
    }
}
