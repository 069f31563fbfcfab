//! `resilience::recovery::Recovery`: the wording, the answers, handlers, failures, and the
//! resume of a `#[checkpointed]` function from a handler.

use resilience::recovery::{Recovery, RecoveryReport};
use resilience::{Checkpointable, FailsafeManager, OperationSummary, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

fn store_with(ops: &[(&str, &str, ProcessState, f64)]) -> (tempfile::TempDir, FailsafeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    for &(id, name, state, progress) in ops {
        store.save_checkpoint(id, name, state, progress, &()).unwrap();
    }
    (tmp, store)
}

fn ok(op: &OperationSummary) -> Result<String, String> {
    Ok(format!("{} done", op.operation_id))
}

/// Runs an interactive recovery with `input`; returns the report and the output.
fn interactive(store: &FailsafeManager, input: &str) -> (RecoveryReport, String) {
    let mut output = Vec::new();
    let report = Recovery::new(store)
        .handler("Import", ok)
        .handler("Export", |_: &OperationSummary| Err::<String, _>("the disk is full"))
        .interactive()
        .io(input.as_bytes(), &mut output)
        .run()
        .unwrap();
    (report, String::from_utf8(output).unwrap())
}

fn operation(name: &str, id: &str, progress: &str, state: &str) -> String {
    format!("\nOperation: {name}\n  - ID: {id}\n  - Progress: {progress}\n  - State: {state}\n")
}

const QUESTION: &str = "  Recover this operation? (y/n): ";

#[test]
fn answers_yes_no_asks_again_and_reads_the_end_of_input_as_no() {
    let (_tmp, store) = store_with(&[
        ("a", "Import", ProcessState::Failed, 0.45),
        ("b", "Import", ProcessState::Paused, 0.5),
        ("c", "Import", ProcessState::Running, 0.0),
        ("d", "Import", ProcessState::Completed, 1.0),
    ]);
    let (report, out) = interactive(&store, "y\nmaybe\nNO\n");
    let expected = [
        "Found 3 operations to recover:\n".to_owned(),
        operation("Import", "a", "45%", "Failed"),
        format!("{QUESTION}y\n  ✓ Recovery successful: a done\n"),
        operation("Import", "b", "50%", "Paused"),
        format!("{QUESTION}maybe\n{QUESTION}NO\n"),
        operation("Import", "c", "0%", "Running"),
        format!("{QUESTION}\n"),
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(
        report,
        RecoveryReport {
            resumed: vec!["a".into()],
            declined: vec!["b".into(), "c".into()],
            failed: vec![],
            no_handler: vec![],
        }
    );
    // Nothing was locked after the recovery, and the declined ones are still recoverable (the
    // handler here does not complete them).
    assert!(store.lock("b").is_ok());
    assert_eq!(store.recoverable_operations().unwrap().len(), 3);
}

#[test]
fn handler_failures_and_operations_without_a_handler_are_reported() {
    let (_tmp, store) = store_with(&[
        ("a", "Export", ProcessState::Failed, 0.1),
        ("b", "Unknown job", ProcessState::Failed, 0.2),
    ]);
    let (report, out) = interactive(&store, "yes\n");
    let expected = [
        "Found 2 operations to recover:\n".to_owned(),
        operation("Export", "a", "10%", "Failed"),
        format!("{QUESTION}yes\n  ✗ Recovery failed: the disk is full\n"),
        operation("Unknown job", "b", "20%", "Failed"),
        "  - No handler for this operation\n".to_owned(),
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(report.failed, [("a".to_owned(), "the disk is full".to_owned())]);
    assert_eq!(report.no_handler, ["b"]);
}

#[test]
fn without_interactive_every_question_is_answered_yes_and_nothing_is_read() {
    let (_tmp, store) = store_with(&[
        ("a", "Import", ProcessState::Failed, 0.5),
        ("b", "Other", ProcessState::Paused, 0.25),
    ]);
    let mut output = Vec::new();
    let mut fallback_calls = Vec::new();
    let report = Recovery::new(&store)
        .handler("Import", ok)
        .fallback(|op: &OperationSummary| {
            fallback_calls.push(op.operation_name.clone());
            Ok::<_, String>("generic")
        })
        .io(&b"n\nn\n"[..], &mut output)
        .run()
        .unwrap();
    let expected = [
        "Found 2 operations to recover:\n".to_owned(),
        operation("Import", "a", "50%", "Failed"),
        format!("{QUESTION}y\n  ✓ Recovery successful: a done\n"),
        operation("Other", "b", "25%", "Paused"),
        format!("{QUESTION}y\n  ✓ Recovery successful: generic\n"),
    ]
    .concat();
    assert_eq!(String::from_utf8(output).unwrap(), expected);
    assert_eq!(report.resumed, ["a", "b"]);
    assert_eq!(fallback_calls, ["Other"]);

    // `.assume_yes()` after `.interactive()` answers too.
    let mut output = Vec::new();
    let report = Recovery::new(&store)
        .handler("Import", ok)
        .interactive()
        .assume_yes()
        .io(&b""[..], &mut output)
        .run()
        .unwrap();
    assert_eq!(report.resumed, ["a"]);
}

#[test]
fn nothing_to_recover() {
    let (_tmp, store) = store_with(&[("a", "Import", ProcessState::Completed, 1.0)]);
    let (report, out) = interactive(&store, "y\n");
    assert_eq!(out, "No operations need recovery\n");
    assert_eq!(report, RecoveryReport::default());
}

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Count {
    #[checkpoint(cursor)]
    done: u64,
    sum: u64,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("item {0} failed")]
    Item(u64),
    #[error(transparent)]
    Store(#[from] resilience::Error),
}

#[checkpointed(manager = store, id = "sum-{n}", name = "Sum", every = 5, input = [n])]
fn sum(
    store: &FailsafeManager,
    n: u64,
    fail_at: Option<u64>,
    state: &mut Count,
) -> Result<u64, JobError> {
    for item in 0..n {
        if Some(item) == fail_at {
            return Err(JobError::Item(item));
        }
        state.sum += item;
    }
    Ok(state.sum)
}

#[test]
fn a_handler_resumes_a_checkpointed_function_which_takes_the_lock_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(tmp.path()).unwrap();
    assert!(sum(&store, 30, Some(17), &mut Count::default()).is_err());
    let mut output = Vec::new();
    let report = Recovery::new(&store)
        .handler("Sum", |op: &OperationSummary| {
            let n = op.operation_id.strip_prefix("sum-").unwrap().parse().unwrap();
            sum(&store, n, None, &mut Count::default()).map(|total| format!("sum {total}"))
        })
        .io(&b""[..], &mut output)
        .run()
        .unwrap();
    assert_eq!(report.resumed, ["sum-30"], "{}", String::from_utf8_lossy(&output));
    let out = String::from_utf8(output).unwrap();
    assert!(out.contains("  - Progress: 50%\n  - State: Failed\n"), "{out}");
    assert!(
        out.ends_with(&format!("  ✓ Recovery successful: sum {}\n", (0..30).sum::<u64>())),
        "{out}"
    );
    let done = store.load_checkpoint::<Count>("sum-30").unwrap().unwrap();
    assert_eq!(done.state, ProcessState::Completed);
}
