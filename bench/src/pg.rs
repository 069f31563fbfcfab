//! The Postgres store against the same client's raw upsert, a takeover, lease renewals.
//!
//! The server: `$RESILIENCE_BENCH_POSTGRES`, else `$RESILIENCE_TEST_POSTGRES`, else
//! `postgres://postgres@127.0.0.1:5432/test` (a local server: the figures are round trips).

use std::time::{Duration, Instant};

use resilience::{FailsafeManager, ProcessState};

use crate::Config;
use crate::harness::{Batch, Variant, compare, fmt_rate, fmt_time, goal, print_table};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
struct Progress {
    #[checkpoint(cursor)]
    done: u64,
    total: u64,
    bytes: u64,
}

fn url() -> String {
    std::env::var("RESILIENCE_BENCH_POSTGRES")
        .or_else(|_| std::env::var("RESILIENCE_TEST_POSTGRES"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

const SCHEMA: &str = "resilience_bench";

fn manager(ttl: Duration) -> FailsafeManager {
    FailsafeManager::builder()
        .postgres(url())
        .pg_schema(SCHEMA)
        .lease_ttl(ttl)
        .build()
        .expect("connect to the benchmark's PostgreSQL server")
}

pub fn postgres(cfg: &Config) -> bool {
    let mut admin = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
             CREATE SCHEMA {SCHEMA};
             CREATE TABLE {SCHEMA}.raw (id text PRIMARY KEY, data bytea NOT NULL)"
        ))
        .expect("create the raw table");
    let store = manager(Duration::from_secs(30));
    let lock = store.lock("bench-pg").expect("lease");
    // The same bytes as the encoded state of a save, through the same client crate.
    let payload = vec![7u8; 24];
    let mut raw = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let upsert = raw
        .prepare(&format!(
            "INSERT INTO {SCHEMA}.raw (id, data) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data"
        ))
        .expect("prepare");
    let i = std::cell::Cell::new(0u64);
    let raw = std::cell::RefCell::new(raw);
    let mut variants = [
        Variant::looped("save_checkpoint (Postgres, lease held)", || {
            i.set(i.get() + 1);
            let p = Progress { done: i.get(), total: 1_000_000, bytes: i.get() * 10 };
            store
                .save_checkpoint("bench-pg", "Bench", ProcessState::Running, 0.5, &p)
                .expect("save");
        }),
        Variant::looped("raw INSERT … ON CONFLICT DO UPDATE", || {
            let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&"bench-pg", &payload];
            raw.borrow_mut().execute(&upsert, &params).expect("upsert");
        }),
    ];
    // Short batches, many of them: a pair of batches (one of each) runs within ~10 ms, so that
    // the bursts of a busy machine's disk fall on both sides of most pairs alike.
    let r = compare(cfg.reps(9) * 8, Batch::Fixed(cfg.ops(200).div_ceil(8)), &mut variants);
    print_table(
        "10. Postgres store: durable saves (local server)",
        &r,
        "raw INSERT … ON CONFLICT DO UPDATE",
        true,
    );
    let ratio = r.paired_speedup(
        "save_checkpoint (Postgres, lease held)",
        "raw INSERT … ON CONFLICT DO UPDATE",
    );
    let latency = r.median("save_checkpoint (Postgres, lease held)");
    println!(
        "save_checkpoint: {} ({} per save) = {ratio:.2}× the raw upsert's rate; for scale, durare \
         publishes about 0.45 ms per checkpointed step on a local Postgres (not measured here)",
        fmt_rate(latency),
        fmt_time(latency)
    );
    drop(variants);
    drop(lock);

    store.discard("bench-pg").expect("discard");

    // Takeover: a worker process holding a lease is killed (kill -9: nothing releases it).
    let ttl = Duration::from_secs(1);
    let mut child = std::process::Command::new(std::env::current_exe().expect("the bench"))
        .arg("__pg-holder")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a lease holder");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("the holder says it holds the lease");
    assert_eq!(line.trim(), "HELD");
    child.kill().expect("kill the holder");
    let died = Instant::now();
    let _ = child.wait();
    let survivor = manager(ttl);
    let claim = loop {
        if let Some(claim) = survivor.claim_recoverable().expect("claim") {
            break claim;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let takeover = died.elapsed();
    assert_eq!(claim.0.operation_id, "taken-over");
    drop(claim);
    println!("takeover of a killed worker's operation: {takeover:.2?} (lease TTL {ttl:?})");

    // Renewals: a worker holds 10 leases (TTL 1.5 s) for 3 s; every change of one lease's
    // expiry is one renewal statement.
    let ttl = Duration::from_millis(1500);
    let holder = manager(ttl);
    let locks: Vec<_> =
        (0..10).map(|n| holder.lock(&format!("renew-{n}")).expect("lease")).collect();
    let expiry = format!(
        "SELECT lease_expires::text FROM {SCHEMA}.operations WHERE operation_id = 'renew-0'"
    );
    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let now: String = admin.query_one(&expiry, &[]).expect("expiry").get(0);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(locks);
    let renewals = seen.len().saturating_sub(1) as f64;
    let expected = 3.0 / (ttl.as_secs_f64() / 3.0);
    println!(
        "lease renewals: {renewals} of one lease in 3 s with TTL {ttl:?} (one per TTL/3: \
         {expected}), the same for each of the 10 held"
    );
    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"));
    let a = goal(&format!("saves ≥ 0.9× the raw upsert ({ratio:.2}×)"), ratio >= 0.9);
    let b = goal(
        &format!("takeover ≤ lease TTL + 1 s ({takeover:?})"),
        takeover <= Duration::from_secs(2),
    );
    let c = goal(
        &format!("≤ 1 renewal per lease per TTL/3 ({renewals} for {expected})"),
        renewals <= expected,
    );
    a && b && c
}

/// The child of the takeover benchmark: holds the lease of `taken-over` until it is killed.
pub fn hold_lease_until_killed() {
    let store = manager(Duration::from_secs(1));
    store
        .save_checkpoint("taken-over", "Bench", ProcessState::Running, 0.1, &Progress::default())
        .expect("save");
    let _lock = store.lock("taken-over").expect("lease");
    println!("HELD");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
