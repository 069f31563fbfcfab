//! Per-thread counters of `#[retry]` call sites.
//!
//! An atomic read-modify-write costs several nanoseconds on some machines (about 5 ns on the
//! benchmark machine of docs/PERFORMANCE.md), more than the whole success path may. So each
//! thread counts the calls it makes in slots of its own, with a plain load and store (only
//! the owning thread writes a slot); statistics add up the slots of every live thread, and a
//! thread's slots are folded into the sites' shared counters when the thread exits. The
//! counts stay exact: nothing is lost between threads, and a snapshot sees every finished call
//! of every thread (a relaxed load of a word that its thread has stored).
//!
//! The first `SLOTS` sites to register get a slot; later ones count in their shared atomics.
//! The budgets of the global manager (the ones `#[retry(budget = ..)]` uses) count their
//! deposits the same way.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::sync::Arc;

use super::budget::Budget;
use super::site::RetrySite;
use super::stats::{Counters, Raw};

/// Sites with a per-thread slot.
pub(crate) const SLOTS: usize = 256;

/// One site's counts on one thread. Only that thread writes them, so they need neither
/// packing nor read-modify-write instructions.
struct Slot {
    first_try: AtomicU64,
    ok_calls: AtomicU64,
    failed_calls: AtomicU64,
    retries: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            first_try: AtomicU64::new(0),
            ok_calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    fn zero(&self) {
        for word in [&self.first_try, &self.ok_calls, &self.failed_calls, &self.retries] {
            word.store(0, Relaxed);
        }
    }

    fn raw(&self) -> Raw {
        Raw {
            first_try: self.first_try.load(Relaxed),
            ok_calls: self.ok_calls.load(Relaxed),
            failed_calls: self.failed_calls.load(Relaxed),
            retries: self.retries.load(Relaxed),
            exhausted: 0,
        }
    }
}

/// Adds `n` to a word only this thread writes: no atomic read-modify-write.
#[inline(always)]
fn bump(word: &AtomicU64, n: u64) {
    word.store(word.load(Relaxed).wrapping_add(n), Relaxed);
}

/// The slots of one thread.
struct ThreadCounts {
    slots: [Slot; SLOTS],
}

/// The live threads' slots, the owners of slot `i`, and the slots of exited threads (zeroed,
/// for the next new thread: their number stays that of the most threads alive).
struct Table {
    threads: Vec<&'static ThreadCounts>,
    owners: Vec<Owner>,
    free: Vec<&'static ThreadCounts>,
}

/// What a slot counts for.
enum Owner {
    Site(&'static RetrySite),
    /// A budget of the global manager (which never drops them): `first_try` counts deposits.
    Budget(Arc<Budget>),
}

static TABLE: Mutex<Table> =
    Mutex::new(Table { threads: Vec::new(), owners: Vec::new(), free: Vec::new() });

fn table() -> MutexGuard<'static, Table> {
    // The table only lists slots; the counts live in atomics.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The next free slot for `site`, or `None` when all are taken.
pub(crate) fn assign(site: &'static RetrySite) -> Option<u32> {
    assign_to(Owner::Site(site))
}

/// The next free slot for a budget of the global manager, or `None` when all are taken.
pub(crate) fn assign_budget(budget: Arc<Budget>) -> Option<u32> {
    assign_to(Owner::Budget(budget))
}

fn assign_to(owner: Owner) -> Option<u32> {
    let mut table = table();
    if table.owners.len() >= SLOTS {
        return None;
    }
    table.owners.push(owner);
    u32::try_from(table.owners.len() - 1).ok()
}

thread_local! {
    /// This thread's slots. No destructor, so reading it is one thread-local load.
    static COUNTS: Cell<Option<&'static ThreadCounts>> = const { Cell::new(None) };
    /// Folds this thread's slots into the shared counters when the thread exits.
    static GUARD: Guard = const { Guard };
}

struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        let Ok(Some(counts)) = COUNTS.try_with(Cell::take) else { return };
        let mut table = table();
        for (slot, owner) in counts.slots.iter().zip(&table.owners) {
            match owner {
                Owner::Site(site) => site.counters.absorb(slot.raw()),
                Owner::Budget(budget) => budget.absorb(slot.first_try.load(Relaxed)),
            }
            slot.zero();
        }
        table.threads.retain(|t| !std::ptr::eq(*t, counts));
        table.free.push(counts);
    }
}

/// Runs `f` on this thread's slot `slot`; `false` when the thread has no slots (yet, or any
/// more, during its exit).
#[inline(always)]
fn with_slot(slot: u32, f: impl FnOnce(&Slot)) -> bool {
    let counts = COUNTS.try_with(Cell::get).ok().flatten();
    match counts.and_then(|c| c.slots.get(slot as usize)) {
        Some(slot) => {
            f(slot);
            true
        }
        None => false,
    }
}

/// Counts a first-attempt success of the site owning `slot`.
#[inline(always)]
pub(crate) fn first_try_success(slot: u32, shared: &Counters) {
    if !with_slot(slot, |s| {
        bump(&s.first_try, 1);
    }) {
        first_try_slow(slot, shared);
    }
}

#[cold]
#[inline(never)]
fn first_try_slow(slot: u32, shared: &Counters) {
    if !init()
        || !with_slot(slot, |s| {
            bump(&s.first_try, 1);
        })
    {
        shared.first_try_success();
    }
}

/// Counts a deposit into the budget owning `slot`; `false` when this thread cannot (the caller
/// then counts it in the budget's shared atomic).
#[inline(always)]
pub(crate) fn deposit(slot: u32) -> bool {
    with_slot(slot, |s| bump(&s.first_try, 1)) || deposit_slow(slot)
}

#[cold]
#[inline(never)]
fn deposit_slow(slot: u32) -> bool {
    init() && with_slot(slot, |s| bump(&s.first_try, 1))
}

/// The deposits of the budget owning `slot` over every live thread, plus `shared` (those of
/// threads without slots, and of exited threads), read under the table's lock.
pub(crate) fn deposits(slot: u32, shared: &AtomicU64) -> u64 {
    let table = table();
    let mut total = shared.load(Relaxed);
    for thread in &table.threads {
        if let Some(s) = thread.slots.get(slot as usize) {
            total += s.first_try.load(Relaxed);
        }
    }
    total
}

/// Counts a call that went through the retry loop.
#[inline]
pub(crate) fn finish(slot: u32, shared: &Counters, ok: bool, retries: u32) {
    let counted = with_slot(slot, |s| {
        if ok && retries == 0 {
            bump(&s.first_try, 1);
            return;
        }
        bump(if ok { &s.ok_calls } else { &s.failed_calls }, 1);
        bump(&s.retries, u64::from(retries));
    });
    if !counted {
        finish_slow(slot, shared, ok, retries);
    }
}

#[cold]
#[inline(never)]
fn finish_slow(slot: u32, shared: &Counters, ok: bool, retries: u32) {
    if init() && with_slot(slot, |_| ()) {
        return finish(slot, shared, ok, retries);
    }
    shared.finish(ok, retries);
}

/// Gives this thread its slots; `false` when it is exiting.
#[cold]
#[inline(never)]
fn init() -> bool {
    if COUNTS.try_with(Cell::get).ok().flatten().is_some() {
        return true;
    }
    // Registers the guard's destructor first: a thread that cannot fold its slots at exit
    // (it is exiting already) counts in the shared atomics instead.
    if GUARD.try_with(|_| ()).is_err() {
        return false;
    }
    let mut table = table();
    let counts = table.free.pop().unwrap_or_else(|| {
        Box::leak(Box::new(ThreadCounts { slots: [const { Slot::new() }; SLOTS] }))
    });
    table.threads.push(counts);
    COUNTS.try_with(|c| c.set(Some(counts))).is_ok()
}

fn sum(table: &Table, slot: u32) -> Raw {
    let mut raw = Raw::ZERO;
    for thread in &table.threads {
        if let Some(s) = thread.slots.get(slot as usize) {
            raw.add(s.raw());
        }
    }
    raw
}

/// The counts of a site: its shared counters plus slot `slot` of every live thread, read
/// under the table's lock (so that a thread folding its slots at exit is counted once).
pub(crate) fn total(slot: Option<u32>, shared: &Counters) -> Raw {
    let table = table();
    let mut raw = shared.raw();
    if let Some(slot) = slot {
        raw.add(sum(&table, slot));
    }
    raw
}

/// Zeroes a site's counts: the shared ones, and the slots by taking their current sum as the
/// new zero (`baseline`), since only their threads may write them.
pub(crate) fn clear(slot: Option<u32>, shared: &Counters, baseline: &Mutex<Raw>) {
    let table = table();
    shared.zero();
    let sum = slot.map_or(Raw::ZERO, |slot| sum(&table, slot));
    *baseline.lock().unwrap_or_else(PoisonError::into_inner) = sum;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_counts_survive_its_exit() {
        static SITE: RetrySite = RetrySite::new("local::test", crate::retry::RetryConfig::new(1));
        let slot = assign(&SITE).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        first_try_success(slot, &SITE.counters);
                    }
                    finish(slot, &SITE.counters, true, 2);
                    finish(slot, &SITE.counters, false, 3);
                });
            }
        });
        let all = total(Some(slot), &SITE.counters);
        assert_eq!((all.first_try, all.ok_calls, all.failed_calls, all.retries), (4000, 4, 4, 20));
    }
}
