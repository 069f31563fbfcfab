//! Test support: capturing the `tracing` events a piece of code emits.

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
