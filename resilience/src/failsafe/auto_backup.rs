//! Periodic backups of a set of files on a background thread.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::FailsafeManager;
use super::backup::{BackupInfo, database_changed_at};
use crate::error::Error;

const TARGET: &str = "resilience::failsafe";

/// A file modified this close to (or after) the moment it was copied may have changed again
/// without its modification time moving (coarse timestamps: 1 jiffy on ext4, 2 s on FAT), so
/// such a file is compared by checksum instead of trusted by size and time.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The smallest interval between two passes; a zero interval would spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A running auto-backup, started by [`FailsafeManager::start_auto_backup`].
///
/// Stops when dropped or with [`stop`](AutoBackup::stop); both wake the thread at once and
/// wait at most for the file being copied by a pass in progress.
#[derive(Debug)]
#[must_use = "the auto-backup stops as soon as this handle is dropped"]
pub struct AutoBackup {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    manager: FailsafeManager,
    files: Vec<PathBuf>,
    every: Duration,
    control: Mutex<Control>,
    wake: Condvar,
    /// Held for the duration of a pass (so passes never overlap); remembers files found
    /// identical to their newest backup by checksum, so they are not read again and again.
    verified: Mutex<HashMap<PathBuf, Verified>>,
}

#[derive(Debug, Default)]
struct Control {
    stop: bool,
    passes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Verified {
    size: u64,
    mtime: SystemTime,
    checked_at: SystemTime,
    backup_checksum: u32,
}

impl FailsafeManager {
    /// Backs up `files` every `every` on a background thread, until the returned handle is
    /// stopped or dropped.
    ///
    /// Each pass copies only the files that changed since their newest backup (also one taken
    /// before the auto-backup started): a file whose size and modification time match that
    /// backup is skipped, and one whose time moved but whose size did not is compared by
    /// checksum first. A SQLite database is copied when it or its `-wal` was modified since
    /// its newest backup, the way [`create_backup`](FailsafeManager::create_backup) copies it
    /// (through SQLite with feature `sqlite`). Missing files are skipped with a warning; errors are logged (target
    /// `resilience::failsafe`) and the next pass tries again. The first pass runs after one
    /// interval; [`AutoBackup::run_now`] runs one at once. An interval under 1 ms is raised to
    /// 1 ms.
    ///
    /// # Example
    /// ```
    /// # fn main() -> resilience::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let data = tmp.path().join("results.csv");
    /// use std::time::Duration;
    /// use resilience::FailsafeManager;
    ///
    /// let manager = FailsafeManager::open(tmp.path().join("store"))?;
    /// std::fs::write(&data, "id,score\n").unwrap();
    /// let auto = manager.start_auto_backup(&[data.clone()], Duration::from_secs(60));
    ///
    /// assert_eq!(auto.run_now().len(), 1); // new file: copied
    /// assert_eq!(auto.run_now().len(), 0); // unchanged: skipped
    /// std::fs::write(&data, "id,score\n1,0.5\n").unwrap();
    /// assert_eq!(auto.run_now().len(), 1); // changed: copied
    ///
    /// auto.stop();
    /// assert_eq!(manager.list_backups(&data)?.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn start_auto_backup(&self, files: &[PathBuf], every: Duration) -> AutoBackup {
        let shared = Arc::new(Shared {
            manager: self.clone(),
            files: files.to_vec(),
            every: every.max(MIN_INTERVAL),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
            verified: Mutex::new(HashMap::new()),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("resilience-auto-backup".into())
            .spawn(move || worker.run());
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(
                    target: TARGET,
                    %error,
                    "cannot start the auto-backup thread; only `run_now` passes will run"
                );
                None
            }
        };
        tracing::info!(target: TARGET, files = files.len(), every = ?shared.every, "auto-backup started");
        AutoBackup { shared, thread }
    }
}

impl AutoBackup {
    /// Runs one pass now, on the calling thread, and returns the backups it created.
    ///
    /// Waits for a background pass in progress to finish first. Failures are logged, as in
    /// the background passes.
    pub fn run_now(&self) -> Vec<BackupInfo> {
        self.shared.pass()
    }

    /// The number of passes the background thread has completed (not counting `run_now`).
    pub fn passes(&self) -> u64 {
        lock(&self.shared.control).passes
    }

    /// Waits until the background thread has completed at least `n` passes, or `timeout` has
    /// passed; returns whether it got there.
    pub fn wait_for_passes(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut control = lock(&self.shared.control);
        while control.passes < n {
            let now = Instant::now();
            if now >= deadline || self.thread.is_none() {
                return false;
            }
            control = self
                .shared
                .wake
                .wait_timeout(control, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Stops the background thread and waits for it to end (at most the copy in progress).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(target: TARGET, "the auto-backup thread panicked");
            }
            tracing::info!(target: TARGET, "auto-backup stopped");
        }
    }
}

impl Drop for AutoBackup {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn run(&self) {
        let mut control = lock(&self.control);
        loop {
            let deadline = Instant::now() + self.every;
            loop {
                if control.stop {
                    return;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                control = self
                    .wake
                    .wait_timeout(control, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(control);
            self.pass();
            control = lock(&self.control);
            control.passes += 1;
            self.wake.notify_all();
        }
    }

    fn pass(&self) -> Vec<BackupInfo> {
        let mut verified = lock(&self.verified);
        let mut created = Vec::new();
        for file in &self.files {
            if lock(&self.control).stop {
                break;
            }
            match self.needs_backup(file, &mut verified) {
                Ok(false) => {}
                Ok(true) => match self.manager.create_backup(file) {
                    Ok(info) => {
                        verified.remove(file);
                        created.push(info);
                    }
                    Err(Error::BackupMissing { .. }) => skip_missing(file),
                    Err(error) => {
                        tracing::error!(target: TARGET, file = %file.display(), %error, "auto-backup failed");
                    }
                },
                Err(error) if is_not_found(&error) => skip_missing(file),
                Err(error) => {
                    tracing::error!(target: TARGET, file = %file.display(), %error, "auto-backup failed");
                }
            }
        }
        created
    }

    /// Whether `file` differs from its newest backup.
    fn needs_backup(
        &self,
        file: &PathBuf,
        verified: &mut HashMap<PathBuf, Verified>,
    ) -> crate::Result<bool> {
        let meta = fs_err::metadata(file).map_err(|e| Error::io(file, e))?;
        let Some(newest) = self.manager.backup_entries(file)?.into_iter().next() else {
            return Ok(true);
        };
        let size = meta.len();
        let mtime = meta.modified().map_err(|e| Error::io(file, e))?;
        // A database's copy is a snapshot, not its file: only its time of change compares.
        if let Some(changed) = database_changed_at(file, mtime)? {
            return Ok(changed != newest.source_mtime || is_racy(changed, newest.info.created_at));
        }
        if size != newest.info.size {
            return Ok(true);
        }
        if mtime == newest.source_mtime && !is_racy(mtime, newest.info.created_at) {
            return Ok(false);
        }
        if let Some(v) = verified.get(file)
            && v.size == size
            && v.mtime == mtime
            && v.backup_checksum == newest.info.checksum
            && !is_racy(mtime, v.checked_at)
        {
            return Ok(false);
        }
        let checked_at = SystemTime::now();
        let checksum = checksum_of(file)?;
        if checksum != newest.info.checksum {
            return Ok(true);
        }
        verified.insert(
            file.clone(),
            Verified { size, mtime, checked_at, backup_checksum: newest.info.checksum },
        );
        Ok(false)
    }
}

fn is_racy(mtime: SystemTime, observed_at: SystemTime) -> bool {
    observed_at.duration_since(mtime).map_or(true, |age| age < RACY_WINDOW)
}

fn checksum_of(file: &Path) -> crate::Result<u32> {
    use std::io::Read;
    let mut reader = super::files::open_user_file(file).map_err(|e| Error::io(file, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(file, e)),
        }
    }
}

fn is_not_found(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

fn skip_missing(file: &Path) {
    tracing::warn!(target: TARGET, file = %file.display(), "auto-backup skipped a missing file");
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
