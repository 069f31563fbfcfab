//! Power loss, simulated: every write the store makes is recorded through its I/O seam, and for
//! every point of a workload the disk states a power loss could leave there are built
//! (`explore.rs` says which) and opened with a fresh manager, which must find:
//! - every save acknowledged before that point, as itself or as a newer save;
//! - no file `Corrupt`;
//! - `recoverable_operations()` in agreement with `load_checkpoint`;
//! - an operation whose discard was acknowledged still gone.
//!
//! Each test prints `powerloss: S crash states, A acknowledged saves checked, L lost, C corrupt`.
//! Random choices come from `RESILIENCE_POWERLOSS_SEED` (printed); `RESILIENCE_POWERLOSS_LONG=1`
//! builds many more states per point.

mod explore;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Mutex;

use resilience::__private::io::{self, IoOp};
use resilience::{Checkpointable, Durability, Error, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

use explore::Disk;

/// A checkpoint whose bytes say which save wrote them: `n`, and `n`-dependent padding whose
/// length grows with `n` when asked (to outgrow the file's slots).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Work {
    n: u64,
    pad: Vec<u8>,
}

impl Checkpointable for Work {
    const SCHEMA: u64 = 0x9051;
}

fn work(n: u64, grow: bool) -> Work {
    let len = if grow { 64 + 300 * n as usize } else { 64 };
    Work { n, pad: (0..len).map(|i| (n as usize * 31 + i) as u8).collect() }
}

/// The store directory in the explored tree `root`.
fn store(root: &Path) -> std::path::PathBuf {
    root.join("store")
}

/// Recording is process-wide: one workload at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn long() -> bool {
    std::env::var_os("RESILIENCE_POWERLOSS_LONG").is_some_and(|v| v != "0" && !v.is_empty())
}

fn seed() -> u64 {
    std::env::var("RESILIENCE_POWERLOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// What the workload was told, per operation, up to a point of the log.
#[derive(Debug, Default, Clone)]
struct Told {
    /// Every save it attempted.
    tried: BTreeSet<u64>,
    /// The newest save acknowledged as durable.
    acked: Option<u64>,
    /// A discard was attempted / acknowledged (and no save came after it).
    discard_tried: bool,
    discarded: bool,
}

/// The marks a workload adds to the log.
fn tried(op: &str, n: u64) {
    io::mark(format!("try {op} {n}"));
}
fn acked(op: &str, n: u64) {
    io::mark(format!("ack {op} {n}"));
}
fn discard_tried(op: &str) {
    io::mark(format!("try-discard {op}"));
}
fn discarded(op: &str) {
    io::mark(format!("discarded {op}"));
}

/// Marks `item k` (a checkpointed run processed item `k`) and `run-ok`: how far the run got.
#[derive(Debug, Default, Clone)]
struct Run {
    items_done: u64,
    completed: bool,
    /// Every mark so far.
    marks: Vec<String>,
}

fn note(told: &mut HashMap<String, Told>, run: &mut Run, mark: &str) {
    run.marks.push(mark.to_owned());
    if !["try ", "ack ", "try-discard ", "discarded "].iter().any(|p| mark.starts_with(p)) {
        if mark.starts_with("item ") {
            run.items_done += 1;
        }
        run.completed |= mark == "run-ok";
        return;
    }
    if mark.starts_with("item ") {
        run.items_done += 1;
        return;
    }
    if mark == "run-ok" {
        run.completed = true;
        return;
    }
    let mut words = mark.split(' ');
    let (kind, op) = (words.next().unwrap(), words.next().unwrap().to_owned());
    let n = words.next().map(|n| n.parse::<u64>().unwrap());
    let t = told.entry(op).or_default();
    match kind {
        "try" => {
            t.tried.insert(n.unwrap());
            t.discard_tried = false;
            t.discarded = false;
        }
        "ack" => t.acked = n,
        "try-discard" => t.discard_tried = true,
        "discarded" => {
            t.discarded = true;
            t.acked = None;
            t.tried.clear();
        }
        other => panic!("unknown mark {other}"),
    }
}

#[derive(Debug, Default)]
struct Tally {
    states: usize,
    acked_checked: usize,
    lost: Vec<String>,
    corrupt: Vec<String>,
    disagree: Vec<String>,
    resumes: Vec<String>,
    resumed: usize,
}

impl Tally {
    fn report(&self, workload: &str, seed: u64) {
        use std::io::Write;
        let summary = format!(
            "powerloss: {} crash states, {} acknowledged saves checked, {} lost, {} corrupt ({workload}{}, seed {seed})",
            self.states,
            self.acked_checked,
            self.lost.len(),
            self.corrupt.len(),
            if self.resumed > 0 {
                format!(", {} resumed runs", self.resumed)
            } else {
                String::new()
            },
        );
        // Past the harness's capture: the figures belong in every run's output.
        println!("{summary}");
        let _ = writeln!(std::io::stderr(), "{summary}");
        let show = |what: &str, list: &[String]| {
            assert!(
                list.is_empty(),
                "{workload}: {} {what}, first: {:?}",
                list.len(),
                &list[..list.len().min(3)]
            );
        };
        show("lost", &self.lost);
        show("corrupt", &self.corrupt);
        show("listings that disagree with loads", &self.disagree);
        show("resumed runs gone wrong", &self.resumes);
        assert!(
            self.states > 0 && self.acked_checked + self.resumed > 0,
            "{workload}: nothing was checked"
        );
    }
}

/// What a workload checks besides its saves: given a fresh manager on a crash state, the tree's
/// root and how far its run got, how many acknowledged results it checked, or what is wrong.
type Resume<'a> = &'a dyn Fn(&FailsafeManager, &Path, &Run) -> Result<usize, String>;

/// Opens `state` with a fresh manager and checks it against what the workload was told.
fn check(
    state: &explore::State,
    told: &HashMap<String, Told>,
    run: &Run,
    resume: Option<Resume<'_>>,
    (root, at): (&Path, &str),
    tally: &mut Tally,
) {
    // Where the workload ran: backups record their sources' absolute paths.
    std::fs::remove_dir_all(root).unwrap();
    std::fs::create_dir(root).unwrap();
    explore::materialize(state, root);
    let manager = FailsafeManager::open(store(root)).unwrap();
    let listed: HashSet<String> = match manager.recoverable_operations() {
        Ok(list) => list.into_iter().map(|s| s.operation_id).collect(),
        Err(e) => {
            tally.corrupt.push(format!("{at}: listing failed: {e}"));
            return;
        }
    };
    tally.states += 1;
    for (op, t) in told {
        let loaded = match manager.load_checkpoint::<Work>(op) {
            Ok(loaded) => loaded,
            Err(e) => {
                tally.corrupt.push(format!("{at}: {op}: {e}"));
                continue;
            }
        };
        if t.acked.is_some() {
            tally.acked_checked += 1;
        }
        let resumable = loaded.as_ref().is_some_and(|cp| cp.state.is_resumable());
        if resumable != listed.contains(op) {
            tally.disagree.push(format!("{at}: {op}: loaded {loaded:?}, listed {listed:?}"));
        }
        match loaded {
            None if t.acked.is_some() && !t.discard_tried => {
                tally.lost.push(format!(
                    "{at}: {op}: save {} acknowledged, none loads",
                    t.acked.unwrap()
                ));
            }
            None => {}
            Some(_) if t.discarded => {
                tally.lost.push(format!("{at}: {op}: discarded, still loads"))
            }
            Some(cp) => {
                let n = cp.data.n;
                let whole =
                    t.tried.contains(&n) && (cp.data == work(n, true) || cp.data == work(n, false));
                if !whole {
                    tally.corrupt.push(format!("{at}: {op}: loaded save {n}, never made as such"));
                } else if t.acked.is_some_and(|a| n < a) {
                    tally.lost.push(format!(
                        "{at}: {op}: save {} acknowledged, {n} loads",
                        t.acked.unwrap()
                    ));
                }
            }
        }
    }
    if let Some(resume) = resume {
        tally.resumed += 1;
        match resume(&manager, root, run) {
            Ok(checked) => tally.acked_checked += checked,
            Err(e) => tally.resumes.push(format!("{at}: {e}")),
        }
    }
}

/// Runs `workload` on a fresh store directory while recording, then checks every crash point.
fn explore(name: &str, workload: impl FnOnce(&Path)) {
    explore_with(name, workload, None);
}

/// [`explore`], with `resume` run on every crash state too.
fn explore_with(name: &str, workload: impl FnOnce(&Path), resume: Option<Resume<'_>>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let mut disk = Disk::snapshot(&root);
    io::start_recording();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| workload(&root)));
    let log = io::stop_recording();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(log.iter().any(|op| matches!(op, IoOp::Sync { .. })), "{name}: nothing was recorded");
    let samples = if long() { 60 } else { 6 };
    let mut told: HashMap<String, Told> = HashMap::new();
    let mut run = Run::default();
    let mut tally = Tally::default();
    for (i, op) in log.iter().enumerate() {
        if let IoOp::Mark(mark) = op {
            if let Some(file) = mark.strip_prefix("user-file ") {
                let (path, bytes) = user_file(file);
                disk.user_file(&root.join(path), bytes);
            }
            note(&mut told, &mut run, mark);
            continue;
        }
        disk.apply(op);
        // The crash comes right after operation `i`.
        let at = format!("{name} after op {i} ({op:?})").chars().take(160).collect::<String>();
        let mut seen = HashSet::new();
        let mut check_once = |state: explore::State, tally: &mut Tally| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            state.hash(&mut h);
            if seen.insert(h.finish()) {
                check(&state, &told, &run, resume, (&root, &at), tally);
            }
        };
        check_once(disk.crashed(0, |_| 0), &mut tally);
        check_once(disk.current(), &mut tally);
        if disk.anything_unsynced() {
            for _ in 0..samples {
                let names = rng.usize(0..=disk.unsynced_names());
                let state = disk.crashed(names, |versions| rng.usize(0..versions));
                check_once(state, &mut tally);
            }
        }
    }
    tally.report(name, seed);
}

fn save(manager: &FailsafeManager, op: &str, n: u64, grow: bool, state: ProcessState) {
    tried(op, n);
    manager.save_checkpoint(op, "Work", state, 0.0, &work(n, grow)).unwrap();
}

#[test]
fn durable_saves_first_ones_and_ones_that_outgrow_their_slots() {
    explore("durable", |root| {
        let manager =
            FailsafeManager::builder().dir(store(root)).max_checkpoints(3).build().unwrap();
        let lock = manager.lock("grow").unwrap();
        for n in 1..=6 {
            // Grows past its slot: the file is rewritten (temp file, sync, rename, dir sync).
            save(&manager, "grow", n, true, ProcessState::Running);
            acked("grow", n);
            // Same size each time: written in place, under a short lock of its own.
            save(&manager, "steady", n, false, ProcessState::Running);
            acked("steady", n);
        }
        save(&manager, "grow", 7, true, ProcessState::Completed);
        acked("grow", 7);
        drop(lock);
    });
}

#[test]
fn buffered_saves_survive_once_flushed() {
    explore("buffered", |root| {
        let manager = FailsafeManager::builder()
            .dir(store(root))
            .max_checkpoints(3)
            .durability(Durability::Buffered)
            .build()
            .unwrap();
        let lock = manager.lock("held").unwrap();
        for n in 1..=12 {
            // Alternating states: each save is written at once, none is synced by itself.
            let state = if n % 2 == 0 { ProcessState::Paused } else { ProcessState::Running };
            save(&manager, "held", n, n > 8, state);
            // Without the lock: written at once, not synced.
            save(&manager, "free", n, false, ProcessState::Running);
            if n % 4 == 0 {
                manager.flush().unwrap();
                acked("held", n);
                acked("free", n);
            }
        }
        drop(lock);
    });
}

#[test]
fn discards_and_clears_stay_done() {
    explore("discard", |root| {
        let manager = FailsafeManager::open(store(root)).unwrap();
        for (op, state) in [
            ("a", ProcessState::Running),
            ("b", ProcessState::Completed),
            ("c", ProcessState::Running),
        ] {
            save(&manager, op, 1, false, state);
            acked(op, 1);
        }
        discard_tried("a");
        assert!(manager.discard("a").unwrap());
        discarded("a");
        discard_tried("b");
        assert_eq!(manager.clear_completed_checkpoints().unwrap(), 1);
        discarded("b");
        save(&manager, "c", 2, false, ProcessState::Running);
        acked("c", 2);
        // A new operation under the name of a discarded one.
        save(&manager, "a", 5, false, ProcessState::Running);
        acked("a", 5);
    });
}

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Sum {
    #[checkpoint(cursor)]
    done: u64,
    sum: u64,
    seen: Vec<u64>,
}

const EVERY: u64 = 5;
const ITEMS: u64 = 23;

thread_local! {
    /// Items the current run processed.
    static PROCESSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[checkpointed(manager = mgr, every = 5, id = "sum")]
fn sum(mgr: &FailsafeManager, items: &[u64], state: &mut Sum) -> Result<u64, Error> {
    for &item in items {
        io::mark(format!("item {item}"));
        PROCESSED.set(PROCESSED.get() + 1);
        state.sum += item;
        state.seen.push(item);
    }
    Ok(state.sum)
}

#[test]
fn a_checkpointed_run_resumes_with_its_effects_and_redoes_at_most_every_items() {
    let items: Vec<u64> = (0..ITEMS).collect();
    let resume = |manager: &FailsafeManager, _: &Path, run: &Run| -> Result<usize, String> {
        let checkpoint = manager.load_checkpoint::<Sum>("sum").map_err(|e| e.to_string())?;
        match checkpoint {
            // The last save landed: the job is done, and a new call starts a fresh run.
            Some(cp) if cp.state == ProcessState::Completed => {
                return if cp.data.seen == items {
                    Ok(usize::from(run.completed))
                } else {
                    Err(format!("completed over {:?}", cp.data.seen))
                };
            }
            other if run.completed => {
                return Err(format!("the run returned Ok, its checkpoint is {other:?}"));
            }
            _ => {}
        }
        PROCESSED.set(0);
        let mut state = Sum::default();
        let total = sum(manager, &items, &mut state).map_err(|e| e.to_string())?;
        let redone = PROCESSED.get() + run.items_done - ITEMS;
        if total != items.iter().sum::<u64>() || state.seen != items {
            return Err(format!("resumed to {total} over {:?}", state.seen));
        }
        if redone > EVERY {
            return Err(format!("{redone} items redone after {} were done", run.items_done));
        }
        Ok(0)
    };
    explore_with(
        "checkpointed",
        |root| {
            let manager = FailsafeManager::open(store(root)).unwrap();
            let mut state = Sum::default();
            assert_eq!(sum(&manager, &items, &mut state).unwrap(), items.iter().sum::<u64>());
            io::mark("run-ok");
        },
        Some(&resume),
    );
}

/// Writes `len` bytes `letter` to `rel` (under `root`) and syncs it, as the test's own write,
/// noted in the log for the explorer.
fn write_user_file(root: &Path, rel: &str, letter: u8, len: usize) {
    use std::io::Write;
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&vec![letter; len]).unwrap();
    file.sync_all().unwrap();
    std::fs::File::open(path.parent().unwrap()).unwrap().sync_all().unwrap();
    io::mark(format!("user-file {rel} {} {len}", letter as char));
}

/// The path and bytes a `user-file` mark records.
fn user_file(mark: &str) -> (&str, Vec<u8>) {
    let mut words = mark.split(' ');
    let (rel, letter, len) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
    (rel, vec![letter.as_bytes()[0]; len.parse().unwrap()])
}

const DATA: &str = "data/catalog.bin";
const DATA_LEN: usize = 20_000;

#[test]
fn backups_rotations_and_restores_survive_as_acknowledged() {
    let check = |manager: &FailsafeManager, root: &Path, run: &Run| -> Result<usize, String> {
        let data = root.join(DATA);
        let version = |bytes: &[u8]| -> Option<u8> {
            let first = *bytes.first()?;
            (bytes.len() == DATA_LEN && bytes.iter().all(|&b| b == first)).then_some(first)
        };
        let arg = |prefix: &str| -> Vec<u8> {
            run.marks
                .iter()
                .filter_map(|m| m.strip_prefix(prefix))
                .map(|l| l.as_bytes()[0])
                .collect()
        };
        let (tried, made) = (arg("try-backup "), arg("backup "));
        let listed = manager.list_backups(&data).map_err(|e| format!("list_backups: {e}"))?;
        let mut held = Vec::new();
        for backup in &listed {
            let bytes = std::fs::read(&backup.path).map_err(|e| e.to_string())?;
            match version(&bytes) {
                Some(v) if tried.contains(&v) && crc32fast::hash(&bytes) == backup.checksum => {
                    held.push(v)
                }
                _ => {
                    return Err(format!("backup {} is not a whole version", backup.path.display()));
                }
            }
        }
        if let Some(newest) = made.last()
            && !held.contains(newest)
        {
            return Err(format!("backup {} acknowledged; listed: {held:?}", *newest as char));
        }
        // A power loss between the publication of a backup and the rotation it triggers may
        // leave one more; once the backup is acknowledged, the rotation is durable too.
        if held.len() > 2 && tried.len() == made.len() {
            return Err(format!("{} backups kept, max 2", held.len()));
        }
        // The data file: the user's last version, or a restored one, whole.
        let now = std::fs::read(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let now = version(&now).ok_or("the data file is torn")?;
        let user = run.marks.iter().filter_map(|m| m.strip_prefix("user-file ")).next_back();
        let user = user.map(|mark| user_file(mark).1[0]);
        let (restore_tried, restored) =
            (arg("try-restore ").last().copied(), arg("restored ").last().copied());
        let expected = match (restored, restore_tried) {
            (Some(r), _) => vec![r],
            (None, Some(r)) => vec![r, user.unwrap()],
            (None, None) => vec![user.unwrap()],
        };
        if !expected.contains(&now) {
            return Err(format!(
                "the data file holds {}, expected one of {expected:?}",
                now as char
            ));
        }
        Ok(made.len() + usize::from(restored.is_some()))
    };
    explore_with(
        "backups",
        |root| {
            let manager =
                FailsafeManager::builder().dir(store(root)).max_backups(2).build().unwrap();
            let mut made = Vec::new();
            for letter in [b'A', b'B', b'C'] {
                write_user_file(root, DATA, letter, DATA_LEN);
                io::mark(format!("try-backup {}", letter as char));
                made.push(manager.create_backup(root.join(DATA)).unwrap());
                io::mark(format!("backup {}", letter as char));
            }
            // Damaged, then restored from the backup before the newest.
            write_user_file(root, DATA, b'X', DATA_LEN);
            io::mark("try-restore B");
            manager.restore_backup(&made[1]).unwrap();
            io::mark("restored B");
        },
        Some(&check),
    );
}
