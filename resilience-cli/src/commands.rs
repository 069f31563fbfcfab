//! The commands other than `watch` and `completions`.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use resilience::health;
use resilience::{
    BackupInfo, Error, ErrorHandler, FailsafeManager, OperationSummary, ProcessState, RecordInfo,
    RetryManager,
};
use resilience::{HealthStatus, HealthThresholds};
use serde::Serialize;

use crate::cli::{BackupsArgs, ListArgs, RestoreArgs, ShowArgs, SkippedArgs, StateArg};
use crate::output::{self, Table};
use crate::{Failure, Outcome};

fn json(out: &mut impl Write, value: &impl Serialize) -> Outcome {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| Failure::Store(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

#[derive(Serialize)]
struct OperationJson<'a> {
    operation_id: &'a str,
    operation_name: &'a str,
    state: &'static str,
    progress: f64,
    cursor: u64,
    sequence: u64,
    saved_at: String,
    error: Option<&'a str>,
}

impl<'a> From<&'a OperationSummary> for OperationJson<'a> {
    fn from(s: &'a OperationSummary) -> Self {
        OperationJson {
            operation_id: &s.operation_id,
            operation_name: &s.operation_name,
            state: output::state_name(s.state),
            progress: s.progress,
            cursor: s.cursor,
            sequence: s.sequence,
            saved_at: output::rfc3339(s.saved_at),
            error: s.error.as_deref(),
        }
    }
}

fn state_of(arg: StateArg) -> ProcessState {
    match arg {
        StateArg::Initialized => ProcessState::Initialized,
        StateArg::Running => ProcessState::Running,
        StateArg::Paused => ProcessState::Paused,
        StateArg::Failed => ProcessState::Failed,
        StateArg::Completed => ProcessState::Completed,
    }
}

pub fn list(manager: &FailsafeManager, args: &ListArgs, out: &mut impl Write) -> Outcome {
    let wanted: Vec<ProcessState> = args.state.iter().copied().map(state_of).collect();
    let all_resumable =
        !wanted.is_empty() && wanted.iter().all(|s| s.is_resumable()) && wanted.len() == 3;
    let mut operations =
        if all_resumable { manager.recoverable_operations()? } else { manager.operations()? };
    if !wanted.is_empty() {
        operations.retain(|op| wanted.contains(&op.state));
    }
    if args.json {
        #[derive(Serialize)]
        struct ListJson<'a> {
            store: &'a Path,
            operations: Vec<OperationJson<'a>>,
        }
        let operations = operations.iter().map(OperationJson::from).collect();
        return json(out, &ListJson { store: manager.dir(), operations });
    }
    if operations.is_empty() {
        writeln!(out, "no operations in {}", manager.dir().display())?;
        return Ok(());
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["ID", "NAME", "STATE", "PROGRESS", "CURSOR", "SAVED", "ERROR"]);
    for op in &operations {
        table.push(vec![
            output::clean(&op.operation_id),
            output::clean(&op.operation_name),
            output::state_name(op.state).to_owned(),
            output::percent(op.progress),
            op.cursor.to_string(),
            output::ago(op.saved_at, now),
            op.error.as_deref().map_or_else(String::new, |e| output::one_line(e, 60)),
        ]);
    }
    table.write(out)?;
    Ok(())
}

#[derive(Serialize)]
struct RecordJson<'a> {
    sequence: u64,
    operation_name: &'a str,
    state: &'static str,
    progress: f64,
    cursor: u64,
    saved_at: String,
    error: Option<&'a str>,
    schema: String,
    data_size: u64,
}

impl<'a> From<&'a RecordInfo> for RecordJson<'a> {
    fn from(r: &'a RecordInfo) -> Self {
        RecordJson {
            sequence: r.sequence,
            operation_name: &r.operation_name,
            state: output::state_name(r.state),
            progress: r.progress,
            cursor: r.cursor,
            saved_at: output::rfc3339(r.saved_at),
            error: r.error.as_deref(),
            schema: format!("{:016x}", r.schema),
            data_size: r.data_size,
        }
    }
}

pub fn skipped(manager: &FailsafeManager, args: &SkippedArgs, out: &mut impl Write) -> Outcome {
    if manager.records(&args.operation)?.is_empty() {
        return Err(Failure::Negative(Some(format!(
            "no operation `{}` in {}",
            output::clean(&args.operation),
            manager.dir().display()
        ))));
    }
    let skipped = manager.skipped(&args.operation)?;
    if args.json {
        #[derive(Serialize)]
        struct SkippedJson<'a> {
            operation_id: &'a str,
            skipped: &'a [resilience::SkippedItem],
        }
        return json(out, &SkippedJson { operation_id: &args.operation, skipped: &skipped });
    }
    if skipped.is_empty() {
        writeln!(out, "no skipped items in `{}`", output::clean(&args.operation))?;
        return Ok(());
    }
    let mut table = Table::new(&["ITEM", "CODE", "ERROR"]);
    for item in &skipped {
        table.push(vec![
            item.position.to_string(),
            output::clean(&item.error_code),
            output::one_line(&item.message, 100),
        ]);
    }
    table.write(out)?;
    Ok(())
}

pub fn show(manager: &FailsafeManager, args: &ShowArgs, out: &mut impl Write) -> Outcome {
    let records = manager.records(&args.operation)?;
    let Some(newest) = records.first() else {
        return Err(Failure::Negative(Some(format!(
            "no operation `{}` in {}",
            output::clean(&args.operation),
            manager.dir().display()
        ))));
    };
    let shown = if args.history { &records[..] } else { &records[..1] };
    if args.json {
        #[derive(Serialize)]
        struct ShowJson<'a> {
            #[serde(flatten)]
            operation: OperationJson<'a>,
            records: Vec<RecordJson<'a>>,
        }
        let operation = OperationJson {
            operation_id: &args.operation,
            operation_name: &newest.operation_name,
            state: output::state_name(newest.state),
            progress: newest.progress,
            cursor: newest.cursor,
            sequence: newest.sequence,
            saved_at: output::rfc3339(newest.saved_at),
            error: newest.error.as_deref(),
        };
        let records = shown.iter().map(RecordJson::from).collect();
        return json(out, &ShowJson { operation, records });
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["operation", &output::clean(&args.operation)]);
    let mut field = |name: &str, value: String| table.push(vec![name.to_owned(), value]);
    field("name", output::clean(&newest.operation_name));
    field("state", output::state_name(newest.state).to_owned());
    field("progress", format!("{} (cursor {})", output::percent(newest.progress), newest.cursor));
    field(
        "saved",
        format!("{} ({})", output::utc(newest.saved_at), output::ago(newest.saved_at, now)),
    );
    field("sequence", newest.sequence.to_string());
    field("schema", format!("{:016x}", newest.schema));
    field("data", output::bytes(newest.data_size));
    field("records", records.len().to_string());
    if let Some(error) = &newest.error {
        field("error", output::one_line(error, 200));
    }
    table.write(out)?;
    if args.history {
        writeln!(out)?;
        let mut table =
            Table::new(&["SEQ", "STATE", "PROGRESS", "CURSOR", "SAVED", "DATA", "ERROR"]);
        for r in shown {
            table.push(vec![
                r.sequence.to_string(),
                output::state_name(r.state).to_owned(),
                output::percent(r.progress),
                r.cursor.to_string(),
                output::ago(r.saved_at, now),
                output::bytes(r.data_size),
                r.error.as_deref().map_or_else(String::new, |e| output::one_line(e, 60)),
            ]);
        }
        table.write(out)?;
    }
    Ok(())
}

fn locked_message(operation_id: &str) -> String {
    format!(
        "operation `{}` is locked (a process is running it); not discarded",
        output::clean(operation_id)
    )
}

pub fn discard(manager: &FailsafeManager, operation_id: &str, out: &mut impl Write) -> Outcome {
    if manager.records(operation_id).map(|r| r.is_empty()).unwrap_or(false) {
        return Err(Failure::Negative(Some(format!(
            "no operation `{}` in {}",
            output::clean(operation_id),
            manager.dir().display()
        ))));
    }
    // The store refuses to discard an operation whose lock another process holds.
    match manager.discard(operation_id) {
        Ok(true) => {
            writeln!(out, "discarded {}", output::clean(operation_id))?;
            Ok(())
        }
        Ok(false) => Err(Failure::Negative(Some(format!(
            "no operation `{}` in {}",
            output::clean(operation_id),
            manager.dir().display()
        )))),
        Err(Error::Locked { .. }) => Err(Failure::Negative(Some(locked_message(operation_id)))),
        Err(e) => Err(e.into()),
    }
}

pub fn clear_completed(manager: &FailsafeManager, out: &mut impl Write) -> Outcome {
    let mut removed = 0usize;
    let mut locked = Vec::new();
    for op in manager.operations()? {
        if op.state != ProcessState::Completed {
            continue;
        }
        // Operation by operation rather than `clear_completed_checkpoints`, to name the locked
        // ones. Under the operation's lock, so that no run starts between the check of its
        // state and the discard.
        let _lock = match manager.lock(&op.operation_id) {
            Ok(lock) => lock,
            Err(Error::Locked { .. }) => {
                locked.push(op.operation_id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let still_completed = manager
            .records(&op.operation_id)
            .is_ok_and(|r| r.first().is_some_and(|r| r.state == ProcessState::Completed));
        if still_completed && manager.discard(&op.operation_id)? {
            removed += 1;
        }
    }
    let plural = if removed == 1 { "" } else { "s" };
    writeln!(out, "removed {removed} completed operation{plural}")?;
    for id in &locked {
        writeln!(out, "left alone (locked, a process is running it): {}", output::clean(id))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct BackupJson<'a> {
    index: usize,
    source: &'a Path,
    path: &'a Path,
    size: u64,
    checksum: String,
    created_at: String,
}

pub fn backups(manager: &FailsafeManager, args: &BackupsArgs, out: &mut impl Write) -> Outcome {
    let backups = manager.list_backups(&args.file)?;
    if args.json {
        #[derive(Serialize)]
        struct BackupsJson<'a> {
            source: &'a Path,
            backups: Vec<BackupJson<'a>>,
        }
        let backups = backups
            .iter()
            .enumerate()
            .map(|(i, b)| BackupJson {
                index: i + 1,
                source: &b.source,
                path: &b.path,
                size: b.size,
                checksum: format!("{:08x}", b.checksum),
                created_at: output::rfc3339(b.created_at),
            })
            .collect();
        return json(out, &BackupsJson { source: &args.file, backups });
    }
    if backups.is_empty() {
        writeln!(out, "no backups of {}", args.file.display())?;
        return Ok(());
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["N", "CREATED", "SIZE", "CRC32", "PATH"]);
    for (i, b) in backups.iter().enumerate() {
        table.push(vec![
            (i + 1).to_string(),
            format!("{} ({})", output::utc(b.created_at), output::ago(b.created_at, now)),
            output::bytes(b.size),
            format!("{:08x}", b.checksum),
            b.path.display().to_string(),
        ]);
    }
    table.write(out)?;
    Ok(())
}

pub fn restore(manager: &FailsafeManager, args: &RestoreArgs, out: &mut impl Write) -> Outcome {
    let backups = manager.list_backups(&args.file)?;
    let index = args.backup.unwrap_or(1);
    let chosen: Option<&BackupInfo> = usize::try_from(index).ok().and_then(|i| backups.get(i - 1));
    let Some(backup) = chosen else {
        return Err(Failure::Negative(Some(match backups.len() {
            0 => format!("no backups of {}", args.file.display()),
            n => format!(
                "no backup {index} of {} (it has {n}; see `resilience backups FILE`)",
                args.file.display()
            ),
        })));
    };
    manager.restore_backup(backup)?;
    writeln!(
        out,
        "restored {} from backup {index} of {} ({}, crc32 {:08x})",
        backup.source.display(),
        output::utc(backup.created_at),
        output::bytes(backup.size),
        backup.checksum
    )?;
    Ok(())
}

pub fn verify(manager: &FailsafeManager, as_json: bool, out: &mut impl Write) -> Outcome {
    let report = manager.verify()?;
    if as_json {
        #[derive(Serialize)]
        struct VerifyJson<'a> {
            store: &'a Path,
            clean: bool,
            #[serde(flatten)]
            report: &'a resilience::VerifyReport,
        }
        json(out, &VerifyJson { store: manager.dir(), clean: report.is_clean(), report: &report })?;
    } else {
        for f in &report.corrupt {
            writeln!(out, "corrupt      {}: {}", f.path.display(), f.reason)?;
        }
        for p in &report.not_regular {
            writeln!(out, "not a file   {}", p.display())?;
        }
        for f in report.intact.iter().filter(|f| f.damaged_records > 0) {
            writeln!(
                out,
                "damaged slot {}: {} damaged record(s) beside {} intact (ignored by the store)",
                f.path.display(),
                f.damaged_records,
                f.records
            )?;
        }
        for p in &report.temporary {
            writeln!(out, "temporary    {}", p.display())?;
        }
        let records: usize = report.intact.iter().map(|f| f.records).sum();
        writeln!(
            out,
            "{} intact ({records} records), {} corrupt, {} not regular, {} temporary: {}",
            report.intact.len(),
            report.corrupt.len(),
            report.not_regular.len(),
            report.temporary.len(),
            if report.is_clean() { "ok" } else { "DAMAGED" }
        )?;
    }
    if report.is_clean() { Ok(()) } else { Err(Failure::Status(1)) }
}

pub fn health(manager: &FailsafeManager, as_json: bool, out: &mut impl Write) -> Outcome {
    let report = health::check_with(
        &HealthThresholds::default(),
        manager,
        &ErrorHandler::new(1),
        &RetryManager::new(),
    );
    let stats = manager.statistics().ok();
    let status = match report.status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
    };
    if as_json {
        #[derive(Serialize)]
        struct Operations {
            total: u64,
            active: u64,
            paused: u64,
            failed: u64,
            completed: u64,
        }
        #[derive(Serialize)]
        struct Backups {
            count: u64,
            total_size_bytes: u64,
        }
        #[derive(Serialize)]
        struct HealthJson<'a> {
            status: &'a str,
            issues: &'a [String],
            operations: Option<Operations>,
            backups: Option<Backups>,
        }
        json(
            out,
            &HealthJson {
                status,
                issues: &report.issues,
                operations: stats.as_ref().map(|s| Operations {
                    total: s.checkpoints.total_operations,
                    active: s.checkpoints.active_operations,
                    paused: s.checkpoints.paused,
                    failed: s.checkpoints.failed,
                    completed: s.checkpoints.completed,
                }),
                backups: stats.as_ref().map(|s| Backups {
                    count: s.backups.count,
                    total_size_bytes: s.backups.total_size_bytes,
                }),
            },
        )?;
    } else {
        writeln!(out, "{status}")?;
        for issue in &report.issues {
            writeln!(out, "  {issue}")?;
        }
        if let Some(s) = &stats {
            let c = &s.checkpoints;
            writeln!(
                out,
                "operations: {} ({} active, {} paused, {} failed, {} completed)",
                c.total_operations, c.active_operations, c.paused, c.failed, c.completed
            )?;
            writeln!(
                out,
                "backups: {} ({})",
                s.backups.count,
                output::bytes(s.backups.total_size_bytes)
            )?;
        }
    }
    match report.status {
        HealthStatus::Healthy => Ok(()),
        HealthStatus::Warning => Err(Failure::Status(1)),
        HealthStatus::Critical => Err(Failure::Status(2)),
    }
}
