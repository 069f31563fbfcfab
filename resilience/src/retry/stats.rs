//! Retry statistics: the per-operation counters and the snapshots [`RetryManager`] reports.
//!
//! [`RetryManager`]: super::RetryManager

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Statistics of all operations run through a [`RetryManager`](super::RetryManager).
///
/// They describe the retry loop: a call counts as `successful` when its last attempt was
/// accepted (an `Ok` that `when_ok` did not reject), and as `failed` otherwise — also when a
/// `fallback` turned the last error into an `Ok`, or when `when_ok` rejected every value and
/// the last one was returned.
///
/// `success_rate` is `successful / (successful + failed)`, and `1.0` when nothing ran.
/// `total_attempts` is `total_operations + total_retries`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryStats {
    /// Calls that finished (successfully or not).
    pub total_operations: u64,
    /// Calls whose last attempt was accepted.
    pub successful: u64,
    /// Calls that ran out of attempts or met an error that is not retried.
    pub failed: u64,
    /// Attempts made, first attempts included.
    pub total_attempts: u64,
    /// Attempts after the first one.
    pub total_retries: u64,
    /// Retries refused because their [`RetryBudget`](super::RetryBudget) was exhausted (each
    /// ended its call).
    pub budget_exhausted: u64,
    /// `successful / (successful + failed)`, `1.0` when nothing ran.
    pub success_rate: f64,
    /// The same counters per operation name.
    pub by_operation: BTreeMap<String, OperationRetryStats>,
}

/// The statistics of one operation name; the fields mean what they mean in [`RetryStats`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationRetryStats {
    /// Calls that finished (successfully or not).
    pub total_operations: u64,
    /// Calls whose last attempt was accepted.
    pub successful: u64,
    /// Calls that ran out of attempts or met an error that is not retried.
    pub failed: u64,
    /// Attempts made, first attempts included.
    pub total_attempts: u64,
    /// Attempts after the first one.
    pub total_retries: u64,
    /// Retries refused by an exhausted budget.
    pub budget_exhausted: u64,
    /// `successful / (successful + failed)`, `1.0` when nothing ran.
    pub success_rate: f64,
}

impl OperationRetryStats {
    pub(crate) fn from_counts(successful: u64, failed: u64, retries: u64, exhausted: u64) -> Self {
        let total_operations = successful + failed;
        OperationRetryStats {
            total_operations,
            successful,
            failed,
            total_attempts: total_operations + retries,
            total_retries: retries,
            budget_exhausted: exhausted,
            success_rate: rate(successful, failed),
        }
    }

    pub(crate) fn merge(&mut self, other: &OperationRetryStats) {
        *self = Self::from_counts(
            self.successful + other.successful,
            self.failed + other.failed,
            self.total_retries + other.total_retries,
            self.budget_exhausted + other.budget_exhausted,
        );
    }
}

impl RetryStats {
    /// Totals over `by_operation`.
    pub(crate) fn from_operations(by_operation: BTreeMap<String, OperationRetryStats>) -> Self {
        let (mut successful, mut failed, mut retries, mut exhausted) = (0, 0, 0, 0);
        for stats in by_operation.values() {
            successful += stats.successful;
            failed += stats.failed;
            retries += stats.total_retries;
            exhausted += stats.budget_exhausted;
        }
        let totals = OperationRetryStats::from_counts(successful, failed, retries, exhausted);
        RetryStats {
            total_operations: totals.total_operations,
            successful,
            failed,
            total_attempts: totals.total_attempts,
            total_retries: retries,
            budget_exhausted: exhausted,
            success_rate: totals.success_rate,
            by_operation,
        }
    }
}

fn rate(successful: u64, failed: u64) -> f64 {
    match successful + failed {
        0 => 1.0,
        total => successful as f64 / total as f64,
    }
}

/// Plain totals of one operation's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Raw {
    pub(crate) first_try: u64,
    pub(crate) ok_calls: u64,
    pub(crate) failed_calls: u64,
    pub(crate) retries: u64,
    pub(crate) exhausted: u64,
}

impl Raw {
    pub(crate) const ZERO: Raw =
        Raw { first_try: 0, ok_calls: 0, failed_calls: 0, retries: 0, exhausted: 0 };

    pub(crate) fn add(&mut self, other: Raw) {
        self.first_try += other.first_try;
        self.ok_calls += other.ok_calls;
        self.failed_calls += other.failed_calls;
        self.retries += other.retries;
        self.exhausted += other.exhausted;
    }

    pub(crate) fn minus(self, other: Raw) -> Raw {
        Raw {
            first_try: self.first_try.saturating_sub(other.first_try),
            ok_calls: self.ok_calls.saturating_sub(other.ok_calls),
            failed_calls: self.failed_calls.saturating_sub(other.failed_calls),
            retries: self.retries.saturating_sub(other.retries),
            exhausted: self.exhausted.saturating_sub(other.exhausted),
        }
    }

    pub(crate) fn stats(self) -> OperationRetryStats {
        OperationRetryStats::from_counts(
            self.first_try + self.ok_calls,
            self.failed_calls,
            self.retries,
            self.exhausted,
        )
    }
}

/// How a packed word counts calls that retried: `calls << 32 | retries`, so that one add
/// counts both. Before either half can overflow, the word is spilled into plain totals.
pub(crate) mod packed {
    pub(crate) const LOW: u64 = (1 << 32) - 1;
    /// A half at or above this is spilled (each add is below it, so nothing overflows).
    pub(crate) const SPILL_AT: u64 = 1 << 31;

    /// The word to add for one call with `retries` retries (`retries < SPILL_AT`).
    #[inline]
    pub(crate) fn one(retries: u64) -> u64 {
        1 << 32 | retries
    }

    /// Whether a word that held `before` must be spilled after an add.
    #[inline]
    pub(crate) fn must_spill(before: u64) -> bool {
        before >> 32 >= SPILL_AT - 1 || before & LOW >= SPILL_AT
    }

    /// `(calls, retries)`.
    #[inline]
    pub(crate) fn unpack(word: u64) -> (u64, u64) {
        (word >> 32, word & LOW)
    }
}

/// Per-operation counters, relaxed atomics shared by every thread.
///
/// A first-attempt success is one add to `first_try`. A call that retried is one add too: its
/// call count and its retries are packed into one word (see [`packed`]) of `retried_ok` or
/// `failed`, spilled into `spilled` before a half can overflow, so the counts stay exact.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    first_try: AtomicU64,
    retried_ok: AtomicU64,
    failed: AtomicU64,
    exhausted: AtomicU64,
    /// Spilled `[successful calls, failed calls, retries]`.
    spilled: [AtomicU64; 3],
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Counters {
            first_try: AtomicU64::new(0),
            retried_ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            spilled: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    #[inline]
    pub(crate) fn first_try_success(&self) {
        self.first_try.fetch_add(1, Relaxed);
    }

    /// Counts a finished call that went through the retry loop.
    #[inline]
    pub(crate) fn finish(&self, ok: bool, retries: u32) {
        if ok && retries == 0 {
            return self.first_try_success();
        }
        let word = if ok { &self.retried_ok } else { &self.failed };
        let retries = u64::from(retries);
        if retries >= packed::SPILL_AT {
            return self.absorb_calls(ok, 1, retries);
        }
        if packed::must_spill(word.fetch_add(packed::one(retries), Relaxed)) {
            self.spill(word, ok);
        }
    }

    #[cold]
    #[inline(never)]
    fn spill(&self, word: &AtomicU64, ok: bool) {
        let (calls, retries) = packed::unpack(word.swap(0, Relaxed));
        self.absorb_calls(ok, calls, retries);
    }

    /// Adds plain totals of calls that retried.
    pub(crate) fn absorb_calls(&self, ok: bool, calls: u64, retries: u64) {
        self.spilled[usize::from(!ok)].fetch_add(calls, Relaxed);
        self.spilled[2].fetch_add(retries, Relaxed);
    }

    /// Adds plain totals (a thread's counts when it exits).
    pub(crate) fn absorb(&self, raw: Raw) {
        self.first_try.fetch_add(raw.first_try, Relaxed);
        self.absorb_calls(true, raw.ok_calls, raw.retries);
        self.spilled[1].fetch_add(raw.failed_calls, Relaxed);
        self.exhausted.fetch_add(raw.exhausted, Relaxed);
    }

    pub(crate) fn budget_exhausted(&self) {
        self.exhausted.fetch_add(1, Relaxed);
    }

    pub(crate) fn zero(&self) {
        for counter in [&self.first_try, &self.retried_ok, &self.failed, &self.exhausted] {
            counter.store(0, Relaxed);
        }
        for counter in &self.spilled {
            counter.store(0, Relaxed);
        }
    }

    pub(crate) fn raw(&self) -> Raw {
        let (ok_calls, ok_retries) = packed::unpack(self.retried_ok.load(Relaxed));
        let (failed_calls, failed_retries) = packed::unpack(self.failed.load(Relaxed));
        let [spilled_ok, spilled_failed, spilled_retries] =
            [0, 1, 2].map(|i| self.spilled[i].load(Relaxed));
        Raw {
            first_try: self.first_try.load(Relaxed),
            ok_calls: ok_calls + spilled_ok,
            failed_calls: failed_calls + spilled_failed,
            retries: ok_retries + failed_retries + spilled_retries,
            exhausted: self.exhausted.load(Relaxed),
        }
    }

    pub(crate) fn snapshot(&self) -> OperationRetryStats {
        self.raw().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_counts_stay_exact_across_a_spill() {
        let counters = Counters::new();
        counters.finish(true, 0);
        counters.finish(true, 2);
        counters.finish(false, 3);
        counters.finish(false, u32::MAX);
        // Push the packed retries of successful calls over the spill threshold.
        for _ in 0..3 {
            counters.finish(true, 1 << 30);
        }
        let stats = counters.snapshot();
        assert_eq!((stats.successful, stats.failed), (5, 2));
        assert_eq!(stats.total_retries, 2 + 3 + u64::from(u32::MAX) + 3 * (1 << 30));
        assert_eq!(counters.retried_ok.load(Relaxed) >> 32, 0, "spilled");
        counters.absorb(Raw {
            first_try: 1,
            ok_calls: 2,
            failed_calls: 3,
            retries: 4,
            exhausted: 5,
        });
        let raw = counters.raw();
        assert_eq!((raw.first_try, raw.ok_calls, raw.failed_calls, raw.exhausted), (2, 6, 5, 5));
    }
}
