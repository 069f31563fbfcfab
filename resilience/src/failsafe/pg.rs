//! The PostgreSQL store (feature `postgres`): checkpoints of workers on many machines in one
//! database, with leases and fencing tokens instead of `flock`s. See `docs/DISTRIBUTED.md`.
//!
//! - `operations`: one row per operation: its newest checkpoint's summary, its `sequence`, its
//!   lease (`lease_token`, `lease_holder`, `lease_expires`), and its newest checkpoints in 8
//!   slot columns (`slot_0` …, the checkpoint of sequence `n` in `slot_{n % 8}`) when the
//!   managers saving it keep at most 8.
//! - `checkpoint_ring`: the checkpoints of operations whose managers keep more than 8, in a
//!   ring of `max_checkpoints + 1` slots (and those of stores made by version 1).
//! - `lease_tokens`: the sequence fencing tokens are drawn from, so a token is never reused,
//!   not even after an operation is discarded and created again.
//!
//! Every save is one statement: the holder's save updates `operations` only where its token is
//! the current one and its lease has not expired, writing the summary and the checkpoint into
//! the row — one row update, the same work as a single-row upsert — or, with more than 8 kept,
//! writing the checkpoint into the ring in the same statement. An ex-holder's save writes
//! nothing (`Error::LeaseLost`). A save by a manager without a lease takes the row only where no
//! live lease exists (`Error::Locked` otherwise), in the same way.
//!
//! The client is the synchronous `postgres` crate, called from the calling thread, or from a
//! thread of its own when the caller is inside a tokio runtime (where `postgres` would panic);
//! a dropped connection is opened again at the next call. Like a checkpoint file, an operation
//! has a fixed number of checkpoint slots: a save overwrites the oldest, deleting nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use super::opfile::{NewRecord, OwnedRecord};
use super::{OperationSummary, ProcessState};
use crate::error::{Error, Result};

const TARGET: &str = "resilience::failsafe";
/// The version of the tables below; a database with a newer one is refused.
const SCHEMA_VERSION: i32 = 2;
/// Key of the advisory lock that serializes migrations of one database.
const MIGRATION_LOCK: i64 = 0x7265_7369_6c69_656e;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The connection, owned by the client thread, and its prepared statements.
struct Session {
    url: String,
    client: Option<Client>,
    statements: Statements,
}

/// Prepared statements by their text.
type Statements = HashMap<String, Statement, std::hash::BuildHasherDefault<SqlHasher>>;

/// Hashes a statement's text by its length and its ends only: a save's text is 2 KB, hashed at
/// every save, and texts that hash alike are compared in full all the same.
#[derive(Default)]
struct SqlHasher(std::hash::DefaultHasher);

impl std::hash::Hasher for SqlHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        match bytes.len() {
            0..=128 => self.0.write(bytes),
            n => {
                self.0.write(&bytes[..64]);
                self.0.write(&bytes[n - 64..]);
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl Session {
    fn db(&mut self) -> std::result::Result<Db<'_>, postgres::Error> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(Client::connect(&self.url, NoTls)?);
        }
        let client = self.client.as_mut().expect("connected above");
        Ok(Db { client, statements: &mut self.statements })
    }
}

/// A connected client whose statements are prepared once per connection: a save is then one
/// round trip, not a prepare and an execute.
pub(crate) struct Db<'a> {
    client: &'a mut Client,
    statements: &'a mut Statements,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Db<'_> {
    fn statement(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> PgResult<Vec<postgres::Row>> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> PgResult<Option<postgres::Row>> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> PgResult<u64> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    fn transaction(&mut self) -> PgResult<postgres::Transaction<'_>> {
        self.client.transaction()
    }
}

type PgResult<T> = std::result::Result<T, postgres::Error>;

/// The connection, used directly from the calling thread, or from a thread of its own when the
/// caller runs inside a tokio runtime (where the blocking client would panic).
#[derive(Clone)]
struct Conn {
    session: Arc<Mutex<Session>>,
    jobs: mpsc::Sender<Job>,
    /// Where the database is, without credentials, for messages.
    place: Arc<str>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("place", &self.place).finish_non_exhaustive()
    }
}

impl Conn {
    fn start(url: &str) -> Conn {
        let (jobs, queue) = mpsc::channel::<Job>();
        let session =
            Session { url: url.to_owned(), client: None, statements: Statements::default() };
        let session = Arc::new(Mutex::new(session));
        let shared = Arc::clone(&session);
        std::thread::Builder::new()
            .name("resilience-postgres".into())
            .spawn(move || {
                for job in queue {
                    job(&mut lock(&shared));
                }
            })
            .expect("spawn the PostgreSQL client thread");
        Conn { session, jobs, place: redact(url).into() }
    }

    /// Runs `f` with the client; `what` names the operation in errors (formatted only then).
    fn call<R: Send + 'static>(
        &self,
        what: impl std::fmt::Display,
        f: impl FnOnce(&mut Db<'_>) -> PgResult<R> + Send + 'static,
    ) -> Result<R> {
        let place = &self.place;
        let result = if tokio::runtime::Handle::try_current().is_err() {
            run(&mut lock(&self.session), f)
        } else {
            let (reply, answer) = mpsc::sync_channel(1);
            let job: Job = Box::new(move |session: &mut Session| {
                let _ = reply.send(run(session, f));
            });
            let lost = || Error::Database {
                what: format!("{what} ({place})"),
                retryable: true,
                source: "the PostgreSQL client thread stopped".into(),
            };
            self.jobs.send(job).map_err(|_| lost())?;
            answer.recv().map_err(|_| lost())?
        };
        result.map_err(|error| Error::Database {
            what: format!("{what} ({place})"),
            retryable: retryable(&error),
            source: Box::new(error),
        })
    }
}

/// Runs `f` on the session, dropping a connection that failed on the way: one that closed, an
/// I/O error, or the server's "connection" and "operator intervention" errors (a terminated
/// backend reports `57P01` before the client has noticed the socket closing). The next call
/// connects again.
fn run<R>(session: &mut Session, f: impl FnOnce(&mut Db<'_>) -> PgResult<R>) -> PgResult<R> {
    let result = session.db().and_then(|mut db| f(&mut db));
    if let Err(error) = &result
        && (connection_lost(error) || session.client.as_ref().is_some_and(Client::is_closed))
    {
        session.client = None;
    }
    result
}

/// Connection failures, a server shutting down, serialization failures and deadlocks are worth
/// another try; a statement the server refuses is not.
fn retryable(error: &postgres::Error) -> bool {
    connection_lost(error)
        || error.code().is_some_and(|code| matches!(code.code(), "40001" | "40P01"))
}

/// The connection is gone: closed, an I/O error, or the server's "connection exception" and
/// "operator intervention" classes (`08`, `57P`).
fn connection_lost(error: &postgres::Error) -> bool {
    error.is_closed()
        || error.as_db_error().is_none()
        || error.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        })
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The leases this manager took: operation id → fencing token, until the lock is dropped (a
/// lost lease stays, so that the holder's saves are refused, not retried without a lease).
type Leases = Arc<Mutex<HashMap<String, u64>>>;

/// The store of one manager in a PostgreSQL database.
pub(crate) struct PgStore {
    conn: Conn,
    schema: String,
    ttl: Duration,
    save: SaveStatements,
    holder: String,
    leases: Leases,
    /// The sequence of each held operation's newest checkpoint, as this manager last saw it:
    /// a save that knows it writes its slot directly (a guess, checked by the statement).
    sequences: Mutex<HashMap<String, u64>>,
    renewer: Option<Renewer>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("place", &self.conn.place)
            .field("schema", &self.schema)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The thread that renews this manager's leases every TTL/3.
struct Renewer {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Renewer {
    fn drop(&mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `name` can be a schema name as is (it is quoted in statements all the same).
pub(crate) fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

fn holder_name(manager: u64) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a valid buffer and its length.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_owned()
    };
    format!("{host} pid {} manager {manager}", std::process::id())
}

fn now_ns() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn state_code(state: ProcessState) -> i16 {
    match state {
        ProcessState::Initialized => 0,
        ProcessState::Running => 1,
        ProcessState::Paused => 2,
        ProcessState::Completed => 3,
        ProcessState::Failed => 4,
    }
}

fn state_from(code: i16, place: &str) -> Result<ProcessState> {
    Ok(match code {
        0 => ProcessState::Initialized,
        1 => ProcessState::Running,
        2 => ProcessState::Paused,
        3 => ProcessState::Completed,
        4 => ProcessState::Failed,
        other => return Err(Error::corrupt(place, format!("unknown state {other}"))),
    })
}

fn time_from(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// A checkpoint's columns, owned, for a statement run on the client thread.
struct Row {
    id: String,
    name: String,
    state: i16,
    progress: f64,
    cursor: i64,
    saved_at: i64,
    error: Option<String>,
    schema: i64,
    codec: i16,
    payload: Vec<u8>,
    run: Vec<u8>,
}

impl Row {
    fn new(id: &str, r: &NewRecord<'_>) -> Row {
        Row {
            id: id.to_owned(),
            name: text(r.name),
            state: state_code(r.state),
            progress: r.progress,
            cursor: r.cursor as i64,
            saved_at: now_ns(),
            error: r.error.map(text),
            schema: r.schema as i64,
            codec: i16::from(r.codec),
            payload: r.payload.to_vec(),
            run: r.run.to_vec(),
        }
    }

    /// The save statements' parameters `$1` … `$11`, and the holder's token as `$12`.
    fn params<'a>(&'a self, token: Option<&'a i64>) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(13);
        params.extend([
            &self.id as &(dyn ToSql + Sync),
            &self.name,
            &self.state,
            &self.progress,
            &self.cursor,
            &self.saved_at,
            &self.error,
            &self.schema,
            &self.codec,
            &self.payload,
            &self.run,
        ]);
        if let Some(token) = token {
            params.push(token);
        }
        params
    }
}

/// A name or an error message as a `text` value, which cannot hold NUL: each becomes U+FFFD.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// An operation id must round-trip exactly, so one with a NUL (which `text` cannot hold) is
/// refused by name rather than altered.
fn check_id(id: &str) -> Result<()> {
    if id.contains('\0') {
        return Err(Error::InvalidOperationId {
            operation_id: id.to_owned(),
            reason: "it contains a NUL character, which a Postgres store cannot hold".to_owned(),
        });
    }
    Ok(())
}

const CHECKPOINT_COLUMNS: &str =
    "operation_name, state, progress, cursor, saved_at_ns, error, schema_fp, codec, payload, run";
const SUMMARY_COLUMNS: &str =
    "operation_id, operation_name, state, progress, cursor, sequence, saved_at_ns, error";

/// Checkpoint slots in each `operations` row: a manager keeping at most this many checkpoints
/// writes them into its operation's own row, so that a save is one row update.
const ROW_SLOTS: usize = 8;

/// The `operations` row's checkpoint slot columns: `slot_0, slot_1, …`.
fn slot_columns() -> String {
    (0..ROW_SLOTS).map(|k| format!("slot_{k}")).collect::<Vec<_>>().join(", ")
}

/// The statements of a save, built once per store: by the lease holder (`$12` is its token)
/// and by a manager without a lease.
struct SaveStatements {
    /// Returns the sequence written.
    held: Arc<str>,
    free: Arc<str>,
    /// With row slots: the holder's save when it knows the operation's sequence (`$13`), one
    /// per slot: it writes slot `($13 + 1) % ROW_SLOTS` only, without choosing among them.
    slots: Vec<Arc<str>>,
}

impl SaveStatements {
    /// With `max_checkpoints` ≤ [`ROW_SLOTS`], the checkpoint goes into slot `sequence %
    /// ROW_SLOTS` of the operation's row: the lease check, the summary and the checkpoint are
    /// one row update, the same shape as a single-row upsert. With more, it goes into the
    /// `checkpoint_ring` of `max_checkpoints + 1` slots, in the same statement.
    fn new(s: &str, keep: i64) -> SaveStatements {
        let summary = "operation_name = $2, state = $3, progress = $4, cursor = $5, \
                       saved_at_ns = $6, error = $7";
        if usize::try_from(keep).is_ok_and(|keep| keep <= ROW_SLOTS) {
            let record = |seq: &str| {
                format!("ROW({seq}, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)::{s}.checkpoint")
            };
            // `row` names the operation's row: `o.` in the upsert, where `EXCLUDED` is one too.
            let slots = |row: &str| {
                let seq = format!("{row}sequence + 1");
                (0..ROW_SLOTS)
                    .map(|k| {
                        format!(
                            ", slot_{k} = CASE WHEN ({seq}) % {ROW_SLOTS} = {k} THEN {} \
                             ELSE {row}slot_{k} END",
                            record(&seq)
                        )
                    })
                    .collect::<String>()
            };
            SaveStatements {
                held: format!(
                    "UPDATE {s}.operations SET sequence = sequence + 1, {summary}{}
                     WHERE operation_id = $1 AND lease_token = $12
                         AND lease_expires > clock_timestamp()
                     RETURNING sequence",
                    slots("")
                )
                .into(),
                free: format!(
                    "INSERT INTO {s}.operations AS o (operation_id, operation_name, state,
                         progress, cursor, sequence, saved_at_ns, error, slot_1)
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, {})
                     ON CONFLICT (operation_id) DO UPDATE SET sequence = o.sequence + 1,
                         {summary}{}
                     WHERE o.lease_expires IS NULL OR o.lease_expires <= clock_timestamp()",
                    record("1"),
                    slots("o.")
                )
                .into(),
                slots: (0..ROW_SLOTS)
                    .map(|k| {
                        format!(
                            "UPDATE {s}.operations SET sequence = $13 + 1, {summary},
                                 slot_{k} = {}
                             WHERE operation_id = $1 AND lease_token = $12
                                 AND lease_expires > clock_timestamp() AND sequence = $13",
                            record("$13 + 1")
                        )
                        .into()
                    })
                    .collect(),
            }
        } else {
            // A ring of `max_checkpoints + 1` slots per operation, as in a checkpoint file: a
            // save overwrites the oldest slot, so nothing is ever deleted.
            let slots = keep.saturating_add(1);
            let insert = format!(
                "ins AS (
                     INSERT INTO {s}.checkpoint_ring AS c (operation_id, slot, sequence,
                         {CHECKPOINT_COLUMNS})
                     SELECT $1, op.sequence % {slots}, op.sequence, $2, $3, $4, $5, $6, $7, $8,
                         $9, $10, $11 FROM op
                     ON CONFLICT (operation_id, slot) DO UPDATE SET sequence = EXCLUDED.sequence,
                         operation_name = EXCLUDED.operation_name, state = EXCLUDED.state,
                         progress = EXCLUDED.progress, cursor = EXCLUDED.cursor,
                         saved_at_ns = EXCLUDED.saved_at_ns, error = EXCLUDED.error,
                         schema_fp = EXCLUDED.schema_fp, codec = EXCLUDED.codec,
                         payload = EXCLUDED.payload, run = EXCLUDED.run
                     RETURNING sequence
                 )
                 SELECT sequence FROM ins"
            );
            SaveStatements {
                held: format!(
                    "WITH op AS (
                         UPDATE {s}.operations SET sequence = sequence + 1, {summary}
                         WHERE operation_id = $1 AND lease_token = $12
                             AND lease_expires > clock_timestamp()
                         RETURNING sequence
                     ), {insert}"
                )
                .into(),
                free: format!(
                    "WITH op AS (
                         INSERT INTO {s}.operations AS o (operation_id, operation_name, state,
                             progress, cursor, sequence, saved_at_ns, error)
                         VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
                         ON CONFLICT (operation_id) DO UPDATE SET sequence = o.sequence + 1,
                             {summary}
                         WHERE o.lease_expires IS NULL
                             OR o.lease_expires <= clock_timestamp()
                         RETURNING sequence
                     ), {insert}"
                )
                .into(),
                slots: Vec::new(),
            }
        }
    }
}

/// Creates the tables of version [`SCHEMA_VERSION`] in schema `s`, or brings those of an older
/// version up to it; idempotent. Run in the migration's transaction.
///
/// Version 1 kept every checkpoint in `checkpoints`; version 2 adds the row slots (and the
/// `checkpoint` type they hold) to `operations` and calls the ring `checkpoint_ring`. The
/// checkpoints of a version 1 store stay in the ring: they are read as the older ones until
/// newer saves replace them.
fn migrate(tx: &mut postgres::Transaction<'_>, s: &str) -> PgResult<()> {
    let checkpoint_type = format!("{s}.checkpoint");
    let exists: bool =
        tx.query_one("SELECT to_regtype($1) IS NOT NULL", &[&checkpoint_type])?.get(0);
    if !exists {
        tx.batch_execute(&format!(
            "CREATE TYPE {s}.checkpoint AS (
                 sequence bigint,
                 operation_name text,
                 state smallint,
                 progress double precision,
                 cursor bigint,
                 saved_at_ns bigint,
                 error text,
                 schema_fp bigint,
                 codec smallint,
                 payload bytea,
                 run bytea
             )"
        ))?;
    }
    // Renamed, so that a manager of version 1 still running fails to read or save instead of
    // reading its old table without the newer checkpoints in the rows (its prepared
    // statements are analysed again, by name, when the table changes).
    let ring = format!("{s}.checkpoints");
    let old: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&ring])?.get(0);
    if old {
        tx.batch_execute(&format!("ALTER TABLE {s}.checkpoints RENAME TO checkpoint_ring"))?;
    }
    let slots: String = (0..ROW_SLOTS)
        .map(|k| format!(", ADD COLUMN IF NOT EXISTS slot_{k} {s}.checkpoint"))
        .collect::<String>();
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {s}.operations (
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
         ALTER TABLE {s}.operations {}, SET (fillfactor = {FILLFACTOR});
         CREATE TABLE IF NOT EXISTS {s}.checkpoint_ring (
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
         );",
        &slots[2..]
    ))
}

/// Room left in each page of `operations` for the next version of its rows, so that a save
/// stays a HOT update (no index entry) even where many operations share a page.
const FILLFACTOR: u32 = 70;

impl PgStore {
    /// Connects, creates or migrates the tables (in one transaction, under an advisory lock),
    /// and starts the lease renewer.
    pub(crate) fn connect(
        url: &str,
        schema: &str,
        ttl: Duration,
        max_checkpoints: usize,
    ) -> Result<PgStore> {
        static NEXT_MANAGER: AtomicU64 = AtomicU64::new(1);
        let conn = Conn::start(url);
        let s = format!("\"{schema}\"");
        let prepare = format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);
             CREATE SEQUENCE IF NOT EXISTS {s}.lease_tokens;"
        );
        let version_query = format!("SELECT max(version) FROM {s}.schema_version");
        let version_insert = format!("INSERT INTO {s}.schema_version (version) VALUES ($1)");
        let version_update = format!("UPDATE {s}.schema_version SET version = $1");
        let schema_name = s.clone();
        let found = conn.call("creating the tables", move |client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(&prepare)?;
            let found: Option<i32> = tx.query_one(&version_query, &[])?.get(0);
            match found {
                Some(version) if version >= SCHEMA_VERSION => {}
                Some(_) => {
                    migrate(&mut tx, &schema_name)?;
                    tx.execute(&version_update, &[&SCHEMA_VERSION])?;
                }
                None => {
                    migrate(&mut tx, &schema_name)?;
                    tx.execute(&version_insert, &[&SCHEMA_VERSION])?;
                }
            }
            tx.commit()?;
            Ok(found)
        })?;
        if let Some(found) = found.filter(|&v| v > SCHEMA_VERSION) {
            return Err(Error::InvalidConfig(format!(
                "the tables in schema `{schema}` of {} have version {found}; this build of \
                 resilience knows version {SCHEMA_VERSION}: upgrade it",
                conn.place
            )));
        }
        let keep = i64::try_from(max_checkpoints).unwrap_or(i64::MAX);
        let leases: Leases = Arc::default();
        let renewer = Renewer::start(conn.clone(), s.clone(), ttl, Arc::clone(&leases));
        Ok(PgStore {
            conn,
            save: SaveStatements::new(&s, keep),
            schema: s,
            ttl,
            holder: holder_name(NEXT_MANAGER.fetch_add(1, Ordering::Relaxed)),
            leases,
            sequences: Mutex::default(),
            renewer: Some(renewer),
        })
    }

    /// Where an operation's checkpoints are, for messages.
    pub(crate) fn location(&self, id: &str) -> PathBuf {
        PathBuf::from(format!("{} {}.operations[{id}]", self.conn.place, self.schema))
    }

    fn token(&self, id: &str) -> Option<u64> {
        lock(&self.leases).get(id).copied()
    }

    /// Saves a record: as the lease holder when this manager holds `id`'s lease (else
    /// `Error::LeaseLost`, writing nothing), or where nobody holds a live lease (else
    /// `Error::Locked`). One statement; it returns after the commit.
    pub(crate) fn save(&self, id: &str, record: &NewRecord<'_>) -> Result<()> {
        check_id(id)?;
        let row = Row::new(id, record);
        let Some(token) = self.token(id) else {
            let sql = Arc::clone(&self.save.free);
            let written =
                self.conn.call(format_args!("saving a checkpoint of `{id}`"), move |client| {
                    Ok(client.execute(&sql, &row.params(None))? > 0)
                })?;
            return if written {
                Ok(())
            } else {
                Err(Error::Locked { operation_id: id.to_owned() })
            };
        };
        // The holder's save: into the slot after the sequence it knows, or, when that guess is
        // wrong (or there are no row slots), through the statement that finds the slot itself.
        // Each statement checks the token and the lease's expiry as it writes.
        let known = lock(&self.sequences).get(id).copied();
        let direct = known.and_then(|seq| {
            let slot = usize::try_from((seq + 1) % ROW_SLOTS as u64).ok()?;
            Some((seq as i64, Arc::clone(self.save.slots.get(slot)?)))
        });
        let held = Arc::clone(&self.save.held);
        let written =
            self.conn.call(format_args!("saving a checkpoint of `{id}`"), move |client| {
                let token = token as i64;
                if let Some((seq, sql)) = &direct {
                    let mut params = row.params(Some(&token));
                    params.push(seq);
                    if client.execute(sql, &params)? > 0 {
                        return Ok(Some(seq + 1));
                    }
                }
                Ok(client.query_opt(&held, &row.params(Some(&token)))?.map(|r| r.get::<_, i64>(0)))
            })?;
        let mut sequences = lock(&self.sequences);
        match written {
            Some(seq) => {
                match sequences.get_mut(id) {
                    Some(known) => *known = seq as u64,
                    None => drop(sequences.insert(id.to_owned(), seq as u64)),
                }
                Ok(())
            }
            None => {
                sequences.remove(id);
                // The lease entry stays until the lock is dropped: every later save is refused.
                tracing::warn!(target: TARGET, operation_id = id, "lease lost: the save was refused");
                Err(Error::LeaseLost { operation_id: id.to_owned() })
            }
        }
    }

    /// Up to `limit` records of `id`, newest first.
    pub(crate) fn records(&self, id: &str, limit: usize) -> Result<Vec<OwnedRecord>> {
        if id.contains('\0') {
            return Ok(Vec::new()); // never saved: `save` refuses it
        }
        let s = &self.schema;
        let sql = format!(
            "SELECT sequence, {CHECKPOINT_COLUMNS} FROM (
                 SELECT r.* FROM {s}.operations AS o,
                     unnest(ARRAY[{slots}]) AS r
                 WHERE o.operation_id = $1
                 UNION ALL
                 SELECT sequence, {CHECKPOINT_COLUMNS} FROM {s}.checkpoint_ring
                 WHERE operation_id = $1
             ) AS records
             WHERE sequence IS NOT NULL ORDER BY sequence DESC LIMIT $2",
            slots = slot_columns()
        );
        let (key, limit) = (id.to_owned(), i64::try_from(limit).unwrap_or(i64::MAX));
        let rows =
            self.conn.call(format_args!("reading the checkpoints of `{id}`"), move |client| {
                client.query(&sql, &[&key, &limit])
            })?;
        let place = self.location(id);
        let place = place.to_string_lossy();
        rows.iter()
            .map(|row| {
                Ok(OwnedRecord {
                    sequence: row.get::<_, i64>(0) as u64,
                    name: row.get(1),
                    state: state_from(row.get(2), &place)?,
                    progress: row.get(3),
                    cursor: row.get::<_, i64>(4) as u64,
                    saved_at: time_from(row.get(5)),
                    error: row.get(6),
                    schema: row.get::<_, i64>(7) as u64,
                    codec: u8::try_from(row.get::<_, i16>(8))
                        .map_err(|_| Error::corrupt(&*place, "bad codec id"))?,
                    payload: row.get(9),
                    run: row.get(10),
                })
            })
            .collect()
    }

    /// The operations whose newest state `keep` accepts, by id.
    pub(crate) fn summaries(
        &self,
        keep: fn(ProcessState) -> bool,
    ) -> Result<Vec<OperationSummary>> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM {}.operations WHERE sequence > 0 ORDER BY operation_id",
            self.schema
        );
        let rows =
            self.conn.call("listing the operations", move |client| client.query(&sql, &[]))?;
        let place = format!("{} {}.operations", self.conn.place, self.schema);
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let summary = summary(row, &place)?;
            if keep(summary.state) {
                out.push(summary);
            }
        }
        Ok(out)
    }

    /// Deletes `id` when `pred` accepts its state (or always) and no other manager holds a live
    /// lease on it (`Error::Locked` then).
    pub(crate) fn discard_if(
        &self,
        id: &str,
        pred: Option<fn(ProcessState) -> bool>,
    ) -> Result<bool> {
        if id.contains('\0') {
            return Ok(false); // never saved: `save` refuses it
        }
        let s = &self.schema;
        let token = self.token(id).map(|t| t as i64);
        let key = id.to_owned();
        let states: Vec<i16> = [
            ProcessState::Initialized,
            ProcessState::Running,
            ProcessState::Paused,
            ProcessState::Completed,
            ProcessState::Failed,
        ]
        .into_iter()
        .filter(|&state| pred.is_none_or(|pred| pred(state)))
        .map(state_code)
        .collect();
        let delete = format!(
            "DELETE FROM {s}.operations WHERE operation_id = $1 AND state = ANY($2)
                 AND (lease_expires IS NULL OR lease_expires <= clock_timestamp()
                      OR lease_token = $3)
             RETURNING sequence"
        );
        let exists = format!(
            "SELECT sequence, state FROM {s}.operations WHERE operation_id = $1
                 AND lease_expires > clock_timestamp()"
        );
        let outcome = self.conn.call(format!("discarding `{id}`"), move |client| {
            let token = token.unwrap_or(-1);
            if let Some(row) = client.query_opt(&delete, &[&key, &states, &token])? {
                return Ok(Ok(row.get::<_, i64>(0) > 0));
            }
            // Not deleted: missing, in another state, or leased by someone else.
            let leased = client.query_opt(&exists, &[&key])?;
            Ok(match leased {
                Some(row) if row.get::<_, i64>(0) > 0 && states.contains(&row.get(1)) => Err(()),
                _ => Ok(false),
            })
        })?;
        match outcome {
            Ok(removed) => {
                lock(&self.leases).remove(id);
                lock(&self.sequences).remove(id);
                Ok(removed)
            }
            Err(()) => Err(Error::Locked { operation_id: id.to_owned() }),
        }
    }

    /// Takes `id`'s lease for this manager: its fencing token.
    pub(crate) fn acquire(&self, id: &str) -> Result<u64> {
        check_id(id)?;
        if lock(&self.leases).contains_key(id) {
            return Err(Error::Locked { operation_id: id.to_owned() });
        }
        let s = &self.schema;
        let sql = format!(
            "INSERT INTO {s}.operations AS o (operation_id, lease_token, lease_holder, lease_expires)
             VALUES ($1, nextval('{s}.lease_tokens'), $2,
                     clock_timestamp() + $3::bigint * interval '1 millisecond')
             ON CONFLICT (operation_id) DO UPDATE SET lease_token = nextval('{s}.lease_tokens'),
                 lease_holder = EXCLUDED.lease_holder, lease_expires = EXCLUDED.lease_expires
             WHERE o.lease_expires IS NULL OR o.lease_expires <= clock_timestamp()
             RETURNING lease_token, sequence"
        );
        let (key, holder, ttl) = (id.to_owned(), self.holder.clone(), ttl_ms(self.ttl));
        let taken = self.conn.call(format!("taking the lease of `{id}`"), move |client| {
            Ok(client
                .query_opt(&sql, &[&key, &holder, &ttl])?
                .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1))))
        })?;
        let Some((token, sequence)) = taken else {
            return Err(Error::Locked { operation_id: id.to_owned() });
        };
        let token = token as u64;
        lock(&self.sequences).insert(id.to_owned(), sequence as u64);
        lock(&self.leases).insert(id.to_owned(), token);
        tracing::debug!(target: TARGET, operation_id = id, token, "lease taken");
        Ok(token)
    }

    /// Gives the lease up (if it is still ours).
    pub(crate) fn release(&self, id: &str, token: u64) {
        {
            let mut leases = lock(&self.leases);
            if leases.get(id) == Some(&token) {
                leases.remove(id);
                lock(&self.sequences).remove(id);
            }
        }
        let sql = format!(
            "UPDATE {}.operations SET lease_expires = NULL, lease_holder = NULL
             WHERE operation_id = $1 AND lease_token = $2",
            self.schema
        );
        let key = id.to_owned();
        let released = self.conn.call(format!("releasing the lease of `{id}`"), move |client| {
            client.execute(&sql, &[&key, &(token as i64)])
        });
        if let Err(error) = released {
            // It expires by itself after the TTL.
            tracing::warn!(target: TARGET, operation_id = id, %error, "could not release a lease");
        }
    }

    /// Claims one recoverable operation nobody holds a live lease on: its summary and token.
    pub(crate) fn claim_recoverable(&self) -> Result<Option<(OperationSummary, u64)>> {
        let s = &self.schema;
        let resumable: Vec<i16> =
            [ProcessState::Running, ProcessState::Paused, ProcessState::Failed]
                .into_iter()
                .map(state_code)
                .collect();
        let sql = format!(
            "UPDATE {s}.operations AS o SET lease_token = nextval('{s}.lease_tokens'),
                 lease_holder = $1,
                 lease_expires = clock_timestamp() + $2::bigint * interval '1 millisecond'
             WHERE o.operation_id = (
                 SELECT operation_id FROM {s}.operations
                 WHERE sequence > 0 AND state = ANY($3)
                     AND (lease_expires IS NULL OR lease_expires <= clock_timestamp())
                 ORDER BY saved_at_ns LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING {SUMMARY_COLUMNS}, lease_token"
        );
        let (holder, ttl) = (self.holder.clone(), ttl_ms(self.ttl));
        let row = self.conn.call("claiming a recoverable operation", move |client| {
            client.query_opt(&sql, &[&holder, &ttl, &resumable])
        })?;
        let Some(row) = row else { return Ok(None) };
        let place = format!("{} {}.operations", self.conn.place, self.schema);
        let summary = summary(&row, &place)?;
        let token = row.get::<_, i64>(8) as u64;
        lock(&self.sequences).insert(summary.operation_id.clone(), summary.sequence);
        lock(&self.leases).insert(summary.operation_id.clone(), token);
        Ok(Some((summary, token)))
    }
}

fn summary(row: &postgres::Row, place: &str) -> Result<OperationSummary> {
    Ok(OperationSummary {
        operation_id: row.get(0),
        operation_name: row.get(1),
        state: state_from(row.get(2), place)?,
        progress: row.get(3),
        cursor: row.get::<_, i64>(4) as u64,
        sequence: row.get::<_, i64>(5) as u64,
        saved_at: time_from(row.get(6)),
        error: row.get(7),
    })
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Stop renewing before the connection goes: the leases expire after the TTL.
        self.renewer.take();
    }
}

impl Renewer {
    fn start(conn: Conn, schema: String, ttl: Duration, leases: Leases) -> Renewer {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = Arc::clone(&stop);
        let every = (ttl / 3).max(Duration::from_millis(10));
        let sql = format!(
            "UPDATE {schema}.operations
             SET lease_expires = clock_timestamp() + $3::bigint * interval '1 millisecond'
             WHERE operation_id = $1 AND lease_token = $2"
        );
        let thread = std::thread::Builder::new()
            .name("resilience-leases".into())
            .spawn(move || {
                let mut stopped = lock(&flag.0);
                loop {
                    // Checked before waiting too: the store may be dropped before this starts.
                    if *stopped {
                        return;
                    }
                    stopped = flag.1.wait_timeout(stopped, every).map(|(g, _)| g).unwrap_or_else(
                        |poison| poison.into_inner().0,
                    );
                    if *stopped {
                        return;
                    }
                    let held: Vec<(String, u64)> =
                        lock(&leases).iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for (id, token) in held {
                        let (sql, key, ttl) = (sql.clone(), id.clone(), ttl_ms(ttl));
                        let renewed = conn.call(format!("renewing the lease of `{id}`"), move |c| {
                            c.execute(&sql, &[&key, &(token as i64), &ttl])
                        });
                        match renewed {
                            // The token stays: the holder's next save is refused with `LeaseLost`.
                            Ok(0) => {
                                tracing::warn!(target: TARGET, operation_id = %id, "lease lost: another worker holds the operation");
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(target: TARGET, operation_id = %id, %error, "could not renew a lease");
                            }
                        }
                    }
                }
            })
            .expect("spawn the lease renewer");
        Renewer { stop, thread: Some(thread) }
    }
}
