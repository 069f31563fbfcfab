//! Retry a flaky operation with exponential backoff and jitter, then read the statistics.
//!
//! Run with `cargo run --example retry`.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::{RetryConfig, RetryManager, retry};

/// The attribute form: a transient I/O error on the first call, then success.
#[retry(max = 2, initial = "10ms", name = "read-settings")]
fn read_settings(calls: &AtomicU32) -> Result<String, io::Error> {
    if calls.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "settings server timed out"));
    }
    Ok("threads = 4".to_string())
}

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

    let calls = AtomicU32::new(0);
    let settings = read_settings(&calls)?;
    println!("read {settings:?} after {} calls", calls.load(Ordering::Relaxed));

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
