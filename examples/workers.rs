//! A pool of workers sharing operations through one store.
//!
//! ```sh
//! # Postgres (feature `postgres`): run it on several machines against one database.
//! RESILIENCE_STORE=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --example workers --features postgres -- 4
//! # Without a database: the workers share a directory store on this machine.
//! cargo run --example workers -- 4
//! ```
//!
//! The first worker to start queues a few batch operations (as `Paused` at item 0). Every worker
//! then loops: claim a recoverable operation nobody holds (`claim_recoverable`: one statement
//! on Postgres, so no two workers get the same one), run it with `#[checkpointed]`, which
//! resumes it where the last worker left it, and claim the next. Worker 0 fails in the middle
//! of its first operation and stops: another worker claims the `Failed` operation and resumes it
//! from its last checkpoint. (A worker that dies or hangs instead keeps its lease until the
//! lease TTL has passed; then the same happens: see `docs/DISTRIBUTED.md`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Batch {
    #[checkpoint(cursor)]
    done: u64,
    sum: u64,
}

/// Set once: worker 0 stops in the middle of its first batch, as a crashed process would.
static CRASHED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error("worker {0} crashed")]
    Crash(usize),
    #[error(transparent)]
    Store(#[from] Error),
}

#[checkpointed(manager = store, id = "{op}", every = 5, input = none)]
fn run_batch(
    store: &FailsafeManager,
    op: &str,
    worker: usize,
    items: u64,
    batch: &mut Batch,
) -> Result<u64, WorkError> {
    for item in 0..items {
        if worker == 0 && item == 12 && !CRASHED.swap(true, Ordering::Relaxed) {
            return Err(WorkError::Crash(worker));
        }
        std::thread::sleep(Duration::from_millis(5));
        batch.sum += item;
    }
    Ok(batch.sum)
}

fn open() -> Result<FailsafeManager, Error> {
    // `$RESILIENCE_STORE` (a postgres:// URL or a directory) if set, else a directory here.
    let builder = FailsafeManager::builder().lease_ttl(Duration::from_secs(2));
    match std::env::var("RESILIENCE_STORE") {
        Ok(url) if url.starts_with("postgres") => {
            builder.postgres(url).pg_schema("workers_example")
        }
        Ok(dir) => builder.dir(dir),
        Err(_) => builder.dir(std::env::temp_dir().join("resilience-workers-example")),
    }
    .build()
}

fn worker(id: usize) -> Result<Vec<String>, Error> {
    let store = open()?;
    let mut done = Vec::new();
    let mut idle = 0;
    while idle < 40 {
        let Some((summary, claim)) = store.claim_recoverable()? else {
            idle += 1;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        idle = 0;
        let op = summary.operation_id.clone();
        println!("worker {id}: claimed `{op}` at item {} ({:?})", summary.cursor, summary.state);
        // The run takes the operation's lock itself: give up the claim's right before. If
        // another worker claims it in between, only one of the two runs gets the lock.
        drop(claim);
        match run_batch(&store, &op, id, 30, &mut Batch::default()) {
            Ok(sum) => {
                println!("worker {id}: completed `{op}` (sum {sum})");
                done.push(op);
            }
            Err(WorkError::Crash(_)) => {
                println!("worker {id}: failed in `{op}`; another worker resumes it");
                return Ok(done);
            }
            Err(WorkError::Store(Error::Locked { .. })) => {}
            Err(WorkError::Store(e)) => return Err(e),
        }
    }
    Ok(done)
}

fn main() -> Result<(), Error> {
    let workers: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    let store = open()?;
    for n in 0..6 {
        let id = format!("batch-{n}");
        if store.load_checkpoint::<Batch>(&id)?.is_none_or(|c| c.state == ProcessState::Completed) {
            store.save_checkpoint(&id, "Batch", ProcessState::Paused, 0.0, &Batch::default())?;
        }
    }
    let handles: Vec<_> = (0..workers).map(|id| std::thread::spawn(move || worker(id))).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.join().expect("a worker panicked")?.len();
    }
    println!("{total} batches completed by {workers} workers");
    for summary in store.operations()? {
        println!("  {}: {:?} at item {}", summary.operation_id, summary.state, summary.cursor);
    }
    Ok(())
}
