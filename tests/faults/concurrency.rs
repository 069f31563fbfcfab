//! Concurrency: threads saving at once through one manager (with readers listing and loading
//! meanwhile), then a new manager verifying every operation; two processes racing for one
//! operation id.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use resilience::{Durability, Error, FailsafeManager, ProcessState, checkpointed};

use crate::crash::{Tally, effect, expected};
use crate::{ChildRole, JobError};

const THREADS: u64 = 8;
const OPS_PER_THREAD: u64 = 25;

fn id(thread: u64, op: u64) -> String {
    format!("thread-{thread}/op-{op}")
}

/// The state saved as checkpoint `k` of thread `t`.
fn data(t: u64, k: u64) -> Tally {
    let mut state = expected(k % 40);
    state.sum = t << 32 | k;
    state
}

fn hammer(durability: Durability, saves_per_thread: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let mgr = FailsafeManager::builder().dir(tmp.path()).durability(durability).build().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let mgr = mgr.clone();
                s.spawn(move || {
                    for k in 0..saves_per_thread {
                        let state = if k + 1 == saves_per_thread {
                            ProcessState::Completed
                        } else {
                            ProcessState::Running
                        };
                        let op = id(t, k % OPS_PER_THREAD);
                        mgr.save_checkpoint(&op, "hammer", state, 0.0, &data(t, k)).unwrap();
                    }
                })
            })
            .collect();
        // A reader listing and loading while the writers run: never an error.
        let reader = s.spawn(|| {
            let mut rng = crate::rng("concurrency-reader");
            let mut reads = 0u64;
            while !stop.load(Relaxed) {
                let _ = mgr.operations().unwrap();
                let (t, op) = (rng.u64(0..THREADS), rng.u64(0..OPS_PER_THREAD));
                if let Some(cp) = mgr.load_checkpoint::<Tally>(&id(t, op)).unwrap() {
                    assert_eq!(cp.data.sum >> 32, t);
                    assert_eq!((cp.data.sum & 0xffff_ffff) % OPS_PER_THREAD, op);
                }
                reads += 1;
            }
            reads
        });
        // Joined before any unwrap: a writer's panic must still stop the reader, or the scope
        // would wait for it forever.
        let joined: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Relaxed);
        let reads = reader.join();
        for writer in joined {
            writer.unwrap();
        }
        assert!(reads.unwrap() > 0);
    });
    drop(mgr);

    let fresh = FailsafeManager::open(tmp.path()).unwrap();
    let mut checked = 0;
    for t in 0..THREADS {
        for op in 0..OPS_PER_THREAD {
            let history = fresh.history::<Tally>(&id(t, op)).unwrap();
            let written: Vec<u64> =
                (0..saves_per_thread).filter(|k| k % OPS_PER_THREAD == op).collect();
            let newest_first: Vec<u64> = written.iter().rev().take(5).copied().collect();
            let got: Vec<u64> = history.iter().map(|cp| cp.data.sum & 0xffff_ffff).collect();
            assert_eq!(got, newest_first, "{}", id(t, op));
            for (cp, &k) in history.iter().zip(&newest_first) {
                assert_eq!(cp.data, data(t, k));
                assert_eq!(cp.operation_id, id(t, op));
            }
            assert_eq!(history[0].sequence, written.len() as u64);
            checked += 1;
        }
    }
    let listed = fresh.operations().unwrap();
    assert_eq!(listed.len(), checked);
    let done = listed.iter().filter(|s| s.state == ProcessState::Completed).count();
    assert_eq!(done, THREADS as usize);
}

#[test]
fn threads_saving_at_once_lose_nothing() {
    let saves = crate::scale(500, 5_000) as u64;
    hammer(Durability::Buffered, saves);
    hammer(Durability::Sync, saves);
    println!(
        "concurrency: {THREADS} threads x {saves} checkpoints over {} operations, Buffered and \
         Sync, all verified by a new manager",
        THREADS * OPS_PER_THREAD
    );
}

#[checkpointed(manager = mgr, id = "shared")]
fn gated(mgr: &FailsafeManager, items: &[u64], state: &mut Tally) -> Result<(), JobError> {
    for &item in items {
        if item == 3 {
            // Hold the operation until the parent says go.
            println!("@running");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
        }
        effect(state, item);
    }
    Ok(())
}

/// The child side of the race: runs `gated` and reports how it went.
pub fn lock_race_child() {
    let mgr = FailsafeManager::open(std::env::var("FAULTS_DIR").unwrap()).unwrap();
    let items: Vec<u64> = (0..10).collect();
    let mut state = Tally::default();
    match gated(&mgr, &items, &mut state) {
        Ok(()) => println!("@done {}", state.done),
        Err(JobError::Store(Error::Locked { operation_id })) => println!("@locked {operation_id}"),
        Err(e) => println!("@error {e}"),
    }
}

#[test]
fn two_processes_on_one_operation_one_runs_one_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let rounds = crate::scale(3, 20);
    for round in 0..rounds {
        let env = [("FAULTS_DIR", dir.as_os_str())];
        let mut a = ChildRole::spawn("lock-race", &env);
        let mut b = ChildRole::spawn("lock-race", &env);
        // Whoever holds the lock says `running` and waits; the other one is refused at once.
        let first_a = a.wait_for("@").unwrap_or_default();
        let first_b = b.wait_for("@").unwrap_or_default();
        let (winner, loser_line) = match (first_a.as_str(), first_b.as_str()) {
            ("@running", other) => (&mut a, other.to_owned()),
            (other, "@running") => (&mut b, other.to_owned()),
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(loser_line, "@locked shared", "round {round}");
        // In this process too, while the winner holds it.
        let mgr = FailsafeManager::open(&dir).unwrap();
        let mut state = Tally::default();
        assert!(matches!(
            gated(&mgr, &[0, 1, 2], &mut state),
            Err(JobError::Store(Error::Locked { .. }))
        ));
        writeln!(winner.child.stdin.as_mut().unwrap(), "go").unwrap();
        assert_eq!(winner.wait_for("@").as_deref(), Some("@done 10"), "round {round}");
        for child in [&mut a, &mut b] {
            assert!(child.child.wait().unwrap().success());
        }
        let cp = mgr.load_checkpoint::<Tally>("shared").unwrap().unwrap();
        assert_eq!((cp.state, cp.data.clone()), (ProcessState::Completed, expected(10)));
    }
    println!("locks: {rounds} races of two processes, one ran, one got Error::Locked each time");
}
