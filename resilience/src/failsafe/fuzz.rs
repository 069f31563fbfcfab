//! Entry points of the fuzz targets in `fuzz/`: each decoder of bytes read from disk, fed
//! arbitrary bytes. A checksum is no defence against a forged file, so where a checksum guards
//! the bytes the target also makes it match, and the decoder behind it is reached.
//!
//! Each function panics only when a property fails (a decoder that accepts bytes its encoder
//! would not write back); any other panic is a bug the fuzzer reports.

use std::collections::BTreeMap;

use super::format;
use super::run_info::RunInfo;

/// A state type with every shape a payload can claim: integers, floats, strings, sequences,
/// options, maps, nested values.
type Rich = (u64, i32, f64, bool, char, String, Vec<u32>, Option<BTreeMap<String, Vec<u8>>>);

/// A checkpoint file: its header, then every slot that starts inside it, each as it is and
/// (when the first byte is odd) with its record's checksum made to match; the payload and run
/// section of every intact record are decoded.
pub fn checkpoint_file(input: &[u8]) {
    let Some((&mode, bytes)) = input.split_first() else { return };
    let Some(len) = format::header_len(bytes).filter(|&len| len <= bytes.len()) else { return };
    let Ok((layout, _id)) = format::parse_header(&bytes[..len]) else { return };
    let mut slot = Vec::new();
    for n in 0..layout.slot_count {
        let Ok(start) = usize::try_from(layout.slot_offset(n)) else { break };
        if start >= bytes.len() {
            break;
        }
        let end = start.saturating_add(layout.slot_size as usize).min(bytes.len());
        slot.clear();
        slot.extend_from_slice(&bytes[start..end]);
        if mode & 1 == 1
            && let Some(claimed) =
                format::claimed_len(&slot).filter(|&c| (8..=slot.len()).contains(&c))
        {
            format::seal(&mut slot[..claimed]);
        }
        if let Ok(Some(record)) = format::parse_record(&slot) {
            let _ = RunInfo::decode(record.run);
            let _ = super::codec::decode::<Rich>(record.codec, record.payload);
        }
    }
}

/// A backup's file name.
pub fn backup_name(input: &[u8]) {
    if let Ok(name) = std::str::from_utf8(input) {
        super::backup::fuzz_backup_name(name);
    }
}

/// A backup folder's source record (see [`checkpoint_file`] for the checksum).
pub fn source_record(input: &[u8]) {
    super::backup::fuzz_source_record(input);
}

/// The listing cache's payload, behind its checksum.
pub fn listing_cache(input: &[u8]) {
    super::catalog::fuzz_payload(input);
}
