//! Cluster: worker processes share operations of a Postgres store through `claim_recoverable`
//! while a killer sends SIGKILL, SIGSTOP past the lease TTL, and `pg_terminate_backend`.
//!
//! Each worker loops: claim a recoverable operation (its lease and fencing token), load its
//! checkpoint, process the items from its cursor (each item's effect goes into the state, and a
//! line into the worker's side file), save a `Running` checkpoint every `EVERY` items and
//! `Completed` at the end. Side-file lines, with the machine's monotonic clock:
//! `L op token t` (lease taken, `t` after the claim returned), `A op token cursor t` (a save
//! acknowledged, `t` when it was sent), `P op item` (an item processed). At the end:
//! - every operation is `Completed` and its state is exactly the fault-free one;
//! - every item was processed at least once; per takeover at most `EVERY` items were processed
//!   again (a killed or stopped holder's items after its last acknowledged save);
//! - no save with a stale token was accepted: no save of token `T` sent after a lease with a
//!   higher token of the same operation had been taken was acknowledged;
//! - nothing is corrupt (every load decoded).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState};
use serde::{Deserialize, Serialize};

use crate::{ChildRole, now_ns};

const OPERATIONS: u64 = 20;
const ITEMS: u64 = 1000;
const EVERY: u64 = 10;
const TTL: Duration = Duration::from_millis(400);

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Work {
    #[checkpoint(cursor)]
    done: u64,
    sum: u64,
}

fn url() -> String {
    std::env::var("RESILIENCE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn line(mut side: &File, text: String) {
    side.write_all(text.as_bytes()).unwrap();
}

fn manager(schema: &str, app: &str) -> Result<FailsafeManager, Error> {
    FailsafeManager::builder()
        .postgres(format!("{}?application_name={app}", url()))
        .pg_schema(schema)
        .lease_ttl(TTL)
        .build()
}

/// The child side: a worker, until every operation is completed or it is killed.
pub fn child() {
    let schema = std::env::var("FAULTS_SCHEMA").unwrap();
    let app = std::env::var("FAULTS_APP").unwrap();
    let side = OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::var_os("FAULTS_SIDE").unwrap())
        .unwrap();
    let store = manager(&schema, &app).unwrap();
    println!("ready");
    loop {
        let claim = match store.claim_recoverable() {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                match store.operations() {
                    Ok(ops) if ops.iter().all(|o| o.state == ProcessState::Completed) => return,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
                continue;
            }
            // A terminated connection: the next call reconnects.
            Err(Error::Database { retryable: true, .. }) => continue,
            Err(e) => panic!("claim: {e}"),
        };
        let (summary, lock) = claim;
        let op = summary.operation_id;
        let token = lock.fencing_token().unwrap();
        line(&side, format!("L {op} {token} {}\n", now_ns()));
        let mut state = match store.load_checkpoint::<Work>(&op) {
            Ok(Some(checkpoint)) => checkpoint.data,
            Ok(None) => Work::default(),
            Err(Error::Database { retryable: true, .. }) => continue,
            Err(e) => panic!("load {op}: {e}"),
        };
        let result = (|| {
            for item in state.done..ITEMS {
                std::thread::sleep(Duration::from_micros(1500));
                state.sum += item;
                state.done = item + 1;
                line(&side, format!("P {op} {item}\n"));
                let finished = state.done == ITEMS;
                if state.done.is_multiple_of(EVERY) || finished {
                    let s = if finished { ProcessState::Completed } else { ProcessState::Running };
                    let progress = state.done as f64 / ITEMS as f64;
                    // The time the save is sent: a save sent after a newer lease was taken
                    // must be refused (one that was in flight then may have committed before).
                    let sent = now_ns();
                    store.save_checkpoint(&op, "Cluster", s, progress, &state)?;
                    line(&side, format!("A {op} {token} {} {sent}\n", state.done));
                }
            }
            Ok::<(), Error>(())
        })();
        match result {
            Ok(())
            | Err(Error::LeaseLost { .. })
            | Err(Error::Database { retryable: true, .. }) => {}
            Err(e) => panic!("{op}: {e}"),
        }
        drop(lock);
    }
}

struct Worker {
    role: ChildRole,
    app: String,
    side: PathBuf,
}

/// The operation a worker holds a lease on last, from its side file.
fn current_operation(side: &Path) -> Option<String> {
    let text = std::fs::read_to_string(side).ok()?;
    let line = text.lines().rfind(|l| l.starts_with("L "))?;
    Some(line.split(' ').nth(1)?.to_owned())
}

fn spawn(schema: &str, dir: &Path, sides: &mut Vec<PathBuf>, slot: usize) -> Worker {
    let side = dir.join(format!("side-{}.log", sides.len()));
    sides.push(side.clone());
    let app = format!("{schema}-w{slot}");
    let mut role = ChildRole::spawn(
        "cluster",
        &[
            ("FAULTS_SCHEMA", schema.as_ref()),
            ("FAULTS_APP", app.as_ref()),
            ("FAULTS_SIDE", side.as_os_str()),
        ],
    );
    role.wait_for("ready").expect("a cluster worker started");
    Worker { role, app, side }
}

fn signal(worker: &Worker, sig: libc::c_int) {
    // SAFETY: a signal to a child of ours.
    unsafe { libc::kill(worker.role.child.id() as libc::pid_t, sig) };
}

/// Takes `op` over (once its lease has expired) and saves its checkpoint again under the new
/// lease, logging like a worker.
fn take_over(store: &FailsafeManager, op: &str, side: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let lock = loop {
        match store.lock(op) {
            Ok(lock) => break lock,
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Error::Locked { .. }) => return,
            Err(e) => panic!("take over {op}: {e}"),
        }
    };
    let token = lock.fencing_token().unwrap();
    let side = OpenOptions::new().create(true).append(true).open(side).unwrap();
    line(&side, format!("L {op} {token} {}\n", now_ns()));
    let Some(checkpoint) = store.load_checkpoint::<Work>(op).unwrap() else { return };
    if checkpoint.state == ProcessState::Completed {
        return;
    }
    let done = checkpoint.data.done;
    store
        .save_checkpoint(op, "Cluster", checkpoint.state, checkpoint.progress, &checkpoint.data)
        .unwrap();
    line(&side, format!("A {op} {token} {done} {}\n", now_ns()));
}

struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }
}

#[test]
fn workers_share_operations_under_kills_stops_and_disconnects() {
    let mut rng = crate::rng("cluster");
    let tmp = tempfile::tempdir().unwrap();
    let schema = Schema(format!("faults_cluster_{}", std::process::id()));
    let store = manager(&schema.0, "cluster-parent")
        .expect("the test server answers ($RESILIENCE_TEST_POSTGRES)");
    for n in 0..OPERATIONS {
        let op = format!("op-{n:02}");
        store.save_checkpoint(&op, "Cluster", ProcessState::Paused, 0.0, &Work::default()).unwrap();
    }
    let mut admin = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
    let workers_n = 4;
    let parent_side = tmp.path().join("side-parent.log");
    let mut sides = vec![parent_side.clone()];
    let mut workers: Vec<Worker> =
        (0..workers_n).map(|slot| spawn(&schema.0, tmp.path(), &mut sides, slot)).collect();
    let (mut kills, mut stops, mut disconnects) = (0usize, 0usize, 0usize);
    let (want_kills, want_stops, want_disconnects) = (crate::scale(50, 300), 5, 5);
    let start = Instant::now();
    while kills < want_kills || stops < want_stops || disconnects < want_disconnects {
        assert!(start.elapsed() < Duration::from_secs(300), "the fault phase did not end");
        std::thread::sleep(Duration::from_millis(rng.u64(100..300)));
        let slot = rng.usize(..workers_n);
        let choice = rng.u8(..100);
        if choice < 60 && kills < want_kills
            || stops >= want_stops && disconnects >= want_disconnects
        {
            signal(&workers[slot], libc::SIGKILL);
            let _ = workers[slot].role.child.wait();
            kills += 1;
            workers[slot] = spawn(&schema.0, tmp.path(), &mut sides, slot);
        } else if choice < 80 && stops < want_stops {
            // A stopped worker's lease expires, and another worker (here, this process) takes
            // the operation over and saves: the stopped worker's next save must be refused.
            signal(&workers[slot], libc::SIGSTOP);
            std::thread::sleep(TTL + Duration::from_millis(rng.u64(100..300)));
            if let Some(op) = current_operation(&workers[slot].side) {
                take_over(&store, &op, &parent_side);
            }
            signal(&workers[slot], libc::SIGCONT);
            stops += 1;
        } else if disconnects < want_disconnects {
            let app = workers[slot].app.clone();
            let ended: i64 = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = $1",
                    &[&app],
                )
                .unwrap()
                .get(0);
            disconnects += usize::from(ended > 0);
        }
    }
    // Faults over: the workers finish the operations.
    let deadline = Instant::now() + Duration::from_secs(180);
    for worker in &mut workers {
        let status = loop {
            if let Some(status) = worker.role.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the workers did not finish the operations");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "a worker failed: {status:?}");
    }

    // The store: every operation completed with the fault-free state.
    let mut corrupt = 0;
    let expected = Work { done: ITEMS, sum: (0..ITEMS).sum() };
    for n in 0..OPERATIONS {
        match store.load_checkpoint::<Work>(&format!("op-{n:02}")) {
            Ok(Some(c)) => {
                assert_eq!(c.state, ProcessState::Completed, "op-{n:02}");
                assert_eq!(c.data, expected, "op-{n:02}: its state is not the fault-free one");
            }
            Ok(None) => panic!("op-{n:02} is gone"),
            Err(_) => corrupt += 1,
        }
    }

    // The side files.
    let mut leases: HashMap<String, Vec<(u64, u64)>> = HashMap::new(); // op -> (token, t)
    let mut acks: Vec<(String, u64, u64)> = Vec::new(); // (op, token, t)
    let mut processed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for side in &sides {
        let text = std::fs::read_to_string(side).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        for line in whole.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "L" => leases
                    .entry(f[1].to_owned())
                    .or_default()
                    .push((f[2].parse().unwrap(), f[3].parse().unwrap())),
                "A" => acks.push((f[1].to_owned(), f[2].parse().unwrap(), f[4].parse().unwrap())),
                "P" => processed.entry(f[1].to_owned()).or_default().push(f[2].parse().unwrap()),
                other => panic!("bad side line {other:?}"),
            }
        }
    }
    let stale = acks
        .iter()
        .filter(|(op, token, t)| leases[op].iter().any(|(newer, taken)| newer > token && taken < t))
        .count();
    let (mut lost, mut max_redo) = (0usize, 0u64);
    for n in 0..OPERATIONS {
        let op = format!("op-{n:02}");
        let items = processed.get(&op).cloned().unwrap_or_default();
        let mut seen = vec![false; ITEMS as usize];
        for &item in &items {
            seen[item as usize] = true;
        }
        lost += seen.iter().filter(|s| !**s).count();
        let extra = items.len() as u64 - ITEMS;
        let takeovers = (leases.get(&op).map_or(0, Vec::len) as u64).saturating_sub(1).max(1);
        max_redo = max_redo.max(extra.div_ceil(takeovers));
    }
    let summary = format!(
        "cluster: {kills} kills, {stops} stops, {disconnects} disconnects, {workers_n} workers, \
         {OPERATIONS} operations, {lost} lost, {stale} stale writes accepted, {max_redo} max redo \
         ({corrupt} corrupt, every = {EVERY}, lease TTL {TTL:?})"
    );
    println!("{summary}");
    let _ = writeln!(std::io::stderr(), "{summary}");
    assert!(lost == 0 && stale == 0 && corrupt == 0 && max_redo <= EVERY, "{summary}");
}
