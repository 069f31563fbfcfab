//! Generated "photos": small files in a made-up format, a few of them damaged on purpose.
//!
//! Format: the magic `RPHO`, then little-endian `u16` width, `u16` height, `u32` capture time
//! (seconds since 2020) and `u32` pixel byte count, then the pixel bytes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::PhotoError;

const MAGIC: &[u8; 4] = b"RPHO";
const HEADER_LEN: usize = 16;

/// One photo file.
#[derive(Debug, Clone)]
pub struct Photo {
    /// The file name, e.g. `IMG_0042.rpho`: the photo's key in the catalog.
    pub name: String,
    pub path: PathBuf,
}

/// What the catalog learns from a photo's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u16,
    pub height: u16,
    pub taken_at: u32,
    pub pixel_bytes: u32,
}

/// SplitMix64: a tiny, well-known generator, so the same seed gives the same photos and faults
/// on every machine and with every version of every crate.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Writes `count` photos into `dir` (created if needed); about 5 % get a corrupt header and
/// 3 % are truncated.
pub fn generate(dir: &Path, count: u32, seed: u64) -> Result<(), PhotoError> {
    fs::create_dir_all(dir).map_err(PhotoError::io(dir))?;
    for i in 1..=count {
        let r = mix(seed ^ u64::from(i));
        let width = 64 + (r % 64) as u16;
        let height = 48 + ((r >> 8) % 48) as u16;
        let taken_at = 1_000_000 * i + ((r >> 16) % 100_000) as u32;
        let pixel_bytes = u32::from(width) * u32::from(height) / 4;

        let mut bytes = Vec::with_capacity(HEADER_LEN + pixel_bytes as usize);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&width.to_le_bytes());
        bytes.extend_from_slice(&height.to_le_bytes());
        bytes.extend_from_slice(&taken_at.to_le_bytes());
        bytes.extend_from_slice(&pixel_bytes.to_le_bytes());
        let mut pixels = r;
        bytes.extend((0..pixel_bytes).map(|_| {
            pixels = mix(pixels);
            pixels as u8
        }));

        match (r >> 40) % 100 {
            0..5 => bytes[..4].copy_from_slice(b"\0\0\0\0"),
            5..8 => bytes.truncate(HEADER_LEN + pixel_bytes as usize / 2),
            _ => {}
        }
        let path = dir.join(format!("IMG_{i:04}.rpho"));
        fs::write(&path, &bytes).map_err(PhotoError::io(path))?;
    }
    Ok(())
}

/// The photos in `dir` (none if it does not exist), sorted by name so that every run sees them
/// in the same order: the checkpoint's cursor is a position in this list.
pub fn list(dir: &Path) -> Result<Vec<Photo>, PhotoError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PhotoError::Io { path: dir.to_owned(), source }),
    };
    let mut photos = Vec::new();
    for entry in entries {
        let path = entry.map_err(PhotoError::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "rpho") {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            photos.push(Photo { name, path });
        }
    }
    photos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(photos)
}

/// Reads a photo and checks its header: damaged files are [`PhotoError::CorruptHeader`] or
/// [`PhotoError::Truncated`], which the import skips.
pub fn read(photo: &Photo) -> Result<(Header, Vec<u8>), PhotoError> {
    let bytes = fs::read(&photo.path).map_err(PhotoError::io(&photo.path))?;
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(PhotoError::CorruptHeader { photo: photo.name.clone() });
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let header = Header {
        width: u16_at(4),
        height: u16_at(6),
        taken_at: u32_at(8),
        pixel_bytes: u32_at(12),
    };
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if actual != u64::from(header.pixel_bytes) {
        return Err(PhotoError::Truncated {
            photo: photo.name.clone(),
            expected: header.pixel_bytes.into(),
            actual,
        });
    }
    Ok((header, bytes))
}

/// FNV-1a, as a content checksum for the catalog.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
