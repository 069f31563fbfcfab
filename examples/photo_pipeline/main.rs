//! A photo import that survives faults: the README's first example.
//!
//! ```text
//! cargo run --example photo_pipeline              # import ./data/photos (generated on first run)
//! cargo run --example photo_pipeline -- --help    # the options
//! ```
//!
//! Press Ctrl-C in the middle of a run: it finishes the photo it is on, saves a `Paused`
//! checkpoint and stops; run it again and it resumes with the next photo (a second Ctrl-C ends it
//! at once). Killed instead, it resumes from its last checkpoint. What each layer does here:
//!
//! - `#[retry]` on `Storage::upload` (storage.rs) absorbs the storage service's timeouts;
//! - `#[derive(Classify)]` on `PhotoError` (error.rs) says which errors are retried, which
//!   photos are skipped and which errors stop the import;
//! - `#[protected]` on `import_photos` (below) backs up the catalog, checkpoints the progress
//!   every 10 photos, resumes after a crash and records the errors that stop the import;
//! - `FailsafeManager::on_progress` shows the progress: a bar when stderr is a terminal (with
//!   `--features progress`), plain lines otherwise;
//! - `resilience::Summary` prints the statistics of all three layers and the health verdict.

mod catalog;
mod error;
mod photos;
mod storage;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resilience::{
    Checkpointable, ErrorHandler, FailsafeManager, ProcessState, ProgressUpdate, RetryManager,
    Summary, protected,
};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Entry};
use crate::error::PhotoError;
use crate::photos::Photo;
use crate::storage::Storage;

/// The import's id in the checkpoint store.
const OPERATION_ID: &str = "photo-import";

/// The import's progress, saved in every checkpoint and restored when a run resumes.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct ImportProgress {
    /// Photos done: `#[protected]` keeps it up to date and skips that many on resume.
    #[checkpoint(cursor)]
    done: u64,
    /// All photos: gives the progress ratio stored in checkpoints.
    #[checkpoint(total)]
    total: u64,
    uploaded: u64,
    bytes: u64,
}

/// Imports every photo into the catalog at `{data}/catalog.json`.
///
/// `#[protected]` wraps the function in the whole failsafe layer:
/// - `backup`: copies the catalog into the store before the import touches it (the first run,
///   before the catalog exists, has nothing to back up: `backup_missing = "skip"`);
/// - `every = 10`: the `for` loop below is tracked; after every 10 photos, `progress` is saved
///   in a durable checkpoint of operation `photo-import`;
/// - on entry, if the last run was interrupted, `progress` is restored from its checkpoint and
///   the loop skips the photos already done: at most the last 10 are processed again, which is
///   fine because uploads and catalog entries are idempotent;
/// - a damaged photo's error (`PhotoError` classifies it as `skip`) leaves the loop through
///   `?`: it is recorded with the global `ErrorHandler` and the loop goes on with the next
///   photo (`FailsafeManager::skipped` lists them);
/// - any other `Err` is recorded and saved in a `Failed` checkpoint that the next run resumes
///   from;
/// - `input = [data]`: a checkpoint of another data folder is never resumed by mistake.
#[protected(
    manager = store,
    id = "photo-import",
    name = "Photo import",
    every = 10,
    state = progress,
    backup = "{data}/catalog.json",
    backup_missing = "skip",
    input = [data]
)]
fn import_photos(
    store: &FailsafeManager,
    data: &str,
    photos: &[Photo],
    storage: &Storage,
    catalog: &mut Catalog,
    delay: Duration,
    progress: &mut ImportProgress,
) -> Result<(), PhotoError> {
    let catalog_path = Path::new(data).join("catalog.json");
    progress.total = photos.len() as u64;
    for photo in photos {
        // Stands in for the real work (resizing, tagging...) so that a run can be interrupted.
        std::thread::sleep(delay);
        let entry = import_one(storage, photo)?;
        progress.uploaded += 1;
        progress.bytes += entry.bytes;
        catalog.photos.insert(photo.name.clone(), entry);
        // Saved before the next checkpoint can be taken, so the catalog on disk always holds at
        // least what the last checkpoint says is done. After a crash, the photos since that
        // checkpoint are imported again and their entries rewritten.
        catalog.save(&catalog_path)?;
    }
    Ok(())
}

/// Reads, checks and uploads one photo.
fn import_one(storage: &Storage, photo: &Photo) -> Result<Entry, PhotoError> {
    let (header, bytes) = photos::read(photo)?;
    let stored = storage.upload(photo, &bytes)?;
    Ok(Entry {
        width: header.width,
        height: header.height,
        taken_at: header.taken_at,
        bytes: stored,
        checksum: format!("{:016x}", photos::checksum(&bytes)),
    })
}

/// Progress as plain lines, for logs and pipes: one per 10 photos (at the checkpoints), and
/// at the last photo.
fn progress_lines() -> impl Fn(&ProgressUpdate) + Send + Sync + 'static {
    // Where the run started (the update at the start only sets it), and the last count printed.
    let start = AtomicU64::new(u64::MAX);
    let last = AtomicU64::new(0);
    move |p: &ProgressUpdate| {
        if start.load(Ordering::Relaxed) == u64::MAX {
            start.store(p.done, Ordering::Relaxed);
            last.store(p.done, Ordering::Relaxed);
            return;
        }
        let total = p.total.unwrap_or(0);
        let since_start = p.done - start.load(Ordering::Relaxed);
        if p.done > last.load(Ordering::Relaxed)
            && (since_start.is_multiple_of(10) || p.done == total)
        {
            last.store(p.done, Ordering::Relaxed);
            let width = total.to_string().len();
            let percent = p.done * 100 / total.max(1);
            println!(
                "[{:>width$}/{total}] {percent:>3}%  uploaded {}, skipped {}",
                p.done,
                p.done - p.skipped,
                p.skipped
            );
        }
    }
}

/// A progress bar when stderr is a terminal (and the `progress` feature is on), else lines.
fn show_progress(store: &FailsafeManager) {
    #[cfg(feature = "progress")]
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        store.on_progress(resilience::progress::bar());
        return;
    }
    store.on_progress(progress_lines());
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args_os().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{}", Options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{}", Options::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        // Ctrl-C: the run said where it paused.
        Err(PhotoError::Resilience(resilience::Error::Paused { .. })) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), PhotoError> {
    let data = Path::new(&options.data);
    let photo_dir = data.join("photos");
    let catalog_path = data.join("catalog.json");
    // The checkpoint store: `$RESILIENCE_DIR` if set, else next to the data.
    let store_dir =
        std::env::var_os("RESILIENCE_DIR").map_or_else(|| data.join(".resilience"), PathBuf::from);
    let store = FailsafeManager::open(&store_dir)?;
    // Ctrl-C pauses the import at the next photo boundary instead of killing it.
    resilience::pause_on_signals();
    show_progress(&store);

    let mut photos = photos::list(&photo_dir)?;
    if photos.is_empty() {
        photos::generate(&photo_dir, options.photos.unwrap_or(300), options.seed)?;
        photos = photos::list(&photo_dir)?;
        println!(
            "Generated {} photos in {} (seed {})",
            photos.len(),
            photo_dir.display(),
            options.seed
        );
    } else if options.photos.is_some_and(|n| n as usize != photos.len()) {
        println!("Note: --photos only applies when {} holds no photos", photo_dir.display());
    }
    println!(
        "Importing {} photos from {} into {} (checkpoints in {})",
        photos.len(),
        photo_dir.display(),
        catalog_path.display(),
        store.dir().display()
    );

    if options.restore_catalog {
        restore_catalog(&store, &catalog_path)?;
    }
    if (options.reset || options.restore_catalog) && store.discard(OPERATION_ID)? {
        println!("Reset: the import starts from the first photo");
    }
    let mut catalog = Catalog::load(&catalog_path).inspect_err(|e| {
        if matches!(e, PhotoError::Catalog { .. }) {
            eprintln!("hint: --restore-catalog restores the catalog's newest backup");
        }
    })?;
    // Look at the last checkpoint before running, to tell the user what is about to happen.
    // (`#[protected]` does the actual resuming on its own.)
    match store.load_checkpoint::<ImportProgress>(OPERATION_ID)? {
        Some(last) if last.state.is_resumable() => {
            let why = match (last.state, &last.error) {
                (ProcessState::Failed, Some(error)) => format!("it failed: {error}"),
                (ProcessState::Paused, _) => "it was paused".to_owned(),
                _ => "it was interrupted".to_owned(),
            };
            println!(
                "Resuming operation `{OPERATION_ID}` ({}) at item {} of {} ({why})",
                last.operation_name, last.cursor, last.data.total
            );
        }
        Some(last) if last.state == ProcessState::Completed && catalog_path.exists() => {
            println!(
                "The import is complete: {} photos uploaded, {} skipped. \
                 Run with --reset to import again.",
                last.data.uploaded,
                store.skipped(OPERATION_ID)?.len()
            );
            return Ok(());
        }
        _ => println!("Starting operation `{OPERATION_ID}` at item 0 of {}", photos.len()),
    }

    let storage = Storage::new(data.join("uploaded"), options.seed)?;
    let mut progress = ImportProgress::default();
    let result = import_photos(
        &store,
        &options.data,
        &photos,
        &storage,
        &mut catalog,
        Duration::from_millis(options.delay_ms),
        &mut progress,
    );
    match &result {
        Ok(()) => {
            println!(
                "Done: {} photos uploaded ({:.1} KiB), {} skipped; the catalog holds {} photos",
                progress.uploaded,
                progress.bytes as f64 / 1024.0,
                progress.done - progress.uploaded,
                catalog.photos.len()
            );
            for item in store.skipped(OPERATION_ID)?.iter().take(5) {
                println!("  skipped photo {}: {}", item.position, item.message);
            }
        }
        // The `Paused` checkpoint holds every photo finished before Ctrl-C.
        Err(PhotoError::Resilience(resilience::Error::Paused { .. })) => {
            if let Ok(Some(last)) = store.load_checkpoint::<ImportProgress>(OPERATION_ID) {
                println!(
                    "Paused at item {} of {}; run again to resume",
                    last.cursor, last.data.total
                );
            }
        }
        // The `Failed` checkpoint holds the state of the last checkpoint before the error.
        Err(_) => {
            if let Ok(Some(last)) = store.load_checkpoint::<ImportProgress>(OPERATION_ID) {
                println!(
                    "Stopped ({}): run the same command again to resume at item {} of {}",
                    last.state, last.cursor, last.data.total
                );
            }
        }
    }
    // The statistics of the three layers (this run's retries and errors, the whole store) and
    // the health verdict, as the guide's monitoring section prints them.
    println!("\n{}", Summary::new(&store, ErrorHandler::global(), RetryManager::global()));
    result
}

/// Puts back the newest backup of the catalog (`#[protected]` takes one at the start of every
/// run). The import then starts over: the photos done since that backup are not in it.
fn restore_catalog(store: &FailsafeManager, catalog_path: &Path) -> Result<(), PhotoError> {
    let backups = store.list_backups(catalog_path)?;
    let newest =
        backups.first().ok_or_else(|| PhotoError::NoBackup { path: catalog_path.to_owned() })?;
    store.restore_backup(newest)?;
    println!(
        "Restored {} from its newest backup ({} bytes, 1 of {})",
        catalog_path.display(),
        newest.size,
        backups.len()
    );
    Ok(())
}

/// Command-line options.
struct Options {
    data: String,
    /// Only used to generate photos; `None` when not given.
    photos: Option<u32>,
    seed: u64,
    delay_ms: u64,
    reset: bool,
    restore_catalog: bool,
}

impl Options {
    const USAGE: &str = "\
usage: photo_pipeline [--data DIR] [--photos N] [--seed N] [--delay-ms N] [--reset]
                      [--restore-catalog]

  --data DIR      where the photos, the catalog and the checkpoints live (default: data)
  --photos N      how many photos to generate when DIR/photos has none (default: 300)
  --seed N        seed of the generated photos and of the upload faults (default: 7)
  --delay-ms N    wait after each photo, to leave time for Ctrl-C (default: 15)
  --reset         forget an interrupted or finished import and start from the first photo
  --restore-catalog
                  put back the catalog's newest backup, then import from the first photo

The checkpoint store is DIR/.resilience, or $RESILIENCE_DIR when it is set.";

    /// `Ok(None)` for `--help`.
    fn parse(args: impl Iterator<Item = OsString>) -> Result<Option<Options>, String> {
        let mut args = args.map(|arg| {
            arg.into_string().map_err(|arg| format!("argument `{}` is not UTF-8", arg.display()))
        });
        let mut options = Options {
            data: "data".into(),
            photos: None,
            seed: 7,
            delay_ms: 15,
            reset: false,
            restore_catalog: false,
        };
        while let Some(arg) = args.next().transpose()? {
            let mut value = || args.next().unwrap_or_else(|| Err(format!("`{arg}` needs a value")));
            match arg.as_str() {
                "--data" => options.data = value()?,
                "--photos" => options.photos = Some(number(&arg, &value()?)?),
                "--seed" => options.seed = number(&arg, &value()?)?,
                "--delay-ms" => options.delay_ms = number(&arg, &value()?)?,
                "--reset" => options.reset = true,
                "--restore-catalog" => options.restore_catalog = true,
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        Ok(Some(options))
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("`{flag}` expects a number, got `{value}`"))
}
