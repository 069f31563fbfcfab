//! `resilience list` over 10,000 operations, as a whole process, against `ls -l` of the same
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Config;
use crate::disk::big_store;
use crate::harness::{Batch, Variant, compare, fmt_time, goal, print_table};

/// The release build of the `resilience` command: `$RESILIENCE_BIN`, else built from this
/// repository into the scratch directory.
fn binary(cfg: &Config) -> PathBuf {
    if let Some(bin) = std::env::var_os("RESILIENCE_BIN") {
        return bin.into();
    }
    let target = cfg.scratch_kept("cli-target");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "resilience-cli", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    if !out.status.success() {
        panic!("building resilience-cli failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    target.join("release/resilience")
}

/// Runs `cmd` with its output read to the end (as a terminal or a pipe would).
fn run(cmd: &mut Command) -> usize {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output().expect("run");
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout.len()
}

pub fn list(cfg: &Config) -> bool {
    let store = big_store(cfg);
    let bin = binary(cfg);
    let lines = |cmd: &mut Command| {
        String::from_utf8(cmd.output().expect("run").stdout).expect("UTF-8").lines().count()
    };
    // One line per operation plus the header.
    assert_eq!(lines(Command::new(&bin).arg("--dir").arg(&store).arg("list")), 10_001);
    let timed = |mut cmd: Command| {
        move |iters: u64| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(run(&mut cmd));
            }
            start.elapsed()
        }
    };
    let command = |program: &Path, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args).env("LC_ALL", "C");
        cmd
    };
    let store_s = store.to_str().expect("a UTF-8 path");
    let mut variants = [
        Variant::new("ls -l", timed(command(Path::new("ls"), &["-l", store_s]))),
        Variant::new("resilience list", timed(command(&bin, &["--dir", store_s, "list"]))),
        Variant::new(
            "resilience list --json",
            timed(command(&bin, &["--dir", store_s, "list", "--json"])),
        ),
        Variant::new("resilience list, no .catalog", {
            let mut cmd = command(&bin, &["--dir", store_s, "list"]);
            let catalog = store.join(".catalog");
            move |iters: u64| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    // The first listing of a store that no listing has cached yet.
                    let _ = std::fs::remove_file(&catalog);
                    let start = Instant::now();
                    std::hint::black_box(run(&mut cmd));
                    total += start.elapsed();
                }
                total
            }
        }),
        Variant::new(
            "resilience list --state failed",
            timed(command(&bin, &["--dir", store_s, "list", "--state", "failed"])),
        ),
    ];
    let r = compare(cfg.reps(15), Batch::Fixed(1), &mut variants);
    print_table(
        "9. `resilience list` over 10,000 operations, whole process, output read through a pipe",
        &r,
        "ls -l",
        false,
    );
    let worst = ["resilience list", "resilience list --json", "resilience list, no .catalog"]
        .into_iter()
        .map(|v| r.median(v))
        .fold(0.0, f64::max);
    goal(&format!("≤ 150 ms ({} wall clock)", fmt_time(worst)), worst <= 150e6)
}
