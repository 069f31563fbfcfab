//! Benchmarks of `resilience` against its baselines and peers, measured in the same run.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml              # everything
//! cargo run --release --manifest-path bench/Cargo.toml -- durable   # one benchmark
//! cargo run --release --manifest-path bench/Cargo.toml -- --list    # their names
//! ```
//! Options: `--reps N` (repetitions of each variant), `--quick` (fewer repetitions, smaller
//! files: checks that everything runs), `--keep` (keep the 256 MiB backup source).
//! Scratch files go to `bench-scratch/` next to the binary, on the disk of the target
//! directory (not a tmpfs). See docs/PERFORMANCE.md for the figures and how to read them.

mod buildtime;
mod cli;
mod disk;
mod harness;
mod micro;
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Config {
    reps: Option<usize>,
    quick: bool,
    keep: bool,
    scratch: PathBuf,
}

impl Config {
    /// Repetitions of each variant: `default`, or `--reps`, or fewer with `--quick`.
    pub fn reps(&self, default: usize) -> usize {
        self.reps.unwrap_or(if self.quick { default.min(3) } else { default })
    }

    /// Operations per batch for the slow (synced) benchmarks.
    pub fn ops(&self, default: u64) -> u64 {
        if self.quick { default / 8 } else { default }
    }

    pub fn backup_mib(&self) -> usize {
        if self.quick { 16 } else { 256 }
    }

    /// A fresh scratch directory for one benchmark.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.scratch.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    }

    /// A scratch directory whose contents are kept between runs.
    pub fn scratch_kept(&self, name: &str) -> PathBuf {
        let dir = self.scratch.join(name);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    }
}

type Bench = fn(&Config) -> bool;

const BENCHES: &[(&str, &str, Bench)] = &[
    ("retry", "#[retry] success path vs a plain call, backon, backoff", micro::retry_success),
    ("retry-once", "#[retry] with one failure, zero-delay sleeper", micro::retry_once),
    ("durable", "durable save_checkpoint vs write+fdatasync, SQLite, rename", disk::durable),
    ("buffered", "buffered save_checkpoint vs a raw buffered write", disk::buffered),
    ("loop", "#[checkpointed(every = 1000)] loop vs the plain loop", micro::checkpointed_loop),
    ("backup", "create_backup of 256 MiB vs fs::copy + sync_all, cp + sync", disk::backup),
    (
        "sqlite-backup",
        "SQLite online create_backup of a live 256 MiB database vs fs::copy + sync_all",
        disk::sqlite_backup,
    ),
    ("recover", "recoverable_operations() over 10,000 operations", disk::recover),
    ("cli-list", "`resilience list` over 10,000 operations, whole process, vs ls -l", cli::list),
    (
        "build",
        "build time: 200 #[retry] fns vs 200 #[tracing::instrument] fns",
        buildtime::build_time,
    ),
    ("expand", "expansion sizes of the snapshot tests", buildtime::expansion_sizes),
    ("postgres", "Postgres store saves vs a raw upsert, takeover, renewals", pg::postgres),
];

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn print_machine(scratch: &Path) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let scratch_s = scratch.display().to_string();
    let df = shell("df", &["-hT", &scratch_s]);
    println!("# resilience benchmarks");
    println!("date: {}", shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]));
    println!("cpu: {cpu}, {cores} logical cores; load: {}", shell("cat", &["/proc/loadavg"]));
    println!("rustc: {}", shell("rustc", &["--version"]));
    println!("scratch: {scratch_s}");
    for line in df.lines() {
        println!("    {line}");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut selected = Vec::new();
    let exe = std::env::current_exe().expect("the benchmark's path");
    let mut config = Config {
        reps: None,
        quick: false,
        keep: false,
        scratch: exe.parent().expect("a directory").join("bench-scratch"),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "__pg-holder" => return pg::hold_lease_until_killed(),
            "--list" => {
                for (name, what, _) in BENCHES {
                    println!("{name:12} {what}");
                }
                return;
            }
            "--quick" => config.quick = true,
            "--keep" => config.keep = true,
            "--reps" => {
                let n = args.next().and_then(|n| n.parse().ok());
                config.reps = Some(n.expect("--reps takes a number"));
            }
            name if BENCHES.iter().any(|b| b.0 == name) => selected.push(arg),
            other => {
                eprintln!("unknown benchmark or option `{other}`; `--list` names the benchmarks");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(&config.scratch).expect("create the scratch directory");
    print_machine(&config.scratch);
    let mut missed = Vec::new();
    for (name, _, bench) in BENCHES {
        if (selected.is_empty() || selected.iter().any(|s| s == name)) && !bench(&config) {
            missed.push(*name);
        }
    }
    println!();
    if missed.is_empty() {
        println!("all goals met");
    } else {
        println!("goals missed: {}", missed.join(", "));
    }
}
