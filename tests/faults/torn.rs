//! Torn and rotten files: a checkpoint file holding five records is truncated at every offset,
//! every bit of its header is flipped, and random bits and bursts of its records are damaged.
//!
//! The test reads the slot layout (`docs/FORMAT.md`) to know which records each damage leaves
//! intact, and predicts the exact outcome: the newest intact record (and `history` lists exactly
//! the intact ones, newest first), or `Error::Corrupt` naming the file when the header is damaged
//! or no record is left. Any loaded checkpoint must equal, field for field, the one saved with
//! its sequence number. Anything else is counted as wrong.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use resilience::{Error, FailsafeManager, ProcessState};

use crate::crash::{Tally, expected};

const ID: &str = "torn";
const KEEP: usize = 4;

struct Saved {
    state: ProcessState,
    progress: f64,
    data: Tally,
}

/// Where the header and each record lie in the file.
struct Map {
    header_len: usize,
    /// `(sequence, start, len)` per record.
    records: Vec<(u64, usize, usize)>,
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn map(bytes: &[u8]) -> Map {
    let (slot_count, slot_size, slots_offset) =
        (u32_at(bytes, 12), u32_at(bytes, 16), u32_at(bytes, 20));
    let header_len = 32 + u32_at(bytes, 24);
    let mut records = Vec::new();
    for slot in 0..slot_count {
        let start = slots_offset + slot * slot_size;
        let len = u32_at(bytes, start + 4) + 8;
        if len > 8 {
            let sequence = u64::from_le_bytes(bytes[start + 8..start + 16].try_into().unwrap());
            records.push((sequence, start, len));
        }
    }
    Map { header_len, records }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    path: PathBuf,
    bytes: Vec<u8>,
    map: Map,
    saved: Vec<Saved>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mgr = FailsafeManager::builder().dir(&dir).max_checkpoints(KEEP).build().unwrap();
    let states = [ProcessState::Running, ProcessState::Paused, ProcessState::Failed];
    let mut saved = Vec::new();
    // Growing data: the file is rewritten with bigger slots along the way.
    for k in 1..=9u64 {
        let s = Saved {
            state: states[k as usize % 3],
            progress: k as f64 / 10.0,
            data: expected(k * 90),
        };
        mgr.save_checkpoint(ID, "torn job", s.state, s.progress, &s.data).unwrap();
        saved.push(s);
    }
    let path = dir.join(format!("{ID}.ckpt"));
    let bytes = fs::read(&path).unwrap();
    let map = map(&bytes);
    let mut sequences: Vec<u64> = map.records.iter().map(|r| r.0).collect();
    sequences.sort();
    assert_eq!(sequences, [5, 6, 7, 8, 9], "the file holds the five newest records");
    Fixture { _tmp: tmp, dir, path, bytes, map, saved }
}

#[derive(Default)]
struct Counts {
    cases: usize,
    newest: usize,
    fell_back: usize,
    corrupt: usize,
    wrong: Vec<String>,
}

impl Counts {
    fn line(&self, what: &str, noun: &str) -> String {
        format!(
            "{what}: {} {noun}, {} newest, {} fell back, {} corrupt, {} wrong",
            self.cases,
            self.newest,
            self.fell_back,
            self.corrupt,
            self.wrong.len()
        )
    }
}

impl Fixture {
    /// Checks the file as it is now against the prediction: `intact` are the sequences whose
    /// bytes are untouched, `header_ok` whether the header is.
    fn check(&self, header_ok: bool, mut intact: Vec<u64>, what: &str, counts: &mut Counts) {
        counts.cases += 1;
        intact.sort_by(|a, b| b.cmp(a));
        let predicted = if header_ok { intact.first().copied() } else { None };
        let mgr = FailsafeManager::builder().dir(&self.dir).max_checkpoints(KEEP).build().unwrap();
        let wrong = |counts: &mut Counts, why: String| counts.wrong.push(format!("{what}: {why}"));
        match (mgr.load_checkpoint::<Tally>(ID), predicted) {
            (Ok(Some(cp)), Some(seq)) if cp.sequence == seq => {
                let s = &self.saved[seq as usize - 1];
                let same = cp.data == s.data
                    && cp.state == s.state
                    && cp.progress == s.progress
                    && cp.cursor == s.data.done
                    && cp.operation_name == "torn job"
                    && cp.operation_id == ID;
                if !same {
                    return wrong(counts, format!("sequence {seq} loaded with other values"));
                }
                if seq == 9 {
                    counts.newest += 1
                } else {
                    counts.fell_back += 1
                }
                let history: Vec<u64> =
                    mgr.history::<Tally>(ID).unwrap().iter().map(|c| c.sequence).collect();
                let want: Vec<u64> = intact.iter().take(KEEP).copied().collect();
                if history != want {
                    wrong(counts, format!("history {history:?}, intact {want:?}"));
                }
            }
            (Err(Error::Corrupt { path, .. }), None) if path == self.path => counts.corrupt += 1,
            (got, predicted) => {
                let got = got.map(|cp| cp.map(|cp| cp.sequence));
                wrong(counts, format!("predicted {predicted:?}, got {got:?}"));
            }
        }
        // Listing the store never fails over a damaged file.
        if let Err(e) = mgr.operations() {
            wrong(counts, format!("operations(): {e}"));
        }
    }

    /// Sequences of the records none of whose bytes lie in `damaged`.
    fn intact_except(&self, damaged: &[usize]) -> Vec<u64> {
        self.map
            .records
            .iter()
            .filter(|(_, start, len)| !damaged.iter().any(|&at| at >= *start && at < start + len))
            .map(|r| r.0)
            .collect()
    }

    fn header_hit(&self, damaged: &[usize]) -> bool {
        damaged.iter().any(|&at| at < self.map.header_len)
    }

    fn writer(&self) -> File {
        OpenOptions::new().write(true).open(&self.path).unwrap()
    }
}

fn report(counts: &Counts, what: &str, noun: &str) {
    println!("{}", counts.line(what, noun));
    for line in counts.wrong.iter().take(10) {
        println!("  wrong: {line}");
    }
    assert!(counts.wrong.is_empty(), "{}", counts.line(what, noun));
}

#[test]
fn truncation_at_every_offset() {
    let f = fixture();
    let file = f.writer();
    let mut counts = Counts::default();
    for len in (0..f.bytes.len()).rev() {
        file.set_len(len as u64).unwrap();
        let intact: Vec<u64> =
            f.map.records.iter().filter(|(_, start, n)| start + n <= len).map(|r| r.0).collect();
        f.check(len >= f.map.header_len, intact, &format!("truncated to {len}"), &mut counts);
    }
    assert!(counts.newest > 0 && counts.fell_back > 0 && counts.corrupt > 0);
    report(&counts, &format!("torn ({}-byte file, 5 records)", f.bytes.len()), "truncations");
}

/// Flips bits (`(offset, mask)`), checks, and puts the bytes back.
fn flip_and_check(
    f: &Fixture,
    file: &File,
    flips: &[(usize, u8)],
    what: &str,
    counts: &mut Counts,
) {
    let mut damaged: Vec<usize> = Vec::new();
    for &(at, mask) in flips {
        let mut b = [0u8];
        file.read_at(&mut b, at as u64).unwrap();
        file.write_all_at(&[b[0] ^ mask], at as u64).unwrap();
        damaged.push(at);
    }
    // A byte flipped twice is intact again.
    damaged.retain(|&at| flips.iter().filter(|f| f.0 == at).fold(0u8, |m, f| m ^ f.1) != 0);
    f.check(!f.header_hit(&damaged), f.intact_except(&damaged), what, counts);
    for &(at, _) in flips {
        file.write_all_at(&f.bytes[at..=at], at as u64).unwrap();
    }
}

#[test]
fn rotten_bits_in_header_and_records() {
    let f = fixture();
    let file = OpenOptions::new().read(true).write(true).open(&f.path).unwrap();
    let mut rng = crate::rng("rotten");
    let slots_offset = u32_at(&f.bytes, 20);

    let mut header = Counts::default();
    for at in 0..slots_offset {
        for bit in 0..8 {
            flip_and_check(
                &f,
                &file,
                &[(at, 1 << bit)],
                &format!("header bit {at}.{bit}"),
                &mut header,
            );
        }
    }
    report(&header, "rotten header", "bit flips (every bit)");

    let mut records = Counts::default();
    let n = crate::scale(3_000, 30_000);
    for _ in 0..n {
        let at = rng.usize(slots_offset..f.bytes.len());
        let bit = rng.u8(0..8);
        flip_and_check(&f, &file, &[(at, 1 << bit)], &format!("bit {at}.{bit}"), &mut records);
    }
    for _ in 0..n / 3 {
        // Several bits at once, anywhere in the slots.
        let flips: Vec<(usize, u8)> = (0..rng.usize(2..9))
            .map(|_| (rng.usize(slots_offset..f.bytes.len()), 1 << rng.u8(0..8)))
            .collect();
        flip_and_check(&f, &file, &flips, &format!("bits {flips:?}"), &mut records);
    }
    for _ in 0..n / 3 {
        // A burst of garbage, as a torn sector would leave.
        let start = rng.usize(slots_offset..f.bytes.len());
        let len = rng.usize(1..512).min(f.bytes.len() - start);
        let flips: Vec<(usize, u8)> =
            (start..start + len).map(|at| (at, rng.u8(1..=255))).collect();
        flip_and_check(&f, &file, &flips, &format!("burst {start}+{len}"), &mut records);
    }
    assert!(records.newest > 0 && records.fell_back > 0);
    report(&records, "rotten records", "damages (seeded single bits, bit groups, bursts)");
}
