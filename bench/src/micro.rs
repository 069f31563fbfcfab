//! CPU-bound benchmarks: the `#[retry]` success path, one retry, the `#[checkpointed]` loop.

use std::cell::Cell;
use std::fmt;
use std::hint::black_box;
use std::time::Duration;

use resilience::{Durability, FailsafeManager, NoSleep, checkpointed, retry};

use crate::Config;
use crate::harness::{Batch, Variant, compare, cpu_time, fmt_time, goal, print_table};

/// The error of the benchmarked functions: small, `Copy`, not `Classify` (so retried).
#[derive(Debug, Clone, Copy)]
pub struct Transient;

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("transient")
    }
}

/// The work every variant calls: out of line, so no variant can fold it into its caller.
#[inline(never)]
fn work(x: u64) -> Result<u64, Transient> {
    if x == u64::MAX { Err(Transient) } else { Ok(x.wrapping_mul(3)) }
}

#[retry]
fn work_retried(x: u64) -> Result<u64, Transient> {
    work(x)
}

fn note_retry(_: &Transient, _: u32, _: Duration) {}

fn give_up(error: Transient) -> Result<u64, Transient> {
    Err(error)
}

#[retry(on_retry = note_retry, fallback = give_up)]
fn work_hooked(x: u64) -> Result<u64, Transient> {
    work(x)
}

#[retry(budget = "bench")]
fn work_budgeted(x: u64) -> Result<u64, Transient> {
    work(x)
}

fn work_backoff(x: u64) -> Result<u64, Transient> {
    backoff::retry(backoff::ExponentialBackoff::default(), || {
        work(x).map_err(backoff::Error::transient)
    })
    .map_err(|e| match e {
        backoff::Error::Permanent(e) | backoff::Error::Transient { err: e, .. } => e,
    })
}

fn work_backon(x: u64) -> Result<u64, Transient> {
    use backon::BlockingRetryable;
    (|| work(x)).retry(backon::ExponentialBuilder::default().with_jitter()).call()
}

pub fn retry_success(cfg: &Config) -> bool {
    let x = 12345u64;
    let mut variants = [
        Variant::cpu("plain call", || {
            let _ = black_box(work(black_box(x)));
        }),
        Variant::cpu("#[retry]", || {
            let _ = black_box(work_retried(black_box(x)));
        }),
        Variant::cpu("#[retry(on_retry, fallback)]", || {
            let _ = black_box(work_hooked(black_box(x)));
        }),
        Variant::cpu("#[retry(budget)]", || {
            let _ = black_box(work_budgeted(black_box(x)));
        }),
        Variant::cpu("backon blocking retry", || {
            let _ = black_box(work_backon(black_box(x)));
        }),
        Variant::cpu("backoff::retry", || {
            let _ = black_box(work_backoff(black_box(x)));
        }),
    ];
    let r = compare(cfg.reps(31), Batch::Lasting(Duration::from_millis(20)), &mut variants);
    print_table("1. `#[retry]` success path (first attempt succeeds)", &r, "plain call", false);
    let ours = r.paired_diff("#[retry]", "plain call");
    let hooked = r.paired_diff("#[retry(on_retry, fallback)]", "plain call");
    let budgeted = r.paired_diff("#[retry(budget)]", "plain call");
    let backon = r.paired_diff("backon blocking retry", "plain call");
    let backoff = r.paired_diff("backoff::retry", "plain call");
    println!(
        "added over the plain call: #[retry] {}, with on_retry and fallback {}, with a budget {}, \
         backon {}, backoff {}",
        fmt_time(ours),
        fmt_time(hooked),
        fmt_time(budgeted),
        fmt_time(backon),
        fmt_time(backoff)
    );
    let stats = resilience::RetryManager::global().statistics();
    let counted = stats.by_operation.get("resilience_bench::micro::work_retried");
    let counted = counted.map_or_else(|| "no".to_owned(), |s| s.successful.to_string());
    println!("statistics on: the site counted {counted} successful calls");
    let met =
        goal(&format!("#[retry] adds ≤ 2 ns per call (adds {})", fmt_time(ours)), ours <= 2.0);
    let hooks_met = goal(
        &format!("#[retry(on_retry, fallback)] adds ≤ 2 ns per call (adds {})", fmt_time(hooked)),
        hooked <= 2.0,
    );
    // The design allows one atomic operation for the budget's deposit; reported, not judged.
    println!("a budget's deposit costs {} over #[retry]", fmt_time(budgeted - ours));
    met && hooks_met
}

/// Fails every other attempt: each call fails once, then succeeds.
#[inline(never)]
fn flaky(calls: &Cell<u64>) -> Result<u64, Transient> {
    let n = calls.get();
    calls.set(n + 1);
    if n.is_multiple_of(2) { Err(Transient) } else { Ok(n) }
}

#[retry(max = 3)]
fn flaky_retried(calls: &Cell<u64>) -> Result<u64, Transient> {
    flaky(calls)
}

fn flaky_backoff(calls: &Cell<u64>) -> Result<u64, Transient> {
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::ZERO,
        randomization_factor: 0.0,
        ..Default::default()
    };
    backoff::retry(policy, || flaky(calls).map_err(backoff::Error::transient)).map_err(
        |e| match e {
            backoff::Error::Permanent(e) | backoff::Error::Transient { err: e, .. } => e,
        },
    )
}

fn flaky_backon(calls: &Cell<u64>) -> Result<u64, Transient> {
    use backon::BlockingRetryable;
    let policy =
        backon::ExponentialBuilder::default().with_min_delay(Duration::ZERO).with_max_times(3);
    (|| flaky(calls)).retry(policy).call()
}

/// A hand-written loop: the least a retry can cost.
fn flaky_hand_loop(calls: &Cell<u64>) -> Result<u64, Transient> {
    let mut attempts = 0;
    loop {
        match flaky(calls) {
            Err(_) if attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

pub fn retry_once(cfg: &Config) -> bool {
    let calls = Cell::new(0u64);
    let calls = &calls;
    let mut variants = [
        Variant::cpu("hand-written loop", || {
            let _ = black_box(flaky_hand_loop(black_box(calls)));
        }),
        Variant::new("#[retry] + NoSleep", |iters| {
            resilience::with_sleeper(&NoSleep, || {
                let start = cpu_time();
                for _ in 0..iters {
                    let _ = black_box(flaky_retried(black_box(calls)));
                }
                cpu_time() - start
            })
        }),
        Variant::cpu("backon, zero delay", || {
            let _ = black_box(flaky_backon(black_box(calls)));
        }),
        Variant::cpu("backoff, zero delay", || {
            let _ = black_box(flaky_backoff(black_box(calls)));
        }),
    ];
    let r = compare(cfg.reps(21), Batch::Lasting(Duration::from_millis(20)), &mut variants);
    print_table(
        "2. One failure, then success, with a zero-delay sleeper",
        &r,
        "hand-written loop",
        false,
    );
    let ours = r.paired_diff("#[retry] + NoSleep", "hand-written loop");
    let backon = r.paired_diff("backon, zero delay", "hand-written loop");
    println!(
        "cost of one retry over a hand-written loop: #[retry] {}, backon {}, backoff {}",
        fmt_time(ours),
        fmt_time(backon),
        fmt_time(r.paired_diff("backoff, zero delay", "hand-written loop")),
    );
    let stats = resilience::RetryManager::global().statistics();
    let site = stats.by_operation.get("resilience_bench::micro::flaky_retried");
    if let Some(site) = site {
        println!(
            "statistics on: the site counted {} calls, {} retries, {} failed",
            site.total_operations, site.total_retries, site.failed
        );
    }
    goal(
        &format!("#[retry]'s retry costs ≤ backon's ({} vs {})", fmt_time(ours), fmt_time(backon)),
        ours <= backon,
    )
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
pub struct Digest {
    #[checkpoint(cursor)]
    done: u64,
    hash: u64,
}

#[inline(always)]
fn mix(hash: u64, x: u64) -> u64 {
    (hash ^ x).wrapping_mul(0x0000_0100_0000_01b3)
}

#[inline(never)]
fn plain_loop(items: &[u64], state: &mut Digest) -> Result<(), resilience::Error> {
    for x in items {
        state.hash = mix(state.hash, *x);
    }
    Ok(())
}

/// Stands for the checkpoint: reads the whole state, out of line.
#[cold]
#[inline(never)]
fn observe(state: &mut Digest) {
    black_box(&*state);
}

/// The plain loop plus what `#[checkpointed]` adds, written by hand: a cursor store, a
/// countdown and an out-of-line call that sees `state` every 1000 items. The call inside the
/// loop is what keeps `state.hash` in memory instead of a register.
#[inline(never)]
fn hand_checkpointed_loop(items: &[u64], state: &mut Digest) -> Result<(), resilience::Error> {
    let mut next = 1000;
    for (done, x) in (0u64..).zip(items) {
        state.done = done;
        if done == next {
            observe(state);
            next += 1000;
        }
        state.hash = mix(state.hash, *x);
    }
    Ok(())
}

/// The same work in chunks of 1000 with the call between chunks: no call inside the inner
/// loop, so `state.hash` stays in a register.
#[inline(never)]
fn hand_chunked_loop(items: &[u64], state: &mut Digest) -> Result<(), resilience::Error> {
    for (k, chunk) in (0u64..).zip(items.chunks(1000)) {
        for (i, x) in (0u64..).zip(chunk) {
            state.done = k * 1000 + i;
            state.hash = mix(state.hash, *x);
        }
        observe(state);
    }
    Ok(())
}

/// An error type with `Classify`: a `?` in the tracked loop may skip an item.
#[derive(Debug, thiserror::Error, resilience::Classify)]
enum ItemError {
    #[error("item {0} is damaged")]
    #[classify(skip)]
    Damaged(u64),
    #[error(transparent)]
    #[classify(transparent)]
    Store(#[from] resilience::Error),
}

#[inline(always)]
fn check(x: u64) -> Result<u64, ItemError> {
    if x == u64::MAX { Err(ItemError::Damaged(x)) } else { Ok(x) }
}

#[inline(never)]
fn plain_loop_with_question_mark(items: &[u64], state: &mut Digest) -> Result<(), ItemError> {
    for x in items {
        state.hash = mix(state.hash, check(*x)?);
    }
    Ok(())
}

#[inline(never)]
#[checkpointed(every = 1000, id = "bench-loop-skip", manager = manager)]
fn tracked_loop_with_question_mark(
    manager: &FailsafeManager,
    items: &[u64],
    state: &mut Digest,
) -> Result<(), ItemError> {
    for x in items {
        state.hash = mix(state.hash, check(*x)?);
    }
    Ok(())
}

#[inline(never)]
#[checkpointed(every = 1000, id = "bench-loop-unguarded", manager = manager, input = none)]
fn tracked_loop_unguarded(
    manager: &FailsafeManager,
    items: &[u64],
    state: &mut Digest,
) -> Result<(), resilience::Error> {
    for x in items {
        state.hash = mix(state.hash, *x);
    }
    Ok(())
}

#[inline(never)]
#[checkpointed(every = 1000, id = "bench-loop", manager = manager)]
fn tracked_loop(
    manager: &FailsafeManager,
    items: &[u64],
    state: &mut Digest,
) -> Result<(), resilience::Error> {
    for x in items {
        state.hash = mix(state.hash, *x);
    }
    Ok(())
}

pub fn checkpointed_loop(cfg: &Config) -> bool {
    let dir = cfg.scratch("loop");
    let manager = FailsafeManager::builder()
        .dir(&dir)
        .durability(Durability::Buffered)
        .build()
        .expect("open the store");
    let n = 1usize << 20;
    let items: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let items = &items[..];
    let manager = &manager;
    // The same store, with a progress callback: it is called from the cold path only.
    let watched = FailsafeManager::builder()
        .dir(&dir)
        .durability(Durability::Buffered)
        .build()
        .expect("open the store");
    watched.on_progress(|p| {
        black_box(p.done);
    });
    let watched = &watched;
    let mut variants = [
        Variant::cpu("plain loop", || {
            let mut state = Digest::default();
            plain_loop(black_box(items), &mut state).expect("plain loop");
            black_box(state.hash);
        }),
        Variant::cpu("#[checkpointed(every = 1000)]", || {
            let mut state = Digest::default();
            tracked_loop(manager, black_box(items), &mut state).expect("tracked loop");
            black_box(state.hash);
        }),
        Variant::cpu("by hand: call every 1000 inside the loop", || {
            let mut state = Digest::default();
            hand_checkpointed_loop(black_box(items), &mut state).expect("loop");
            black_box(state.hash);
        }),
        Variant::cpu("by hand: chunks of 1000, call between", || {
            let mut state = Digest::default();
            hand_chunked_loop(black_box(items), &mut state).expect("loop");
            black_box(state.hash);
        }),
        Variant::cpu("#[checkpointed], a progress callback", || {
            let mut state = Digest::default();
            tracked_loop(watched, black_box(items), &mut state).expect("tracked loop");
            black_box(state.hash);
        }),
        Variant::cpu("#[checkpointed], no items", || {
            let mut state = Digest::default();
            tracked_loop(manager, black_box(&[]), &mut state).expect("tracked loop");
            black_box(state.hash);
        }),
        Variant::cpu("#[checkpointed], input = none", || {
            let mut state = Digest::default();
            tracked_loop_unguarded(manager, black_box(items), &mut state).expect("tracked loop");
            black_box(state.hash);
        }),
        Variant::cpu("plain loop, `?` on a Classify error", || {
            let mut state = Digest::default();
            plain_loop_with_question_mark(black_box(items), &mut state).expect("plain loop");
            black_box(state.hash);
        }),
        Variant::cpu("#[checkpointed], `?` that may skip", || {
            let mut state = Digest::default();
            tracked_loop_with_question_mark(manager, black_box(items), &mut state)
                .expect("tracked loop");
            black_box(state.hash);
        }),
    ];
    let r = compare(cfg.reps(15), Batch::Lasting(Duration::from_millis(50)), &mut variants);
    print_table(
        &format!(
            "5. `#[checkpointed(every = 1000)]` loop over {n} items, Buffered store (per call)"
        ),
        &r,
        "plain loop",
        false,
    );
    let fixed = r.median("#[checkpointed], no items");
    let per_item =
        (r.paired_diff("#[checkpointed(every = 1000)]", "plain loop") - fixed) / n as f64;
    let plain_item = r.median("plain loop") / n as f64;
    println!(
        "per item: plain loop {}, #[checkpointed] adds {} (per-call cost {} taken out)",
        fmt_time(plain_item),
        fmt_time(per_item),
        fmt_time(fixed)
    );
    // The input guard hashes `items` once per call (the `no items` call hashes nothing).
    let guard = r.paired_diff("#[checkpointed(every = 1000)]", "#[checkpointed], input = none");
    let per_item_skip = (r
        .paired_diff("#[checkpointed], `?` that may skip", "plain loop, `?` on a Classify error")
        - fixed
        - guard)
        / n as f64;
    println!(
        "input fingerprint of the {n} items (once per call): {}; with a `?` that may skip, \
         #[checkpointed] adds {} per item over the plain loop with `?`",
        fmt_time(guard),
        fmt_time(per_item_skip)
    );
    let progress = r.paired_diff("#[checkpointed], a progress callback", "#[checkpointed(every = 1000)]")
        / n as f64;
    println!("a progress callback adds {} per item to the tracked loop", fmt_time(progress));
    let _ = std::fs::remove_dir_all(&dir);
    let a = goal(
        &format!("≤ 2 ns per item over the plain loop (adds {})", fmt_time(per_item)),
        per_item <= 2.0,
    );
    let b = goal(
        &format!("≤ 2 ns per item with skipping (adds {})", fmt_time(per_item_skip)),
        per_item_skip <= 2.0,
    );
    let c =
        goal(&format!("input fingerprint of {n} u64 ≤ 1 ms ({})", fmt_time(guard)), guard <= 1e6);
    a && b && c
}
