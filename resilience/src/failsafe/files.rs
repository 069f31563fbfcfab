//! The store's file-system policy, in one place: everything under `failsafe/` opens, creates,
//! syncs and renames files through here.
//!
//! - **No symlinks followed** where the store expects its own files (`O_NOFOLLOW`).
//! - **Owner-only**: files are created `0600`, directories `0700`.
//! - **Never blocks on a non-regular file**: opens are non-blocking and checked with `fstat`; a
//!   FIFO, socket or device where a file was expected is [`NotRegular`] at once.
//! - **Reads open read-only**, so a store on a read-only mount can be read.
//! - **Temporary files** are created exclusively (`O_EXCL`) as `.tmp-<pid>-<random>[-<tag>]`, so
//!   that a later listing can remove those of a process that died before renaming them.
//! - **Directory sync** after a rename or unlink that must survive a power loss.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
/// The prefix of every temporary file the store writes.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// The error for a path that holds something other than a regular file.
pub(crate) fn not_regular() -> io::Error {
    io::Error::new(
        ErrorKind::InvalidInput,
        "not a regular file (a FIFO, socket, device or directory is in its place)",
    )
}

/// Whether `e` is [`not_regular`], a symlink refused by `O_NOFOLLOW`, or a directory.
pub(crate) fn is_not_a_file(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EISDIR))
        || (e.kind() == ErrorKind::InvalidInput && e.raw_os_error().is_none())
}

/// Whether `e` says the file system refuses writes (read-only mount, permissions).
pub(crate) fn is_read_only(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES | libc::EPERM))
}

fn options(write: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(write)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    options
}

/// Fails with [`not_regular`] unless `file` is a regular file.
fn regular(file: File) -> io::Result<File> {
    if file_facts(&file)?.regular { Ok(file) } else { Err(not_regular()) }
}

/// Opens an existing regular file for reading; never follows a symlink, never blocks.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    regular(options(false).open(path)?)
}

/// Opens a user's file (a backup source, which may be a symlink to it) for reading; never
/// blocks, and only a regular file is accepted.
pub(crate) fn open_user_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    regular(file)
}

/// The first 16 bytes of every SQLite database file.
pub(crate) const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether the file starts with [`SQLITE_HEADER`].
pub(crate) fn is_sqlite(file: &File) -> io::Result<bool> {
    let mut header = [0u8; 16];
    Ok(read_full_at(file, &mut header, 0)? == 16 && &header == SQLITE_HEADER)
}

/// Descriptors of SQLite databases that [`open_source`] opened, by device and inode: never
/// closed while the process lives. Closing any descriptor of a file drops every POSIX lock
/// the process holds on it, including those of the application's own SQLite connections
/// (<https://www.sqlite.org/howtocorrupt.html#_posix_advisory_locks_canceled_by_a_separate_thread_doing_close_>),
/// so a backup must not open and close a database the application has open. One descriptor
/// per database file is kept, and reused.
static KEPT_OPEN: std::sync::Mutex<Vec<Kept>> = std::sync::Mutex::new(Vec::new());

/// A kept descriptor and its file's device and inode.
type Kept = ((u64, u64), std::sync::Arc<File>);

/// The kept descriptor of the file `id`, unless that file was deleted (its inode number may
/// then belong to another file).
fn kept_open(id: (u64, u64)) -> Option<std::sync::Arc<File>> {
    let kept = KEPT_OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    kept.iter()
        .find(|(k, f)| *k == id && file_facts(f).is_ok_and(|facts| facts.links > 0))
        .map(|(_, f)| std::sync::Arc::clone(f))
}

/// Opens a backup source for reading, as [`open_user_file`] does (following a symlink to it),
/// and says whether it is a SQLite database. A database's descriptor is kept open for the
/// life of the process and shared (see [`KEPT_OPEN`]): read it with positioned reads only.
pub(crate) fn open_source(path: &Path) -> io::Result<(std::sync::Arc<File>, bool)> {
    if let Ok(stamp) = Stamp::of_path(path)
        && let Some(file) = kept_open((stamp.dev, stamp.ino))
    {
        return Ok((file, true));
    }
    let file = open_user_file(path)?;
    if !is_sqlite(&file)? {
        return Ok((std::sync::Arc::new(file), false));
    }
    let stamp = Stamp::of_file(&file)?;
    let id = (stamp.dev, stamp.ino);
    let mut kept = KEPT_OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A deleted database's descriptor holds nothing any connection can still use.
    kept.retain(|(_, f)| file_facts(f).is_ok_and(|facts| facts.links > 0));
    if let Some((_, existing)) = kept.iter().find(|(k, _)| *k == id) {
        // Opened twice at once: keep both, closing either would drop the locks.
        let existing = std::sync::Arc::clone(existing);
        kept.push((id, std::sync::Arc::new(file)));
        return Ok((existing, true));
    }
    let file = std::sync::Arc::new(file);
    kept.push((id, std::sync::Arc::clone(&file)));
    Ok((file, true))
}

/// Opens an existing regular file for reading and writing.
pub(crate) fn open_write(path: &Path) -> io::Result<File> {
    regular(options(true).open(path)?)
}

/// Opens a regular file for reading and writing, creating it (`0600`) if it is missing.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    let file = regular(options(true).create(true).open(path)?)?;
    super::io::created(&file, path);
    Ok(file)
}

/// Creates `path`, which must not exist, for writing (`0600`).
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let file = options(true).create_new(true).open(path)?;
    super::io::created(&file, path);
    Ok(file)
}

/// What [`file_facts`] tells.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    pub(crate) regular: bool,
    pub(crate) links: u32,
    pub(crate) size: u64,
}

/// Whether the file is a regular file, its link count and its size, asked without its
/// timestamps: a query of the timestamps makes the kernel (Linux ≥ 6.13, multigrain
/// timestamps) give the next write a fine-grained mtime, which dirties the inode, and
/// `fdatasync` then writes the inode table block as well.
pub(crate) fn file_facts(file: &File) -> io::Result<Facts> {
    // SAFETY: an all-zero `statx` is a valid value for the kernel to overwrite.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, empty C string with AT_EMPTY_PATH, valid out pointer.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_SIZE,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Facts {
        regular: u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFREG,
        links: stx.stx_nlink,
        size: stx.stx_size,
    })
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads a whole small file (at most `limit` bytes; more is an error).
pub(crate) fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_read(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(ErrorKind::InvalidData, "larger than expected"));
    }
    Ok(bytes)
}

/// Creates `dir` and its missing parents, owner-only (`0700`).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Fails unless `dir` is a directory itself, not a symlink to one.
pub(crate) fn ensure_real_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
    if meta.is_dir() {
        return Ok(());
    }
    Err(Error::io(
        dir,
        io::Error::new(
            ErrorKind::AlreadyExists,
            "expected a directory of the store, found a symlink or a file",
        ),
    ))
}

/// Makes the directory's entries (renames, new and removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    open_dir(dir).and_then(|d| super::io::sync_dir_fd(&d, dir)).map_err(|e| Error::io(dir, e))
}

/// Opens a directory (not a symlink to one) for `*at` calls and syncs.
pub(crate) fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: `c_dir` is a valid C string; the returned descriptor is owned by the `OwnedFd`.
    let fd = unsafe {
        libc::open(
            c_dir.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A directory's identity: its device and inode, however its path is spelled.
pub(crate) fn dir_identity(dir: &Path) -> io::Result<(u64, u64)> {
    let fd = open_dir(dir)?;
    // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn fd_result(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What identifies one state of a file: where it is (device, inode) and what its size and
/// timestamps say. Two equal stamps taken before and after reading a file mean nothing
/// changed it in between, as far as the file system can tell (Linux ≥ 6.13 gives a change
/// that follows a query of the timestamps a fine-grained time, so a write in the same clock
/// tick is seen too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The file type bits of `st_mode`.
    pub(crate) kind: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

impl Stamp {
    fn of(st: &libc::stat) -> Stamp {
        Stamp {
            kind: st.st_mode & libc::S_IFMT,
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// The stamp of an open file.
    pub(crate) fn of_file(file: &File) -> io::Result<Stamp> {
        // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and out pointer.
        if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stamp::of(&st))
    }

    /// The stamp of what `path` names now (following symlinks, as a backup source's open does).
    pub(crate) fn of_path(path: &Path) -> io::Result<Stamp> {
        let c_path = c_string(path.as_os_str().as_bytes())?;
        // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out pointer.
        if unsafe { libc::stat(c_path.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stamp::of(&st))
    }

    /// Whether the file is a regular file.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn is_regular(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    /// Whether both stamps are of the same file (device and inode).
    pub(crate) fn same_file(&self, other: &Stamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// An open directory reached without following any symlink, for `*at` calls: what restores
/// write through, so that a directory replaced by a symlink after the path was checked cannot
/// redirect the write.
#[derive(Debug)]
pub(crate) struct DirHandle {
    fd: OwnedFd,
    path: PathBuf,
}

impl DirHandle {
    /// Opens the absolute path `dir` one component at a time from `/`, each with
    /// `O_NOFOLLOW | O_DIRECTORY`: a component that is a symlink, or not a directory, is an
    /// error naming the path up to it. With `create`, missing directories are created (mode
    /// `0777` less the umask, like `create_dir_all`).
    pub(crate) fn walk(dir: &Path, create: bool) -> Result<DirHandle> {
        use std::path::Component;
        let refused = |at: &Path, why: &str| {
            Error::io(
                at,
                io::Error::new(ErrorKind::InvalidInput, format!("{why}; nothing was written")),
            )
        };
        if !dir.is_absolute() {
            return Err(refused(dir, "not an absolute path"));
        }
        // SAFETY: a valid C string; the descriptor is owned by the `OwnedFd`.
        let mut fd = fd_result(unsafe {
            libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        })
        .map_err(|e| Error::io("/", e))?;
        let mut at = PathBuf::from("/");
        for component in dir.components() {
            let name = match component {
                Component::RootDir => continue,
                Component::Normal(name) => name,
                _ => return Err(refused(dir, "not a canonical path (it holds `.` or `..`)")),
            };
            at.push(name);
            let c_name = c_string(name.as_bytes()).map_err(|e| Error::io(&at, e))?;
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: valid descriptor and C string.
            let mut next =
                fd_result(unsafe { libc::openat(fd.as_raw_fd(), c_name.as_ptr(), flags) });
            if create && next.as_ref().is_err_and(|e| e.kind() == ErrorKind::NotFound) {
                // SAFETY: valid descriptor and C string.
                if unsafe { libc::mkdirat(fd.as_raw_fd(), c_name.as_ptr(), 0o777) } != 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != ErrorKind::AlreadyExists {
                        return Err(Error::io(&at, e));
                    }
                }
                // SAFETY: valid descriptor and C string.
                next = fd_result(unsafe { libc::openat(fd.as_raw_fd(), c_name.as_ptr(), flags) });
            }
            fd = match next {
                Ok(next) => next,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    return Err(refused(
                        &at,
                        "is no longer the directory it was when the backup was taken \
                         (a symbolic link or a file is in its place)",
                    ));
                }
                Err(e) => return Err(Error::io(&at, e)),
            };
        }
        Ok(DirHandle { fd, path: dir.to_path_buf() })
    }

    /// The directory's path, as it was walked.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's device and inode.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn identity(&self) -> io::Result<(u64, u64)> {
        // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and out pointer.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((st.st_dev, st.st_ino))
    }

    /// The stamp of the entry `name` itself (not following a symlink); `None` if missing.
    pub(crate) fn entry_stamp(&self, name: &std::ffi::OsStr) -> io::Result<Option<Stamp>> {
        let c_name = c_string(name.as_bytes())?;
        // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, C string and out pointer.
        let rc = unsafe {
            libc::fstatat(self.fd.as_raw_fd(), c_name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
        };
        if rc == 0 {
            return Ok(Some(Stamp::of(&st)));
        }
        let e = io::Error::last_os_error();
        if e.kind() == ErrorKind::NotFound { Ok(None) } else { Err(e) }
    }

    /// Creates a [`TempFile`] in this directory, named as [`TempFile::create`] names them;
    /// its commit renames it within this directory.
    pub(crate) fn temp_file(&self, tag: &str) -> Result<TempFile> {
        let base = temp_name();
        loop {
            let name = format!("{base}{:016x}{}", fastrand::u64(..), temp_suffix(tag));
            let path = self.path.join(&name);
            let c_name = c_string(name.as_bytes()).map_err(|e| Error::io(&path, e))?;
            let flags =
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: valid descriptor and C string.
            let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c_name.as_ptr(), flags, 0o600) };
            match fd_result(fd) {
                Ok(fd) => {
                    let dir = self.fd.try_clone().map_err(|e| Error::io(&self.path, e))?;
                    let file = File::from(fd);
                    super::io::created(&file, &path);
                    return Ok(TempFile { file, path, at: Some((dir, c_name)), committed: false });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Removes the file `name` from the directory; a missing one is not an error.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn remove_entry(&self, name: &std::ffi::OsStr) -> io::Result<()> {
        let c_name = c_string(name.as_bytes())?;
        // SAFETY: valid descriptor and C string.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c_name.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() == ErrorKind::NotFound { Ok(()) } else { Err(e) }
    }

    /// Makes the directory's entries durable.
    pub(crate) fn sync(&self) -> Result<()> {
        super::io::sync_dir_fd(&self.fd, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// `.tmp-<pid>-`: the start of every temporary file name of this process.
fn temp_name() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// `-<tag>`, sanitized and cut to 64 characters, or nothing.
fn temp_suffix(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '_' })
        .take(64)
        .collect();
    if tag.is_empty() { tag } else { format!("-{tag}") }
}

/// A private temporary file in a directory, removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) file: File,
    path: PathBuf,
    /// Set when created by [`DirHandle::temp_file`]: the directory, and the file's name in it.
    at: Option<(OwnedFd, CString)>,
    committed: bool,
}

impl TempFile {
    /// Creates `.tmp-<pid>-<random>[-<tag>]` in `dir`: exclusive (never follows or reuses an
    /// existing name or symlink) and readable by the owner only. `tag` (at most 64 characters
    /// kept) makes one left by a crash recognizable.
    pub(crate) fn create(dir: &Path, tag: &str) -> Result<TempFile> {
        let (base, suffix) = (temp_name(), temp_suffix(tag));
        loop {
            let path = dir.join(format!("{base}{:016x}{suffix}", fastrand::u64(..)));
            match create_new(&path) {
                Ok(file) => return Ok(TempFile { file, path, at: None, committed: false }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Writes all of `bytes` at `offset`; errors name `dest`, what the file becomes.
    pub(crate) fn write_all_at(&self, bytes: &[u8], offset: u64, dest: &Path) -> Result<()> {
        super::io::write_all_at(&self.file, bytes, offset).map_err(|e| Error::io(dest, e))
    }

    /// The path the file has until it is committed.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs (data and metadata, if `sync`) and renames the file to `dest`; returns the open
    /// file, which is now `dest`. A file made by [`DirHandle::temp_file`] is renamed within
    /// that directory (`renameat`, whatever its path has become), to `dest`'s file name.
    pub(crate) fn commit(mut self, dest: &Path, sync: bool) -> Result<File> {
        if sync {
            super::io::sync_all(&self.file).map_err(|e| Error::io(dest, e))?;
        }
        match &self.at {
            None => super::io::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?,
            Some((dir, name)) => {
                let dest_name = dest
                    .file_name()
                    .ok_or_else(|| Error::io(dest, io::Error::from(ErrorKind::InvalidInput)))?;
                let dest_name = c_string(dest_name.as_bytes()).map_err(|e| Error::io(dest, e))?;
                // SAFETY: valid descriptor and C strings for the duration of the call.
                let rc = unsafe {
                    libc::renameat(
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        dir.as_raw_fd(),
                        dest_name.as_ptr(),
                    )
                };
                if rc != 0 {
                    return Err(Error::io(dest, io::Error::last_os_error()));
                }
                super::io::renamed(&self.path, dest);
            }
        }
        self.committed = true;
        let file = self.file.try_clone().map_err(|e| Error::io(dest, e))?;
        Ok(file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        match &self.at {
            None => {
                let _ = super::io::remove_file(&self.path);
            }
            // SAFETY: valid descriptor and C string; the result is deliberately ignored.
            Some((dir, name)) => unsafe {
                libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0);
            },
        }
    }
}

/// Removes `dir/name` if it is a temporary file of a process that no longer runs; returns
/// whether `name` is a temporary file name at all.
pub(crate) fn remove_if_orphaned(dir: &Path, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else { return false };
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
        return true;
    };
    if pid <= 0 || pid == std::process::id() as i32 {
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only checks whether the process exists.
    let gone = unsafe { libc::kill(pid, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    if gone && super::io::remove_file(&dir.join(name)).is_ok() {
        tracing::debug!(target: TARGET, file = %dir.join(name).display(), "removed a temporary file left by a crash");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for result in [open_read(&fifo), open_write(&fifo), open_or_create(&fifo)] {
            let e = result.unwrap_err();
            assert!(is_not_a_file(&e), "{e}");
        }
        assert!(read_small(&fifo, 10).is_err());
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let e = open_read(&dir.path().join("link")).unwrap_err();
        assert!(is_not_a_file(&e), "{e}");
        assert!(ensure_real_dir(&dir.path().join("link")).is_err());
    }

    #[test]
    fn temp_files_are_private_and_removed_unless_committed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let temp = TempFile::create(dir.path(), "a b/c").unwrap();
        let name = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().file_name();
        let name = name.to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!(".tmp-{}-", std::process::id())), "{name}");
        assert!(name.ends_with("-a_b_c"), "{name}");
        let mode = std::fs::metadata(dir.path().join(&name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(temp);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let temp = TempFile::create(dir.path(), "").unwrap();
        temp.write_all_at(b"data", 0, &dir.path().join("dest")).unwrap();
        temp.commit(&dir.path().join("dest"), true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dest")).unwrap(), b"data");
    }

    #[test]
    fn walks_refuse_symlinks_and_write_through_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let handle = DirHandle::walk(&root.join("a/b"), true).unwrap();
        assert!(root.join("a/b").is_dir(), "missing directories are created");
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
        let e = DirHandle::walk(&root.join("link/b"), true).unwrap_err();
        assert!(matches!(&e, Error::Io { path, .. } if *path == root.join("link")), "{e}");
        assert!(DirHandle::walk(&root.join("a/../a"), false).is_err());

        // Renamed within the directory it was created in, even if its path moved meanwhile.
        let temp = handle.temp_file("x").unwrap();
        temp.write_all_at(b"data", 0, &root.join("a/b/f")).unwrap();
        std::fs::rename(root.join("a"), root.join("moved")).unwrap();
        temp.commit(&root.join("a/b/f"), true).unwrap();
        assert_eq!(std::fs::read(root.join("moved/b/f")).unwrap(), b"data");
        assert!(handle.entry_stamp("f".as_ref()).unwrap().unwrap().is_regular());
        handle.remove_entry("f".as_ref()).unwrap();
        handle.remove_entry("f".as_ref()).unwrap();
        assert!(handle.entry_stamp("f".as_ref()).unwrap().is_none());
        drop(handle.temp_file("dropped").unwrap());
        assert_eq!(std::fs::read_dir(root.join("moved/b")).unwrap().count(), 0);
    }

    #[test]
    fn database_descriptors_are_kept_and_reused_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let plain = dir.path().join("x.txt");
        let mut bytes = SQLITE_HEADER.to_vec();
        bytes.resize(4096, 0);
        std::fs::write(&db, &bytes).unwrap();
        std::fs::write(&plain, b"plain").unwrap();
        let (first, is_db) = open_source(&db).unwrap();
        assert!(is_db);
        let (second, _) = open_source(&db).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &second), "a second descriptor was opened");
        assert!(!open_source(&plain).unwrap().1);

        std::fs::remove_file(&db).unwrap();
        std::fs::write(&db, b"not a database any more").unwrap();
        let (third, is_db) = open_source(&db).unwrap();
        assert!(!is_db && !std::sync::Arc::ptr_eq(&first, &third));
    }

    #[test]
    fn orphans_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let orphan = format!(".tmp-{dead}-0123456789abcdef");
        let mine = format!(".tmp-{}-0123456789abcdef", std::process::id());
        for name in [&orphan, &mine] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
            assert!(remove_if_orphaned(dir.path(), name));
        }
        assert!(!dir.path().join(&orphan).exists());
        assert!(dir.path().join(&mine).exists());
        assert!(!remove_if_orphaned(dir.path(), "x.ckpt"));
    }
}
