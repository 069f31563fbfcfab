//! Backup names and records: the file name that holds a copy's metadata, the folder of each
//! source and its `source` record, and the key a source path is stored under.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::failsafe::files::{self, TempFile};

pub(super) const DATA_EXT: &str = ".bak";
pub(super) const SOURCE_FILE: &str = "source";
const SOURCE_MAGIC: &[u8; 4] = b"RSBS";
const SOURCE_VERSION: u8 = 1;
/// A record is 13 bytes plus the source path; anything larger is not ours.
const SOURCE_MAX_LEN: u64 = 64 * 1024;

/// One backup of a file, as returned by [`FailsafeManager::create_backup`](crate::FailsafeManager::create_backup) and
/// [`FailsafeManager::list_backups`](crate::FailsafeManager::list_backups).
///
/// `checksum` is the CRC-32 (IEEE, as computed by `crc32fast`) of the copy's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The backed-up file: its canonical absolute path at the time of the backup.
    pub source: PathBuf,
    /// The copy inside the store directory.
    pub path: PathBuf,
    /// Size of the copy in bytes.
    pub size: u64,
    /// CRC-32 of the copy's bytes.
    pub checksum: u32,
    /// When the backup was taken.
    pub created_at: SystemTime,
}

/// A backup with everything its file name records.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) info: BackupInfo,
    pub(crate) source_mtime: SystemTime,
    pub(crate) mode: u32,
}

/// The key a source is stored under: its canonical absolute path.
///
/// An existing file is canonicalized fully (a symlink resolves to its target, which is what a
/// restore then writes). A missing one resolves through its canonical parent folder, or
/// lexically when that is gone too, so its backups can still be found after it was deleted.
pub(crate) fn resolve_source(path: &Path) -> Result<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Ok(canonical);
    }
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        cwd.join(path)
    };
    let absolute = normalize_lexically(&absolute);
    if let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name())
        && let Ok(parent) = std::fs::canonicalize(parent)
    {
        return Ok(parent.join(name));
    }
    Ok(absolute)
}

fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `<sanitized file name>-<FNV-1a 64 of the full path>`: readable, bounded, and free of
/// separators, dots-only names and other surprises whatever the source path holds.
pub(super) fn folder_name(key: &Path) -> String {
    let name = key.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let mut safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(48)
        .collect();
    if safe.starts_with('.') || safe.is_empty() {
        safe.insert(0, '_');
    }
    format!("{safe}-{:016x}", fnv1a(&path_bytes(key)))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(bytes).ok().map(PathBuf::from)
}

pub(super) fn sort_newest_first(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (b.seq, b.info.created_at, &b.info.path).cmp(&(a.seq, a.info.created_at, &a.info.path))
    });
}

/// Every valid backup of `source` in `folder`. Foreign and damaged files are skipped: the
/// folder may hold temp files of an interrupted copy, or anything a user dropped there.
pub(super) fn read_entries(folder: &Path, source: &Path) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in dir.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            files::remove_if_orphaned(folder, name);
            continue;
        }
        let Some(entry) = decode_name(name, &item.path(), source) else {
            continue;
        };
        // A copy cut short (by hand, or unsynced before a crash) is not a backup.
        if item.metadata().is_ok_and(|m| m.is_file() && m.len() == entry.info.size) {
            entries.push(entry);
        }
    }
    entries
}

/// The file name that records `entry`; `tag` keeps concurrent backups apart.
pub(super) fn encode_name(entry: &Entry, tag: u64) -> String {
    let (created_s, created_ns) = time_to_parts(entry.info.created_at);
    let (mtime_s, mtime_ns) = time_to_parts(entry.source_mtime);
    format!(
        "{:020}_{created_s}_{created_ns:09}_{mtime_s}_{mtime_ns:09}_{}_{:08x}_{:o}_{tag:016x}{DATA_EXT}",
        entry.seq, entry.info.size, entry.info.checksum, entry.mode
    )
}

/// Parses a name written by [`encode_name`]; anything that does not encode back to exactly
/// the same name is rejected.
pub(super) fn decode_name(name: &str, path: &Path, source: &Path) -> Option<Entry> {
    let fields: Vec<&str> = name.strip_suffix(DATA_EXT)?.split('_').collect();
    let [seq, created_s, created_ns, mtime_s, mtime_ns, size, crc, mode, tag] = fields[..] else {
        return None;
    };
    let entry = Entry {
        seq: seq.parse().ok()?,
        info: BackupInfo {
            source: source.to_path_buf(),
            path: path.to_path_buf(),
            size: size.parse().ok()?,
            checksum: u32::from_str_radix(crc, 16).ok()?,
            created_at: parts_to_time(created_s.parse().ok()?, created_ns.parse().ok()?).ok()?,
        },
        source_mtime: parts_to_time(mtime_s.parse().ok()?, mtime_ns.parse().ok()?).ok()?,
        mode: u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?,
    };
    let tag = u64::from_str_radix(tag, 16).ok()?;
    (encode_name(&entry, tag) == name).then_some(entry)
}

/// Writes the folder's `source` record atomically (temp file, sync, rename, folder sync).
pub(super) fn write_source_record(folder: &Path, source: &Path, durable: bool) -> Result<()> {
    let path = folder.join(SOURCE_FILE);
    let temp = TempFile::create(folder, SOURCE_FILE)?;
    temp.write_all_at(&encode_source(source), 0, &path)?;
    temp.commit(&path, durable)?;
    if durable {
        files::sync_dir(folder)?;
        if let Some(root) = folder.parent() {
            files::sync_dir(root)?;
        }
    }
    Ok(())
}

/// The source path recorded in `folder`: `None` if there is no record, `Err(reason)` if there
/// is one that does not decode (a folder of someone else's), and an error naming the record if
/// it cannot be read (a FIFO or a directory in its place, for example).
pub(super) fn read_source_record(
    folder: &Path,
) -> Result<std::result::Result<Option<PathBuf>, String>> {
    let path = folder.join(SOURCE_FILE);
    let bytes = match files::read_small(&path, SOURCE_MAX_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Err(e.to_string())),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(decode_source(&bytes).map(Some))
}

/// The fuzz target `source_record`: `body` decoded as a folder's source record, as it is and
/// with its checksum made to match; a record that decodes encodes back to the same bytes.
pub(crate) fn fuzz_source_record(body: &[u8]) {
    let _ = decode_source(body);
    let mut sealed = body.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    if let Ok(path) = decode_source(&sealed) {
        assert_eq!(
            encode_source(&path),
            sealed,
            "a source record that decodes re-encodes as itself"
        );
    }
}

/// The fuzz target `backup_name`: a backup file name parsed; one that parses is one
/// [`encode_name`] gives (checked inside [`decode_name`]).
pub(crate) fn fuzz_backup_name(name: &str) {
    let path = Path::new("/store/backups/f").join(name);
    if let Some(entry) = decode_name(name, &path, Path::new("/data/f")) {
        assert_eq!(entry.info.path, path);
    }
}

pub(super) fn encode_source(source: &Path) -> Vec<u8> {
    let path = path_bytes(source);
    let mut out = Vec::with_capacity(13 + path.len());
    out.extend_from_slice(SOURCE_MAGIC);
    out.push(SOURCE_VERSION);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(&path);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_source(bytes: &[u8]) -> std::result::Result<PathBuf, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("truncated")?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader(body);
    if r.take(4)? != SOURCE_MAGIC {
        return Err("not a source record".into());
    }
    let version = r.take(1)?[0];
    if version != SOURCE_VERSION {
        return Err(format!("unknown source record version {version}"));
    }
    let len = r.u32()? as usize;
    let source = path_from_bytes(r.take(len)?).ok_or("source path is not valid here")?;
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(source)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

fn time_to_parts(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn parts_to_time(secs: i64, nanos: u32) -> std::result::Result<SystemTime, String> {
    if nanos >= 1_000_000_000 {
        return Err("invalid timestamp".into());
    }
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    base.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .ok_or_else(|| "timestamp out of range".into())
}

pub(super) fn holds_no_backups(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|mut items| {
        items.all(|item| item.is_ok_and(|i| !i.file_name().to_string_lossy().ends_with(DATA_EXT)))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::failsafe::backup) fn entry(source: &str) -> Entry {
        Entry {
            seq: 42,
            info: BackupInfo {
                source: PathBuf::from(source),
                path: PathBuf::from("/store/backups/x/a.bak"),
                size: 1234,
                checksum: 0xdead_beef,
                created_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            },
            source_mtime: UNIX_EPOCH - Duration::new(5, 250),
            mode: 0o640,
        }
    }

    #[test]
    fn names_round_trip() {
        let original = entry("/data/ünïcode file.db");
        let name = encode_name(&original, 7);
        assert!(name.len() < 160, "{name}");
        let path = Path::new("/store/backups/x").join(&name);
        let decoded = decode_name(&name, &path, &original.info.source).unwrap();
        assert_eq!(decoded.info, BackupInfo { path, ..original.info.clone() });
        assert_eq!(decoded.seq, 42);
        assert_eq!(decoded.source_mtime, original.source_mtime);
        assert_eq!(decoded.mode, 0o640);
    }

    #[test]
    fn names_that_do_not_encode_back_are_rejected() {
        let name = encode_name(&entry("/d"), 7);
        let at = Path::new("/s/x");
        for bad in [
            name.replacen("00000000000000000042", "42", 1),
            name.replacen("_640_", "_0640_", 1),
            name.replacen("_640_", "_20000_", 1),
            name.replacen("_1234_", "_+1234_", 1),
            name.replacen(".bak", ".bak.tmp", 1),
            format!(".{name}"),
            name.replacen('_', "__", 1),
            "junk.bak".to_owned(),
            ".bak".to_owned(),
        ] {
            assert!(decode_name(&bad, at, Path::new("/d")).is_none(), "accepted {bad}");
        }
    }

    #[test]
    fn source_records_round_trip_and_reject_any_flipped_bit() {
        let source = Path::new("/data/ünïcode file\nwith newline.db");
        let bytes = encode_source(source);
        assert_eq!(decode_source(&bytes).unwrap(), source);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_source(&bad).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode_source(&bytes[..len]).is_err(), "truncation to {len} accepted");
        }
    }

    #[test]
    fn folder_names_are_safe_and_distinct() {
        let a = folder_name(Path::new("/x/../../etc/passwd"));
        assert!(!a.contains('/') && !a.starts_with('.'));
        let b = folder_name(Path::new("/data/a b.db"));
        let c = folder_name(Path::new("/data/a_b.db"));
        assert_ne!(b, c, "same sanitized name, different paths");
        assert!(b.starts_with("a_b.db-"));
        assert_eq!(folder_name(Path::new("/")).len(), 1 + 1 + 16);
        assert!(folder_name(Path::new(&"x".repeat(5000))).len() <= 48 + 1 + 16);
    }

    #[test]
    fn missing_sources_resolve_like_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gone.txt");
        std::fs::write(&file, b"x").unwrap();
        let before = resolve_source(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(resolve_source(&file).unwrap(), before);
        let odd = dir.path().join("sub/../gone.txt");
        assert_eq!(resolve_source(&odd).unwrap(), before);
    }
}
