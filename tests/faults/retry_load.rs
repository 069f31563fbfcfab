//! Retry under load: many threads calling one `#[retry]` function that fails at random; the
//! per-call-site statistics must add up exactly.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use resilience::{NoSleep, RetryManager, retry};

#[derive(Debug)]
struct Flaky;

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flaky")
    }
}

thread_local! {
    static RNG: RefCell<fastrand::Rng> = const { RefCell::new(fastrand::Rng::with_seed(0)) };
    static ATTEMPTS: Cell<u64> = const { Cell::new(0) };
}

#[retry(max = 3, initial = "10ms", name = "faults::retry_load::flaky")]
fn flaky(i: u64) -> Result<u64, Flaky> {
    ATTEMPTS.set(ATTEMPTS.get() + 1);
    if RNG.with(|rng| rng.borrow_mut().u8(0..100)) < 30 { Err(Flaky) } else { Ok(i) }
}

#[test]
fn statistics_add_up_under_concurrent_load() {
    const THREADS: u64 = 16;
    let calls_per_thread = crate::scale(1_000, 20_000) as u64;
    let seed = crate::seed();
    let (attempts, ok, err) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (attempts, ok, err) = (&attempts, &ok, &err);
            s.spawn(move || {
                RNG.set(fastrand::Rng::with_seed(seed ^ t));
                resilience::with_sleeper(&NoSleep, || {
                    for i in 0..calls_per_thread {
                        match flaky(i) {
                            Ok(v) => {
                                assert_eq!(v, i);
                                ok.fetch_add(1, Relaxed);
                            }
                            Err(Flaky) => {
                                err.fetch_add(1, Relaxed);
                            }
                        }
                    }
                });
                attempts.fetch_add(ATTEMPTS.get(), Relaxed);
            });
        }
    });
    let calls = THREADS * calls_per_thread;
    let (attempts, ok, err) = (attempts.into_inner(), ok.into_inner(), err.into_inner());
    let stats = RetryManager::global().statistics();
    let site = &stats.by_operation["faults::retry_load::flaky"];
    println!(
        "retry: {calls} calls from {THREADS} threads, {attempts} attempts, {} retries, \
         {ok} succeeded, {err} failed; statistics: {} operations, {} attempts, {} retries, \
         {} successful, {} failed",
        attempts - calls,
        site.total_operations,
        site.total_attempts,
        site.total_retries,
        site.successful,
        site.failed
    );
    assert_eq!(ok + err, calls);
    assert_eq!(site.total_operations, calls);
    assert_eq!(site.total_attempts, attempts);
    assert_eq!(site.total_retries, attempts - calls);
    assert_eq!((site.successful, site.failed), (ok, err));
    assert_eq!(site.successful + site.failed, site.total_operations);
    // 4 attempts at 30% failure each: about 0.8% of the calls fail for good.
    assert!(err > 0 && attempts > calls, "the faults were injected");
    let rate = site.successful as f64 / calls as f64;
    assert!((site.success_rate - rate).abs() < 1e-12);
}
