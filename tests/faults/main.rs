//! The fault-injection suite: the store's promises checked end to end under crashes, torn and
//! rotten files, a full disk, hostile bytes and ids, concurrency and retry load, and (feature
//! `sqlite`) kills during SQLite backups and restores.
//!
//! Every random choice comes from one seed (`RESILIENCE_FAULTS_SEED`, printed by each test), so
//! a failure can be replayed. `RESILIENCE_FAULTS_LONG=1` runs many more kills and inputs. Tests
//! that need a second process re-run this binary with `RESILIENCE_FAULTS_CHILD` naming the role
//! (see [`child`]). Results are summarized in `docs/RELIABILITY.md`.

mod alloc_probe;
#[cfg(feature = "postgres")]
mod cluster;
mod concurrency;
mod crash;
mod full_disk;
mod handover;
mod hostile_bytes;
mod hostile_ids;
mod retry_load;
#[cfg(feature = "sqlite")]
mod sqlite_kill;
mod torn;

use std::fmt;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

use resilience::Error;

#[global_allocator]
static ALLOCATOR: alloc_probe::Probe = alloc_probe::Probe;

const CHILD_ENV: &str = "RESILIENCE_FAULTS_CHILD";

/// The seed of every random choice in the suite.
pub fn seed() -> u64 {
    std::env::var("RESILIENCE_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_fa17_2026)
}

/// A generator for one test, derived from the suite's seed.
pub fn rng(test: &str) -> fastrand::Rng {
    let salt = test
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    fastrand::Rng::with_seed(seed() ^ salt)
}

/// Nanoseconds of `CLOCK_MONOTONIC`, the same clock in every process of the machine: lines
/// that several processes write can be put in order by it.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `RESILIENCE_FAULTS_LONG=1`: more kills, more inputs.
pub fn long() -> bool {
    std::env::var_os("RESILIENCE_FAULTS_LONG").is_some_and(|v| v != "0" && !v.is_empty())
}

/// `short` in the default run, `long` under `RESILIENCE_FAULTS_LONG=1`.
pub fn scale(short: usize, long_run: usize) -> usize {
    if long() { long_run } else { short }
}

/// The error type of the jobs under test.
#[derive(Debug)]
pub enum JobError {
    Store(Error),
    Log(std::io::Error),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Store(e) => e.fmt(f),
            JobError::Log(e) => write!(f, "cannot write the log: {e}"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        JobError::Store(e)
    }
}

/// A child process running one role of this binary, its stdout read line by line.
pub struct ChildRole {
    pub child: Child,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl ChildRole {
    /// Starts this test binary in the role `role` with the extra environment `env`.
    pub fn spawn(role: &str, env: &[(&str, &std::ffi::OsStr)]) -> ChildRole {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn a child process");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        ChildRole { child, stdout }
    }

    /// Reads lines until one starts with `prefix`; returns it, or `None` at end of output.
    pub fn wait_for(&mut self, prefix: &str) -> Option<String> {
        for line in self.stdout.by_ref() {
            let line = line.ok()?;
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
        None
    }

    /// The rest of the output, once the child has exited or is about to.
    pub fn drain(&mut self) -> Vec<String> {
        self.stdout.by_ref().map_while(Result::ok).collect()
    }
}

/// The entry point of child processes; does nothing when run as a test.
#[test]
#[ignore = "run by the suite in child processes"]
fn child() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    match role.as_str() {
        "crash" => crash::child(),
        "backup-loop" => crash::backup_child(),
        "lock-race" => concurrency::lock_race_child(),
        "full-disk" => full_disk::child(),
        "handover" => handover::child(),
        #[cfg(feature = "postgres")]
        "cluster" => cluster::child(),
        #[cfg(feature = "sqlite")]
        "sqlite-backup" => sqlite_kill::backup_child(),
        #[cfg(feature = "sqlite")]
        "sqlite-restore" => sqlite_kill::restore_child(),

        other => panic!("unknown child role {other}"),
    }
}
