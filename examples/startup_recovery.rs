//! Start-up recovery: find the operations an earlier run left unfinished and offer to resume
//! them, as the failsafe guide's start-up routine does.
//!
//! ```text
//! cargo run --example startup_recovery -- --demo         # make two interrupted operations, then ask
//! cargo run --example startup_recovery -- --demo --yes   # ... and resume them without asking
//! cargo run --example startup_recovery                   # list what ./data/.resilience holds
//! ```
//!
//! It reads the same store as `photo_pipeline` (`./data/.resilience`, or `$RESILIENCE_DIR`), so
//! an interrupted photo import shows up here too.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use resilience::{Checkpoint, Checkpointable, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

/// The demo operations' ids start with this; `{job}` follows.
const DEMO_PREFIX: &str = "demo-";

/// The demo jobs: name, items, and how the first run stops.
const DEMO_JOBS: [(&str, u64, Stop); 2] =
    [("thumbnails", 40, Stop::FailAt(23)), ("reindex", 30, Stop::PauseAt(15))];

#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The first run fails at this item, as a crash or an outage would stop it.
    FailAt(u64),
    /// The first run is paused on purpose after this many items.
    PauseAt(u64),
}

/// The demo jobs' progress: a running checksum over the items, so that a resumed run can be
/// compared with one that never stopped.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Checkpointable)]
struct BatchProgress {
    #[checkpoint(cursor)]
    done: u64,
    #[checkpoint(total)]
    total: u64,
    checksum: u64,
}

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("worker lost at item {item}")]
    WorkerLost { item: u64 },
    #[error("{count} of the chosen operations could not be resumed")]
    Unrecovered { count: usize },
    #[error(transparent)]
    Resilience(#[from] resilience::Error),
}

/// A resumable batch job: `#[checkpointed]` saves `progress` after every 5 items under the id
/// `demo-{job}`; when the last checkpoint of that id is resumable, it restores `progress` from
/// it and the loop starts after the last checkpointed item. `input = [items]`: a resume must
/// see the same number of items; `fail_at`, the demo's way to fail, is no input.
#[checkpointed(manager = store, every = 5, id = "demo-{job}", name = "Demo batch", input = [items])]
fn run_batch(
    store: &FailsafeManager,
    job: &str,
    items: u64,
    fail_at: Option<u64>,
    progress: &mut BatchProgress,
) -> Result<u64, DemoError> {
    progress.total = items;
    for item in 0..items {
        if Some(item) == fail_at {
            return Err(DemoError::WorkerLost { item });
        }
        progress.checksum = step(progress.checksum, item);
    }
    Ok(progress.checksum)
}

fn step(checksum: u64, item: u64) -> u64 {
    (checksum ^ item).wrapping_mul(0x100_0000_01b3).rotate_left(7)
}

/// The checksum of a run over `items` items that never stopped.
fn uninterrupted(items: u64) -> u64 {
    (0..items).fold(0, step)
}

/// Leaves two interrupted operations in the store: one failed, one paused.
fn create_demo_operations(store: &FailsafeManager) -> Result<(), DemoError> {
    for (job, items, stop) in DEMO_JOBS {
        let id = format!("{DEMO_PREFIX}{job}");
        store.discard(&id)?;
        match stop {
            Stop::FailAt(item) => {
                // The run fails; `#[checkpointed]` saves a `Failed` checkpoint holding the
                // progress of the last checkpointed item (20), not the half-done 23.
                let error = run_batch(store, job, items, Some(item), &mut BatchProgress::default())
                    .expect_err("the demo run stops at its failing item");
                println!("Created `{id}`: {items} items, failed at item {item} ({error})");
            }
            Stop::PauseAt(done) => {
                // Checkpoints can also be saved by hand, here as a job that was paused.
                let progress = BatchProgress { done, total: items, checksum: uninterrupted(done) };
                let ratio = done as f64 / items as f64;
                store.save_checkpoint(&id, "Demo batch", ProcessState::Paused, ratio, &progress)?;
                println!("Created `{id}`: {items} items, paused after item {done}");
            }
        }
    }
    Ok(())
}

/// Resumes a demo operation through `resume_operation`, which hands over its last checkpoint
/// (or fails with `Error::NothingToResume`).
fn resume_demo(store: &FailsafeManager, id: &str) -> Result<(), DemoError> {
    let job = id.strip_prefix(DEMO_PREFIX).unwrap_or(id);
    let checksum = store.resume_operation(id, |checkpoint: Checkpoint<BatchProgress>| {
        let total = checkpoint.data.total;
        println!("  resuming `{id}` at item {} of {total}", checkpoint.cursor);
        // Calling the `#[checkpointed]` function again resumes it from the same checkpoint.
        let mut progress = checkpoint.data;
        run_batch(store, job, total, None, &mut progress).map(|checksum| (checksum, total))
    })??;
    let (checksum, total) = checksum;
    let verdict = if checksum == uninterrupted(total) { "matches" } else { "DIFFERS FROM" };
    println!(
        "  `{id}` completed: {total} items, checksum {checksum:016x} {verdict} an uninterrupted run"
    );
    Ok(())
}

fn run(options: &Options) -> Result<(), DemoError> {
    let store = FailsafeManager::open(&options.store_dir)?;
    println!("Checkpoint store: {}", store.dir().display());
    if options.demo {
        create_demo_operations(&store)?;
    }

    // The guide's start-up check: which operations did an earlier run leave unfinished?
    let recoverable = store.recoverable_operations()?;
    if recoverable.is_empty() {
        println!("No operations to recover.");
        return Ok(());
    }
    println!("Recoverable operations ({}):", recoverable.len());
    for op in &recoverable {
        let error = op.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
        println!(
            "  {:<18} {:<14} {:<7} {:>3.0}%{error}",
            op.operation_id,
            op.operation_name,
            format!("{:?}", op.state),
            op.progress * 100.0
        );
    }

    let mut answers = Answers::new(options.answer);
    let (mut resumed, mut failed) = (0, 0);
    for op in &recoverable {
        let id = &op.operation_id;
        if !id.starts_with(DEMO_PREFIX) {
            // Only the program that owns an operation knows how to run it.
            println!(
                "`{id}` ({}) belongs to another program: it resumes when that program runs again",
                op.operation_name
            );
            continue;
        }
        let question = format!(
            "Resume `{id}` ({}, {:?} at {:.0}%)?",
            op.operation_name,
            op.state,
            op.progress * 100.0
        );
        if !answers.ask(&question) {
            println!("  left `{id}` for later");
            continue;
        }
        // One operation that cannot be resumed (locked by a running program, written by
        // another version...) does not keep the others from being recovered.
        match resume_demo(&store, id) {
            Ok(()) => resumed += 1,
            Err(e) => {
                println!("  could not resume `{id}`: {e}");
                failed += 1;
            }
        }
    }
    println!("Resumed {resumed} of {} operations.", recoverable.len());
    if failed > 0 {
        return Err(DemoError::Unrecovered { count: failed });
    }
    Ok(())
}

/// Yes/no answers: fixed by `--yes`/`--no`, else read from stdin (end of input means no).
struct Answers {
    fixed: Option<bool>,
    stdin: io::StdinLock<'static>,
}

impl Answers {
    fn new(fixed: Option<bool>) -> Self {
        Answers { fixed, stdin: io::stdin().lock() }
    }

    fn ask(&mut self, question: &str) -> bool {
        if let Some(answer) = self.fixed {
            println!("{question} [y/N] {}", if answer { "y" } else { "n" });
            return answer;
        }
        print!("{question} [y/N] ");
        let _ = io::stdout().flush();
        let mut line = String::new();
        match self.stdin.read_line(&mut line) {
            Ok(0) | Err(_) => {
                println!();
                false
            }
            Ok(_) => {
                if !io::stdin().is_terminal() {
                    println!("{}", line.trim()); // echo piped answers, as a terminal would
                }
                matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
            }
        }
    }
}

struct Options {
    store_dir: PathBuf,
    demo: bool,
    answer: Option<bool>,
}

const USAGE: &str = "\
usage: startup_recovery [--data DIR] [--demo] [--yes | --no]

  --data DIR   the data directory; its checkpoint store is DIR/.resilience, or
               $RESILIENCE_DIR when that is set (default: data)
  --demo       first create two interrupted demo operations
  --yes        resume every operation without asking
  --no         resume nothing, only list (so does the end of the input)";

fn parse(args: impl Iterator<Item = OsString>) -> Result<Option<Options>, String> {
    let mut data = PathBuf::from("data");
    let mut demo = false;
    let mut answer = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--data") => {
                data = args.next().ok_or("`--data` needs a directory")?.into();
            }
            Some("--demo") => demo = true,
            Some("--yes") => answer = Some(true),
            Some("--no") => answer = Some(false),
            Some("-h" | "--help") => return Ok(None),
            _ => return Err(format!("unknown argument `{}`", arg.display())),
        }
    }
    let store_dir = std::env::var_os("RESILIENCE_DIR")
        .map_or_else(|| Path::new(&data).join(".resilience"), PathBuf::from);
    Ok(Some(Options { store_dir, demo, answer }))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args_os().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
