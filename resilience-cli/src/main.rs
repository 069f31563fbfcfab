//! `resilience`: inspect and repair a `resilience` checkpoint store from the command line.
//!
//! Everything goes through the library's public API (`FailsafeManager`); this crate never reads
//! store files itself. Exit statuses: 0 success, 1 what the command checks failed, 2 usage
//! (and `health`: critical), 3 store errors.

mod cli;
mod commands;
mod output;
mod watch;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use resilience::FailsafeManager;

use cli::{Cli, Command};

/// Why a command did not succeed; each maps to an exit status and one line on stderr.
#[derive(Debug)]
pub enum Failure {
    /// What the command checks failed, or there is nothing to act on (exit 1). The message,
    /// if any, is printed as an error.
    Negative(Option<String>),
    /// A usage error (exit 2).
    Usage(String),
    /// The store cannot be opened, read or written (exit 3).
    Store(String),
    /// Exit with this status without a message (the command printed its verdict).
    Status(u8),
}

impl From<resilience::Error> for Failure {
    fn from(e: resilience::Error) -> Self {
        Failure::Store(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        // A closed pipe is how `resilience list | head` ends: not an error.
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Failure::Status(0);
        }
        Failure::Store(format!("cannot write the output: {e}"))
    }
}

pub type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = run(cli);
    let (status, message) = match result {
        Ok(()) => (0, None),
        Err(Failure::Negative(message)) => (1, message),
        Err(Failure::Usage(message)) => (2, Some(message)),
        Err(Failure::Store(message)) => (3, Some(message)),
        Err(Failure::Status(status)) => (status, None),
    };
    if let Some(message) = message {
        eprintln!("resilience: {}", message.replace('\n', " "));
    }
    ExitCode::from(status)
}

/// Help and version go to stdout with status 0; any other parse error is one line on stderr.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 },
        );
    }
    let rendered = e.render().to_string();
    // The message is the first paragraph ("error: …" and, for missing arguments, their list).
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let first = first.join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    let tip = rendered
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip: "))
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    eprintln!("resilience: {first}{tip}; see `resilience --help`");
    ExitCode::from(2)
}

fn run(cli: Cli) -> Outcome {
    let location = match &cli.command {
        Command::Completions(args) => {
            let shell = match args.shell {
                cli::ShellArg::Bash => clap_complete::Shell::Bash,
                cli::ShellArg::Zsh => clap_complete::Shell::Zsh,
                cli::ShellArg::Fish => clap_complete::Shell::Fish,
            };
            // Generated in memory: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "resilience", &mut script);
            let mut out = io::stdout().lock();
            return out.write_all(&script).and_then(|()| out.flush()).map_err(Failure::from);
        }
        _ => locate(cli.dir.as_deref(), cli.store.as_deref())?,
    };
    let manager = open(&location)?;
    let out = &mut io::BufWriter::new(io::stdout().lock());
    let result = match cli.command {
        Command::List(args) => commands::list(&manager, &args, out),
        Command::Show(args) => commands::show(&manager, &args, out),
        Command::Skipped(args) => commands::skipped(&manager, &args, out),
        Command::Discard(args) => commands::discard(&manager, &args.operation, out),
        Command::Clear(_) => commands::clear_completed(&manager, out),
        Command::Backups(args) => commands::backups(&manager, &args, out),
        Command::Restore(args) => commands::restore(&manager, &args, out),
        Command::Verify(args) => commands::verify(&manager, args.json, out),
        Command::Health(args) => commands::health(&manager, args.json, out),
        Command::Watch(args) => {
            out.flush()?;
            watch::watch(&manager, args.interval)
        }
        Command::Completions(_) => unreachable!("handled above"),
    };
    out.flush()?;
    result
}

/// A store: a directory, or a PostgreSQL database.
enum Location {
    Dir(PathBuf),
    Postgres(String),
}

/// Where the store is, from the options and the environment (like `FailsafeManager::global()`).
fn locate(dir: Option<&Path>, store: Option<&str>) -> Result<Location, Failure> {
    if let Some(dir) = dir {
        return Ok(Location::Dir(dir.to_owned()));
    }
    let from_env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let store = match store {
        Some(store) => Some(store.into()),
        None => from_env("RESILIENCE_STORE"),
    };
    if let Some(store) = store {
        let text = store.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                return Ok(Location::Postgres(text.into_owned()));
            }
            return Err(Failure::Store(
                "the Postgres store is not available in this build of `resilience` (build it \
                 with `--features postgres`); use a directory store (--dir)"
                    .into(),
            ));
        }
        if text.contains("://") {
            return Err(Failure::Usage(format!(
                "unsupported store URL `{text}`: expected a directory or a postgres:// URL"
            )));
        }
        return Ok(Location::Dir(PathBuf::from(store)));
    }
    let dir =
        from_env("RESILIENCE_DIR").map_or_else(|| PathBuf::from(".resilience"), PathBuf::from);
    Ok(Location::Dir(dir))
}

/// Opens an existing store; never creates a directory (a database store's tables are created
/// or migrated as by any manager).
fn open(location: &Location) -> Result<FailsafeManager, Failure> {
    let dir = match location {
        Location::Dir(dir) => dir,
        Location::Postgres(url) => {
            return Ok(FailsafeManager::builder()
                .postgres(url.clone())
                .pg_schema(
                    std::env::var("RESILIENCE_PG_SCHEMA").unwrap_or_else(|_| "resilience".into()),
                )
                .build()?);
        }
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Failure::Store(format!(
                "no store at `{}`: it is not a directory",
                dir.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::Store(format!(
                "no store at `{}`: the directory does not exist (use --dir DIR or set \
                 $RESILIENCE_DIR)",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(Failure::Store(format!("cannot open the store `{}`: {e}", dir.display())));
        }
    }
    Ok(FailsafeManager::builder().dir(dir).build()?)
}
