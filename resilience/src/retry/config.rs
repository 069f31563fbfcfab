//! The retry policy and the delay schedule it produces.

use std::time::Duration;

use crate::error::{Error, Result};

/// How many times to retry and how long to wait in between.
///
/// Defaults (`RetryConfig::default()`, the same as `#[retry]` without arguments):
///
/// | setting        | default | meaning                                                       |
/// |----------------|---------|---------------------------------------------------------------|
/// | `max_retries`  | 3       | retries after the first attempt (so 4 attempts at most)       |
/// | `initial_delay`| 100 ms  | base delay before the first retry                             |
/// | `max_delay`    | 30 s    | cap on the base delay                                         |
/// | `multiplier`   | 2.0     | growth of the base delay from one retry to the next           |
/// | `jitter`       | 0.5     | randomization factor `j` in `[0, 1]`                          |
/// | `max_elapsed`  | unset   | no attempt starts later than this after the first one started |
///
/// The base delay before retry `n` (counting from 0) is
/// `d = min(initial_delay · multiplierⁿ, max_delay)`; the actual delay is drawn uniformly from
/// `[d·(1-j), d·(1+j)]`. The cap applies to the base delay, so with jitter a single delay can
/// reach `max_delay·(1+j)`; set `jitter(0.0)` for a hard cap.
///
/// Every setter is a `const fn`, so a configuration can live in a `static`:
///
/// ```
/// use std::time::Duration;
/// use resilience::RetryConfig;
///
/// static UPLOAD: RetryConfig = RetryConfig::new(5)
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(2))
///     .multiplier(3.0)
///     .jitter(0.0)
///     .max_elapsed(Duration::from_secs(10));
///
/// assert!(UPLOAD.validate().is_ok());
/// let delays: Vec<Duration> = UPLOAD.delays().collect();
/// assert_eq!(delays, [50, 150, 450, 1350, 2000].map(Duration::from_millis));
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct RetryConfig {
    max_retries: u32,
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: f64,
    /// `jitter` clamped into `[0, 1]`, in 32-bit fixed point: what the retry loop uses.
    jitter_fixed: u64,
    /// The base delay before the first retry, `min(initial_delay, max_delay)`, in nanoseconds.
    first_nanos: u64,
    max_elapsed: Option<Duration>,
}

impl std::fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryConfig")
            .field("max_retries", &self.max_retries)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("multiplier", &self.multiplier)
            .field("jitter", &self.jitter)
            .field("max_elapsed", &self.max_elapsed)
            .finish()
    }
}

/// `min(initial, max)` in nanoseconds, saturating at `u64::MAX`.
const fn first_nanos(initial: Duration, max: Duration) -> u64 {
    let (initial, max) = (initial.as_nanos(), max.as_nanos());
    let first = if initial < max { initial } else { max };
    if first > u64::MAX as u128 { u64::MAX } else { first as u64 }
}

/// `jitter` clamped into `[0, 1]` (NaN counts as 0), in 32-bit fixed point.
const fn jitter_fixed(jitter: f64) -> u64 {
    let clamped = if jitter >= 0.0 { if jitter > 1.0 { 1.0 } else { jitter } } else { 0.0 };
    (clamped * 4_294_967_296.0) as u64
}

impl Default for RetryConfig {
    /// `RetryConfig::new(3)`: 100 ms, 30 s, 2.0, 0.5, no `max_elapsed`.
    fn default() -> Self {
        Self::new(3)
    }
}

impl RetryConfig {
    /// A configuration with `max_retries` retries after the first attempt and the default
    /// delays (100 ms initial, 30 s cap, multiplier 2.0, jitter 0.5, no `max_elapsed`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = resilience::RetryConfig::new(2);
    /// assert_eq!(config.max_retries(), 2);
    /// assert_eq!(config.get_initial_delay(), Duration::from_millis(100));
    /// ```
    pub const fn new(max_retries: u32) -> Self {
        RetryConfig {
            max_retries,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            jitter_fixed: jitter_fixed(0.5),
            first_nanos: first_nanos(Duration::from_millis(100), Duration::from_secs(30)),
            max_elapsed: None,
        }
    }

    /// Sets the base delay before the first retry.
    pub const fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self.first_nanos = first_nanos(self.initial_delay, self.max_delay);
        self
    }

    /// Sets the cap on the base delay.
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self.first_nanos = first_nanos(self.initial_delay, self.max_delay);
        self
    }

    /// Sets the factor by which the base delay grows after each retry (`>= 1`).
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the randomization factor `j` in `[0, 1]`: each delay is drawn from
    /// `[d·(1-j), d·(1+j)]`. `0.0` gives the exact exponential sequence.
    pub const fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self.jitter_fixed = jitter_fixed(jitter);
        self
    }

    /// Sets the time budget: no attempt starts later than `max_elapsed` after the first
    /// attempt started. When a retry's delay would end past it, the last error is returned
    /// at once instead of sleeping.
    pub const fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Removes the time budget.
    pub const fn no_max_elapsed(mut self) -> Self {
        self.max_elapsed = None;
        self
    }

    /// Retries after the first attempt.
    pub const fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The base delay before the first retry.
    pub const fn get_initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// The cap on the base delay.
    pub const fn get_max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The growth factor of the base delay.
    pub const fn get_multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The randomization factor.
    pub const fn get_jitter(&self) -> f64 {
        self.jitter
    }

    /// The time budget, if any.
    pub const fn get_max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// Checks every setting; the error names the setting and the value it got.
    ///
    /// The retry functions do not call this (they cannot return a configuration error in the
    /// operation's error type); they clamp out-of-range values instead: `jitter` into
    /// `[0, 1]`, a `multiplier` below 1 or NaN to 1, and a `max_delay` below `initial_delay`
    /// caps every delay at `max_delay`. Call `validate` where the configuration is built,
    /// e.g. from a configuration file.
    ///
    /// ```
    /// use resilience::{Error, RetryConfig};
    ///
    /// assert!(RetryConfig::default().validate().is_ok());
    /// let err = RetryConfig::default().jitter(1.5).validate().unwrap_err();
    /// assert!(matches!(&err, Error::InvalidConfig(msg) if msg.contains("jitter")));
    /// assert_eq!(err.to_string(), "invalid configuration: jitter must be in [0, 1], got 1.5");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if !(0.0..=1.0).contains(&self.jitter) {
            return invalid(format!("jitter must be in [0, 1], got {}", self.jitter));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return invalid(format!("multiplier must be finite and >= 1, got {}", self.multiplier));
        }
        if self.initial_delay > self.max_delay {
            return invalid(format!(
                "initial_delay must be <= max_delay, got initial_delay = {:?} and max_delay = {:?}",
                self.initial_delay, self.max_delay
            ));
        }
        Ok(())
    }

    /// The delays before each retry, `max_retries` of them, with jitter drawn from a fresh
    /// random generator. See the type docs for the formula.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = resilience::RetryConfig::new(4).jitter(0.0);
    /// let delays: Vec<_> = config.delays().collect();
    /// assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
    /// ```
    pub fn delays(&self) -> Delays {
        Delays::new(*self, fastrand::Rng::new())
    }

    /// Like [`delays`](Self::delays), with jitter drawn from a generator seeded with `seed`:
    /// the same seed gives the same delays.
    pub fn delays_seeded(&self, seed: u64) -> Delays {
        Delays::new(*self, fastrand::Rng::with_seed(seed))
    }

    #[inline]
    pub(crate) fn sane_multiplier(&self) -> f64 {
        if self.multiplier >= 1.0 { self.multiplier.min(f64::MAX) } else { 1.0 }
    }

    /// The base delay before retry `n` (0-based), without jitter, in nanoseconds.
    #[inline]
    pub(crate) fn base_nanos(&self, n: u32) -> f64 {
        let max = nanos_f64(self.max_delay);
        let base = match n {
            0 => nanos_f64(self.initial_delay),
            n => {
                let exp = i32::try_from(n).unwrap_or(i32::MAX);
                nanos_f64(self.initial_delay) * self.sane_multiplier().powi(exp)
            }
        };
        // NaN (0 · ∞) and overflow both end at the cap.
        if base <= max { base } else { max }
    }

    /// The delay before retry `n` (0-based); `random` is a uniform draw of 64 bits (only its
    /// high 32 are used). In integer nanoseconds: the jitter factor is rounded down to a
    /// multiple of 2⁻³², so every delay stays within `[d·(1-j), d·(1+j)]`.
    #[inline]
    pub(crate) fn delay(&self, n: u32, random: u64) -> Duration {
        let base = match n {
            0 => self.first_nanos,
            n => float_to_nanos(self.base_nanos(n)),
        };
        let j = self.jitter_fixed;
        if j == 0 {
            return duration_from_nanos(base);
        }
        let spread = ((u128::from(base) * u128::from(j)) >> 32) as u64;
        // `2·spread·r / 2³²` with `r` the high 32 random bits: one widening multiply.
        let offset = ((u128::from(spread) * u128::from(random >> 32)) >> 31) as u64;
        duration_from_nanos((base - spread).saturating_add(offset))
    }

    /// Whether drawing a delay needs randomness at all.
    #[inline]
    pub(crate) fn has_jitter(&self) -> bool {
        self.jitter_fixed != 0
    }
}

/// `d` in nanoseconds, without going through `u128` (whose conversion to `f64` is a software
/// routine, `__floattidf`).
#[inline]
fn nanos_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// `Duration::from_nanos` without its division for delays under a second.
#[inline]
fn duration_from_nanos(nanos: u64) -> Duration {
    match u32::try_from(nanos) {
        Ok(nanos) if nanos < 1_000_000_000 => Duration::new(0, nanos),
        _ => Duration::from_nanos(nanos),
    }
}

/// Rounds to the nearest nanosecond (`round()` is a libm call on x86-64 without SSE4.1); NaN
/// and negative values saturate to 0, values past `u64::MAX` to it.
#[inline]
fn float_to_nanos(nanos: f64) -> u64 {
    (nanos + 0.5) as u64
}

/// The delays a [`RetryConfig`] waits before each retry: an iterator of `max_retries`
/// durations, each drawn as described on [`RetryConfig`].
///
/// With the `backoff` feature it also implements `backoff::backoff::Backoff` (see [the module
/// docs](crate)), so the same policy can drive code written against the `backoff`
/// crate.
#[derive(Debug, Clone)]
pub struct Delays {
    pub(crate) config: RetryConfig,
    pub(crate) next: u32,
    pub(crate) rng: fastrand::Rng,
    /// When `backoff`'s `max_elapsed` budget started (the first `next_backoff` or `reset`).
    #[cfg(feature = "backoff")]
    pub(crate) started: Option<std::time::Instant>,
}

impl Delays {
    pub(crate) fn new(config: RetryConfig, rng: fastrand::Rng) -> Self {
        Delays {
            config,
            next: 0,
            rng,
            #[cfg(feature = "backoff")]
            started: None,
        }
    }

    /// The configuration this schedule follows.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next >= self.config.max_retries {
            return None;
        }
        let random = if self.config.has_jitter() { self.rng.u64(..) } else { 0 };
        let delay = self.config.delay(self.next, random);
        self.next += 1;
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.config.max_retries - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Delays {}
impl std::iter::FusedIterator for Delays {}
