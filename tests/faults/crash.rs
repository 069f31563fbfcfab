//! Crash loop: a `#[checkpointed(every = N)]` job in a child process is SIGKILLed at random
//! instants and rerun until it completes.
//!
//! The job appends each item's number to a log once the item's effect is applied, so the log is
//! what was processed. Per kill, with `P` items logged by the killed run (which started at
//! cursor `c0`) and `c` the cursor of the checkpoint a fresh manager then loads:
//! - the checkpoint is readable (never `Error::Corrupt`) and its data is exactly the fault-free
//!   state after `c` items (never half-applied);
//! - `c0 <= c <= c0 + P`: a checkpoint is never ahead of what was processed, never behind an
//!   earlier one;
//! - `c0 + P - c <= N`: the items redone by the next run are at most `every`, because the
//!   checkpoint at boundary `c0 + kN` is written before item `c0 + kN` starts;
//! - the next run's first logged item is `c`.
//!
//! At the end every item was processed at least once and the `Completed` checkpoint holds the
//! fault-free result.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use resilience::{Checkpointable, Durability, Error, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

use crate::{ChildRole, JobError};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Tally {
    #[checkpoint(cursor)]
    pub done: u64,
    pub sum: u64,
    /// Order-sensitive: a skipped, repeated or reordered item changes it.
    pub chain: u64,
    /// Grows with the items, so records outgrow their slots and files get rewritten.
    pub marks: Vec<u64>,
}

fn mix(item: u64) -> u64 {
    let mut x = item.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub fn effect(state: &mut Tally, item: u64) {
    let v = mix(item);
    state.sum = state.sum.wrapping_add(v);
    state.chain = (state.chain ^ v).rotate_left(9).wrapping_mul(0x2545_f491_4f6c_dd1d);
    if item.is_multiple_of(16) {
        state.marks.push(v);
    }
}

/// The fault-free state after the first `n` items.
pub fn expected(n: u64) -> Tally {
    let mut state = Tally::default();
    for item in 0..n {
        effect(&mut state, item);
    }
    state.done = n;
    state
}

/// A little CPU work per item, so that kills land inside the loop and not only in saves.
fn busy(item: u64, rounds: u32) -> u64 {
    let mut x = item;
    for _ in 0..rounds {
        x = std::hint::black_box(mix(x));
    }
    x
}

fn log_item(mut log: &File, item: u64) -> Result<(), JobError> {
    // One `write` per line: a kill leaves whole lines (a torn tail is cut by the parent).
    let line = format!("{item}\n");
    log.write_all(line.as_bytes()).map_err(JobError::Log)
}

macro_rules! crash_job {
    ($name:ident, $every:tt) => {
        #[checkpointed(manager = mgr, every = $every, id = "crash-{round}")]
        fn $name(
            mgr: &FailsafeManager,
            round: u64,
            items: Range<u64>,
            log: &File,
            spin: u32,
            state: &mut Tally,
        ) -> Result<(), JobError> {
            for item in items {
                busy(item, spin);
                effect(state, item);
                log_item(log, item)?;
            }
            Ok(())
        }
    };
}

crash_job!(job_every_1, 1);
crash_job!(job_every_7, 7);
crash_job!(job_every_50, 50);

/// One value of `every` and the job's size.
#[derive(Clone, Copy)]
struct Plan {
    every: u64,
    items: u64,
    spin: u32,
    /// Kills land 0..max_delay after the child says it is ready.
    max_delay: Duration,
    kills: usize,
    /// `Durability::Buffered`: checkpoints reach the file lazily, so a kill may lose the
    /// newest ones and the redo bound does not apply; the file must still never be damaged.
    buffered: bool,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The child side: runs the job once (resuming from the store) and says `done`.
pub fn child() {
    let durability = match env("FAULTS_BUFFERED").as_str() {
        "1" => Durability::Buffered,
        _ => Durability::Sync,
    };
    let mgr = FailsafeManager::builder().dir(env("FAULTS_DIR")).durability(durability).build();
    let mgr = mgr.unwrap();
    let log = OpenOptions::new().create(true).append(true).open(env("FAULTS_LOG")).unwrap();
    let round: u64 = env("FAULTS_ROUND").parse().unwrap();
    let items = 0..env("FAULTS_ITEMS").parse::<u64>().unwrap();
    let spin: u32 = env("FAULTS_SPIN").parse().unwrap();
    let mut state = Tally::default();
    println!("ready");
    let result = match env("FAULTS_EVERY").as_str() {
        "1" => job_every_1(&mgr, round, items, &log, spin, &mut state),
        "7" => job_every_7(&mgr, round, items, &log, spin, &mut state),
        "50" => job_every_50(&mgr, round, items, &log, spin, &mut state),
        other => panic!("no job with every = {other}"),
    };
    result.unwrap();
    println!("done {}", state.done);
}

/// Totals over every plan.
#[derive(Default, Debug)]
struct Tallies {
    kills: usize,
    rounds: usize,
    lost: u64,
    corrupt: usize,
    max_redo: u64,
    /// Kills that landed after the killed run had processed an item.
    in_loop: usize,
    buffered_kills: usize,
}

/// The log's items, after cutting a torn last line off the file.
fn read_log(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(whole as u64).unwrap();
    }
    std::str::from_utf8(&bytes[..whole])
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap_or_else(|_| panic!("bad log line {line:?}")))
        .collect()
}

impl Plan {
    fn name(&self) -> String {
        let mode = if self.buffered { "buffered" } else { "sync" };
        format!("every-{}-{mode}", self.every)
    }
}

fn run_plan(plan: Plan, dir: &Path, rng: &mut fastrand::Rng, totals: &mut Tallies) {
    let mut kills = 0;
    let mut round = 0u64;
    while kills < plan.kills {
        round += 1;
        totals.rounds += 1;
        let id = format!("crash-{round}");
        let name = plan.name();
        let store = dir.join(&name);
        let log_path = dir.join(format!("{name}-round-{round}.log"));
        let buffered = if plan.buffered { "1" } else { "0" };
        let every = plan.every.to_string();
        let items = plan.items.to_string();
        let spin = plan.spin.to_string();
        let round_text = round.to_string();
        let mut cursor = 0u64;
        let mut logged = 0usize;
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs < 100_000, "every = {}: the job never completes", plan.every);
            let mut child = ChildRole::spawn(
                "crash",
                &[
                    ("FAULTS_DIR", store.as_os_str()),
                    ("FAULTS_LOG", log_path.as_os_str()),
                    ("FAULTS_ROUND", round_text.as_ref()),
                    ("FAULTS_ITEMS", items.as_ref()),
                    ("FAULTS_SPIN", spin.as_ref()),
                    ("FAULTS_EVERY", every.as_ref()),
                    ("FAULTS_BUFFERED", buffered.as_ref()),
                ],
            );
            assert!(child.wait_for("ready").is_some(), "the child did not start");
            let delay = rng.u64(0..plan.max_delay.as_micros() as u64);
            std::thread::sleep(Duration::from_micros(delay));
            let _ = child.child.kill();
            let status = child.child.wait().unwrap();
            let rest = child.drain();
            let killed = status.signal() == Some(libc::SIGKILL);
            assert!(killed || status.success(), "the child failed: {status}");

            let log = read_log(&log_path);
            let new = &log[logged..];
            logged = log.len();
            for (k, &item) in new.iter().enumerate() {
                assert_eq!(item, cursor + k as u64, "every = {}: run {runs} skipped", plan.every);
            }
            let processed_to = cursor + new.len() as u64;

            let mgr = FailsafeManager::open(&store).unwrap();
            let checkpoint = match mgr.load_checkpoint::<Tally>(&id) {
                Ok(checkpoint) => checkpoint,
                Err(e @ Error::Corrupt { .. }) => {
                    totals.corrupt += 1;
                    panic!("every = {}, run {runs}: {e}", plan.every);
                }
                Err(e) => panic!("every = {}, run {runs}: {e}", plan.every),
            };
            let c = checkpoint.as_ref().map_or(0, |cp| cp.cursor);
            if let Some(cp) = &checkpoint {
                assert_eq!(cp.data, expected(c), "every = {}: checkpoint at {c}", plan.every);
            }
            assert!(c >= cursor, "every = {}: checkpoint went back {cursor} -> {c}", plan.every);
            assert!(c <= processed_to, "every = {}: checkpoint {c} ahead of the log", plan.every);
            let redo = processed_to - c;
            let completed =
                checkpoint.as_ref().is_some_and(|cp| cp.state == ProcessState::Completed);
            if killed && !completed {
                kills += 1;
                totals.in_loop += usize::from(!new.is_empty());
                totals.kills += 1;
                if plan.buffered {
                    totals.buffered_kills += 1;
                } else {
                    totals.max_redo = totals.max_redo.max(redo);
                    assert!(redo <= plan.every, "every = {}: {redo} items to redo", plan.every);
                }
                cursor = c;
                continue;
            }
            // Killed on its way out, after the job completed: that run counts as complete.
            if !killed {
                assert!(rest.iter().any(|l| l == &format!("done {}", plan.items)), "{rest:?}");
            }
            let cp = checkpoint.expect("a completed run leaves a checkpoint");
            assert_eq!((cp.state, cp.cursor), (ProcessState::Completed, plan.items));
            assert_eq!(cp.data, expected(plan.items));
            break;
        }
        let mut seen = vec![false; plan.items as usize];
        for item in read_log(&log_path) {
            seen[item as usize] = true;
        }
        totals.lost += seen.iter().filter(|s| !**s).count() as u64;
    }
}

#[test]
fn killed_jobs_resume_without_loss_or_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = crate::rng("crash");
    let per_plan = crate::scale(70, 700);
    let plans = [
        Plan {
            every: 1,
            items: 40,
            spin: 200,
            max_delay: Duration::from_millis(15),
            kills: 0,
            buffered: false,
        },
        Plan {
            every: 7,
            items: 150,
            spin: 200,
            max_delay: Duration::from_millis(15),
            kills: 0,
            buffered: false,
        },
        Plan {
            every: 50,
            items: 1000,
            spin: 200,
            max_delay: Duration::from_millis(15),
            kills: 0,
            buffered: false,
        },
    ];
    let mut totals = Tallies::default();
    for plan in plans {
        run_plan(Plan { kills: per_plan, ..plan }, tmp.path(), &mut rng, &mut totals);
    }
    let buffered = Plan {
        every: 1,
        items: 400,
        spin: 200,
        max_delay: Duration::from_millis(15),
        kills: per_plan / 2,
        buffered: true,
    };
    run_plan(buffered, tmp.path(), &mut rng, &mut totals);
    // Temporary files of file creations cut short by a kill: never read as data, and removed
    // by the next listing of the store once their process is gone.
    let (mut stray, mut kept) = (0, Vec::new());
    for plan in plans.iter().chain([&buffered]) {
        let store = tmp.path().join(plan.name());
        stray += temp_files(&store).len();
        FailsafeManager::open(&store).unwrap().operations().unwrap();
        kept.extend(temp_files(&store));
    }
    // A file whose process id was taken by a new process is kept: that is the safe mistake.
    // SAFETY: signal 0 only checks whether the process exists.
    kept.retain(|&pid| unsafe { libc::kill(pid, 0) } != 0);
    println!("crash: {stray} temporary files left by kills, {} after a listing", kept.len());
    assert!(kept.is_empty(), "temporary files of dead processes kept: {kept:?}");
    println!(
        "crash: {} kills, {} lost, {} corrupt, {} max redo \
         ({} of the kills inside the loop; {} jobs run to completion; every = 1, 7, 50 with \
         Durability::Sync, every = 1 with Durability::Buffered ({} kills, no redo bound); seed {})",
        totals.kills,
        totals.lost,
        totals.corrupt,
        totals.max_redo,
        totals.in_loop,
        totals.rounds,
        totals.buffered_kills,
        crate::seed()
    );
    assert!(totals.kills >= 3 * per_plan + per_plan / 2);
    assert_eq!((totals.lost, totals.corrupt), (0, 0));
}

/// The process ids in the names of the store's temporary files.
fn temp_files(store: &Path) -> Vec<i32> {
    let names = std::fs::read_dir(store).unwrap().map(|e| e.unwrap().file_name());
    let names: Vec<String> = names.map(|n| n.to_string_lossy().into_owned()).collect();
    let pids =
        names.iter().filter_map(|n| n.strip_prefix(".tmp-")?.split('-').next()?.parse().ok());
    pids.collect()
}

/// The contents of the source file in backup round `k`: `k`, then bytes derived from it.
fn backup_content(k: u64) -> Vec<u8> {
    let mut out = k.to_le_bytes().to_vec();
    out.extend((0..256 * 1024u64).map(|i| mix(k ^ (i << 20)) as u8));
    out
}

/// The child side of the backup crash test: replaces the source (atomically) and backs it up,
/// round after round, until killed.
pub fn backup_child() {
    let mgr = FailsafeManager::builder().dir(env("FAULTS_DIR")).max_backups(3).build().unwrap();
    let source = std::path::PathBuf::from(env("FAULTS_SOURCE"));
    let staging = source.with_extension("staging");
    let start: u64 = env("FAULTS_ROUND").parse().unwrap();
    println!("ready");
    for k in start.. {
        std::fs::write(&staging, backup_content(k)).unwrap();
        std::fs::rename(&staging, &source).unwrap();
        mgr.create_backup(&source).unwrap();
    }
}

#[test]
fn killed_backups_leave_only_whole_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let source = tmp.path().join("data.bin");
    let mut rng = crate::rng("crash-backups");
    let kills = crate::scale(30, 300);
    let mut listed = 0;
    for kill in 0..kills {
        let round = (kill as u64) << 32;
        let round_text = round.to_string();
        let mut child = ChildRole::spawn(
            "backup-loop",
            &[
                ("FAULTS_DIR", dir.as_os_str()),
                ("FAULTS_SOURCE", source.as_os_str()),
                ("FAULTS_ROUND", round_text.as_ref()),
            ],
        );
        assert!(child.wait_for("ready").is_some(), "the child did not start");
        std::thread::sleep(Duration::from_micros(rng.u64(0..30_000)));
        let _ = child.child.kill();
        let status = child.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the backup loop failed: {status}");

        // Every listed backup is a whole, checksummed copy of one version of the source.
        let mgr = FailsafeManager::builder().dir(&dir).max_backups(3).build().unwrap();
        let backups = mgr.list_backups(&source).unwrap();
        assert!(backups.len() <= 3 + 1, "{} backups kept", backups.len());
        for backup in &backups {
            let bytes = std::fs::read(&backup.path).unwrap();
            assert_eq!(bytes.len() as u64, backup.size);
            assert_eq!(crc32fast::hash(&bytes), backup.checksum);
            let k = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            assert_eq!(bytes, backup_content(k), "a backup holds a mix of versions");
        }
        if let Some(newest) = backups.first() {
            let copy = std::fs::read(&newest.path).unwrap();
            mgr.restore_backup(newest).unwrap();
            assert_eq!(std::fs::read(&source).unwrap(), copy);
        }
        listed += backups.len();
    }
    println!(
        "crash: {kills} kills of a backup loop, {listed} backups listed after them, all whole \
         copies that restore"
    );
    assert!(listed > 0);
}
