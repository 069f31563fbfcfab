//! The on-disk layout of a checkpoint file (see `docs/FORMAT.md`).
//!
//! ```text
//! header:  magic "RSLNCKPT" | version u8 | 3 reserved | slot_count u32 | slot_size u32
//!          | slots_offset u32 | id_len u32 | crc32 u32 | id bytes | zero padding to slots_offset
//! slots:   slot_count × slot_size bytes, each empty (zero) or holding one record
//! record:  crc32 u32 | body_len u32 | sequence u64 | schema u64 | cursor u64 | progress f64
//!          | saved_secs u64 | saved_nanos u32 | state u8 | codec u8 | flags u8 | reserved u8
//!          | name_len u32 | error_len u32 | payload_len u32 | name | error | payload
//!          [| run_len u32 | run]     (when flags bit 1 is set; see `run_info.rs`)
//! ```
//! Everything is little-endian. A record's crc32 covers `body_len` and the body, so a torn or
//! flipped record is rejected and the newest intact one is used instead.

use std::time::{Duration, UNIX_EPOCH};

use super::ProcessState;

/// First bytes of every checkpoint file.
pub(crate) const MAGIC: [u8; 8] = *b"RSLNCKPT";
/// Version of the layout below; a reader refuses any other.
pub(crate) const VERSION: u8 = 1;
/// Bytes of the header before the id.
pub(crate) const HEADER_FIXED: usize = 32;
/// Bytes of a record before its variable parts.
pub(crate) const RECORD_FIXED: usize = 68;

const MAX_SLOT_COUNT: u32 = 1 << 20;

/// Where the slots of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) slot_count: u32,
    pub(crate) slot_size: u32,
    pub(crate) slots_offset: u32,
}

impl Layout {
    /// A layout for `id` whose slots hold records of `record_len` bytes with room to grow.
    pub(crate) fn new(id_len: usize, record_len: usize, slot_count: u32) -> Option<Layout> {
        let wanted = record_len.checked_add(record_len / 4)?.checked_add(32)?;
        let slot_size = if wanted <= 4096 {
            wanted.next_power_of_two().max(256)
        } else {
            wanted.checked_next_multiple_of(4096)?
        };
        let slots_offset = (HEADER_FIXED.checked_add(id_len)?).checked_next_multiple_of(64)?;
        let layout = Layout {
            slot_count,
            slot_size: u32::try_from(slot_size).ok()?,
            slots_offset: u32::try_from(slots_offset).ok()?,
        };
        // The whole file must be addressable.
        layout.file_len_checked()?;
        Some(layout)
    }

    pub(crate) fn slot_offset(&self, slot: u32) -> u64 {
        u64::from(self.slots_offset) + u64::from(slot) * u64::from(self.slot_size)
    }

    pub(crate) fn area_len(&self) -> u64 {
        u64::from(self.slot_count) * u64::from(self.slot_size)
    }

    pub(crate) fn file_len(&self) -> u64 {
        u64::from(self.slots_offset) + self.area_len()
    }

    fn file_len_checked(&self) -> Option<u64> {
        let total = u64::from(self.slots_offset).checked_add(self.area_len())?;
        usize::try_from(total).ok()?;
        Some(total)
    }
}

/// Appends the header of a file for `id` (padded to `layout.slots_offset`) to `out`.
pub(crate) fn encode_header(id: &str, layout: &Layout, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&layout.slot_count.to_le_bytes());
    out.extend_from_slice(&layout.slot_size.to_le_bytes());
    out.extend_from_slice(&layout.slots_offset.to_le_bytes());
    out.extend_from_slice(&(id.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 28]);
    hasher.update(id.as_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.resize(start + layout.slots_offset as usize, 0);
}

/// How many bytes of the file the header needs, once its first [`HEADER_FIXED`] bytes are known.
pub(crate) fn header_len(fixed: &[u8]) -> Option<usize> {
    let id_len = read_u32(fixed, 24)? as usize;
    HEADER_FIXED.checked_add(id_len)
}

/// Parses the header at the start of `buf` (which holds at least [`header_len`] bytes).
pub(crate) fn parse_header(buf: &[u8]) -> Result<(Layout, &str), String> {
    if buf.len() < HEADER_FIXED {
        return Err(format!("file too short for a header ({} bytes)", buf.len()));
    }
    if buf[..8] != MAGIC {
        return Err("not a checkpoint file (bad magic)".into());
    }
    if buf[8] != VERSION {
        return Err(format!("unsupported format version {}", buf[8]));
    }
    let field = |at| read_u32(buf, at).unwrap_or(0);
    let (slot_count, slot_size, slots_offset, id_len) =
        (field(12), field(16), field(20), field(24));
    let id_end = HEADER_FIXED
        .checked_add(id_len as usize)
        .filter(|&end| end <= buf.len())
        .ok_or("header cut short")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[..28]);
    hasher.update(&buf[HEADER_FIXED..id_end]);
    if hasher.finalize() != field(28) {
        return Err("header checksum mismatch".into());
    }
    if !(2..=MAX_SLOT_COUNT).contains(&slot_count) {
        return Err(format!("bad slot count {slot_count}"));
    }
    if (slot_size as usize) < RECORD_FIXED || (slots_offset as usize) < id_end {
        return Err("bad slot geometry".into());
    }
    let layout = Layout { slot_count, slot_size, slots_offset };
    layout.file_len_checked().ok_or("bad slot geometry")?;
    let id = std::str::from_utf8(&buf[HEADER_FIXED..id_end]).map_err(|_| "id is not UTF-8")?;
    Ok((layout, id))
}

/// The fields of one record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) sequence: u64,
    pub(crate) schema: u64,
    pub(crate) cursor: u64,
    pub(crate) progress: f64,
    /// Since the Unix epoch; always representable as a `SystemTime`.
    pub(crate) saved_at: Duration,
    pub(crate) state: ProcessState,
    pub(crate) codec: u8,
    pub(crate) name: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) payload: &'a [u8],
    /// The run section (input fingerprints, skipped items); empty when there is none.
    pub(crate) run: &'a [u8],
}

/// Flags bit: the record carries an error text.
const HAS_ERROR: u8 = 1;
/// Flags bit: the record carries a run section after its payload.
const HAS_RUN: u8 = 2;

impl Record<'_> {
    /// The encoded length of this record.
    pub(crate) fn encoded_len(&self) -> usize {
        record_len(self.name, self.error, self.payload, self.run)
    }
}

/// The encoded length of a record with these variable parts.
pub(crate) fn record_len(name: &str, error: Option<&str>, payload: &[u8], run: &[u8]) -> usize {
    let run_len = if run.is_empty() { 0 } else { 4 + run.len() };
    RECORD_FIXED + name.len() + error.map_or(0, str::len) + payload.len() + run_len
}

/// Replaces the contents of `out` with the encoded record, checksummed if `seal`, else to be
/// [`seal`]ed before it is written.
pub(crate) fn encode_record(
    r: &Record<'_>,
    out: &mut Vec<u8>,
    seal_it: bool,
) -> Result<(), String> {
    let error = r.error.unwrap_or("");
    let len = r.encoded_len();
    let fits = |n: usize| u32::try_from(n).is_ok();
    if !fits(len) {
        return Err(format!("a checkpoint record of {len} bytes is too large (limit 4 GiB)"));
    }
    let since = r.saved_at;
    out.clear();
    out.reserve(len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((len - 8) as u32).to_le_bytes());
    out.extend_from_slice(&r.sequence.to_le_bytes());
    out.extend_from_slice(&r.schema.to_le_bytes());
    out.extend_from_slice(&r.cursor.to_le_bytes());
    out.extend_from_slice(&r.progress.to_bits().to_le_bytes());
    out.extend_from_slice(&since.as_secs().to_le_bytes());
    out.extend_from_slice(&since.subsec_nanos().to_le_bytes());
    let flags =
        if r.error.is_some() { HAS_ERROR } else { 0 } | if r.run.is_empty() { 0 } else { HAS_RUN };
    out.extend_from_slice(&[state_byte(r.state), r.codec, flags, 0]);
    out.extend_from_slice(&(r.name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(error.len() as u32).to_le_bytes());
    out.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(r.name.as_bytes());
    out.extend_from_slice(error.as_bytes());
    out.extend_from_slice(r.payload);
    if !r.run.is_empty() {
        out.extend_from_slice(&(r.run.len() as u32).to_le_bytes());
        out.extend_from_slice(r.run);
    }
    if seal_it {
        seal(out);
    }
    Ok(())
}

/// Writes the checksum of an encoded record.
pub(crate) fn seal(record: &mut [u8]) {
    let crc = crc32fast::hash(&record[4..]);
    record[..4].copy_from_slice(&crc.to_le_bytes());
}

/// The record at the start of `slot`, if the slot holds an intact one.
///
/// `Err` carries why a non-empty slot was rejected.
pub(crate) fn parse_record(slot: &[u8]) -> Result<Option<Record<'_>>, &'static str> {
    let body_len = read_u32(slot, 4).ok_or("slot cut short")? as usize;
    if body_len == 0 && read_u32(slot, 0) == Some(0) {
        return Ok(None);
    }
    let end = body_len.checked_add(8).filter(|&e| e <= slot.len()).ok_or("record cut short")?;
    if end < RECORD_FIXED {
        return Err("record too short");
    }
    if crc32fast::hash(&slot[4..end]) != read_u32(slot, 0).unwrap_or(0) {
        return Err("record checksum mismatch");
    }
    let u64_at = |at| read_u64(slot, at).unwrap_or(0);
    let u32_at = |at| read_u32(slot, at).unwrap_or(0) as usize;
    let state = state_from(slot[52]).ok_or("bad state")?;
    let (name_len, error_len, payload_len) = (u32_at(56), u32_at(60), u32_at(64));
    let flags = slot[54];
    if flags & !(HAS_ERROR | HAS_RUN) != 0 || slot[55] != 0 {
        return Err("bad flags");
    }
    let payload_end = RECORD_FIXED
        .checked_add(name_len)
        .and_then(|n| n.checked_add(error_len))
        .and_then(|n| n.checked_add(payload_len))
        .filter(|&n| n <= end)
        .ok_or("record lengths disagree")?;
    let run = if flags & HAS_RUN == 0 {
        &slot[payload_end..payload_end]
    } else {
        let run_len = read_u32(slot, payload_end).ok_or("record lengths disagree")? as usize;
        let start = payload_end + 4;
        if run_len == 0 || start.checked_add(run_len) != Some(end) {
            return Err("record lengths disagree");
        }
        &slot[start..end]
    };
    if flags & HAS_RUN == 0 && payload_end != end {
        return Err("record lengths disagree");
    }
    let name_end = RECORD_FIXED + name_len;
    let error_end = name_end + error_len;
    let name = std::str::from_utf8(&slot[RECORD_FIXED..name_end]).map_err(|_| "bad name")?;
    let error = if flags & HAS_ERROR != 0 {
        Some(std::str::from_utf8(&slot[name_end..error_end]).map_err(|_| "bad error text")?)
    } else if error_len == 0 {
        None
    } else {
        return Err("bad flags");
    };
    // Nanoseconds are checked before `Duration::new`, which carries a billion or more into
    // the seconds and panics when they overflow.
    let nanos = read_u32(slot, 48).unwrap_or(0);
    if nanos >= 1_000_000_000 {
        return Err("bad time");
    }
    let saved_at = Duration::new(u64_at(40), nanos);
    if UNIX_EPOCH.checked_add(saved_at).is_none() {
        return Err("bad time");
    }
    Ok(Some(Record {
        sequence: u64_at(8),
        schema: u64_at(16),
        cursor: u64_at(24),
        progress: f64::from_bits(u64_at(32)),
        saved_at,
        state,
        codec: slot[53],
        name,
        error,
        payload: &slot[error_end..payload_end],
        run,
    }))
}

/// The encoded length of the record at the start of `slot`, read without checking it.
pub(crate) fn claimed_len(slot: &[u8]) -> Option<usize> {
    (read_u32(slot, 4)? as usize).checked_add(8)
}

/// The sequence number of an encoded record.
pub(crate) fn sequence_of(record: &[u8]) -> u64 {
    read_u64(record, 8).unwrap_or(0)
}

fn state_byte(state: ProcessState) -> u8 {
    match state {
        ProcessState::Initialized => 0,
        ProcessState::Running => 1,
        ProcessState::Paused => 2,
        ProcessState::Completed => 3,
        ProcessState::Failed => 4,
    }
}

fn state_from(b: u8) -> Option<ProcessState> {
    Some(match b {
        0 => ProcessState::Initialized,
        1 => ProcessState::Running,
        2 => ProcessState::Paused,
        3 => ProcessState::Completed,
        4 => ProcessState::Failed,
        _ => return None,
    })
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Vec<u8> {
        sample_with_run(payload, b"")
    }

    fn sample_with_run(payload: &[u8], run: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let r = Record {
            sequence: 9,
            schema: 0xabc,
            cursor: 3,
            progress: 0.5,
            saved_at: Duration::new(1_700_000_000, 5),
            state: ProcessState::Failed,
            codec: 1,
            name: "name",
            error: Some("boom"),
            payload,
            run,
        };
        encode_record(&r, &mut out, true).unwrap();
        out
    }

    #[test]
    fn record_round_trip() {
        let bytes = sample(b"payload");
        assert_eq!(bytes.len(), record_len("name", Some("boom"), b"payload", b""));
        let r = parse_record(&bytes).unwrap().unwrap();
        assert_eq!((r.sequence, r.schema, r.cursor, r.progress), (9, 0xabc, 3, 0.5));
        assert_eq!(
            (r.state, r.codec, r.name, r.error),
            (ProcessState::Failed, 1, "name", Some("boom"))
        );
        assert_eq!(r.payload, b"payload");
        assert_eq!(r.saved_at, Duration::new(1_700_000_000, 5));
        assert!(r.run.is_empty());

        let bytes = sample_with_run(b"payload", b"run section");
        assert_eq!(bytes.len(), record_len("name", Some("boom"), b"payload", b"run section"));
        let r = parse_record(&bytes).unwrap().unwrap();
        assert_eq!((r.payload, r.run), (&b"payload"[..], &b"run section"[..]));
    }

    /// Found by the `checkpoint_file` fuzz target: a sealed record whose time is `u64::MAX`
    /// seconds and a billion nanoseconds made `Duration::new` panic on overflow.
    #[test]
    fn a_forged_time_is_bad_time_not_a_panic() {
        for (secs, nanos) in [(u64::MAX, 1_000_000_000u32), (u64::MAX, u32::MAX), (0, u32::MAX)] {
            let mut bytes = sample(b"p");
            bytes[40..48].copy_from_slice(&secs.to_le_bytes());
            bytes[48..52].copy_from_slice(&nanos.to_le_bytes());
            seal(&mut bytes);
            assert!(matches!(parse_record(&bytes), Err("bad time")), "{secs} s {nanos} ns");
        }
    }

    #[test]
    fn every_damage_is_detected() {
        for bytes in [sample(b"p"), sample_with_run(b"p", b"r")] {
            every_damage_of(&bytes);
        }
    }

    fn every_damage_of(bytes: &[u8]) {
        for cut in 0..bytes.len() {
            assert!(!matches!(parse_record(&bytes[..cut]), Ok(Some(_))), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.to_vec();
                bad[i] ^= 1 << bit;
                assert!(!matches!(parse_record(&bad), Ok(Some(_))), "flip {i}.{bit}");
            }
        }
        assert!(matches!(parse_record(&[0; 64]), Ok(None)));
    }

    #[test]
    fn header_round_trip() {
        let layout = Layout::new(3, 100, 6).unwrap();
        assert_eq!((layout.slot_size, layout.slots_offset), (256, 64));
        let mut buf = Vec::new();
        encode_header("a/b", &layout, &mut buf);
        assert_eq!(buf.len(), 64);
        assert_eq!(header_len(&buf), Some(35));
        assert_eq!(parse_header(&buf).unwrap(), (layout, "a/b"));
        for i in 0..35 {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(parse_header(&bad).is_err(), "flip {i}");
        }
    }
}
