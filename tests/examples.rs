//! Runs the example programs as a user would, each in its own temporary directory: the photo
//! import with its figures, a run killed mid-way and resumed, start-up recovery, and the layered
//! example's log.
//!
//! The binaries are built (or found up to date) with `cargo build --example`, with the profile
//! and features of this test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The examples this file runs.
const EXAMPLES: [&str; 3] = ["photo_pipeline", "startup_recovery", "layered"];

/// The examples that need feature `sqlite`, built and run when this test has it.
const SQLITE_EXAMPLES: [&str; 1] = ["sqlite_catalog"];

fn examples() -> impl Iterator<Item = &'static str> {
    let sqlite: &[&str] = if cfg!(feature = "sqlite") { &SQLITE_EXAMPLES } else { &[] };
    EXAMPLES.into_iter().chain(sqlite.iter().copied())
}

/// The path of example `name`'s binary. The first call builds all of them with one
/// `cargo build` (a no-op when they are up to date), so that the binaries never lag behind
/// their sources.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(build_examples);
    built.get(name).cloned().unwrap_or_else(|| panic!("`{name}` is not one of {EXAMPLES:?}"))
}

fn build_examples() -> HashMap<String, PathBuf> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(env!("CARGO_MANIFEST_DIR"));
    cargo.args(["build", "--message-format=json-render-diagnostics"]);
    for name in examples() {
        cargo.args(["--example", name]);
    }
    // The profile this test was built with: target/<profile>/deps/<this test>.
    let exe = std::env::current_exe().expect("the test binary's path");
    if exe.parent().and_then(Path::parent).and_then(Path::file_name) == Some("release".as_ref()) {
        cargo.arg("--release");
    }
    if cfg!(feature = "tokio") {
        cargo.args(["--features", "tokio"]);
    }
    if cfg!(feature = "sqlite") {
        cargo.args(["--features", "sqlite"]);
    }
    let output = cargo
        .output()
        .unwrap_or_else(|e| panic!("cannot run `cargo build` to build the examples: {e}"));
    assert!(
        output.status.success(),
        "`cargo build` of the examples failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built: HashMap<String, PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            let path = PathBuf::from(message["executable"].as_str()?);
            Some((name, path))
        })
        .collect();
    for name in examples() {
        assert!(built.contains_key(name), "`cargo build` named no executable for `{name}`");
    }
    built
}

/// A command running example `name` in `dir`, with the store chosen by its own flags.
fn command(name: &str, dir: &Path) -> Command {
    let mut command = Command::new(example(name));
    command.current_dir(dir).env_remove("RESILIENCE_DIR").env_remove("RUST_LOG");
    command.stdin(Stdio::null());
    command
}

/// Runs to completion; panics with both outputs unless it succeeds.
fn run_ok(command: &mut Command) -> String {
    let Output { status, stdout, stderr } = command.output().expect("the example starts");
    let stdout = String::from_utf8(stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "{command:?} failed ({status}):\n{stdout}\n--- stderr ---\n{stderr}");
    stdout
}

fn photo_pipeline(dir: &Path, args: &[&str]) -> Command {
    let mut command = command("photo_pipeline", dir);
    command.args(["--data", "data"]).args(args);
    command
}

fn read_catalog(dir: &Path) -> serde_json::Value {
    let path = dir.join("data/catalog.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The `[ done/total]` figure of a progress line.
fn progress_done(line: &str) -> Option<u64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    inner.split('/').next()?.trim().parse().ok()
}

#[test]
fn photo_pipeline_imports_retries_and_skips_with_the_seeded_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(&mut photo_pipeline(tmp.path(), &["--photos", "60", "--delay-ms", "0"]));

    assert!(out.contains("Generated 60 photos in data/photos (seed 7)"), "{out}");
    assert!(out.contains("Starting operation `photo-import` at item 0 of 60"), "{out}");
    let progress: Vec<u64> = out.lines().filter_map(progress_done).collect();
    assert_eq!(progress, [10, 20, 30, 40, 50, 60], "{out}");
    // The figures that seed 7 gives: 6 damaged photos skipped, 8 upload timeouts retried.
    assert!(out.contains("Done: 54 photos uploaded (85.5 KiB), 6 skipped; the catalog holds 54"));
    // The summary: `resilience::Summary`.
    let summary = "\
Operations: 1 operation (0 running, 0 paused, 0 failed, 1 completed); 0 backups (0 B)
Retries:    54 calls: 54 succeeded, 0 failed; 62 attempts, 8 retries; success rate 100.0%
Errors:     6 errors: 6 warning; E_CORRUPT_HEADER ×3, E_TRUNCATED ×3
Health:     Healthy
";
    assert!(out.ends_with(summary), "{out}");

    // The catalog holds exactly the photos that are not damaged.
    let catalog = read_catalog(tmp.path());
    let entries = catalog["photos"].as_object().expect("a `photos` map");
    let mut intact = 0;
    for file in std::fs::read_dir(tmp.path().join("data/photos")).unwrap() {
        let file = file.unwrap();
        let name = file.file_name().into_string().unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let declared = bytes.get(12..16).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
        let ok = bytes.starts_with(b"RPHO") && declared == Some(bytes.len() as u32 - 16);
        assert_eq!(entries.contains_key(&name), ok, "{name} in the catalog");
        if ok {
            assert_eq!(entries[&name]["bytes"], bytes.len() as u64, "{name}");
            intact += 1;
        }
    }
    assert_eq!(intact, 54);
    assert!(tmp.path().join("data/.resilience").is_dir());

    // A completed import is not redone without `--reset`.
    let again = run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0"]));
    assert!(again.contains("The import is complete: 54 photos uploaded, 6 skipped."), "{again}");
    assert!(progress_lines(&again).is_empty(), "{again}");
    assert_eq!(read_catalog(tmp.path()), catalog);

    // `--reset` starts over, after backing up the existing catalog.
    let reset = run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0", "--reset"]));
    assert!(reset.contains("Starting operation `photo-import` at item 0 of 60"), "{reset}");
    assert!(reset.contains("; 1 backup ("), "{reset}");
    assert_eq!(read_catalog(tmp.path()), catalog);
}

fn progress_lines(out: &str) -> Vec<u64> {
    out.lines().filter_map(progress_done).collect()
}

#[test]
fn photo_pipeline_killed_mid_run_resumes_and_ends_with_the_same_catalog() {
    let reference = tempfile::tempdir().unwrap();
    let whole =
        run_ok(&mut photo_pipeline(reference.path(), &["--photos", "200", "--delay-ms", "0"]));

    // Start a slow run and kill it (SIGKILL: nothing runs on the way out) once it reports
    // 20 photos done.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = photo_pipeline(tmp.path(), &["--photos", "200", "--delay-ms", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = progress_done(&line);
        seen.push(line);
        if done.is_some_and(|n| n >= 20) {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed:\n{}", seen.join("\n"));
    assert!(seen.iter().any(|l| progress_done(l).is_some_and(|n| n >= 20)), "{seen:#?}");

    let resumed = run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0"]));
    let at = resumed
        .lines()
        .find_map(|l| l.strip_prefix("Resuming operation `photo-import` (Photo import) at item "))
        .unwrap_or_else(|| panic!("no resume line:\n{resumed}"));
    let (item, rest) = at.split_once(' ').unwrap();
    let item: u64 = item.parse().unwrap();
    assert!(item >= 10 && item.is_multiple_of(10) && item < 200, "resumed at {item}");
    assert!(rest.starts_with("of 200 (it was interrupted)"), "{at}");
    // It goes on from there, not from the start.
    let progress = progress_lines(&resumed);
    assert_eq!(progress.first(), Some(&(item + 10)), "{resumed}");
    assert_eq!(progress.last(), Some(&200), "{resumed}");

    // The result is the one of the run that was never interrupted.
    let done_line = |out: &str| out.lines().find(|l| l.starts_with("Done: ")).map(str::to_owned);
    assert_eq!(done_line(&resumed), done_line(&whole), "{resumed}");
    assert_eq!(read_catalog(tmp.path()), read_catalog(reference.path()));
    // The resumed run backed up the catalog the killed run had left.
    assert!(resumed.contains("; 1 backup ("), "{resumed}");
}

#[test]
fn photo_pipeline_pauses_on_ctrl_c_and_resumes_with_the_next_photo() {
    let reference = tempfile::tempdir().unwrap();
    let whole =
        run_ok(&mut photo_pipeline(reference.path(), &["--photos", "100", "--delay-ms", "0"]));

    let tmp = tempfile::tempdir().unwrap();
    let mut child = photo_pipeline(tmp.path(), &["--photos", "100", "--delay-ms", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let done = progress_done(&line);
        seen.push(line);
        if done.is_some_and(|n| n >= 20) {
            // SAFETY: `kill` on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    seen.extend(lines);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    let paused = seen
        .iter()
        .find_map(|l| l.strip_prefix("Paused at item "))
        .unwrap_or_else(|| panic!("no pause line: {seen:#?}"));
    let (item, rest) = paused.split_once(' ').unwrap();
    let item: u64 = item.parse().unwrap();
    assert!((20..100).contains(&item), "{paused}");
    assert_eq!(rest, "of 100; run again to resume");
    assert!(seen.iter().any(|l| l.starts_with("Operations: 1 operation (0 running, 1 paused")));

    let resumed = run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0"]));
    let expected = format!(
        "Resuming operation `photo-import` (Photo import) at item {item} of 100 (it was paused)"
    );
    assert!(resumed.contains(&expected), "{resumed}");
    let done_line = |out: &str| out.lines().find(|l| l.starts_with("Done: ")).map(str::to_owned);
    assert_eq!(done_line(&resumed), done_line(&whole), "{resumed}");
    assert_eq!(read_catalog(tmp.path()), read_catalog(reference.path()));
}

#[test]
fn photo_pipeline_rejects_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let output = photo_pipeline(tmp.path(), &["--photos", "many"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`--photos` expects a number, got `many`"), "{stderr}");
    assert!(!tmp.path().join("data").exists(), "nothing is written on bad arguments");
}

#[test]
fn photo_pipeline_names_a_damaged_catalog_and_restores_its_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog_path = tmp.path().join("data/catalog.json");
    let run = |args: &[&str]| photo_pipeline(tmp.path(), args).output().unwrap();

    // No run has taken a backup yet: the damage is reported, and there is nothing to restore.
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(&catalog_path, "{ not json").unwrap();
    let output = run(&["--photos", "20", "--delay-ms", "0"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: the catalog `data/catalog.json` is damaged"), "{stderr}");
    assert!(stderr.contains("hint: --restore-catalog"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&catalog_path).unwrap(), "{ not json");
    let output = run(&["--delay-ms", "0", "--restore-catalog"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the catalog `data/catalog.json` has no backup to restore"),
        "{stderr}"
    );

    // An import, then a second one that backs up the first one's catalog when it starts.
    std::fs::remove_file(&catalog_path).unwrap();
    run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0"]));
    run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0", "--reset"]));
    let good = read_catalog(tmp.path());

    std::fs::write(&catalog_path, "{ not json").unwrap();
    let out = run_ok(&mut photo_pipeline(tmp.path(), &["--delay-ms", "0", "--restore-catalog"]));
    assert!(out.contains("Restored data/catalog.json from its newest backup"), "{out}");
    assert!(out.contains("Starting operation `photo-import` at item 0 of 20"), "{out}");
    assert_eq!(read_catalog(tmp.path()), good);
}

#[test]
fn a_failed_import_is_listed_by_startup_recovery_and_resumed_by_its_program() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("shared-store");
    // Storage cannot write photos 15 to 19 (directories are in the way): the first intact one
    // of them stops the import with an I/O error, which is not retried and not skipped.
    let blocked: Vec<PathBuf> =
        (15..20).map(|i| tmp.path().join(format!("data/uploaded/IMG_{i:04}.rpho"))).collect();
    for path in &blocked {
        std::fs::create_dir_all(path).unwrap();
    }
    let output = photo_pipeline(tmp.path(), &["--photos", "40", "--delay-ms", "0"])
        .env("RESILIENCE_DIR", &store)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{out}\n{stderr}");
    assert!(stderr.contains("error: I/O error on `data/uploaded/IMG_00"), "{stderr}");
    assert!(
        out.contains("Stopped (Failed): run the same command again to resume at item 10 of 40"),
        "{out}"
    );
    assert!(
        out.contains("Operations: 1 operation (0 running, 0 paused, 1 failed, 0 completed)"),
        "{out}"
    );
    assert!(out.contains("E_IO ×1"), "{out}");
    assert!(store.join("photo-import.ckpt").is_file(), "the store is $RESILIENCE_DIR");
    assert!(!tmp.path().join("data/.resilience").exists());

    let mut recovery = command("startup_recovery", tmp.path());
    recovery.env("RESILIENCE_DIR", &store);
    let listed = run_ok(&mut recovery);
    assert!(
        listed.contains(
            "Found 1 operation to recover:\n\nOperation: Photo import\n  - ID: photo-import\n  \
             - Progress: 25%\n  - State: Failed\n  - No handler for this operation\n"
        ),
        "{listed}"
    );

    for path in &blocked {
        std::fs::remove_dir(path).unwrap();
    }
    let resumed =
        run_ok(photo_pipeline(tmp.path(), &["--delay-ms", "0"]).env("RESILIENCE_DIR", &store));
    assert!(
        resumed.contains(
            "Resuming operation `photo-import` (Photo import) at item 10 of 40 \
             (it failed: I/O error on `data/uploaded/IMG_00"
        ),
        "{resumed}"
    );
    assert_eq!(progress_lines(&resumed), [20, 30, 40], "{resumed}");
    // Nothing lost, nothing counted twice: every photo is either in the catalog or skipped.
    let imported = read_catalog(tmp.path())["photos"].as_object().unwrap().len();
    let last = format!("[40/40] 100%  uploaded {imported}, skipped {}", 40 - imported);
    assert!(resumed.contains(&last), "{last}\n{resumed}");
}

#[test]
fn startup_recovery_resumes_the_demo_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let recover = |args: &[&str]| {
        let mut command = command("startup_recovery", tmp.path());
        command.args(args);
        run_ok(&mut command)
    };

    // `--no` (and the end of the input) leaves them for later.
    let listed = recover(&["--demo", "--no"]);
    assert!(listed.contains("Found 2 operations to recover:"), "{listed}");
    assert!(listed.contains("  - ID: demo-thumbnails\n  - Progress: 50%\n  - State: Failed\n"));
    assert!(listed.contains("  - ID: demo-reindex\n  - Progress: 50%\n  - State: Paused\n"));
    assert!(listed.contains("Resumed 0 of 2 operations."), "{listed}");
    let eof = recover(&[]);
    assert!(eof.contains("Found 2 operations to recover:"), "{eof}");
    assert!(eof.contains("Resumed 0 of 2 operations."), "{eof}");

    let out = recover(&["--demo", "--yes"]);
    assert!(out.contains("resuming `demo-thumbnails` at item 20 of 40"), "{out}");
    assert!(out.contains("resuming `demo-reindex` at item 15 of 30"), "{out}");
    assert_eq!(out.matches("✓ Recovery successful: `demo-").count(), 2, "{out}");
    assert_eq!(out.matches("matches an uninterrupted run").count(), 2, "{out}");
    assert!(out.contains("Resumed 2 of 2 operations."), "{out}");

    let after = recover(&[]);
    assert!(after.contains("No operations need recovery"), "{after}");
}

#[test]
fn startup_recovery_goes_on_when_an_operation_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let recover = |args: &[&str]| {
        let mut command = command("startup_recovery", tmp.path());
        command.args(args).output().unwrap()
    };
    assert!(recover(&["--demo", "--no"]).status.success());

    // As if another program were running `demo-reindex` right now: recovery passes it over.
    let store = resilience::FailsafeManager::open(tmp.path().join("data/.resilience")).unwrap();
    let lock = store.lock("demo-reindex").unwrap();
    let output = recover(&["--yes"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(!out.contains("ID: demo-reindex"), "{out}");
    assert!(out.contains("`demo-thumbnails` completed: 40 items"), "{out}");
    assert!(out.contains("Resumed 1 of 1 operations."), "{out}");

    drop(lock);
    let output = recover(&["--yes"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("resuming `demo-reindex` at item 15 of 30"), "{out}");
    assert!(out.contains("Resumed 1 of 1 operations."), "{out}");
}

#[test]
fn startup_recovery_answers_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = command("startup_recovery", tmp.path());
    command.arg("--demo").stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    // The operations are listed by id: demo-reindex first. Yes to it, no to the other.
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"y\nn\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(out.contains("`demo-reindex` completed: 30 items"), "{out}");
    assert!(out.contains("left `demo-thumbnails` for later"), "{out}");
    assert!(out.contains("Resumed 1 of 2 operations."), "{out}");
}

#[test]
fn layered_logs_all_three_layers_to_its_log_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = command("layered", tmp.path());
    command.args(["--data", "data"]);
    let out = run_ok(&mut command);
    assert!(out.contains("the log is data/layered.log"), "{out}");
    // The outage outlasted `rate`'s retries: the protected job was retried and the month
    // resumed from its checkpoint.
    assert!(out.contains("2026-03: resuming at day 11 from its checkpoint"), "{out}");
    assert!(out.contains("E_FEED_TIMEOUT (Warning, Retry): rate feed timed out for 2026-03-12"));
    assert!(out.contains("[operation_id=close-books, item=2]"), "{out}");
    for month in ["2026-01", "2026-02", "2026-03", "2026-04"] {
        assert!(out.contains(&format!("  {month}: ")), "{month}: {out}");
    }

    let log = std::fs::read_to_string(tmp.path().join("data/layered.log")).unwrap();
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert!(lines("resilience::retry: attempt failed, retrying") >= 4, "{log}");
    assert_eq!(lines("resilience::retry: operation failed: no retries left"), 1, "{log}");
    assert_eq!(lines("resilience::errors:"), 1, "{log}");
    assert!(lines("retrying `close-books` from item 2") == 1, "{log}");

    let ledger: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("data/ledger.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ledger.as_object().unwrap().len(), 4, "{ledger}");
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_catalog_rolls_a_failed_import_back_while_another_connection_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(command("sqlite_catalog", tmp.path()).args(["--data", "demo"]));
    assert!(out.contains("Batch 1: 50 photos imported; the catalog holds 50"), "{out}");
    assert!(out.contains("Batch 2 failed: the photo disk went away at photo 25"), "{out}");
    assert!(out.contains("the catalog holds 50 photos again"), "{out}");
    assert!(out.contains("integrity check: ok"), "{out}");
    assert!(tmp.path().join("demo/catalog.db").is_file());
}
