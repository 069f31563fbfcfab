//! A small measuring harness: calibrated batches, interleaved variants, medians.
//!
//! Every benchmark compares variants (ours, a baseline, peers) measured in the same run. The
//! variants take turns batch by batch (A B C, A B C, ...), so a burst of load from other
//! processes hits all of them alike, and each figure is the median over the repetitions.

use std::time::{Duration, Instant};

/// One contender: runs `iters` operations and returns the time they took (the closure times
/// itself, so that set-up and clean-up can stay outside the measurement).
pub struct Variant<'a> {
    pub name: String,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Variant<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Variant { name: name.into(), run: Box::new(run) }
    }

    /// A variant whose every iteration is `op` (which inlines into the timed loop), timed by
    /// the wall clock: for anything that waits (I/O).
    pub fn looped(name: impl Into<String>, mut op: impl FnMut() + 'a) -> Self {
        Variant::new(name, move |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed()
        })
    }

    /// Like [`looped`](Self::looped), timed by the process's CPU time: for CPU-bound work, so
    /// that time spent descheduled (other processes on a busy machine) is not counted.
    pub fn cpu(name: impl Into<String>, mut op: impl FnMut() + 'a) -> Self {
        Variant::new(name, move |iters| {
            let start = cpu_time();
            for _ in 0..iters {
                op();
            }
            cpu_time() - start
        })
    }
}

/// The CPU time the process has used, all threads (the listing stats files on two).
pub fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How many operations one batch runs.
#[derive(Clone, Copy)]
pub enum Batch {
    /// Calibrated so that a batch of the slowest variant lasts about this long.
    Lasting(Duration),
    /// Exactly this many.
    Fixed(u64),
}

/// The results of one comparison: per variant, ns per operation in each repetition.
pub struct Results {
    pub names: Vec<String>,
    pub samples: Vec<Vec<f64>>,
    pub iters: u64,
}

impl Results {
    pub fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no variant {name}"))
    }

    /// Median ns per operation.
    pub fn median(&self, name: &str) -> f64 {
        median(&self.samples[self.index(name)])
    }

    /// Median over the repetitions of `a - b` (paired: both from the same round).
    pub fn paired_diff(&self, a: &str, b: &str) -> f64 {
        let (a, b) = (&self.samples[self.index(a)], &self.samples[self.index(b)]);
        median(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())
    }

    /// Median over the repetitions of `b / a`: how many times faster `a` is than `b` (paired).
    pub fn paired_speedup(&self, a: &str, b: &str) -> f64 {
        let (a, b) = (&self.samples[self.index(a)], &self.samples[self.index(b)]);
        median(&a.iter().zip(b).map(|(x, y)| y / x).collect::<Vec<_>>())
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the variants `reps` times each, interleaved, after one warm-up batch each.
pub fn compare(reps: usize, batch: Batch, variants: &mut [Variant<'_>]) -> Results {
    let iters = match batch {
        Batch::Fixed(n) => n,
        Batch::Lasting(target) => {
            // The first call pays one-time costs (registration, page faults, lazy statics).
            for v in variants.iter_mut() {
                std::hint::black_box((v.run)(1));
            }
            calibrate(target, variants)
        }
    };
    for v in variants.iter_mut() {
        std::hint::black_box((v.run)(iters));
    }
    let mut samples = vec![Vec::with_capacity(reps); variants.len()];
    for _ in 0..reps {
        for (v, s) in variants.iter_mut().zip(&mut samples) {
            let t = (v.run)(iters);
            s.push(t.as_nanos() as f64 / iters as f64);
        }
    }
    Results { names: variants.iter().map(|v| v.name.clone()).collect(), samples, iters }
}

/// Doubles the batch until the slowest variant takes `target`.
fn calibrate(target: Duration, variants: &mut [Variant<'_>]) -> u64 {
    let mut iters = 1u64;
    loop {
        let slowest = variants.iter_mut().map(|v| (v.run)(iters)).max().unwrap_or_default();
        if slowest >= target / 8 || iters >= 1 << 40 {
            let scale = target.as_secs_f64() / slowest.as_secs_f64().max(1e-9);
            return ((iters as f64 * scale) as u64).max(1);
        }
        iters *= 2;
    }
}

/// Formats ns per operation with a sensible unit.
pub fn fmt_time(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Formats a rate from ns per operation.
pub fn fmt_rate(ns: f64) -> String {
    let per_sec = 1e9 / ns;
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.2} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.1} /s")
    }
}

/// Prints a table: variant, median (and rate when `rates`), min, max, and the paired ratio to
/// `reference` (its time divided by the variant's: above 1 means faster than the reference).
pub fn print_table(title: &str, r: &Results, reference: &str, rates: bool) {
    println!("\n## {title}");
    println!(
        "({} repetitions of {} operation{} each, interleaved; medians)",
        r.samples[0].len(),
        r.iters,
        if r.iters == 1 { "" } else { "s" }
    );
    println!();
    let width = r.names.iter().map(String::len).max().unwrap_or(0).max(7);
    let rate_col = if rates { " |       rate" } else { "" };
    println!(
        "| {:width$} |      median{rate_col} |         min |         max | speed vs {reference} |",
        "variant"
    );
    println!(
        "|{}|-----------:|{}------------:|------------:|---:|",
        "-".repeat(width + 2),
        if rates { "-----------:|" } else { "" }
    );
    for (i, name) in r.names.iter().enumerate() {
        let s = &r.samples[i];
        let min = s.iter().copied().fold(f64::INFINITY, f64::min);
        let max = s.iter().copied().fold(0.0, f64::max);
        let rate = if rates { format!(" | {:>10}", fmt_rate(median(s))) } else { String::new() };
        println!(
            "| {name:width$} | {:>10}{rate} | {:>11} | {:>11} | {:.2}× |",
            fmt_time(median(s)),
            fmt_time(min),
            fmt_time(max),
            r.paired_speedup(name, reference),
        );
    }
    println!();
}

/// Prints a goal line and returns whether it was met.
pub fn goal(text: &str, met: bool) -> bool {
    println!("goal: {text} — {}", if met { "MET" } else { "MISSED" });
    met
}
