//! The command line: options, commands and their help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
The store is --dir, else --store, else $RESILIENCE_STORE, else $RESILIENCE_DIR, else ./.resilience
(the directory `FailsafeManager::global()` uses). The store is never created by this command.

Exit status: 0 success; 1 what the command checks failed (verify: corrupt files; health: warning;
show, discard, restore: nothing to act on, or the operation is locked); 2 usage error (health:
critical); 3 the store cannot be opened or read. Errors are one line on stderr.

Examples:
  resilience list --state failed,paused
  resilience show import-7 --history
  resilience --dir /var/lib/photos/.resilience watch";

/// Inspect and repair a `resilience` checkpoint store: list operations, show their checkpoints,
/// discard them, restore backups, verify the files, check health and watch running jobs.
#[derive(Debug, Parser)]
#[command(name = "resilience", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The store directory.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "store")]
    pub dir: Option<PathBuf>,

    /// The store: a directory, or a `postgres://` URL (needs a build with the Postgres store).
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the operations in the store.
    #[command(after_long_help = LIST_HELP)]
    List(ListArgs),

    /// Show one operation: its newest checkpoint, or every stored one with --history.
    #[command(after_long_help = SHOW_HELP)]
    Show(ShowArgs),

    /// List the items an operation's run skipped (their errors classified as `skip`).
    #[command(after_long_help = SKIPPED_HELP)]
    Skipped(SkippedArgs),

    /// Delete every checkpoint of an operation. A locked (running) operation is left alone.
    #[command(after_long_help = DISCARD_HELP)]
    Discard(DiscardArgs),

    /// Delete the operations whose newest checkpoint is Completed. Locked ones are left alone.
    #[command(after_long_help = CLEAR_HELP)]
    Clear(ClearArgs),

    /// List the backups of a file, newest first, with the index `restore --backup` takes.
    #[command(after_long_help = BACKUPS_HELP)]
    Backups(BackupsArgs),

    /// Restore a file from one of its backups.
    #[command(after_long_help = RESTORE_HELP)]
    Restore(RestoreArgs),

    /// Read every record of every file in the store and report damage. Exit status 1 if any.
    #[command(after_long_help = VERIFY_HELP)]
    Verify(JsonArg),

    /// Judge the store's health. Exit status 0 healthy, 1 warning, 2 critical.
    #[command(after_long_help = HEALTH_HELP)]
    Health(JsonArg),

    /// Live progress bars of the running operations, read from the store about once a second.
    #[command(after_long_help = WATCH_HELP)]
    Watch(WatchArgs),

    /// Print a shell completion script.
    #[command(after_long_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print one JSON document (fields in --help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only operations in these states (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATE,...")]
    pub state: Vec<StateArg>,

    /// Print one JSON document (fields in --help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Initialized,
    Running,
    Paused,
    Failed,
    Completed,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The operation id.
    pub operation: String,

    /// Every stored checkpoint, newest first, not only the newest.
    #[arg(long)]
    pub history: bool,

    /// Print one JSON document (fields in --help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SkippedArgs {
    /// The operation id.
    pub operation: String,

    /// Print one JSON document (fields in --help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// The operation id.
    pub operation: String,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Delete the operations whose newest checkpoint is Completed (required: the only kind).
    #[arg(long, required = true)]
    pub completed: bool,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// The backed-up file, as it was given to `create_backup` or `#[protected(backup = ..)]`.
    pub file: PathBuf,

    /// Print one JSON document (fields in --help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backed-up file.
    pub file: PathBuf,

    /// The backup to restore: its index in `resilience backups FILE` (1 is the newest).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        required_unless_present = "newest",
        conflicts_with = "newest"
    )]
    pub backup: Option<u64>,

    /// Restore the newest backup.
    #[arg(long)]
    pub newest: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Seconds between two reads of the store.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_interval)]
    pub interval: f64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=3600.0).contains(&v) => Ok(v),
        _ => Err("expected a number of seconds from 0.05 to 3600".into()),
    }
}

const LIST_HELP: &str = "\
Columns: id, name, state, progress (percent), cursor (items done), saved (how long ago), error.
A damaged checkpoint file is not listed; `resilience verify` names it.

--json prints {\"store\": PATH, \"operations\": [OPERATION, ...]}, by id, where OPERATION is
  {\"operation_id\": string, \"operation_name\": string, \"state\": STATE, \"progress\": number
   (0 to 1), \"cursor\": number, \"sequence\": number, \"saved_at\": TIME, \"error\": string or null}
STATE is one of \"initialized\", \"running\", \"paused\", \"completed\", \"failed\"; TIME is RFC 3339
in UTC, e.g. \"2026-12-02T03:04:05.678Z\".

Examples:
  resilience list
  resilience list --state running,paused,failed
  resilience list --json | jq -r '.operations[] | select(.state == \"failed\") | .operation_id'";

const SKIPPED_HELP: &str = "\
The items of the operation's current run that were skipped: an error left the tracked loop's
body through `?` and classified as `skip`. The newest 1,000 are kept with the checkpoint.

--json prints {\"operation_id\": string, \"skipped\": [{\"position\": number (0-based),
\"error_code\": string, \"message\": string}, ...]}, oldest first.

Exit status: 0 listed (maybe none); 1 no such operation; 3 the store cannot be read.

Examples:
  resilience skipped photo-import
  resilience skipped photo-import --json";

const SHOW_HELP: &str = "\
A checkpoint's data can only be decoded by the program that wrote it; this shows what each record
says about itself, including its schema fingerprint and data size.

--json prints {\"operation_id\": string, \"operation_name\": string, \"state\": STATE, \"progress\":
number, \"cursor\": number, \"sequence\": number, \"saved_at\": TIME, \"error\": string or null,
\"records\": [RECORD, ...]} for the newest record, where \"records\" holds the newest record, or
every stored record (newest first) with --history; RECORD is {\"sequence\", \"operation_name\",
\"state\", \"progress\", \"cursor\", \"saved_at\", \"error\", \"schema\" (16 hex digits, string),
\"data_size\" (bytes)}. STATE and TIME as in `resilience list --help`.

Exit status: 0 shown; 1 no such operation; 3 the store or the file cannot be read.

Examples:
  resilience show import-7
  resilience show import-7 --history --json";

const DISCARD_HELP: &str = "\
The next run of the operation starts from the beginning. An operation whose lock is held (a
process is running it) is reported and not touched.

Exit status: 0 discarded; 1 no such operation, or it is locked; 3 store error.

Example:
  resilience discard import-7";

const CLEAR_HELP: &str = "\
Prints how many operations were removed, and the ids of completed operations left alone because
their lock is held.

Example:
  resilience clear --completed";

const BACKUPS_HELP: &str = "\
Columns: index (1 is the newest; `restore --backup N` takes it), created, size, CRC-32, path of
the copy.

--json prints {\"source\": PATH, \"backups\": [BACKUP, ...]}, newest first, where BACKUP is
{\"index\": number, \"source\": path, \"path\": path, \"size\": bytes, \"checksum\": 8 hex digits
(string), \"created_at\": TIME}. TIME as in `resilience list --help`.

Example:
  resilience backups data/catalog.db";

const RESTORE_HELP: &str = "\
The copy is verified against its checksum before it replaces the file; on any error the file is
left as it was.

Exit status: 0 restored; 1 the file has no such backup; 3 store or file error.

Examples:
  resilience restore data/catalog.db --newest
  resilience restore data/catalog.db --backup 2";

const VERIFY_HELP: &str = "\
Every checkpoint file is read whole and every record slot checked. A file is corrupt when its
header is damaged, its name does not match the operation id inside, it was not written whole,
or it holds no intact record. A damaged record beside intact ones is reported but is not
corruption: a write torn by a crash damages the one slot it was writing, and the store ignores
it. Stray temporary files are harmless leftovers of interrupted writes.

--json prints {\"store\": PATH, \"clean\": bool, \"intact\": [{\"path\", \"operation_id\", \"records\",
\"damaged_records\"}], \"corrupt\": [{\"path\", \"reason\"}], \"temporary\": [path],
\"not_regular\": [path]}.

Exit status: 0 clean; 1 a file is corrupt or a store entry is not a regular file; 3 store error.

Example (cron):
  resilience --dir /var/lib/photos/.resilience verify || mail -s 'store damaged' ops";

const HEALTH_HELP: &str = "\
Judged from the store, with the thresholds of `resilience::health`: more than 10 active
(initialized or running) operations or more than 1 GiB of backups is a warning; a store that
cannot be read is critical. Error and retry figures live in the job's own process and are not
seen here.

--json prints {\"status\": \"healthy\" | \"warning\" | \"critical\", \"issues\": [string],
\"operations\": {\"total\", \"active\", \"paused\", \"failed\", \"completed\"}, \"backups\": {\"count\",
\"total_size_bytes\"}}.

Exit status: 0 healthy, 1 warning, 2 critical, 3 the store does not exist.

Example:
  resilience health --json";

const WATCH_HELP: &str = "\
One bar per running operation: items done / total, rate and time left, read from the checkpoints
in the store (so they move at each checkpoint the job saves). Ends when no operation is running,
or on Ctrl-C. When standard output is not a terminal, prints a plain-text frame at each read:
  watch TIME: N running
    ID  DONE/TOTAL  PERCENT  RATE/s  eta DURATION
and, when an operation stops running, `  ID STATE`.

Example:
  resilience --dir /var/lib/photos/.resilience watch";

const COMPLETIONS_HELP: &str = "\
Examples:
  resilience completions bash > ~/.local/share/bash-completion/completions/resilience
  resilience completions zsh > ~/.zfunc/_resilience
  resilience completions fish > ~/.config/fish/completions/resilience.fish";
