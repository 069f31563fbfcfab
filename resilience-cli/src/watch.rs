//! `resilience watch`: live progress of the running operations, read from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resilience::{FailsafeManager, OperationSummary, ProcessState};

use crate::Outcome;
use crate::output;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// What a bar shows for one operation.
struct Progress {
    done: u64,
    total: Option<u64>,
    /// Items per second over the checkpoints of the current run still in the file.
    rate: Option<f64>,
}

impl Progress {
    fn of(manager: &FailsafeManager, op: &OperationSummary) -> Progress {
        let total = if op.progress >= 1.0 {
            Some(op.cursor)
        } else if op.progress > 0.0 && op.cursor > 0 {
            Some((op.cursor as f64 / op.progress).round() as u64)
        } else {
            None
        };
        Progress { done: op.cursor, total, rate: rate(manager, &op.operation_id) }
    }

    fn eta(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.done);
        let rate = self.rate.filter(|r| *r > 0.0)?;
        Duration::try_from_secs_f64(left as f64 / rate).ok()
    }

    fn rate_text(&self) -> String {
        self.rate.map_or_else(|| "-".into(), |r| format!("{r:.1}/s"))
    }

    fn eta_text(&self) -> String {
        self.eta().map_or_else(|| "-".into(), output::eta)
    }
}

/// Items per second between the oldest and the newest record of the current run.
fn rate(manager: &FailsafeManager, operation_id: &str) -> Option<f64> {
    let records = manager.records(operation_id).ok()?;
    let newest = records.first()?;
    let mut oldest = newest;
    for r in &records[1..] {
        let same_run = r.cursor <= oldest.cursor
            && matches!(r.state, ProcessState::Running | ProcessState::Initialized);
        if !same_run {
            break;
        }
        oldest = r;
    }
    let seconds = newest.saved_at.duration_since(oldest.saved_at).ok()?.as_secs_f64();
    (seconds > 0.0).then(|| (newest.cursor - oldest.cursor) as f64 / seconds)
}

fn is_running(state: ProcessState) -> bool {
    matches!(state, ProcessState::Running | ProcessState::Initialized)
}

pub fn watch(manager: &FailsafeManager, interval: f64) -> Outcome {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let interval = Duration::from_secs_f64(interval);
    let mut view: Box<dyn View> =
        if io::stdout().is_terminal() { Box::new(Bars::new()) } else { Box::new(Frames) };
    let mut shown: BTreeSet<String> = BTreeSet::new();
    loop {
        let all = manager.operations()?;
        let running: Vec<&OperationSummary> = all.iter().filter(|o| is_running(o.state)).collect();
        for id in shown.clone() {
            if !running.iter().any(|o| o.operation_id == id) {
                let state = all
                    .iter()
                    .find(|o| o.operation_id == id)
                    .map_or("discarded", |o| output::state_name(o.state));
                view.stopped(&id, state)?;
                shown.remove(&id);
            }
        }
        if running.is_empty() {
            view.done()?;
            return Ok(());
        }
        let progress: Vec<(&OperationSummary, Progress)> =
            running.iter().map(|op| (*op, Progress::of(manager, op))).collect();
        view.frame(&progress)?;
        for (op, _) in &progress {
            shown.insert(op.operation_id.clone());
        }
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if STOP.load(Ordering::Relaxed) {
                view.interrupted()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50).min(interval));
        }
    }
}

trait View {
    fn frame(&mut self, ops: &[(&OperationSummary, Progress)]) -> io::Result<()>;
    fn stopped(&mut self, operation_id: &str, state: &str) -> io::Result<()>;
    fn done(&mut self) -> io::Result<()>;
    fn interrupted(&mut self) -> io::Result<()>;
}

/// Plain-text frames, for pipes and logs.
struct Frames;

impl View for Frames {
    fn frame(&mut self, ops: &[(&OperationSummary, Progress)]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "watch {}: {} running", output::rfc3339(SystemTime::now()), ops.len())?;
        for (op, p) in ops {
            let total = p.total.map_or_else(|| "?".into(), |t| t.to_string());
            let percent = p
                .total
                .filter(|_| op.progress.is_finite())
                .map_or("-".into(), |_| output::percent(op.progress));
            writeln!(
                out,
                "  {}  {}/{}  {}  {}  eta {}",
                output::clean(&op.operation_id),
                p.done,
                total,
                percent,
                p.rate_text(),
                p.eta_text()
            )?;
        }
        out.flush()
    }

    fn stopped(&mut self, operation_id: &str, state: &str) -> io::Result<()> {
        writeln!(io::stdout().lock(), "  {} {state}", output::clean(operation_id))
    }

    fn done(&mut self) -> io::Result<()> {
        writeln!(io::stdout().lock(), "no operation running")
    }

    fn interrupted(&mut self) -> io::Result<()> {
        writeln!(io::stdout().lock(), "interrupted")
    }
}

/// One indicatif bar per running operation.
struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    known: ProgressStyle,
    unknown: ProgressStyle,
}

impl Bars {
    fn new() -> Bars {
        let known =
            ProgressStyle::with_template("{prefix}  [{bar:40}] {pos}/{len} ({percent}%)  {msg}")
                .expect("a valid template")
                .progress_chars("=> ");
        let unknown = ProgressStyle::with_template("{prefix}  {spinner} {pos} done  {msg}")
            .expect("a valid template");
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: BTreeMap::new(),
            known,
            unknown,
        }
    }
}

impl Bars {
    fn update(&self, bar: &ProgressBar, op: &OperationSummary, p: &Progress, width: usize) {
        let id: String = output::clean(&op.operation_id).chars().take(40).collect();
        bar.set_prefix(format!("{id:width$}"));
        match p.total {
            Some(total) => {
                bar.set_style(self.known.clone());
                bar.set_length(total);
            }
            None => bar.set_style(self.unknown.clone()),
        }
        bar.set_position(p.done);
        bar.set_message(format!("{}  eta {}", p.rate_text(), p.eta_text()));
    }
}

impl View for Bars {
    fn frame(&mut self, ops: &[(&OperationSummary, Progress)]) -> io::Result<()> {
        let width = ops.iter().map(|(o, _)| o.operation_id.chars().count()).max().unwrap_or(0);
        let width = width.min(40);
        for (op, p) in ops {
            let bar = match self.bars.get(&op.operation_id) {
                Some(bar) => bar.clone(),
                None => {
                    // Configured before it is added, so that it is never drawn half-styled.
                    let bar = ProgressBar::hidden();
                    self.update(&bar, op, p, width);
                    let bar = self.multi.add(bar);
                    self.bars.insert(op.operation_id.clone(), bar.clone());
                    bar
                }
            };
            self.update(&bar, op, p, width);
        }
        Ok(())
    }

    fn stopped(&mut self, operation_id: &str, state: &str) -> io::Result<()> {
        if let Some(bar) = self.bars.remove(operation_id) {
            bar.finish_with_message(state.to_owned());
        }
        Ok(())
    }

    fn done(&mut self) -> io::Result<()> {
        self.multi.println("no operation running").map_err(io::Error::other)?;
        Ok(())
    }

    fn interrupted(&mut self) -> io::Result<()> {
        for bar in self.bars.values() {
            bar.abandon();
        }
        Ok(())
    }
}
