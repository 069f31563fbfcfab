//! Start-up recovery: at start-up, offer to resume the operations an earlier run left
//! unfinished (`Running`, `Paused` or `Failed`), each with the handler registered for its name.
//!
//! ```
//! use resilience::recovery::Recovery;
//! use resilience::{FailsafeManager, OperationSummary, ProcessState};
//!
//! # let tmp = tempfile::tempdir()?;
//! let store = FailsafeManager::open(tmp.path())?;
//! store.save_checkpoint("import-7", "Photo import", ProcessState::Failed, 0.45, &())?;
//!
//! let mut output = Vec::new();
//! let report = Recovery::new(&store)
//!     // In a real program: call the `#[checkpointed]` function again; it resumes.
//!     .handler("Photo import", |op: &OperationSummary| {
//!         Ok::<_, String>(format!("resumed at {:.0}%", op.progress * 100.0))
//!     })
//!     .interactive()
//!     .io(&b"maybe\ny\n"[..], &mut output)
//!     .run()?;
//! assert_eq!(report.resumed, ["import-7"]);
//! assert_eq!(
//!     String::from_utf8(output)?,
//!     "Found 1 operation to recover:\n\
//!      \n\
//!      Operation: Photo import\n  \
//!        - ID: import-7\n  \
//!        - Progress: 45%\n  \
//!        - State: Failed\n  \
//!      Recover this operation? (y/n): maybe\n  \
//!      Recover this operation? (y/n): y\n  \
//!      ✓ Recovery successful: resumed at 45%\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Operations are claimed one at a time with [`FailsafeManager::claim_recoverable`], so that
//! several workers recovering from one store (a Postgres store shared by many machines, or one
//! directory) never recover the same operation twice. While the handler runs, the claim's lock
//! is handed over: the `#[checkpointed]` or `#[protected]` call of the operation that the
//! handler makes through the same manager (on any thread) takes it over instead of locking, so
//! no other worker can claim the operation in between. A call through another manager gets it
//! released first. The operations this recovery went through (declined, without a handler,
//! failed) stay locked by it until [`Recovery::run`] returns.

use std::fmt::Display;
use std::io::{self, BufRead, IsTerminal, Write};

use crate::error::{Error, Result};
use crate::failsafe::{FailsafeManager, OperationLock, OperationSummary};

type Handler<'a> = Box<dyn FnMut(&OperationSummary) -> std::result::Result<String, String> + 'a>;

/// What [`Recovery::run`] did, by operation id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Operations whose handler succeeded.
    pub resumed: Vec<String>,
    /// Operations the answer declined; they stay recoverable.
    pub declined: Vec<String>,
    /// Operations whose handler failed, with the handler's error text.
    pub failed: Vec<(String, String)>,
    /// Operations with no handler for their name (and no fallback).
    pub no_handler: Vec<String>,
}

/// Start-up recovery of one store: see the [module docs](self).
pub struct Recovery<'a> {
    manager: &'a FailsafeManager,
    handlers: Vec<(String, Handler<'a>)>,
    fallback: Option<Handler<'a>>,
    interactive: bool,
    io: Option<(Box<dyn BufRead + 'a>, Box<dyn Write + 'a>)>,
}

impl<'a> Recovery<'a> {
    /// Recovery of `manager`'s operations: no handlers yet, not interactive (every question is
    /// answered yes), stdin and stdout.
    pub fn new(manager: &'a FailsafeManager) -> Self {
        Recovery { manager, handlers: Vec::new(), fallback: None, interactive: false, io: None }
    }

    /// Resumes the operations named `operation_name` with `handler`. Its `Ok` text follows
    /// `✓ Recovery successful:`, its `Err` text `✗ Recovery failed:`.
    pub fn handler<T: Display, E: Display>(
        mut self,
        operation_name: impl Into<String>,
        mut handler: impl FnMut(&OperationSummary) -> std::result::Result<T, E> + 'a,
    ) -> Self {
        let boxed: Handler<'a> =
            Box::new(move |op| handler(op).map(|ok| ok.to_string()).map_err(|e| e.to_string()));
        self.handlers.push((operation_name.into(), boxed));
        self
    }

    /// Resumes the operations that no [`handler`](Self::handler) is registered for.
    pub fn fallback<T: Display, E: Display>(
        mut self,
        mut handler: impl FnMut(&OperationSummary) -> std::result::Result<T, E> + 'a,
    ) -> Self {
        self.fallback = Some(Box::new(move |op| {
            handler(op).map(|ok| ok.to_string()).map_err(|e| e.to_string())
        }));
        self
    }

    /// Asks before each operation and reads the answer: `y`/`yes` or `n`/`no` (any case);
    /// anything else is asked again, and the end of the input means no.
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// Answers yes to every question without reading anything (the default).
    pub fn assume_yes(mut self) -> Self {
        self.interactive = false;
        self
    }

    /// Reads answers from `reader` and writes to `writer` instead of stdin and stdout. The
    /// answers read are echoed after each question, so the output reads as a terminal shows it.
    pub fn io(mut self, reader: impl BufRead + 'a, writer: impl Write + 'a) -> Self {
        self.io = Some((Box::new(reader), Box::new(writer)));
        self
    }

    /// Goes through the recoverable operations in [`FailsafeManager::recoverable_operations`]
    /// order: lists each, asks (or answers yes), and runs its handler.
    ///
    /// The count in `Found N operations to recover:` is that of the listing when the recovery
    /// starts; an operation that another worker or process holds (it is running, or being
    /// recovered there) is passed over.
    ///
    /// Errors: the store's, and [`Error::Io`] when the output cannot be written.
    pub fn run(self) -> Result<RecoveryReport> {
        let Recovery { manager, mut handlers, mut fallback, interactive, io } = self;
        let (echo, mut reader, mut writer): (bool, Box<dyn BufRead + 'a>, Box<dyn Write + 'a>) =
            match io {
                Some((reader, writer)) => (true, reader, writer),
                None => (
                    !io::stdin().is_terminal(),
                    Box::new(io::stdin().lock()),
                    Box::new(io::stdout().lock()),
                ),
            };
        let out = &mut Output(&mut *writer);
        let mut report = RecoveryReport::default();
        // Locks of the operations left as they were, so that the next claim passes them over.
        let mut held: Vec<OperationLock> = Vec::new();
        let listed = manager.recoverable_operations()?.len();
        let mut seen = std::collections::HashSet::new();
        let mut first = true;
        while let Some((op, lock)) = manager.claim_recoverable()? {
            if !seen.insert(op.operation_id.clone()) {
                // Its handler left it recoverable, and the lock taken after it was refused.
                held.push(lock);
                continue;
            }
            if first {
                let count = crate::display::Count(listed.max(1) as u64, "operation", "operations");
                out.line(format_args!("Found {count} to recover:"))?;
                first = false;
            }
            out.line(format_args!(""))?;
            out.line(format_args!("Operation: {}", op.operation_name))?;
            out.line(format_args!("  - ID: {}", op.operation_id))?;
            out.line(format_args!("  - Progress: {:.0}%", op.progress * 100.0))?;
            out.line(format_args!("  - State: {}", op.state))?;
            let handler = match handlers.iter_mut().find(|(name, _)| *name == op.operation_name) {
                Some((_, handler)) => handler,
                None => match &mut fallback {
                    Some(handler) => handler,
                    None => {
                        out.line(format_args!("  - No handler for this operation"))?;
                        report.no_handler.push(op.operation_id);
                        held.push(lock);
                        continue;
                    }
                },
            };
            if !ask(interactive, echo, &mut *reader, out)? {
                report.declined.push(op.operation_id);
                held.push(lock);
                continue;
            }
            handed().push(lock);
            let result = handler(&op);
            // Whatever the handler left, this recovery does not claim the operation again.
            let back = take_handed(&op.operation_id, |_| true);
            if let Some(lock) = back.or_else(|| manager.lock(&op.operation_id).ok()) {
                held.push(lock);
            }
            match result {
                Ok(text) => {
                    out.line(format_args!("  ✓ Recovery successful: {text}"))?;
                    report.resumed.push(op.operation_id);
                }
                Err(text) => {
                    out.line(format_args!("  ✗ Recovery failed: {text}"))?;
                    report.failed.push((op.operation_id, text));
                }
            }
        }
        if first {
            out.line(format_args!("No operations need recovery"))?;
        }
        out.0.flush().map_err(output_error)?;
        Ok(report)
    }
}

impl Recovery<'static> {
    /// Recovery of [`FailsafeManager::global`]'s operations.
    pub fn global() -> Self {
        Recovery::new(FailsafeManager::global())
    }
}

/// Locks a recovery handed over to the handler it runs.
fn handed() -> std::sync::MutexGuard<'static, Vec<OperationLock>> {
    static HANDED: std::sync::Mutex<Vec<OperationLock>> = std::sync::Mutex::new(Vec::new());
    HANDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take_handed(operation_id: &str, by: impl Fn(&FailsafeManager) -> bool) -> Option<OperationLock> {
    let mut handed = handed();
    let at =
        handed.iter().position(|lock| lock.operation_id() == operation_id && by(lock.manager()))?;
    Some(handed.swap_remove(at))
}

/// For a run of `operation_id` starting on `manager`: the lock a recovery handed over, when
/// it holds the operation. One held through another manager is released (the run then locks
/// as usual).
pub(crate) fn adopt(manager: &FailsafeManager, operation_id: &str) -> Option<OperationLock> {
    let lock = take_handed(operation_id, |_| true)?;
    if std::sync::Arc::ptr_eq(&lock.manager().inner, &manager.inner) { Some(lock) } else { None }
}

/// Asks the question until the answer is yes or no; `true` for yes.
fn ask(
    interactive: bool,
    echo: bool,
    reader: &mut dyn BufRead,
    out: &mut Output<'_>,
) -> Result<bool> {
    const QUESTION: &str = "  Recover this operation? (y/n): ";
    if !interactive {
        out.line(format_args!("{QUESTION}y"))?;
        return Ok(true);
    }
    loop {
        out.0.write_all(QUESTION.as_bytes()).map_err(output_error)?;
        out.0.flush().map_err(output_error)?;
        let mut answer = String::new();
        let read = reader
            .read_line(&mut answer)
            .map_err(|source| Error::io("<recovery input>", source))?;
        if read == 0 {
            out.line(format_args!(""))?;
            return Ok(false);
        }
        let answer = answer.trim();
        if echo {
            out.line(format_args!("{answer}"))?;
        }
        match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => {}
        }
    }
}

struct Output<'w>(&'w mut dyn Write);

impl Output<'_> {
    fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<()> {
        writeln!(self.0, "{text}").map_err(output_error)
    }
}

fn output_error(source: io::Error) -> Error {
    Error::io("<recovery output>", source)
}
