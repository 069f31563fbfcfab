//! Retry budgets: a cap on retries shared by every call that names the budget.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// How many retries a group of calls may add, tower-style: over a sliding 10-second window,
/// retries may add at most `ratio` of the first attempts made in it, plus `min_per_sec` per
/// second whatever the traffic.
///
/// A budget stops a retry storm: when a dependency is down, every caller retrying `max` times
/// multiplies its load; a budget lets a few retries through and makes the rest fail at once.
/// A call whose retry the budget refuses returns its error (through its `fallback`, if any)
/// and is counted in [`RetryStats::budget_exhausted`](super::RetryStats::budget_exhausted).
///
/// Defaults: `ratio` 0.2 (retries may add 20% to the first attempts), `min_per_sec` 10. A
/// budget named before it is configured has the defaults.
///
/// ```
/// use resilience::{RetryBudget, RetryManager};
///
/// RetryManager::global().set_budget("search", RetryBudget::new().ratio(0.1).min_per_sec(5));
/// assert_eq!(RetryBudget::default(), RetryBudget::new().ratio(0.2).min_per_sec(10));
/// ```
///
/// Calls join a budget with `#[retry(budget = "search")]` or
/// [`Retrying::budget`](super::Retrying::budget). A first attempt costs one relaxed atomic add
/// (for the global manager's budgets, a plain load and store on the thread's own counter, as
/// `#[retry]` sites count their calls); the window is kept on the failure path only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// The window, in seconds (one bucket per second).
const WINDOW: usize = 10;

impl RetryBudget {
    /// The default budget: `ratio` 0.2, `min_per_sec` 10.
    pub const fn new() -> Self {
        RetryBudget { ratio: 0.2, min_per_sec: 10 }
    }

    /// Retries may add at most this fraction of the first attempts in the window (`0.2`: one
    /// retry per five calls). Negative or NaN counts as 0.
    pub const fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries allowed per second whatever the traffic (so that a quiet service still
    /// retries).
    pub const fn min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.min_per_sec = min_per_sec;
        self
    }

    /// The configured ratio.
    pub const fn retry_ratio(&self) -> f64 {
        self.ratio
    }

    /// The configured minimum of retries per second.
    pub const fn min_retries_per_sec(&self) -> u32 {
        self.min_per_sec
    }
}

/// The shared state of one named budget.
#[derive(Debug)]
pub(crate) struct Budget {
    /// First attempts made on threads without a slot for this budget (or that exited).
    deposits: AtomicU64,
    /// The per-thread slot counting the other deposits (budgets of the global manager), or
    /// `NO_SLOT`.
    slot: AtomicU32,
    window: Mutex<Window>,
}

const NO_SLOT: u32 = u32::MAX;

/// Deposits and withdrawals per one-second bucket. Deposits are not timed when they happen
/// (that would read a clock on the success path): each look at the window spreads the
/// deposits made since the previous look evenly over the seconds in between.
#[derive(Debug)]
struct Window {
    config: RetryBudget,
    origin: Option<Instant>,
    /// The bucket (seconds since `origin`) of the last look.
    second: u64,
    /// Deposits already spread.
    seen: u64,
    deposits: [f64; WINDOW],
    withdrawals: [u64; WINDOW],
}

impl Budget {
    pub(crate) fn new(config: RetryBudget) -> Self {
        Budget {
            deposits: AtomicU64::new(0),
            slot: AtomicU32::new(NO_SLOT),
            window: Mutex::new(Window {
                config,
                origin: None,
                second: 0,
                seen: 0,
                deposits: [0.0; WINDOW],
                withdrawals: [0; WINDOW],
            }),
        }
    }

    pub(crate) fn configure(&self, config: RetryBudget) {
        self.window.lock().unwrap_or_else(PoisonError::into_inner).config = config;
    }

    /// A budget whose deposits are counted per thread, as `#[retry]` sites count their calls:
    /// for the global manager, which keeps its budgets for the life of the process.
    pub(crate) fn per_thread(config: RetryBudget) -> Arc<Self> {
        let budget = Arc::new(Budget::new(config));
        if let Some(slot) = super::local::assign_budget(Arc::clone(&budget)) {
            budget.slot.store(slot, Relaxed);
        }
        budget
    }

    /// Counts a first attempt: a plain load and store on this thread's slot, or one relaxed
    /// atomic add.
    #[inline]
    pub(crate) fn deposit(&self) {
        let slot = self.slot.load(Relaxed);
        if slot == NO_SLOT || !super::local::deposit(slot) {
            self.deposits.fetch_add(1, Relaxed);
        }
    }

    /// Adds the deposits of an exiting thread.
    pub(crate) fn absorb(&self, deposits: u64) {
        self.deposits.fetch_add(deposits, Relaxed);
    }

    /// Takes one retry out of the budget at `now`; `false` when it is exhausted.
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        let total = match self.slot.load(Relaxed) {
            NO_SLOT => self.deposits.load(Relaxed),
            slot => super::local::deposits(slot, &self.deposits),
        };
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.advance(now, total);
        let deposited: f64 = window.deposits.iter().sum();
        let withdrawn: u64 = window.withdrawals.iter().sum();
        let ratio = window.config.ratio;
        let ratio = if ratio > 0.0 { ratio } else { 0.0 };
        let allowed = deposited * ratio + f64::from(window.config.min_per_sec) * WINDOW as f64;
        if (withdrawn as f64) + 1.0 > allowed {
            return false;
        }
        let slot = (window.second % WINDOW as u64) as usize;
        window.withdrawals[slot] += 1;
        true
    }
}

impl Window {
    fn advance(&mut self, now: Instant, total: u64) {
        let origin = *self.origin.get_or_insert(now);
        let second = now.saturating_duration_since(origin).as_secs().max(self.second);
        let new = total.saturating_sub(self.seen) as f64;
        self.seen = total;
        let passed = second - self.second;
        // Buckets of the seconds that began since the last look start empty.
        for s in (self.second + 1..=second).rev().take(WINDOW) {
            let slot = (s % WINDOW as u64) as usize;
            self.deposits[slot] = 0.0;
            self.withdrawals[slot] = 0;
        }
        // The new deposits were made between the last look and now: spread over those
        // seconds, of which the last `WINDOW` are still in the window.
        let share = new / (passed + 1) as f64;
        for s in (self.second..=second).rev().take(WINDOW) {
            self.deposits[(s % WINDOW as u64) as usize] += share;
        }
        self.second = second;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn drain(budget: &Budget, now: Instant) -> usize {
        (0..10_000).take_while(|_| budget.withdraw(now)).count()
    }

    #[test]
    fn the_reserve_is_min_per_sec_over_the_window() {
        let budget = Budget::new(RetryBudget::new().ratio(0.0).min_per_sec(3));
        assert_eq!(drain(&budget, Instant::now()), 30);
    }

    #[test]
    fn deposits_add_ratio_retries_and_expire_after_the_window() {
        let budget = Budget::new(RetryBudget::new().ratio(0.5).min_per_sec(0));
        let t0 = Instant::now();
        assert!(!budget.withdraw(t0));
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(drain(&budget, t0), 50);
        // 11 seconds later, neither the deposits nor the withdrawals count any more.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(drain(&budget, later), 0);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(drain(&budget, later), 5);
    }

    #[test]
    fn deposits_after_a_long_quiet_spell_count_for_their_share_of_the_window() {
        let budget = Budget::new(RetryBudget::new().ratio(1.0).min_per_sec(0));
        let t0 = Instant::now();
        assert!(!budget.withdraw(t0));
        for _ in 0..1_000 {
            budget.deposit();
        }
        // 1,000 calls over 100 seconds: about 10 per second, 100 in the window.
        let n = drain(&budget, t0 + Duration::from_secs(99));
        assert!((95..=105).contains(&n), "{n}");
    }
}
