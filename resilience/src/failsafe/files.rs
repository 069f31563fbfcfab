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

/// Opens an existing regular file for reading and writing.
pub(crate) fn open_write(path: &Path) -> io::Result<File> {
    regular(options(true).open(path)?)
}

/// Opens a regular file for reading and writing, creating it (`0600`) if it is missing.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    regular(options(true).create(true).open(path)?)
}

/// Creates `path`, which must not exist, for writing (`0600`).
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    options(true).create_new(true).open(path)
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
    open_dir(dir)
        .and_then(|d| {
            // SAFETY: a valid descriptor owned by `d`.
            if unsafe { libc::fsync(d.as_raw_fd()) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .map_err(|e| Error::io(dir, e))
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

/// A private temporary file in a directory, removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) file: File,
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates `.tmp-<pid>-<random>[-<tag>]` in `dir`: exclusive (never follows or reuses an
    /// existing name or symlink) and readable by the owner only. `tag` (at most 64 characters
    /// kept) makes one left by a crash recognizable.
    pub(crate) fn create(dir: &Path, tag: &str) -> Result<TempFile> {
        let pid = std::process::id();
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '_' })
            .take(64)
            .collect();
        loop {
            let mut name = format!("{TEMP_PREFIX}{pid}-{:016x}", fastrand::u64(..));
            if !tag.is_empty() {
                name.push('-');
                name.push_str(&tag);
            }
            let path = dir.join(name);
            match create_new(&path) {
                Ok(file) => return Ok(TempFile { file, path, committed: false }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Writes all of `bytes` at `offset`; errors name `dest`, what the file becomes.
    pub(crate) fn write_all_at(&self, bytes: &[u8], offset: u64, dest: &Path) -> Result<()> {
        self.file.write_all_at(bytes, offset).map_err(|e| Error::io(dest, e))
    }

    /// Syncs (data and metadata, if `sync`) and renames the file to `dest`; returns the open
    /// file, which is now `dest`.
    pub(crate) fn commit(mut self, dest: &Path, sync: bool) -> Result<File> {
        if sync {
            self.file.sync_all().map_err(|e| Error::io(dest, e))?;
        }
        std::fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?;
        self.committed = true;
        let file = self.file.try_clone().map_err(|e| Error::io(dest, e))?;
        Ok(file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
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
    if gone && std::fs::remove_file(dir.join(name)).is_ok() {
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
