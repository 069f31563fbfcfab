//! The Postgres store against a real server: the `FailsafeManager` contract of
//! `tests/store_contract` (the bodies `tests/contract` runs on the file store), leases with
//! fencing tokens, takeover of a stopped worker's operation, dropped connections, migration,
//! tokio runtimes.
//!
//! The server: `$RESILIENCE_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
//! These tests fail, never skip, when it does not answer; `.ci/run` checks it first.
#![cfg(feature = "postgres")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use resilience::{Classify, Error, FailsafeManager, ProcessState, Recovery};

fn url() -> String {
    std::env::var("RESILIENCE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own for each test, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    fn new(test: &str) -> Schema {
        let name = format!("t_{}_{}_{:08x}", test, std::process::id(), fastrand::u32(..));
        Schema { name }
    }

    fn manager(&self) -> FailsafeManager {
        self.builder().build().expect("connect to the test server ($RESILIENCE_TEST_POSTGRES)")
    }

    fn builder(&self) -> resilience::FailsafeBuilder {
        Schema::builder_for(&self.name)
    }

    fn builder_for(name: &str) -> resilience::FailsafeBuilder {
        FailsafeManager::builder()
            .postgres(url())
            .pg_schema(name)
            .max_checkpoints(3)
            .lease_ttl(Duration::from_secs(30))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // On a thread of its own: the blocking client must not run inside a tokio runtime.
        let drop_schema = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
                let _ = client.batch_execute(&drop_schema);
            }
        })
        .join();
    }
}

#[path = "store_contract/mod.rs"]
mod store_contract;

use store_contract::{Count, count};

// The store contract of `tests/contract`, the same bodies, on the Postgres store.
crate::store_contract_tests!(|test: &str| {
    let schema = Schema::new(&test[..test.len().min(24)]);
    let name = schema.name.clone();
    (schema, move || Schema::builder_for(&name).build().expect("connect to the test server"))
});

#[test]
fn a_nul_in_an_id_is_refused_by_name_and_in_a_name_or_message_replaced() {
    let schema = Schema::new("nul");
    let m = schema.manager();
    let refused = m.save_checkpoint("a\0b", "Op", ProcessState::Running, 0.0, &count(1));
    match refused {
        Err(e @ Error::InvalidOperationId { .. }) => {
            assert!(e.to_string().contains("a\\0b"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(m.lock("a\0b"), Err(Error::InvalidOperationId { .. })));
    assert!(m.operations().unwrap().is_empty(), "nothing written");
    m.save_checkpoint("op", "Na\0me", ProcessState::Running, 0.0, &count(1)).unwrap();
    assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().operation_name, "Na\u{FFFD}me");
}

#[test]
fn fencing_tokens_grow_with_every_holder() {
    let schema = Schema::new("tokens");
    let m = schema.manager();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let lock = m.lock("op").unwrap();
        tokens.push(lock.fencing_token().unwrap());
    }
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.0, &count(1)).unwrap();
    assert!(m.discard("op").unwrap());
    // Even after the operation was discarded and made again.
    tokens.push(m.lock("op").unwrap().fencing_token().unwrap());
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[test]
fn an_expired_lease_is_taken_over_and_the_ex_holder_writes_nothing() {
    let schema = Schema::new("expiry");
    let zombie = schema.builder().lease_ttl(Duration::from_millis(300)).build().unwrap();
    let lock = zombie.lock("job").unwrap();
    zombie.save_checkpoint("job", "Job", ProcessState::Running, 0.1, &count(1)).unwrap();
    // The zombie's lease is renewed while its process runs: take it away as if the renewals
    // had stopped (a paused or partitioned worker), then let another worker take over.
    expire_leases(&schema.name);
    let (summary, takeover) = schema.manager().claim_recoverable().unwrap().expect("claimable");
    assert_eq!(summary.operation_id, "job");
    assert!(takeover.fencing_token() > lock.fencing_token());
    let worker = schema.manager();
    drop(takeover);
    let lease = worker.lock("job").unwrap();
    worker.save_checkpoint("job", "Job", ProcessState::Running, 0.5, &count(50)).unwrap();
    let late = zombie.save_checkpoint("job", "Job", ProcessState::Running, 0.2, &count(2));
    assert!(
        matches!(late, Err(Error::LeaseLost { ref operation_id }) if operation_id == "job"),
        "{late:?}"
    );
    assert_eq!(Error::LeaseLost { operation_id: "job".into() }.recovery(), Recovery::Abort);
    assert_eq!(worker.load_checkpoint::<Count>("job").unwrap().unwrap().data, count(50));
    drop(lease);
    drop(lock);
}

fn history(m: &FailsafeManager, id: &str) -> Vec<u64> {
    m.history::<Count>(id).unwrap().into_iter().map(|c| c.data.n).collect()
}

#[test]
fn more_checkpoints_than_a_row_holds_are_kept_and_fenced_all_the_same() {
    let schema = Schema::new("many");
    // 8 fit in the operation's row; 12 go to the `checkpoints` ring.
    let (eight, twelve) = (
        schema.builder().max_checkpoints(8).build().unwrap(),
        schema.builder().max_checkpoints(12).build().unwrap(),
    );
    for n in 1..=20 {
        eight.save_checkpoint("row", "Op", ProcessState::Running, 0.1, &count(n)).unwrap();
        twelve.save_checkpoint("ring", "Op", ProcessState::Running, 0.1, &count(n)).unwrap();
    }
    assert_eq!(history(&eight, "row"), (13..=20).rev().collect::<Vec<_>>());
    assert_eq!(history(&twelve, "ring"), (9..=20).rev().collect::<Vec<_>>());
    // Managers of both kinds on one operation: the newest first, each once (the oldest ones
    // of one kind may have been overwritten by the other's, as with rings of two sizes).
    twelve.save_checkpoint("row", "Op", ProcessState::Running, 0.1, &count(21)).unwrap();
    eight.save_checkpoint("row", "Op", ProcessState::Running, 0.1, &count(22)).unwrap();
    assert_eq!(history(&eight, "row"), (15..=22).rev().collect::<Vec<_>>());
    let mixed = history(&twelve, "row");
    assert_eq!(mixed[..8], *(15..=22).rev().collect::<Vec<_>>(), "{mixed:?}");
    assert!(mixed.windows(2).all(|w| w[0] > w[1]), "{mixed:?}");
    assert_eq!(eight.load_checkpoint::<Count>("ring").unwrap().unwrap().sequence, 20);
    // A holder that lost its lease writes nothing through the ring either.
    let lock = twelve.lock("ring").unwrap();
    expire_leases(&schema.name);
    let (_, takeover) = eight.claim_recoverable().unwrap().expect("claimable");
    let late = twelve.save_checkpoint("ring", "Op", ProcessState::Running, 0.2, &count(99));
    assert!(matches!(late, Err(Error::LeaseLost { .. })), "{late:?}");
    eight.save_checkpoint("ring", "Op", ProcessState::Running, 0.3, &count(21)).unwrap();
    assert_eq!(history(&twelve, "ring")[..3], [21, 20, 19]);
    drop((lock, takeover));
}

#[test]
fn a_holder_whose_idea_of_the_sequence_is_wrong_still_saves_in_order() {
    let schema = Schema::new("guess");
    let m = schema.manager();
    let lock = m.lock("op").unwrap();
    for n in 1..=3 {
        m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(n)).unwrap();
    }
    // The holder writes the slot after the sequence it last saw, checked by the statement;
    // here the row moved on without it.
    admin()
        .execute(&format!("UPDATE \"{}\".operations SET sequence = sequence + 5", schema.name), &[])
        .unwrap();
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(4)).unwrap();
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(5)).unwrap();
    assert_eq!(history(&m, "op"), [5, 4, 3]);
    let newest = m.load_checkpoint::<Count>("op").unwrap().unwrap();
    assert_eq!((newest.data, newest.sequence), (count(5), 10));
    drop(lock);
}

/// The tables as version 1 created them: every checkpoint in the `checkpoints` ring.
const VERSION_1: &str = "
    CREATE SCHEMA {s};
    CREATE TABLE {s}.schema_version (version integer NOT NULL);
    INSERT INTO {s}.schema_version VALUES (1);
    CREATE SEQUENCE {s}.lease_tokens;
    CREATE TABLE {s}.operations (
        operation_id text PRIMARY KEY,
        operation_name text NOT NULL DEFAULT '',
        state smallint NOT NULL DEFAULT 0,
        progress double precision NOT NULL DEFAULT 0,
        cursor bigint NOT NULL DEFAULT 0,
        sequence bigint NOT NULL DEFAULT 0,
        saved_at_ns bigint NOT NULL DEFAULT 0,
        error text,
        lease_token bigint NOT NULL DEFAULT 0,
        lease_holder text,
        lease_expires timestamptz
    );
    CREATE TABLE {s}.checkpoints (
        operation_id text NOT NULL REFERENCES {s}.operations ON DELETE CASCADE,
        slot integer NOT NULL,
        sequence bigint NOT NULL,
        operation_name text NOT NULL,
        state smallint NOT NULL,
        progress double precision NOT NULL,
        cursor bigint NOT NULL,
        saved_at_ns bigint NOT NULL,
        error text,
        schema_fp bigint NOT NULL,
        codec smallint NOT NULL,
        payload bytea NOT NULL,
        run bytea NOT NULL,
        PRIMARY KEY (operation_id, slot)
    );";

#[test]
fn a_version_1_store_is_migrated_and_keeps_its_checkpoints() {
    // Records as version 1 wrote them: a manager keeping more than a row holds writes the
    // same rows, with the same statement.
    let donor = Schema::new("v1_donor");
    let m = donor.builder().max_checkpoints(20).build().unwrap();
    for n in 1..=4 {
        m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(n)).unwrap();
    }
    let old = Schema::new("v1");
    let (s, d) = (format!("\"{}\"", old.name), format!("\"{}\"", donor.name));
    admin()
        .batch_execute(&format!(
            "{}
             INSERT INTO {s}.operations (operation_id, operation_name, state, progress, cursor,
                 sequence, saved_at_ns, error)
             SELECT operation_id, operation_name, state, progress, cursor, sequence,
                 saved_at_ns, error FROM {d}.operations;
             INSERT INTO {s}.checkpoints SELECT * FROM {d}.checkpoint_ring;",
            VERSION_1.replace("{s}", &s)
        ))
        .unwrap();
    // A manager of version 1 still running, with its statements prepared.
    let mut running = admin();
    let its_load = running
        .prepare(&format!("SELECT payload FROM {s}.checkpoints WHERE operation_id = $1"))
        .unwrap();
    assert_eq!(running.query(&its_load, &[&"op"]).unwrap().len(), 4);
    // Workers starting together migrate it once.
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let builder = old.builder();
            std::thread::spawn(move || builder.build().map(|_| ()))
        })
        .collect();
    for worker in starting {
        worker.join().unwrap().unwrap();
    }
    let m = old.manager(); // max_checkpoints 3: new checkpoints go to the row
    assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().data, count(4));
    assert_eq!(history(&m, "op"), [4, 3, 2]);
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(5)).unwrap();
    assert_eq!(history(&m, "op"), [5, 4, 3]);
    assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().sequence, 5);
    let version: Vec<i32> = admin()
        .query(&format!("SELECT version FROM {s}.schema_version"), &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(version, [2]);
    let ring: bool = admin()
        .query_one(&format!("SELECT to_regclass('{s}.checkpoints') IS NULL"), &[])
        .unwrap()
        .get(0);
    assert!(ring, "renamed, so that a manager of version 1 still running cannot misread it");
    let misread = running.query(&its_load, &[&"op"]);
    assert!(misread.is_err(), "version 1 must not read checkpoints without the newer ones");
    // Opened again, it is not migrated twice.
    assert_eq!(history(&old.manager(), "op"), [5, 4, 3]);
}

fn admin() -> postgres::Client {
    postgres::Client::connect(&url(), postgres::NoTls).expect("the test server answers")
}

fn expire_leases(schema: &str) {
    admin()
        .execute(
            &format!(
                "UPDATE \"{schema}\".operations SET lease_expires = clock_timestamp() - interval '1 second'"
            ),
            &[],
        )
        .unwrap();
}

const ROLE: &str = "RESILIENCE_PG_ROLE";

/// Child processes of this binary.
#[test]
#[ignore = "run by the tests of this file in child processes"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let schema = std::env::var("RESILIENCE_PG_SCHEMA").unwrap();
    match role.as_str() {
        // Holds the lease of `job`, saves once, waits for a line on stdin, saves again.
        "holder" => {
            let m = FailsafeManager::builder()
                .postgres(url())
                .pg_schema(&schema)
                .lease_ttl(Duration::from_millis(600))
                .build()
                .unwrap();
            let lock = m.lock("job").unwrap();
            m.save_checkpoint("job", "Job", ProcessState::Running, 0.1, &count(1)).unwrap();
            println!("LOCKED {}", lock.fencing_token().unwrap());
            let _ = std::io::stdin().read_line(&mut String::new());
            match m.save_checkpoint("job", "Job", ProcessState::Running, 0.2, &count(2)) {
                Ok(()) => println!("SAVED"),
                Err(Error::LeaseLost { .. }) => println!("LEASE LOST"),
                Err(e) => println!("ERROR {e}"),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_stopped_holder_loses_its_lease_and_its_late_save_writes_nothing() {
    let schema = Schema::new("zombie");
    schema.manager(); // creates the tables
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, "holder")
        .env("RESILIENCE_PG_SCHEMA", &schema.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let locked = lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("LOCKED")).unwrap();
    let old_token: u64 = locked["LOCKED ".len()..].parse().unwrap();
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let start = std::time::Instant::now();
    let worker = schema.manager();
    let claimed = loop {
        if let Some(claim) = worker.claim_recoverable().unwrap() {
            break claim;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the stopped holder's lease never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Taken over within the TTL (600 ms) and a little.
    let takeover = start.elapsed();
    assert!(claimed.1.fencing_token().unwrap() > old_token);
    worker.save_checkpoint("job", "Job", ProcessState::Running, 0.5, &count(50)).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    use std::io::Write;
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let outcome = lines
        .map_while(Result::ok)
        .find(|l| l == "SAVED" || l == "LEASE LOST" || l.starts_with("ERROR"))
        .expect("the child says how its late save went");
    child.wait().unwrap();
    assert_eq!(outcome, "LEASE LOST");
    assert_eq!(worker.load_checkpoint::<Count>("job").unwrap().unwrap().data, count(50));
    println!("takeover after {takeover:?} (lease TTL 600 ms)");
}

#[test]
fn a_dropped_connection_is_a_retryable_error_and_the_next_call_reconnects() {
    let schema = Schema::new("dropped");
    let app = format!("resilience-{}", schema.name);
    let m = FailsafeManager::builder()
        .postgres(format!("{}?application_name={app}", url()))
        .pg_schema(&schema.name)
        .build()
        .unwrap();
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.1, &count(1)).unwrap();
    let killed: i64 = admin()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let save = m.save_checkpoint("op", "Op", ProcessState::Running, 0.2, &count(2));
    match &save {
        Err(e @ Error::Database { retryable: true, .. }) => {
            assert_eq!(e.recovery(), Recovery::Retry)
        }
        other => panic!("expected a retryable database error, got {other:?}"),
    }
    // Not reported as saved, and nothing lost: the next call reconnects and sees the old record.
    assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().data, count(1));
    m.save_checkpoint("op", "Op", ProcessState::Running, 0.3, &count(3)).unwrap();
    assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().data, count(3));
}

#[test]
fn tables_are_created_once_by_workers_starting_together() {
    let schema = Schema::new("migrate");
    let name = schema.name.clone();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || {
                FailsafeManager::builder().postgres(url()).pg_schema(name).build().map(|_| ())
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let versions: i64 = admin()
        .query_one(&format!("SELECT count(*) FROM \"{name}\".schema_version"), &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
}

#[test]
fn bad_settings_are_clear_errors() {
    let bad = FailsafeManager::builder().postgres(url()).pg_schema("no; drop table x").build();
    assert!(matches!(bad, Err(Error::InvalidConfig(ref m)) if m.contains("pg_schema")), "{bad:?}");
    let unreachable = FailsafeManager::builder()
        .postgres("postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
        .build();
    assert!(matches!(unreachable, Err(Error::Database { retryable: true, .. })), "{unreachable:?}");
}

#[cfg(feature = "tokio")]
mod inside_tokio {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime() {
        let schema = Schema::new("tokio_ct");
        let m = schema.manager();
        m.save_checkpoint("op", "Op", ProcessState::Running, 0.5, &count(7)).unwrap();
        assert_eq!(m.load_checkpoint::<Count>("op").unwrap().unwrap().data, count(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_thread_runtime() {
        let schema = Schema::new("tokio_mt");
        let m = schema.manager();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move {
                    m.save_checkpoint(
                        &format!("op-{i}"),
                        "Op",
                        ProcessState::Running,
                        0.5,
                        &count(i),
                    )
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
        assert_eq!(m.operations().unwrap().len(), 4);
    }
}
