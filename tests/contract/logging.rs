//! Logging: tracing targets.

use super::checkpointed_attr::{import, seen};
use super::*;

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn events_go_to_the_resilience_retry_errors_and_failsafe_targets() {
    use tracing_subscriber::util::SubscriberInitExt;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_target(true)
        .with_ansi(false)
        .finish();
    let guard = subscriber.set_default();

    let manager = RetryManager::builder().sleeper(NoSleep).build();
    let _: Result<(), &str> =
        manager.retry_with_backoff("logged", &RetryConfig::new(1), || Err("down"));
    ErrorHandler::new(10).handle_error(&ImportError::Fatal, ErrorContext::new());
    let (tmp, store) = store();
    let file = tmp.path().join("logged.db");
    std::fs::write(&file, "x").unwrap();
    store.create_backup(&file).unwrap();
    assert!(store.create_backup(tmp.path().join("absent")).is_err());
    let _ = import(&store, 99, &[1, 2, 3], Some(2), &mut ImportProgress::default());
    seen();
    drop(guard);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for target in ["resilience::retry", "resilience::errors", "resilience::failsafe"] {
        assert!(log.contains(target), "no event under `{target}` in:\n{log}");
    }
}
