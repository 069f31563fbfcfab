//! Retry a flaky operation with exponential backoff and jitter, then read the statistics.
//!
//! Run with `cargo run --example retry`.

use std::time::Duration;

use resilience::{RetryConfig, RetryManager};

/// Fails with a timeout on its first two calls, then succeeds.
struct FlakyService {
    calls: u32,
}

impl FlakyService {
    fn fetch(&mut self, id: u32) -> Result<String, String> {
        self.calls += 1;
        if self.calls <= 2 {
            Err(format!("timeout fetching record {id} (call {})", self.calls))
        } else {
            Ok(format!("record {id}"))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 3 retries after the first attempt; delays of about 20 ms, 40 ms, 80 ms (±50 % jitter).
    let config = RetryConfig::new(3)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_secs(1))
        .max_elapsed(Duration::from_secs(5));
    config.validate()?;

    let manager = RetryManager::global();
    let mut service = FlakyService { calls: 0 };

    let record = manager.retry_with_backoff("fetch-record", &config, || service.fetch(7))?;
    println!("fetched {record:?} after {} calls", service.calls);

    // An error the predicate rejects is returned at once.
    let rejected: Result<(), String> = manager.retry_with_backoff_if(
        "validate-record",
        &config,
        || Err("record 8 is malformed".to_string()),
        |e| e.contains("timeout"),
    );
    println!("not retried: {}", rejected.unwrap_err());

    let stats = manager.statistics();
    println!(
        "{} operations, {} attempts, {} retries, success rate {:.0} %",
        stats.total_operations,
        stats.total_attempts,
        stats.total_retries,
        stats.success_rate * 100.0
    );
    for (name, op) in &stats.by_operation {
        println!(
            "  {name}: {} ok, {} failed, {} retries",
            op.successful, op.failed, op.total_retries
        );
    }
    Ok(())
}
