//! Start-up recovery: find the operations an earlier run left unfinished and offer to resume
//! them, with `resilience::recovery::Recovery`.
//!
//! ```text
//! cargo run --example startup_recovery -- --demo         # make two interrupted operations, then ask
//! cargo run --example startup_recovery -- --demo --yes   # ... and resume them without asking
//! cargo run --example startup_recovery                   # list what ./data/.resilience holds
//! ```
//!
//! It reads the same store as `photo_pipeline` (`./data/.resilience`, or `$RESILIENCE_DIR`), so
//! an interrupted photo import shows up here too (with no handler: only that program resumes it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use resilience::recovery::Recovery;
use resilience::{Checkpointable, FailsafeManager, OperationSummary, checkpointed};
use serde::{Deserialize, Serialize};

/// The demo jobs: name, items, and how the first run stops.
const DEMO_JOBS: [(&str, u64, Stop); 2] =
    [("thumbnails", 40, Stop::FailAt(23)), ("reindex", 30, Stop::PauseAt(15))];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// The first run fails at this item, as a crash or an outage would stop it.
    FailAt(u64),
    /// The first run is paused (as by Ctrl-C) once this many items are done.
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
/// it and the loop starts after the last checkpointed item (or, after a pause, after the last
/// item done). `input = [items]`: a resume must see the same number of items.
#[checkpointed(manager = store, every = 5, id = "demo-{job}", name = "Demo batch", input = [items])]
fn run_batch(
    store: &FailsafeManager,
    job: &str,
    items: u64,
    stop: Option<Stop>,
    progress: &mut BatchProgress,
) -> Result<u64, DemoError> {
    progress.total = items;
    for item in 0..items {
        match stop {
            Some(Stop::FailAt(at)) if at == item => return Err(DemoError::WorkerLost { item }),
            Some(Stop::PauseAt(at)) if at == item + 1 => resilience::request_pause(),
            _ => {}
        }
        progress.checksum = step(progress.checksum, item);
    }
    Ok(progress.checksum)
}

fn step(checksum: u64, item: u64) -> u64 {
    (checksum ^ item).wrapping_mul(0x100_0000_01b3).rotate_left(7)
}

/// Leaves two interrupted operations in the store: one failed, one paused.
fn create_demo_operations(store: &FailsafeManager) -> Result<(), DemoError> {
    for (job, items, stop) in DEMO_JOBS {
        let id = format!("demo-{job}");
        store.discard(&id)?;
        // The first run stops: at its failing item (its `Failed` checkpoint holds the progress
        // of the last checkpointed item, 20, not the half-done 23), or paused after item 15.
        let error = run_batch(store, job, items, Some(stop), &mut BatchProgress::default())
            .expect_err("the demo run stops");
        resilience::cancel_pause();
        println!("Created `{id}`: {items} items, stopped: {error}");
    }
    Ok(())
}

/// The handler of "Demo batch" operations: calling the `#[checkpointed]` function again resumes
/// it from its checkpoint.
fn resume_demo(store: &FailsafeManager, op: &OperationSummary) -> Result<String, DemoError> {
    let id = &op.operation_id;
    let job = id.strip_prefix("demo-").unwrap_or(id);
    let (_, total, _) = DEMO_JOBS.iter().find(|(name, ..)| *name == job).copied().unwrap_or((
        job,
        0,
        Stop::FailAt(0),
    ));
    println!("  resuming `{id}` at item {} of {total}", op.cursor);
    let checksum = run_batch(store, job, total, None, &mut BatchProgress::default())?;
    let verdict = if checksum == (0..total).fold(0, step) { "matches" } else { "DIFFERS FROM" };
    Ok(format!(
        "`{id}` completed: {total} items, checksum {checksum:016x} {verdict} an uninterrupted run"
    ))
}

fn run(options: &Options) -> Result<(), DemoError> {
    let store = FailsafeManager::open(&options.store_dir)?;
    println!("Checkpoint store: {}", store.dir().display());
    if options.demo {
        create_demo_operations(&store)?;
    }

    // The guide's start-up check, one question per unfinished operation. Operations of other
    // programs (the photo import) have no handler here: they are listed, not resumed.
    let recovery = Recovery::new(&store).handler("Demo batch", |op| resume_demo(&store, op));
    let recovery = match options.answer {
        Some(true) => recovery.assume_yes(),
        Some(false) => recovery.interactive().io(std::io::empty(), std::io::stdout()),
        None => recovery.interactive(),
    };
    let report = recovery.run()?;
    for id in &report.declined {
        println!("  left `{id}` for later");
    }
    let went_through = report.resumed.len() + report.declined.len() + report.failed.len();
    if went_through > 0 {
        println!("Resumed {} of {went_through} operations.", report.resumed.len());
    }
    if !report.failed.is_empty() {
        return Err(DemoError::Unrecovered { count: report.failed.len() });
    }
    Ok(())
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
