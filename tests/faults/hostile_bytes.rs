//! Hostile bytes: random files and mutated real checkpoint files, most of them with their
//! checksums recomputed so that the damage reaches the field parsers and the payload decoder.
//! Loading never panics, never returns a value that was not saved (unless the checksums were
//! forged), and allocations are bounded by the input:
//! - the store's reader (header, slots, records) makes no allocation larger than the file plus
//!   a small constant (a state type without heap data isolates it);
//! - decoding a state type with sequences adds serde's bounded preallocation: a sequence
//!   length field, however large, preallocates at most 1 MiB before the elements run out.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState};
use serde::{Deserialize, Serialize};

use crate::alloc_probe::largest_allocation;

const ID: &str = "hostile";
/// Allocations a load makes whatever the file: the manager's maps, paths and error texts.
const SLACK: usize = 1024;
/// serde preallocates `min(claimed length, 1 MiB / element size)` elements for a sequence.
const DECODE_LIMIT: isize = (1 << 20) + SLACK as isize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Count(u32),
    Named { label: String, weight: f64 },
}

/// A state with every shape a decoder must bound: strings, nested sequences, maps, enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rich {
    done: u64,
    name: String,
    tags: Vec<String>,
    blobs: Vec<Vec<u8>>,
    counts: BTreeMap<String, u32>,
    kinds: Vec<Kind>,
    note: Option<String>,
    wide: Vec<u64>,
}

impl Checkpointable for Rich {
    const SCHEMA: u64 = 0x4e57_11e5_0000_0001;
    fn cursor(&self) -> u64 {
        self.done
    }
}

fn rich(rng: &mut fastrand::Rng) -> Rich {
    let text = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..rng.usize(0..n)).map(|_| rng.alphanumeric()).collect()
    };
    Rich {
        done: rng.u64(..),
        name: text(rng, 20),
        tags: (0..rng.usize(0..6)).map(|_| text(rng, 12)).collect(),
        blobs: (0..rng.usize(0..4))
            .map(|_| (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect())
            .collect(),
        counts: (0..rng.usize(0..4)).map(|_| (text(rng, 8), rng.u32(..))).collect(),
        kinds: (0..rng.usize(0..4))
            .map(|_| match rng.u8(0..3) {
                0 => Kind::Plain,
                1 => Kind::Count(rng.u32(..)),
                _ => Kind::Named { label: text(rng, 10), weight: rng.f64() },
            })
            .collect(),
        note: rng.bool().then(|| text(rng, 30)),
        wide: (0..rng.usize(0..10)).map(|_| rng.u64(..)).collect(),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = b.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recomputes the header's and every slot's checksum, as far as the (damaged) fields allow.
fn fix_checksums(b: &mut [u8]) {
    let Some(id_len) = u32_at(b, 24) else { return };
    if 32 + id_len <= b.len() {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..28]);
        h.update(&b[32..32 + id_len]);
        put_u32(b, 28, h.finalize());
    }
    let (Some(count), Some(size), Some(offset)) = (u32_at(b, 12), u32_at(b, 16), u32_at(b, 20))
    else {
        return;
    };
    for slot in 0..count.min(64) {
        let start = offset.saturating_add(slot.saturating_mul(size));
        let Some(body) = u32_at(b, start + 4) else { break };
        let end = start + 8 + body;
        if body > 0 && end <= b.len() && end <= start.saturating_add(size) {
            let crc = crc32fast::hash(&b[start + 4..end]);
            put_u32(b, start, crc);
        }
    }
}

/// Real checkpoint files to mutate, with the values they hold.
fn seeds<T: Checkpointable>(
    dir: &Path,
    rng: &mut fastrand::Rng,
    files: usize,
    mut make: impl FnMut(&mut fastrand::Rng) -> T,
) -> Vec<(Vec<u8>, Vec<T>)> {
    let mut out = Vec::new();
    for n in 0..files {
        let store = dir.join(format!("seed-{}-{n}", fastrand::u64(..)));
        let mgr = FailsafeManager::builder().dir(&store).max_checkpoints(2).build().unwrap();
        let values: Vec<T> = (0..1 + n % 4).map(|_| make(rng)).collect();
        for v in &values {
            let state = if rng.bool() { ProcessState::Failed } else { ProcessState::Running };
            mgr.save_checkpoint(ID, "hostile job", state, 0.5, v).unwrap();
        }
        out.push((fs::read(store.join(format!("{ID}.ckpt"))).unwrap(), values));
        fs::remove_dir_all(&store).unwrap();
    }
    out
}

/// A hostile number for a length or count field.
fn hostile_number(rng: &mut fastrand::Rng) -> u64 {
    match rng.u8(0..6) {
        0 => u64::MAX - rng.u64(0..4),
        1 => 1 << rng.u32(8..63),
        2 => u64::from(u32::MAX) - rng.u64(0..4),
        3 => rng.u64(0..70_000),
        4 => rng.u64(..),
        _ => rng.u64(0..64),
    }
}

/// A mutation of `base`, and whether its checksums were recomputed.
fn mutate(base: &[u8], rng: &mut fastrand::Rng) -> (Vec<u8>, bool) {
    let mut b = base.to_vec();
    match rng.u8(0..7) {
        // Random bytes overwritten.
        0 => {
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(0..b.len());
                b[at] = rng.u8(..);
            }
        }
        // A header field (slot count, slot size, slots offset, id length) set to a hostile value.
        1 => {
            let at = [12, 16, 20, 24][rng.usize(0..4)];
            put_u32(&mut b, at, hostile_number(rng) as u32);
        }
        // A record length field (body, name, error, payload) set to a hostile value.
        2 => {
            let slot = u32_at(&b, 20).unwrap_or(0) + rng.usize(0..2) * u32_at(&b, 16).unwrap_or(0);
            let at = slot + [4, 56, 60, 64][rng.usize(0..4)];
            put_u32(&mut b, at, hostile_number(rng) as u32);
        }
        // An 8-byte word of a payload (a sequence length, with fixed-size integers) made hostile.
        3 => {
            let slot = u32_at(&b, 20).unwrap_or(0);
            let payload =
                slot + 68 + u32_at(&b, slot + 56).unwrap_or(0) + u32_at(&b, slot + 60).unwrap_or(0);
            let end = slot + 8 + u32_at(&b, slot + 4).unwrap_or(0);
            if payload + 8 <= end && end <= b.len() {
                let at = rng.usize(payload..=end - 8);
                b[at..at + 8].copy_from_slice(&hostile_number(rng).to_le_bytes());
            }
        }
        // Truncated or extended.
        4 => {
            let len = rng.usize(0..=b.len());
            b.truncate(len);
            if rng.bool() {
                b.extend((0..rng.usize(0..300)).map(|_| rng.u8(..)));
            }
        }
        // A burst of random bytes.
        5 => {
            let start = rng.usize(0..b.len());
            let end = (start + rng.usize(1..64)).min(b.len());
            rng.fill(&mut b[start..end]);
        }
        // Single bit flips.
        _ => {
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..b.len());
                b[at] ^= 1 << rng.u8(0..8);
            }
        }
    }
    // Most inputs get valid checksums, so that the damage is seen by what is behind them.
    let fixed = rng.u8(0..10) < 8;
    if fixed {
        fix_checksums(&mut b);
    }
    (b, fixed)
}

/// A state without heap data: loading it allocates only what the store's reader does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flat {
    done: u64,
    sum: u64,
    flags: [u8; 16],
    ratio: f64,
    tail: (u32, u16, bool),
}

impl Checkpointable for Flat {
    const SCHEMA: u64 = 0x4e57_11e5_0000_0002;
}

fn flat(rng: &mut fastrand::Rng) -> Flat {
    let mut flags = [0; 16];
    rng.fill(&mut flags);
    Flat {
        done: rng.u64(..),
        sum: rng.u64(..),
        flags,
        ratio: rng.f64(),
        tail: (rng.u32(..), rng.u16(..), rng.bool()),
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    inputs: usize,
    loaded: usize,
    corrupt: usize,
    codec: usize,
    schema: usize,
    /// Loaded values that were never saved, from inputs with forged checksums.
    forged: usize,
    /// The largest single allocation made while loading, minus the input's size.
    largest_excess: isize,
    worst: Vec<u8>,
}

impl Outcomes {
    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} inputs, {} loaded ({} of them forged), {} corrupt, {} undecodable, \
             {} other schema, 0 panics; largest allocation minus input size: {} bytes",
            self.inputs,
            self.loaded,
            self.forged,
            self.corrupt,
            self.codec,
            self.schema,
            self.largest_excess
        )
    }
}

/// Feeds `n` hostile files (noise and mutations of `seeds`) to a manager loading them as `T`.
fn feed<T: Checkpointable + PartialEq + std::fmt::Debug>(
    tmp: &Path,
    rng: &mut fastrand::Rng,
    seeds: &[(Vec<u8>, Vec<T>)],
    n: usize,
    list_in_probe: bool,
) -> Outcomes {
    let dir = tmp.join(format!("store-{}", fastrand::u64(..)));
    let mgr = FailsafeManager::open(&dir).unwrap();
    let staging = tmp.join("staging");
    let path = dir.join(format!("{ID}.ckpt"));
    let mut out = Outcomes { largest_excess: isize::MIN, ..Outcomes::default() };
    for i in 0..n {
        let (input, forged): (Vec<u8>, bool) = if i % 10 == 0 {
            // Pure noise, half of it behind a valid magic, version and header checksum.
            let mut b: Vec<u8> = (0..rng.usize(0..1024)).map(|_| rng.u8(..)).collect();
            if rng.bool() && b.len() >= 9 {
                b[..8].copy_from_slice(b"RSLNCKPT");
                b[8] = 1;
                fix_checksums(&mut b);
            }
            (b, true)
        } else {
            let (base, _) = &seeds[rng.usize(0..seeds.len())];
            mutate(base, rng)
        };
        // A new file (not the old one rewritten), so the manager reads it afresh.
        fs::write(&staging, &input).unwrap();
        fs::rename(&staging, &path).unwrap();
        let with_history = i % 4 == 0;
        let (result, largest) = largest_allocation(|| {
            let loaded = mgr.load_checkpoint::<T>(ID);
            let history = with_history.then(|| mgr.history::<T>(ID));
            if list_in_probe {
                // Summaries read 64 KiB at once, then record by record.
                let _ = mgr.operations().unwrap();
            }
            (loaded, history)
        });
        if !list_in_probe && i % 16 == 0 {
            // Listing skips damaged files, never fails over them.
            let _ = mgr.operations().unwrap();
        }
        let excess = largest as isize - input.len() as isize;
        if excess > out.largest_excess {
            out.largest_excess = excess;
            out.worst = input.clone();
        }
        out.inputs += 1;
        let (loaded, history) = result;
        match loaded {
            Ok(Some(cp)) => {
                out.loaded += 1;
                // Unless the checksums were forged, whatever loads is a value that was saved.
                let saved = seeds.iter().any(|(_, values)| values.contains(&cp.data));
                assert!(saved || forged, "input {i}: loaded a value never saved: {:?}", cp.data);
                out.forged += usize::from(!saved);
                assert_eq!(cp.operation_id, ID);
                // An older record with forged checksums may fail to decode.
                match history {
                    Some(Ok(history)) => assert_eq!(history[0].sequence, cp.sequence),
                    Some(Err(e)) => assert!(forged, "input {i}: history: {e}"),
                    None => {}
                }
            }
            Ok(None) => panic!("input {i}: an existing file read as no checkpoint"),
            Err(Error::Corrupt { path: p, .. }) => {
                assert_eq!(p, path);
                out.corrupt += 1;
            }
            Err(Error::Codec { operation_id, .. }) => {
                assert_eq!(operation_id, ID);
                out.codec += 1;
            }
            Err(Error::SchemaMismatch { .. }) => out.schema += 1,
            Err(e) => panic!("input {i}: unexpected error {e}"),
        }
    }
    out
}

fn scratch_dir() -> tempfile::TempDir {
    // Memory-backed when available: the inputs are many small files.
    tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap()
}

fn check_bound(out: &Outcomes, what: &str, limit: isize) {
    println!("{} (limit {limit})", out.line(what));
    assert!(
        out.largest_excess <= limit,
        "{what}: an allocation {} bytes larger than a {}-byte input: {:02x?}",
        out.largest_excess,
        out.worst.len(),
        &out.worst[..out.worst.len().min(160)]
    );
}

/// The store's reader (header, slots, records) allocates no more than the file holds.
#[test]
fn the_file_reader_allocates_no_more_than_the_input() {
    let tmp = scratch_dir();
    let mut rng = crate::rng("hostile-flat");
    let seeds = seeds(tmp.path(), &mut rng, 12, flat);
    let out = feed(tmp.path(), &mut rng, &seeds, crate::scale(50_000, 500_000), false);
    check_bound(&out, "hostile bytes, flat state", SLACK as isize);
}

/// Decoding a state with strings, sequences, maps and enums: no panic, and hostile length
/// fields are bounded.
#[test]
fn hostile_payloads_decode_within_bounds() {
    let tmp = scratch_dir();
    let mut rng = crate::rng("hostile-rich");
    let seeds = seeds(tmp.path(), &mut rng, 12, rich);
    let out = feed(tmp.path(), &mut rng, &seeds, crate::scale(50_000, 500_000), false);
    check_bound(&out, "hostile bytes, rich state", DECODE_LIMIT);
}

/// Files bigger than the store reads in one go (64 KiB) and than it caches (256 KiB), with
/// forged geometry: the record-by-record paths are bounded too.
#[test]
fn large_hostile_files_are_bounded() {
    let tmp = scratch_dir();
    let mut rng = crate::rng("hostile-large");
    let seeds = seeds(tmp.path(), &mut rng, 3, |rng| {
        let mut value = rich(rng);
        value.blobs = vec![(0..rng.usize(20_000..200_000)).map(|_| rng.u8(..)).collect()];
        value
    });
    let out = feed(tmp.path(), &mut rng, &seeds, crate::scale(300, 3_000), true);
    check_bound(&out, "hostile bytes, large files", DECODE_LIMIT);
}
