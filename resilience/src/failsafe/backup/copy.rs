//! The copy engine: one pass over a file that copies, hashes and starts writeback.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::failsafe::files::{Stamp, TempFile};
use crate::failsafe::io as seam;

/// Small enough to stay in a 512 KiB L2 cache between being read, hashed and written, large
/// enough to amortize syscalls: copying 256 MiB took the least CPU with it among 128 KiB–4 MiB
/// (about 1.1× that of `std::fs::copy`, which computes no checksum).
const CHUNK: usize = 512 << 10;
/// Writeback of the copy is started every this many bytes (see `copy_hashed`).
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Reads `reader` from its start to its end in large chunks (positioned reads: the
/// descriptor may be shared), hashing each chunk and appending it to `temp`.
///
/// One pass over the source: `copy_file_range` plus a second read for the checksum costs more
/// CPU. With durability on, writeback is started as the copy grows (`sync_file_range`), so the
/// disk works while the copy is made and the final `fsync` (in [`TempFile::commit`]) finds
/// little left to do.
///
/// Errors name `reader_path` or `dest` (what the temp file becomes), never the temp file.
pub(super) fn copy_hashed(
    reader: &File,
    reader_path: &Path,
    temp: &mut TempFile,
    dest: &Path,
    durable: bool,
) -> Result<(u64, u32)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut unsynced = 0u64;
    loop {
        let n = match reader.read_at(&mut buf, total) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(reader_path, e)),
        };
        hasher.update(&buf[..n]);
        seam::write_all_at(&temp.file, &buf[..n], total).map_err(|e| Error::io(dest, e))?;
        total += n as u64;
        unsynced += n as u64;
        if durable && unsynced >= WRITEBACK_EVERY {
            start_writeback(&temp.file, total - unsynced, unsynced);
            unsynced = 0;
        }
    }
    Ok((total, hasher.finalize()))
}

/// Size and CRC-32 of a whole file; errors name `path`.
pub(super) fn hash_file(file: &File, path: &Path) -> Result<(u64, u32)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    loop {
        match file.read_at(&mut buf, total) {
            Ok(0) => return Ok((total, hasher.finalize())),
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// Copies `source` into `temp` as one state the file really had: the file's [`Stamp`] (size,
/// times, inode) is taken from its descriptor before and after the copy, and what `path` names
/// after it; any difference means the copy may mix two versions, and `Ok(None)` is returned.
pub(super) fn copy_unchanged(
    source: &File,
    path: &Path,
    temp: &mut TempFile,
    dest: &Path,
    durable: bool,
) -> Result<Option<(u64, u32)>> {
    let before = Stamp::of_file(source).map_err(|e| Error::io(path, e))?;
    let copied = copy_hashed(source, path, temp, dest, durable)?;
    let after = Stamp::of_file(source).map_err(|e| Error::io(path, e))?;
    let now = match Stamp::of_path(path) {
        Ok(now) => Some(now),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let unchanged =
        before == after && copied.0 == before.size && now.is_some_and(|n| n.same_file(&before));
    Ok(unchanged.then_some(copied))
}

/// Starts writeback of `len` bytes at `offset`.
#[cfg(target_os = "linux")]
pub(super) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // Only a hint that starts writeback early; the `fsync` at the end is what guarantees
    // durability, so a failure here is harmless and ignored.
    // SAFETY: the descriptor is open for the duration of the call; the call touches no memory.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as _, len as _, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

#[cfg(unix)]
pub(super) fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
pub(super) fn permission_bits(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() { 0o444 } else { 0o644 }
}

#[cfg(unix)]
pub(super) fn set_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub(super) fn set_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    let mut perms = file.metadata()?.permissions();
    perms.set_readonly(mode & 0o200 == 0);
    file.set_permissions(perms)
}
