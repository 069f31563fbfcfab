//! The events backups report through `tracing`.
//!
//! A test binary of its own: the collector is the global default, so every thread's events
//! are seen, and no other test can register the same callsites concurrently.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::FailsafeManager;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, span};

type Log = Arc<Mutex<Vec<(String, Level, String)>>>;

struct Collector(Log);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
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
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        let meta = event.metadata();
        self.0.lock().unwrap().push((meta.target().to_owned(), *meta.level(), message));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn backups_report_created_rotated_restored_and_skipped() {
    let log = Log::default();
    tracing::subscriber::set_global_default(Collector(Arc::clone(&log))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let manager =
        FailsafeManager::builder().dir(dir.path().join("store")).max_backups(1).build().unwrap();
    let file = dir.path().join("f");
    let missing = dir.path().join("missing");
    std::fs::write(&file, b"1").unwrap();
    manager.create_backup(&file).unwrap();
    std::fs::write(&file, b"2").unwrap();
    manager.create_backup(&file).unwrap();
    manager.restore_backup(&manager.list_backups(&file).unwrap()[0]).unwrap();
    let auto = manager.start_auto_backup(std::slice::from_ref(&missing), Duration::from_millis(1));
    assert!(auto.wait_for_passes(1, Duration::from_secs(30)), "no background pass ran");
    auto.stop();

    let mut events: Vec<(Level, String)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(target, level, _)| target == "resilience::failsafe" && *level <= Level::INFO)
        .map(|(_, level, message)| (*level, message.clone()))
        .collect();
    // The background thread warns once per pass until it is stopped.
    let warning = (Level::WARN, "auto-backup skipped a missing file".to_owned());
    let stopped = events.pop();
    assert_eq!(stopped, Some((Level::INFO, "auto-backup stopped".to_owned())));
    assert!(events.ends_with(std::slice::from_ref(&warning)), "{events:?}");
    events.retain(|e| *e != warning);
    let expected = [
        (Level::INFO, "backup created"),
        (Level::INFO, "old backup rotated out"),
        (Level::INFO, "backup created"),
        (Level::INFO, "backup restored"),
        (Level::INFO, "auto-backup started"),
    ];
    let expected: Vec<_> = expected.iter().map(|(l, m)| (*l, m.to_string())).collect();
    assert_eq!(events, expected);
}
