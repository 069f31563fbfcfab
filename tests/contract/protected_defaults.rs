//! #[protected]: the default handler, errors without Classify, no state.

use super::*;

#[derive(Debug, thiserror::Error, Classify)]
enum GlobalRecorded {
    #[error("recorded by the global handler")]
    #[classify(abort, code = "E_CONTRACT_GLOBAL_HANDLER")]
    Failed,
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] Error),
}

#[protected(manager = mgr)]
fn records_globally(mgr: &FailsafeManager) -> Result<(), GlobalRecorded> {
    Err(GlobalRecorded::Failed)
}

#[test]
fn protected_records_errors_with_the_global_handler_by_default() {
    let (_tmp, manager) = store();
    let before =
        ErrorHandler::global().statistics().by_code.get("E_CONTRACT_GLOBAL_HANDLER").copied();
    assert!(records_globally(&manager).is_err());
    let after = ErrorHandler::global().statistics().by_code["E_CONTRACT_GLOBAL_HANDLER"];
    assert_eq!(after, before.unwrap_or(0) + 1);
    // No state parameter: states and progress are still checkpointed.
    let id = format!("{}::records_globally", module_path!());
    let failed: Checkpoint<()> = manager.load_checkpoint(&id).unwrap().unwrap();
    assert_eq!(failed.state, ProcessState::Failed);
}

/// An error type that does not implement `Classify`.
#[derive(Debug, thiserror::Error)]
enum Unclassified {
    #[error("plain failure")]
    Plain,
    #[error(transparent)]
    Store(#[from] Error),
}

#[protected(manager = mgr, errors = handler, id = "unclassified")]
fn plain_failure(mgr: &FailsafeManager, handler: &ErrorHandler) -> Result<(), Unclassified> {
    Err(Unclassified::Plain)
}

#[test]
fn protected_records_errors_that_do_not_implement_classify() {
    let (_tmp, manager) = store();
    let handler = ErrorHandler::new(10);
    assert!(matches!(plain_failure(&manager, &handler), Err(Unclassified::Plain)));
    let records = handler.history();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, "plain failure");
}
