//! Interop with the `backoff` crate, kept apart from the retry loop (which never uses it).

use std::time::Instant;

use super::config::{Delays, RetryConfig};

impl backoff::backoff::Backoff for Delays {
    /// Restarts the schedule and the `max_elapsed` budget.
    fn reset(&mut self) {
        self.next = 0;
        self.started = Some(Instant::now());
    }

    /// The next delay; `None` once `max_retries` delays were given or when waiting the next
    /// delay would end past `max_elapsed` (counted from the first call or the last `reset`).
    fn next_backoff(&mut self) -> Option<std::time::Duration> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let delay = self.next()?;
        match self.config.get_max_elapsed() {
            Some(budget) if started.elapsed().saturating_add(delay) > budget => None,
            _ => Some(delay),
        }
    }
}

impl<C> From<&backoff::exponential::ExponentialBackoff<C>> for RetryConfig {
    /// The same delays as `backoff`'s policy: initial and maximum interval, multiplier,
    /// randomization factor and maximum elapsed time. `backoff` has no retry count, so
    /// `max_retries` is `u32::MAX` (bounded in practice by `max_elapsed`, 15 minutes by
    /// default there).
    fn from(policy: &backoff::exponential::ExponentialBackoff<C>) -> Self {
        let config = RetryConfig::new(u32::MAX)
            .initial_delay(policy.initial_interval)
            .max_delay(policy.max_interval)
            .multiplier(policy.multiplier)
            .jitter(policy.randomization_factor);
        match policy.max_elapsed_time {
            Some(budget) => config.max_elapsed(budget),
            None => config,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use backoff::backoff::Backoff;

    use super::*;

    #[test]
    fn delays_drive_backoff_with_the_same_schedule_and_reset() {
        let config = RetryConfig::new(3).initial_delay(Duration::from_millis(10)).jitter(0.0);
        let mut delays = config.delays();
        let ms = Duration::from_millis;
        assert_eq!(delays.next_backoff(), Some(ms(10)));
        assert_eq!(delays.next_backoff(), Some(ms(20)));
        assert_eq!(delays.next_backoff(), Some(ms(40)));
        assert_eq!(delays.next_backoff(), None);
        delays.reset();
        assert_eq!(delays.next_backoff(), Some(ms(10)));
    }

    #[test]
    fn backoff_stops_when_the_delay_would_overrun_max_elapsed() {
        let config = RetryConfig::new(3).jitter(0.0).max_elapsed(Duration::from_millis(50));
        let mut delays = config.delays();
        // The first delay (100 ms) already ends past the 50 ms budget.
        assert_eq!(delays.next_backoff(), None);
    }

    #[test]
    fn backoff_retry_loop_runs_on_a_retry_config() {
        let config = RetryConfig::new(2).initial_delay(Duration::ZERO).jitter(0.0);
        let mut calls = 0;
        let result: Result<u32, backoff::Error<&str>> = backoff::retry(config.delays(), || {
            calls += 1;
            Err(backoff::Error::transient("busy"))
        });
        assert!(result.is_err());
        assert_eq!(calls, 3);
    }

    #[test]
    fn an_exponential_backoff_converts_field_by_field() {
        let policy = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(Duration::from_millis(250))
            .with_max_interval(Duration::from_secs(8))
            .with_multiplier(1.5)
            .with_randomization_factor(0.2)
            .with_max_elapsed_time(Some(Duration::from_secs(60)))
            .build();
        let config = RetryConfig::from(&policy);
        assert_eq!(config.get_initial_delay(), Duration::from_millis(250));
        assert_eq!(config.get_max_delay(), Duration::from_secs(8));
        assert_eq!(config.get_multiplier(), 1.5);
        assert_eq!(config.get_jitter(), 0.2);
        assert_eq!(config.get_max_elapsed(), Some(Duration::from_secs(60)));
        assert_eq!(config.max_retries(), u32::MAX);
        assert!(config.validate().is_ok());
    }
}
