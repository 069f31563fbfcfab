//! Operation ids to file names.
//!
//! The mapping is injective and produces only `[a-z0-9_%-]`, so names are safe on every file
//! system, case-insensitive ones included, and can never be `.`, `..` or contain a separator:
//! - ids whose escaped form fits in [`MAX_DIRECT`] bytes: bytes in `[a-z0-9_-]` are kept, every
//!   other byte becomes `%xx` (lowercase hex); the empty id is `%`;
//! - longer ids: `%%` followed by the 128-bit FNV-1a hash of the id in hex. The file header holds
//!   the full id, which is checked on every read.

/// Longest escaped stem used as is; with an extension it stays far below `NAME_MAX` (255).
const MAX_DIRECT: usize = 200;

/// Extension of checkpoint files.
pub(crate) const CHECKPOINT_EXT: &str = "ckpt";
/// Extension of lock files.
pub(crate) const LOCK_EXT: &str = "lock";

/// The file stem of `id`.
pub(crate) fn file_stem(id: &str) -> String {
    if id.is_empty() {
        return "%".to_owned();
    }
    let mut stem = String::with_capacity(id.len());
    for &b in id.as_bytes() {
        if is_plain(b) {
            stem.push(b as char);
        } else {
            stem.push('%');
            stem.push(hex_digit(b >> 4));
            stem.push(hex_digit(b & 0xf));
        }
        if stem.len() > MAX_DIRECT {
            return hashed_stem(id);
        }
    }
    stem
}

/// What a file stem says about the id stored in the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stem {
    /// The stem spells the id.
    Direct(String),
    /// The stem is the hash of a long id.
    Hashed,
}

/// Parses a stem produced by [`file_stem`]; `None` for any other name.
pub(crate) fn parse_stem(stem: &str) -> Option<Stem> {
    if stem == "%" {
        return Some(Stem::Direct(String::new()));
    }
    if let Some(hex) = stem.strip_prefix("%%") {
        let canonical =
            hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        return canonical.then_some(Stem::Hashed);
    }
    let bytes = stem.as_bytes();
    let mut id = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = from_hex(*bytes.get(i + 1)?)?;
            let lo = from_hex(*bytes.get(i + 2)?)?;
            id.push(hi << 4 | lo);
            i += 3;
        } else {
            id.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(id).ok()?;
    // Only the canonical spelling of an id is ours.
    (file_stem(&id) == stem).then_some(Stem::Direct(id))
}

/// Whether the file named by `stem` may hold `id`.
pub(crate) fn stem_matches(stem: &str, id: &str) -> bool {
    file_stem(id) == stem
}

fn hashed_stem(id: &str) -> String {
    format!("%%{:032x}", fnv1a_128(id.as_bytes()))
}

/// FNV-1a, 128 bits: stable across releases and platforms, unlike `std`'s hashers.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n)])
}

fn from_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_and_round_trip() {
        let long = "x".repeat(10_000);
        let ids = [
            "",
            "import-7",
            "..",
            ".",
            "/",
            "a/../../etc",
            "nul\0byte",
            "Upper",
            "🦀",
            "%",
            "%%",
            "a%2f",
        ];
        for id in ids.iter().copied().chain([long.as_str()]) {
            let stem = file_stem(id);
            assert!(!stem.is_empty() && stem.len() <= MAX_DIRECT + 34, "{id:?}");
            assert!(stem.bytes().all(|b| is_plain(b) || b == b'%'), "{stem}");
            match parse_stem(&stem).unwrap() {
                Stem::Direct(back) => assert_eq!(back, id),
                Stem::Hashed => assert!(id.len() > MAX_DIRECT / 3),
            }
            assert!(stem_matches(&stem, id));
        }
    }

    #[test]
    fn distinct_ids_get_distinct_stems() {
        let ids = ["a", "A", "%61", "a%", "", "%", "-", "_"];
        let stems: std::collections::HashSet<_> = ids.iter().map(|id| file_stem(id)).collect();
        assert_eq!(stems.len(), ids.len());
    }

    #[test]
    fn foreign_names_are_not_ours() {
        for name in ["", "A", "a.b", "%2", "%zz", "%61", "%%abc", "%ff", "x y"] {
            assert_eq!(parse_stem(name), None, "{name}");
        }
    }
}
