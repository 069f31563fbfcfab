//! The `resilience` command, run as a process against stores written by the library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use resilience::{Checkpointable, FailsafeManager, ProcessState};
use serde_json::Value;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    done: u64,
    total: u64,
}

impl Checkpointable for Progress {
    const SCHEMA: u64 = 0x5445_5354;
    fn cursor(&self) -> u64 {
        self.done
    }
    fn total(&self) -> Option<u64> {
        Some(self.total)
    }
}

fn save(m: &FailsafeManager, id: &str, state: ProcessState, done: u64, total: u64) {
    let progress = done as f64 / total as f64;
    m.save_checkpoint(id, "Photo import", state, progress, &Progress { done, total }).unwrap();
}

/// A store with one operation in each of four states.
fn store() -> (tempfile::TempDir, FailsafeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let m = FailsafeManager::open(tmp.path().join("store")).unwrap();
    save(&m, "import-1", ProcessState::Running, 10, 100);
    save(&m, "import-1", ProcessState::Running, 45, 100);
    save(&m, "import-2", ProcessState::Paused, 5, 10);
    save(&m, "import-3", ProcessState::Running, 3, 10);
    // What `#[checkpointed]` saves when the run fails.
    assert!(m.save_failed("import-3", "Photo import", "upload timed out\nsecond line").unwrap());
    save(&m, "import-4", ProcessState::Completed, 10, 10);
    (tmp, m)
}

fn resilience(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
    cmd.arg("--dir").arg(dir).args(args);
    run(cmd)
}

fn run(mut cmd: Command) -> Output {
    cmd.env_remove("RESILIENCE_DIR").env_remove("RESILIENCE_STORE").stdin(Stdio::null());
    cmd.output().expect("run resilience")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn status(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[track_caller]
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(status(o), code, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("resilience: "), "{err}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
}

/// Runs `f` until it does not report a lock: a process that another test thread is spawning may
/// hold a copy of a dropped lock's descriptor for a moment, until its `exec` closes it.
fn after_unlock(f: impl Fn() -> Output) -> Output {
    for _ in 0..50 {
        let o = f();
        if !stderr(&o).contains("locked") && !stdout(&o).contains("locked") {
            return o;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let mut found: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    found.sort_unstable();
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    assert_eq!(found, keys);
}

#[test]
fn list_shows_aligned_columns_with_relative_times() {
    let (tmp, m) = store();
    let o = resilience(m.dir(), &["list"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("ID        NAME          STATE      PROGRESS  CURSOR  SAVED"));
    let state_col = lines[0].find("STATE").unwrap();
    for (line, state) in lines[1..].iter().zip(["running", "paused", "failed", "completed"]) {
        assert_eq!(&line[state_col..state_col + state.len()], state, "{out}");
        assert!(line.contains("just now") || line.contains("s ago"), "{line}");
    }
    assert!(lines[1].contains("45%") && lines[1].contains(" 45 "), "{}", lines[1]);
    assert!(lines[3].ends_with("upload timed out …"), "{}", lines[3]);
    drop(tmp);
}

#[test]
fn list_json_has_stable_fields_and_filters_by_state() {
    let (_tmp, m) = store();
    let o = resilience(m.dir(), &["list", "--json"]);
    assert_eq!(status(&o), 0);
    let v = json(&o);
    assert_keys(&v, &["store", "operations"]);
    let ops = v["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4);
    assert_keys(
        &ops[0],
        &[
            "operation_id",
            "operation_name",
            "state",
            "progress",
            "cursor",
            "sequence",
            "saved_at",
            "error",
        ],
    );
    assert_eq!(ops[0]["operation_id"], "import-1");
    assert_eq!(ops[0]["state"], "running");
    assert_eq!(ops[0]["cursor"], 45);
    assert_eq!(ops[0]["sequence"], 2);
    assert_eq!(ops[0]["progress"], 0.45);
    assert_eq!(ops[0]["error"], Value::Null);
    let saved = ops[0]["saved_at"].as_str().unwrap();
    assert!(saved.len() == 24 && saved.ends_with('Z') && &saved[10..11] == "T", "{saved}");
    assert_eq!(ops[2]["error"], "upload timed out\nsecond line");

    let o = resilience(m.dir(), &["list", "--state", "failed,paused", "--json"]);
    let ids: Vec<String> = json(&o)["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["operation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["import-2", "import-3"]);

    let o = resilience(m.dir(), &["list", "--state", "broken"]);
    assert_one_line_error(&o, 2, "invalid value 'broken'");
}

#[test]
fn a_missing_store_is_reported_and_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    for args in [&["list"][..], &["verify"], &["health"], &["watch"], &["discard", "x"]] {
        let o = resilience(&missing, args);
        assert_one_line_error(&o, 3, "the directory does not exist");
        assert!(!missing.exists(), "{args:?} created the store");
    }

    // The environment, like `FailsafeManager::global()`.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
    cmd.arg("list").current_dir(tmp.path());
    let o = run(cmd);
    assert_one_line_error(&o, 3, "no store at `.resilience`");
    let (_t, m) = store();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
    cmd.arg("list").arg("--json").env("RESILIENCE_DIR", m.dir());
    let o = cmd.env_remove("RESILIENCE_STORE").output().unwrap();
    assert_eq!(json(&o)["operations"].as_array().unwrap().len(), 4);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
    cmd.arg("list").arg("--json").env("RESILIENCE_STORE", m.dir());
    let o = cmd.env_remove("RESILIENCE_DIR").output().unwrap();
    assert_eq!(json(&o)["operations"].as_array().unwrap().len(), 4);
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    let (_tmp, m) = store();
    assert_one_line_error(&resilience(m.dir(), &["lst"]), 2, "unrecognized subcommand 'lst'");
    assert_one_line_error(&resilience(m.dir(), &["list", "--bogus"]), 2, "'--bogus'");
    assert_one_line_error(&resilience(m.dir(), &["show"]), 2, "<OPERATION>");
    assert_one_line_error(&resilience(m.dir(), &["restore", "f"]), 2, "--backup");
    assert_one_line_error(&resilience(m.dir(), &["clear"]), 2, "--completed");
    assert_one_line_error(
        &resilience(m.dir(), &["restore", "f", "--newest", "--backup", "1"]),
        2,
        "cannot be used with",
    );
}

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_store_is_a_clear_error() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
    cmd.args(["--store", "postgres://postgres@127.0.0.1/test", "list"]);
    assert_one_line_error(&run(cmd), 3, "Postgres store is not available in this build");
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "list",
        "show",
        "skipped",
        "discard",
        "clear",
        "backups",
        "restore",
        "verify",
        "health",
        "watch",
        "completions",
    ] {
        let o = run({
            let mut c = Command::new(env!("CARGO_BIN_EXE_resilience"));
            c.args([cmd, "--help"]);
            c
        });
        assert_eq!(status(&o), 0, "{cmd}");
        let help = stdout(&o);
        assert!(help.contains("Example"), "{cmd} --help has no example:\n{help}");
        assert!(help.contains(&format!("resilience {cmd}")) || cmd == "watch", "{help}");
    }
    let o = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_resilience"));
        c.arg("--help");
        c
    });
    assert!(stdout(&o).contains("Exit status"));
}

#[test]
fn show_prints_metadata_and_history() {
    let (_tmp, m) = store();
    let o = resilience(m.dir(), &["show", "import-1"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("operation  import-1\nname       Photo import\nstate      running\n"));
    assert!(out.contains("progress   45% (cursor 45)"), "{out}");
    assert!(out.contains("schema     0000000054455354"), "{out}");
    assert!(out.contains("records    2"), "{out}");

    let o = resilience(m.dir(), &["show", "import-1", "--history"]);
    let out = stdout(&o);
    assert!(out.contains("SEQ  STATE    PROGRESS  CURSOR"), "{out}");
    assert!(out.contains("\n2    running  45%       45"), "{out}");
    assert!(out.contains("\n1    running  10%       10"), "{out}");

    let o = resilience(m.dir(), &["show", "import-3", "--history", "--json"]);
    let v = json(&o);
    assert_keys(
        &v,
        &[
            "operation_id",
            "operation_name",
            "state",
            "progress",
            "cursor",
            "sequence",
            "saved_at",
            "error",
            "records",
        ],
    );
    assert_eq!(v["state"], "failed");
    assert_eq!(v["error"], "upload timed out\nsecond line");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_keys(
        &records[0],
        &[
            "sequence",
            "operation_name",
            "state",
            "progress",
            "cursor",
            "saved_at",
            "error",
            "schema",
            "data_size",
        ],
    );
    assert_eq!(records[0]["sequence"], 2);
    assert_eq!(records[1]["state"], "running");
    assert_eq!(records[0]["schema"], "0000000054455354");
    assert_eq!(records[0]["data_size"], 16);

    let o = resilience(m.dir(), &["show", "import-1", "--json"]);
    assert_eq!(json(&o)["records"].as_array().unwrap().len(), 1);

    assert_one_line_error(&resilience(m.dir(), &["show", "nope"]), 1, "no operation `nope`");
}

#[test]
fn discard_removes_an_operation_but_leaves_a_locked_one_alone() {
    let (_tmp, m) = store();
    let o = resilience(m.dir(), &["discard", "import-2"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "discarded import-2\n");
    assert!(m.records("import-2").unwrap().is_empty());

    assert_one_line_error(&resilience(m.dir(), &["discard", "import-2"]), 1, "no operation");

    let guard = m.lock("import-1").unwrap();
    let o = resilience(m.dir(), &["discard", "import-1"]);
    assert_one_line_error(&o, 1, "operation `import-1` is locked");
    assert_eq!(m.records("import-1").unwrap().len(), 2, "a locked operation was touched");
    drop(guard);
    let o = after_unlock(|| resilience(m.dir(), &["discard", "import-1"]));
    assert_eq!(status(&o), 0, "{}", stderr(&o));
}

#[test]
fn clear_completed_leaves_locked_and_unfinished_operations_alone() {
    let (_tmp, m) = store();
    save(&m, "import-5", ProcessState::Completed, 1, 1);
    save(&m, "import-6", ProcessState::Completed, 1, 1);
    let guard = m.lock("import-6").unwrap();
    let o = resilience(m.dir(), &["clear", "--completed"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "removed 2 completed operations\nleft alone (locked, a process is running it): import-6\n"
    );
    let ids: Vec<String> = m.operations().unwrap().into_iter().map(|o| o.operation_id).collect();
    assert_eq!(ids, ["import-1", "import-2", "import-3", "import-6"]);
    drop(guard);
    let o = after_unlock(|| resilience(m.dir(), &["clear", "--completed"]));
    assert_eq!(stdout(&o), "removed 1 completed operation\n");
}

#[test]
fn backups_are_listed_with_an_index_that_restore_takes() {
    let (tmp, m) = store();
    let file = tmp.path().join("catalog.db");
    std::fs::write(&file, b"version 1").unwrap();
    m.create_backup(&file).unwrap();
    std::fs::write(&file, b"version 2!").unwrap();
    m.create_backup(&file).unwrap();
    std::fs::write(&file, b"broken").unwrap();
    let file_s = file.to_str().unwrap();

    let o = resilience(m.dir(), &["backups", file_s]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("N  CREATED"), "{out}");
    assert!(lines[1].starts_with("1  ") && lines[1].contains("10 B"), "{out}");
    assert!(lines[2].starts_with("2  ") && lines[2].contains("9 B"), "{out}");

    let v = json(&resilience(m.dir(), &["backups", file_s, "--json"]));
    assert_keys(&v, &["source", "backups"]);
    let backups = v["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    assert_keys(&backups[0], &["index", "source", "path", "size", "checksum", "created_at"]);
    assert_eq!(backups[1]["index"], 2);
    assert_eq!(backups[1]["size"], 9);
    assert_eq!(backups[1]["checksum"], format!("{:08x}", crc32(b"version 1")));

    let o = resilience(m.dir(), &["restore", file_s, "--backup", "2"]);
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("restored "), "{}", stdout(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"version 1");
    assert_eq!(status(&resilience(m.dir(), &["restore", file_s, "--newest"])), 0);
    assert_eq!(std::fs::read(&file).unwrap(), b"version 2!");

    let o = resilience(m.dir(), &["restore", file_s, "--backup", "3"]);
    assert_one_line_error(&o, 1, "no backup 3 of");
    let other = tmp.path().join("never.db");
    let o = resilience(m.dir(), &["restore", other.to_str().unwrap(), "--newest"]);
    assert_one_line_error(&o, 1, "no backups of");
    assert_eq!(
        stdout(&resilience(m.dir(), &["backups", other.to_str().unwrap()])).lines().count(),
        1
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn ckpt(m: &FailsafeManager, id: &str) -> PathBuf {
    m.dir().join(format!("{id}.ckpt"))
}

#[test]
fn verify_finds_corrupt_files_and_stray_temporaries() {
    let (_tmp, m) = store();
    let o = resilience(m.dir(), &["verify"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    assert_eq!(stdout(&o), "4 intact (6 records), 0 corrupt, 0 not regular, 0 temporary: ok\n");

    // A damaged record beside an intact one: reported, not corruption. Slot 0 of a file whose id
    // is 8 bytes starts at 64 and holds the first record.
    flip(&ckpt(&m, "import-1"), 64 + 20);
    let o = resilience(m.dir(), &["verify"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("import-1.ckpt: 1 damaged record(s) beside 1 intact"));

    // Both records damaged: corrupt.
    flip(&ckpt(&m, "import-1"), 64 + 256 + 20);
    // Cut short.
    let bytes = std::fs::read(ckpt(&m, "import-2")).unwrap();
    std::fs::write(ckpt(&m, "import-2"), &bytes[..bytes.len() - 10]).unwrap();
    // Not a checkpoint file at all, a stray temporary file, and a symbolic link.
    std::fs::write(m.dir().join("junk.ckpt"), b"garbage").unwrap();
    std::fs::write(m.dir().join(".tmp-4194999-0-0000abcd"), b"partial").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", m.dir().join("link.ckpt")).unwrap();

    let o = resilience(m.dir(), &["verify"]);
    assert_eq!(status(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("import-1.ckpt: no intact checkpoint record (2 damaged)"), "{out}");
    assert!(out.contains("import-2.ckpt: the file is"), "{out}");
    assert!(out.contains("junk.ckpt: "), "{out}");
    assert!(out.contains("not a file   ") && out.contains("link.ckpt"), "{out}");
    assert!(out.contains("temporary    ") && out.contains(".tmp-4194999-0-0000abcd"), "{out}");
    assert!(
        out.ends_with("2 intact (3 records), 3 corrupt, 1 not regular, 1 temporary: DAMAGED\n")
    );

    let o = resilience(m.dir(), &["verify", "--json"]);
    assert_eq!(status(&o), 1);
    let v = json(&o);
    assert_keys(&v, &["store", "clean", "intact", "corrupt", "temporary", "not_regular"]);
    assert_eq!(v["clean"], false);
    assert_keys(&v["intact"][0], &["path", "operation_id", "records", "damaged_records"]);
    assert_eq!(v["intact"][0]["operation_id"], "import-3");
    assert_keys(&v["corrupt"][0], &["path", "reason"]);
    assert!(v["corrupt"][0]["path"].as_str().unwrap().ends_with("import-1.ckpt"));
    assert_eq!(v["temporary"].as_array().unwrap().len(), 1);
    assert_eq!(v["not_regular"].as_array().unwrap().len(), 1);
}

#[test]
fn health_exits_with_its_verdict() {
    let (_tmp, m) = store();
    let o = resilience(m.dir(), &["health"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    assert_eq!(
        stdout(&o),
        "healthy\noperations: 4 (1 active, 1 paused, 1 failed, 1 completed)\nbackups: 0 (0 B)\n"
    );
    for i in 0..10 {
        save(&m, &format!("busy-{i}"), ProcessState::Running, 1, 2);
    }
    let o = resilience(m.dir(), &["health"]);
    assert_eq!(status(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("warning\n  11 active operations (more than 10)\n"));
    let o = resilience(m.dir(), &["health", "--json"]);
    assert_eq!(status(&o), 1);
    let v = json(&o);
    assert_keys(&v, &["status", "issues", "operations", "backups"]);
    assert_eq!(v["status"], "warning");
    assert_eq!(v["issues"][0], "11 active operations (more than 10)");
    assert_keys(&v["operations"], &["total", "active", "paused", "failed", "completed"]);
    assert_eq!(v["operations"]["active"], 11);
    assert_keys(&v["backups"], &["count", "total_size_bytes"]);
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
        cmd.args(["completions", shell]);
        let o = run(cmd);
        assert_eq!(status(&o), 0, "{shell}");
        let script = stdout(&o);
        assert!(script.contains("resilience") && script.contains("discard"), "{shell}");
    }
}

/// The job of `watch_follows_a_job_in_another_process`: runs only when that test starts this
/// binary with `RESILIENCE_CLI_TEST_JOB` set to a store directory.
#[test]
fn job_for_watch() {
    let Some(dir) = std::env::var_os("RESILIENCE_CLI_TEST_JOB") else { return };
    let m = FailsafeManager::open(dir).unwrap();
    let total = 40;
    for done in 0..=total {
        let state = if done == total { ProcessState::Completed } else { ProcessState::Running };
        save(&m, "photo-import", state, done, total);
        // About 3 s in all: several frames of `watch --interval 0.2`, even on a busy machine.
        std::thread::sleep(Duration::from_millis(75));
    }
}

#[test]
fn watch_follows_a_job_in_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let m = FailsafeManager::open(&dir).unwrap();
    save(&m, "done-before", ProcessState::Completed, 1, 1);

    let o = resilience(&dir, &["watch"]);
    assert_eq!(status(&o), 0);
    assert_eq!(stdout(&o), "no operation running\n");

    let mut job = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "job_for_watch", "--nocapture", "--test-threads=1"])
        .env("RESILIENCE_CLI_TEST_JOB", &dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while m.records("photo-import").unwrap().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "the job did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = resilience(&dir, &["watch", "--interval", "0.2"]);
    job.wait().unwrap();
    assert_eq!(status(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 4, "{out}");
    let mut frames = 0;
    let mut last_done = 0;
    let mut i = 0;
    while i < lines.len() && lines[i].starts_with("watch ") {
        // watch TIME: 1 running
        let header = lines[i];
        assert!(header.ends_with(": 1 running"), "{header}");
        assert!(header[6..].starts_with("20") && header.contains('Z'), "{header}");
        // "  photo-import  DONE/40  P%  RATE/s  eta T"
        let fields: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{}", lines[i + 1]);
        assert_eq!(fields[0], "photo-import");
        let (done, total) = fields[1].split_once('/').unwrap();
        let done: u64 = done.parse().unwrap();
        assert_eq!(total, "40");
        assert!(done >= last_done && done <= 40);
        last_done = done;
        assert!(fields[2].ends_with('%'));
        assert!(fields[3] == "-" || fields[3].ends_with("/s"), "{}", fields[3]);
        assert_eq!(fields[4], "eta");
        frames += 1;
        i += 2;
    }
    assert!(frames >= 2, "{out}");
    assert_eq!(&lines[i..], ["  photo-import completed", "no operation running"], "{out}");
}

/// The same commands on a Postgres store (`$RESILIENCE_TEST_POSTGRES`).
#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;

    fn url() -> String {
        std::env::var("RESILIENCE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    struct Schema(String);

    impl Drop for Schema {
        fn drop(&mut self) {
            let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
            let _ = Command::new("psql").arg(url()).args(["-q", "-c", &sql]).output();
        }
    }

    #[test]
    fn list_show_discard_and_clear_on_a_postgres_store() {
        let schema =
            Schema(format!("cli_{}_{:08x}", std::process::id(), std::process::id() ^ 0x5a5a));
        let m = FailsafeManager::builder()
            .postgres(url())
            .pg_schema(&schema.0)
            .build()
            .expect("the test server answers ($RESILIENCE_TEST_POSTGRES)");
        save(&m, "import-1", ProcessState::Running, 45, 100);
        save(&m, "import-2", ProcessState::Completed, 10, 10);
        save(&m, "held", ProcessState::Completed, 10, 10);
        let lock = m.lock("held").unwrap();
        let pg = |args: &[&str]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_resilience"));
            cmd.args(["--store", &url()]).args(args);
            cmd.env_remove("RESILIENCE_DIR").env("RESILIENCE_PG_SCHEMA", &schema.0);
            cmd.stdin(Stdio::null()).output().expect("run resilience")
        };
        let o = pg(&["list", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let ids: Vec<&str> = v["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["operation_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["held", "import-1", "import-2"]);
        let o = pg(&["show", "import-1"]);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("45"));
        // The held operation is left alone; the other completed one goes.
        let o = pg(&["clear", "--completed"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("removed 1 completed operation") && out.contains("held"), "{out}");
        assert_eq!(pg(&["discard", "held"]).status.code(), Some(1));
        drop(lock);
        assert_eq!(pg(&["discard", "held"]).status.code(), Some(0));
        assert_eq!(m.operations().unwrap().len(), 1);
    }
}

#[derive(Debug, thiserror::Error, resilience::Classify)]
enum PhotoError {
    #[error("photo {0} is damaged")]
    #[classify(skip, code = "E_DAMAGED")]
    Damaged(u64),
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] resilience::Error),
}

#[resilience::checkpointed(manager = m, id = "photo-import")]
fn import_photos(m: &FailsafeManager, photos: &[u64]) -> Result<(), PhotoError> {
    for &photo in photos {
        if photo % 4 == 1 {
            Err(PhotoError::Damaged(photo))?;
        }
    }
    Ok(())
}

#[test]
fn skipped_lists_an_operations_skipped_items() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let m = FailsafeManager::open(&dir).unwrap();
    import_photos(&m, &[0, 1, 2, 3, 4, 5]).unwrap();
    let o = resilience(&dir, &["skipped", "photo-import"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("E_DAMAGED") && text.contains("photo 5 is damaged"), "{text}");
    let o = resilience(&dir, &["skipped", "photo-import", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["operation_id"], "photo-import");
    let positions: Vec<u64> =
        v["skipped"].as_array().unwrap().iter().map(|s| s["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [1, 5]);
    assert_eq!(v["skipped"][0]["error_code"], "E_DAMAGED");
    assert_eq!(resilience(&dir, &["skipped", "nothing-here"]).status.code(), Some(1));
}
