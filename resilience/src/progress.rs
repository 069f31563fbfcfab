//! Progress bars for tracked loops (feature `progress`, with indicatif).
//!
//! ```no_run
//! use resilience::FailsafeManager;
//!
//! let store = FailsafeManager::open("data/.resilience")?;
//! store.on_progress(resilience::progress::bar()); // one bar per running operation, on stderr
//! # Ok::<(), resilience::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::failsafe::{ProcessState, ProgressUpdate};

/// A callback for [`FailsafeManager::on_progress`](crate::FailsafeManager::on_progress) that
/// draws one bar per running operation on stderr: its name, position, total, rate and time
/// left, and its skipped items. A bar ends with the run's end state (`Completed`, `Paused`,
/// `Failed`). Operations without a known total get a spinner. Nothing is drawn when stderr is
/// not a terminal.
pub fn bar() -> impl Fn(&ProgressUpdate) + Send + Sync + 'static {
    let multi = MultiProgress::new();
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    move |update: &ProgressUpdate| {
        let mut bars = bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar =
            bars.entry(update.operation_id.clone()).or_insert_with(|| multi.add(new_bar(update)));
        if let Some(total) = update.total {
            bar.set_length(total);
        }
        bar.set_position(update.done);
        let skipped = match update.skipped {
            0 => String::new(),
            n => format!(", {} skipped", n),
        };
        if update.state == ProcessState::Running {
            bar.set_message(format!("{}{skipped}", update.operation_name));
        } else {
            bar.finish_with_message(format!(
                "{}{skipped}: {}",
                update.operation_name, update.state
            ));
            bars.remove(&update.operation_id);
        }
    }
}

fn new_bar(update: &ProgressUpdate) -> ProgressBar {
    match update.total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
                .expect("a valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} items ({per_sec})")
                .expect("a valid template"),
        ),
    }
}
