//! Procedural macros for the `resilience` crate. Use them through `resilience`, which
//! re-exports each one (`resilience::retry`, `resilience::Checkpointable`, ...); the generated
//! code calls into `::resilience`.

use proc_macro::TokenStream;

mod args;
mod checkpointable;
mod checkpointed;
mod classify;
mod function;
mod loops;
mod protected;
mod retry;
mod stacking;

#[cfg(test)]
mod snapshots;

/// Retries the function body with exponential backoff and jitter.
///
/// The function keeps its signature; its body runs again while it returns an `Err` that is
/// retryable, with a growing delay between attempts, and the last error is returned when the
/// attempts run out. Each annotated function has its own statistics in
/// `RetryManager::global()`; when the first attempt succeeds, the call allocates nothing,
/// takes no lock and (unless `max_elapsed` is set) reads no clock.
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `max = 3` | retries after the first attempt (`max + 1` attempts) | `3` |
/// | `initial = "100ms"` | the first delay | `"100ms"` |
/// | `max_delay = "30s"` | no delay is longer | `"30s"` |
/// | `multiplier = 2.0` | each delay is the previous one times this (≥ 1) | `2.0` |
/// | `jitter = 0.5` | each delay is drawn from `[d·(1-j), d·(1+j)]` (0 to 1) | `0.5` |
/// | `max_elapsed = "1m"` | no attempt starts after this much time | unset |
/// | `when = path::to::pred` | `fn(&E) -> bool`: only errors it accepts are retried; `when = always` retries every error | see below |
/// | `when_ok = path` | `fn(&T) -> bool`: an `Ok` value it accepts is retried too; when attempts run out, the last one is returned | no `Ok` is retried |
/// | `on_retry = path` | `fn(&E, attempt: u32, delay: Duration)`, called before each sleep after an error (`attempt` 1 for the first retry) | none |
/// | `fallback = path` | `fn(E) -> Result<T, E>`, called once with the final error (attempts run out, or not retryable) | the error is returned |
/// | `budget = "name"` | draws on `RetryManager::global()`'s shared `RetryBudget` of that name; an exhausted budget returns the error at once | none |
/// | `name = "..."` | the operation name in statistics and logs | `module_path::fn_name` |
///
/// The error type must implement `Debug` (as `Result::unwrap` requires too): each retry and
/// each final failure is logged with it under the `resilience::retry` target.
///
/// Durations are string literals with a unit: `"250ms"`, `"2s"`, `"5m"`, `"1h"`. Without
/// `when`, an error type that implements `Classify` is retried only when its
/// `recovery()` is `Recovery::Retry`; any other concrete error type is always retried. When a
/// retried error's `Classify::retry_after()` is `Some(d)` (a server's hint), the next delay is
/// exactly `d`: no jitter, not shortened by `max_delay`, still cut by `max_elapsed`.
///
/// The return type is a `Result`, or any alias of one (`io::Result<T>`, `type Fallible<T> =
/// Result<T, MyError>`), and its `Ok` type may be an `impl Trait`. A *generic* error type
/// (`Result<_, E>` where `E` is a type parameter of the function, or a single capital letter
/// such as a parameter of the `impl`, or `Self::Error` in a trait) cannot be told apart from
/// an unclassified one, so without `when` it must be bound by `Classify`, and is retried by
/// its classification; without the bound, the compile error says to add it or to write
/// `when = path::to::predicate` (or `when = always`, to retry every error):
///
/// ```
/// use std::fmt::Debug;
/// use resilience::{Classify, retry};
///
/// #[retry(max = 2)]
/// fn call<E: Classify + Debug>(attempt: impl Fn() -> Result<u32, E>) -> Result<u32, E> {
///     attempt()
/// }
///
/// #[retry(max = 2, when = always)]
/// fn call_any<E: Debug>(attempt: impl Fn() -> Result<u32, E>) -> Result<u32, E> {
///     attempt()
/// }
/// # let clock = resilience::ManualSleeper::new();
/// # let tries = std::cell::Cell::new(0);
/// # let failing = || { tries.set(tries.get() + 1); Err::<u32, _>("down") };
/// # assert!(resilience::with_sleeper(&clock, || call_any(failing)).is_err());
/// # assert_eq!(tries.get(), 3);
/// ```
///
/// ```compile_fail
/// #[resilience::retry] // `#[retry]` cannot tell which errors of the generic type `E` to retry
/// fn call<E: std::fmt::Debug>(e: impl Fn() -> E) -> Result<u32, E> { Err(e()) }
/// ```
///
/// ```
/// use std::time::Duration;
/// use resilience::{Classify, RetryBudget, RetryManager, retry};
///
/// #[derive(Debug, PartialEq, Classify)]
/// enum ApiError {
///     #[classify(retry, retry_after = wait)]
///     RateLimited { wait: Duration },
///     #[classify(abort)]
///     Denied,
/// }
///
/// fn pending(status: &u16) -> bool { *status == 202 }
/// fn log_retry(e: &ApiError, attempt: u32, delay: Duration) { eprintln!("{e:?}: retry {attempt} in {delay:?}") }
/// fn cached(_: ApiError) -> Result<u16, ApiError> { Ok(304) }
///
/// #[retry(max = 4, when_ok = pending, on_retry = log_retry, fallback = cached, budget = "api")]
/// fn status(replies: &mut Vec<Result<u16, ApiError>>) -> Result<u16, ApiError> {
///     replies.pop().unwrap()
/// }
///
/// RetryManager::global().set_budget("api", RetryBudget::new().ratio(0.1));
/// let clock = resilience::ManualSleeper::new();
/// let mut replies = vec![Ok(200), Err(ApiError::RateLimited { wait: Duration::from_secs(2) }), Ok(202)];
/// assert_eq!(resilience::with_sleeper(&clock, || status(&mut replies)), Ok(200));
/// assert_eq!(clock.sleeps()[1], Duration::from_secs(2)); // the server's hint
///
/// let mut replies = vec![Err(ApiError::Denied)];
/// assert_eq!(status(&mut replies), Ok(304)); // the fallback
/// ```
///
/// ```
/// use resilience::retry;
///
/// #[derive(Debug)]
/// struct Busy;
///
/// #[retry(max = 3, initial = "50ms")]
/// fn upload(data: &[u8], attempts: &mut u32) -> Result<usize, Busy> {
///     *attempts += 1;
///     if *attempts < 3 { Err(Busy) } else { Ok(data.len()) }
/// }
///
/// let mut attempts = 0;
/// // Tests swap the sleeper so that no real time passes.
/// let clock = resilience::ManualSleeper::new();
/// let sent = resilience::with_sleeper(&clock, || upload(b"photo", &mut attempts));
/// assert_eq!((sent.unwrap(), attempts), (5, 3));
/// assert_eq!(clock.sleeps().len(), 2);
/// ```
///
/// Methods (`self`, `&self`, `&mut self`), trait impls and generic functions work alike, and
/// `async fn` does with `resilience`'s `tokio` feature (without it, the error says to enable
/// it):
///
/// ```
/// # #[derive(Debug)] struct Timeout;
/// fn is_transient(_: &Timeout) -> bool {
///     true
/// }
///
/// struct Client { pending: Vec<String> }
///
/// impl Client {
///     #[resilience::retry(max = 5, multiplier = 1.5, jitter = 0.0, when = is_transient)]
///     fn flush(&mut self) -> Result<usize, Timeout> {
///         let sent = self.pending.len();
///         self.pending.clear();
///         Ok(sent)
///     }
///
///     #[resilience::retry(name = "client fetch")]
///     async fn fetch(&self, key: &str) -> Result<String, Timeout> {
///         Ok(key.to_uppercase())
///     }
/// }
/// # let mut c = Client { pending: vec!["a".into()] };
/// # assert_eq!(c.flush().unwrap(), 1);
/// ```
///
/// Each attempt runs the same body again, so arguments taken by value must be `Copy` or only
/// borrowed by the body (`name: String`, `path: impl AsRef<Path>`, `self: Arc<Self>`, in
/// `async fn`s too). A body that moves an argument out is rejected by the compiler with
/// "cannot move out of `arg`, a captured variable in an `FnMut` closure": take the argument by
/// reference, or clone it inside the body. Each attempt sees the arguments as the call passed
/// them: a `mut n: u32` that the body increments starts from the caller's value every time
/// (so a by-value `mut` argument must be `Copy`; to keep changes from one attempt to the next,
/// take it by `&mut`).
///
/// Arguments may come from a `macro_rules!` in any form (`max = $max` with `$max:literal`,
/// `when = $pred` with `$pred:path`, `-> $ret` with `$ret:ty`).
///
/// # Limitations
///
/// - **A function that returns a future without being an `async fn`** (`fn get() -> impl
///   Future<Output = Result<..>>`) cannot be retried: its body only creates the future, once,
///   and `#[retry]` rejects its return type. Write it as an `async fn` (also in traits: native
///   `async fn` in traits is stable since Rust 1.75). Methods of an `#[async_trait]` impl or
///   trait are recognised (the body inside their `Box::pin(async move { .. })` is retried),
///   within the next point's limit.
/// - **An `async fn` that borrows mutably (`&mut self` or a `&mut T` argument), when its future
///   must be `Send`** (`tokio::spawn`): each attempt must borrow the same data again, so the
///   body becomes an async closure, and rustc cannot yet prove such a closure's future `Send`
///   ("implementation of `Send` is not general enough",
///   <https://github.com/rust-lang/rust/issues/138207>). It works where `Send` is not needed
///   (`.await` in place, `block_on`, `spawn_local`). To spawn it, retry a function that takes
///   `&self` and keeps its mutable state behind a `Mutex` or an atomic, or retry the part that
///   needs no `&mut` and apply its result afterwards. Under `#[async_trait]` (whose futures
///   are `Send` unless it says `?Send`) such a method is a compile error that says this.
///
/// Mistakes in the arguments are compile errors at the offending token:
///
/// ```compile_fail
/// #[resilience::retry(maxx = 3)] // unknown argument `maxx`; did you mean `max`? ...
/// fn f() -> Result<(), std::io::Error> { Ok(()) }
/// ```
///
/// ```compile_fail
/// #[resilience::retry(jitter = 1.5)] // `jitter` must be between 0.0 and 1.0 ...
/// fn f() -> Result<(), std::io::Error> { Ok(()) }
/// ```
///
/// ```compile_fail
/// #[resilience::retry] // `#[retry]` needs a function that returns `Result<_, _>` ...
/// fn f() -> Option<u8> { None }
/// ```
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    retry::expand(args.into(), item.into()).into()
}

/// Makes a processing function resumable from its last checkpoint.
///
/// The function keeps its signature; it must return a `Result` whose error type implements
/// `From<resilience::Error>` (the store's own errors, such as `Error::Locked`, are returned
/// through it). Each call:
///
/// 1. takes the operation's lock (a concurrent run of the same id, in this or another process,
///    gets `Error::Locked`);
/// 2. if the operation's last checkpoint is resumable (`Running`, `Paused`, `Failed`), restores
///    the state parameter from it and makes the tracked loop skip the items already done; a
///    `Completed` or missing checkpoint starts fresh; a resumable checkpoint of another version
///    of the state type is `Error::SchemaMismatch`;
/// 3. saves a `Running` checkpoint after every `every` items of the tracked loop (and when
///    `interval` has passed), with `progress` = items done / total;
/// 4. saves `Completed` on `Ok`; on `Err` or a panic saves `Failed` with the error text and the
///    state of the last checkpoint, so a resumed run never sees a half-applied item.
///
/// Delivery is at-least-once: after a failure, at most `every` items are processed again. An
/// item left with `break` is not counted.
///
/// **The state** is the function's `&mut S` parameter, `S: Checkpointable` (`state = name`
/// picks one when there are several). Without one the checkpoints carry `()` and still keep
/// the loop position.
///
/// **The tracked loop** is the body's single top-level `for` loop, or the one marked with a
/// `#[checkpoint]` statement attribute when there are several. Without a `for` loop only the
/// state transitions are checkpointed. The iterated expression must not borrow the state.
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `every = 10` | a checkpoint after every 10 completed items (≥ 1) | `1` |
/// | `interval = "5s"` | also a checkpoint when this much time has passed since the last one | unset |
/// | `id = "import-{batch}"` | the operation id; `{param}` is a parameter's `Display` | `module_path::fn_name` |
/// | `name = "Photo import"` | the operation name | the function's name |
/// | `manager = expr` | a `&FailsafeManager` (or what derefs to one) | `FailsafeManager::global()` |
/// | `state = name` | the state parameter | the single `&mut` parameter |
/// | `errors = expr` | the `&ErrorHandler` skipped items are recorded in | `ErrorHandler::global()` |
/// | `skip_limit = 100` | at most this many skipped items per operation, across resumed runs | no limit |
/// | `input = [a, b]` / `input = none` | the parameters whose arguments a resume must match (each `Hash`) / no check | every `Hash` parameter |
/// | `on_input_change = "restart"` | a checkpoint of other arguments starts a fresh run (`"fail"`: `Error::InputChanged`) | `"fail"` |
///
/// With `interval`, the clock is read every few items, not on each one: how often adapts to
/// the items' speed, so a checkpoint can come a little after the interval has passed.
///
/// **Skipping items.** An error that leaves the tracked loop's body through `?` and whose
/// `Classify::recovery()` is `Recovery::Skip` does not end the function: it is recorded (with
/// the context `operation_id` and `item`, the item's 0-based position), the item counts as
/// done, and the loop goes on with the next item (`FailsafeManager::skipped` lists them).
/// Other errors, and error types without `Classify`, end the function as `?` does. A `?`
/// inside a closure, an `async` block or a macro's arguments within the body is left alone.
///
/// **Guarded resume.** Each checkpoint records a fingerprint (XXH3) of every argument whose
/// type implements `Hash`, except the state, the manager, the handler and the parameters the
/// `id` interpolates (they make another operation already). Resuming with other arguments is
/// `Error::InputChanged` naming the parameters, never a silent mix of two inputs.
///
/// **Locals.** A `let mut` binding declared before the tracked loop and assigned, `+=`-ed,
/// borrowed `&mut` or used as a method receiver inside it is a compile error: a resumed run
/// would start it again from its initial value. Move it into the state, or mark it
/// `#[checkpoint(transient)] let mut ...` when starting over is what you want.
///
/// An `async fn` works the same way (the store is written from the calling task).
///
/// **With other attributes.** Put `#[retry]` and `#[tracing::instrument]` *below*
/// `#[checkpointed]`: each retry attempt is then a run that resumes from the last checkpoint,
/// and the span covers the whole call. Above it, both are compile errors that say so (`#[retry]`
/// would run the call again on the state the failed attempt left; `#[tracing::instrument]`
/// would move the loop out of the body's top level, where it cannot be tracked).
/// `#[protected(retry(..))]` is the other way to retry. `#[checkpointed]` and `#[protected]` on
/// one function are an error: `#[protected]` does everything `#[checkpointed]` does.
///
/// **Limitations.**
/// - *The single `&mut` parameter is the state.* A function's only `&mut` parameter is taken
///   for the state whatever it is for, so a lone `out: &mut Vec<u8>` is checkpointed (and must
///   be `Checkpointable`); with two or more, name the state with `state = name`. A parameter under `#[cfg(..)]` is never the state, since the
///   attribute cannot tell whether the compiler keeps it; nor is it part of the input guard.
/// - *`-> Result<impl Trait, _>` is not supported*: the generated code names the return type,
///   which `impl Trait` cannot be in that position. Return a concrete type or a
///   `Box<dyn Trait>`; the error says so at the return type.
///
/// ```
/// use std::collections::HashMap;
/// use resilience::{Checkpointable, Error, FailsafeManager, checkpointed};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
/// struct Progress {
///     #[checkpoint(cursor)]
///     done: u64,
///     bytes: u64,
/// }
///
/// #[checkpointed(manager = store, every = 10, id = "import-{batch}")]
/// fn import(
///     store: &FailsafeManager,
///     batch: u32,
///     files: &[&str],
///     sizes: &HashMap<&str, u64>, // not `Hash`: not part of the input guard
///     progress: &mut Progress,
/// ) -> Result<u64, Error> {
///     for file in files {
///         let size = sizes.get(file).ok_or(Error::InvalidConfig(format!("{file} is missing")))?;
///         progress.bytes += size;
///     }
///     Ok(progress.bytes)
/// }
///
/// # let tmp = tempfile::tempdir().unwrap();
/// let store = FailsafeManager::open(tmp.path())?;
/// let files: Vec<String> = (0..25).map(|n| format!("{n}.jpg")).collect();
/// let files: Vec<&str> = files.iter().map(String::as_str).collect();
/// let mut sizes: HashMap<&str, u64> = files.iter().map(|f| (*f, 5)).collect();
/// sizes.remove("23.jpg");
/// assert!(import(&store, 7, &files, &sizes, &mut Progress::default()).is_err());
/// // The failed run left a checkpoint at item 20 ...
/// assert_eq!(store.load_checkpoint::<Progress>("import-7")?.unwrap().cursor, 20);
///
/// // ... which a run over other files refuses to resume ...
/// let result = import(&store, 7, &files[..24], &sizes, &mut Progress::default());
/// assert!(matches!(result, Err(Error::InputChanged { .. })));
///
/// // ... and the next run over the same files resumes.
/// sizes.insert("23.jpg", 5);
/// let mut progress = Progress::default();
/// assert_eq!(import(&store, 7, &files, &sizes, &mut progress)?, 25 * 5);
/// assert_eq!(progress.done, 25);
/// # Ok::<(), Error>(())
/// ```
#[proc_macro_attribute]
pub fn checkpointed(args: TokenStream, item: TokenStream) -> TokenStream {
    checkpointed::expand(args.into(), item.into()).into()
}

/// Full layered protection: checkpoints, backups, retry and error recording.
///
/// Everything [`checkpointed`](macro@checkpointed) does, with the same arguments, plus:
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `backup = "data/app.db"` or `backup = ["a.db", "b.json"]` | files backed up at entry (`{param}` interpolates, relative to the working directory) | none |
/// | `backup_missing = "skip"` | a file to back up that does not exist is skipped (`"error"`: the call fails with `Error::BackupMissing`) | `"error"` |
/// | `restore_on_failure = true` | when the call fails, the files are restored from the entry backups, and the state and the `Failed` checkpoint go back to the entry state, so that files and checkpoint agree | `false` |
/// | `retry(max = 3, initial = "1s", ...)` | retries the whole operation, with `#[retry]`'s arguments (`when_ok`, `on_retry`, `fallback` and `budget` too); each attempt resumes from the last checkpoint (no new backup) | no retry |
/// | `errors = expr` | the `&ErrorHandler` that records every `Err` (and skipped items) | `ErrorHandler::global()` |
///
/// Every `Err` the body returns (each failed attempt, with `retry`) is recorded with the
/// context `operation_id` and `item` (the index of the item being processed); error types that
/// implement `Classify` are recorded with their classification. With `retry(..)` the body runs
/// again, so parameters taken by value must be `Copy` or only borrowed. Works without a state
/// parameter too. On an `async fn`, `retry(..)` needs the `tokio` feature.
///
/// ```
/// use resilience::ErrorHandler;
/// use resilience::{Error, FailsafeManager, NoSleep, protected};
///
/// #[protected(
///     manager = store,
///     errors = handler,
///     backup = "{path}",
///     restore_on_failure = true,
///     retry(max = 2, initial = "1s"),
/// )]
/// fn rewrite(store: &FailsafeManager, handler: &ErrorHandler, path: &str, fail: bool)
///     -> Result<(), Error>
/// {
///     std::fs::write(path, "half-written").map_err(|e| Error::InvalidConfig(e.to_string()))?;
///     if fail { Err(Error::InvalidConfig("disk full".into())) } else { Ok(()) }
/// }
///
/// # let tmp = tempfile::tempdir().unwrap();
/// # let path = tmp.path().join("data.txt");
/// # let path = path.to_str().unwrap();
/// let store = FailsafeManager::open(tmp.path().join("store"))?;
/// let handler = ErrorHandler::new(100);
/// std::fs::write(path, "original").unwrap();
/// let result = resilience::with_sleeper(&NoSleep, || rewrite(&store, &handler, path, true));
/// assert!(result.is_err());
/// // `InvalidConfig` is not retryable: one attempt, recorded, and the file restored.
/// assert_eq!(handler.history().len(), 1);
/// assert_eq!(std::fs::read_to_string(path).unwrap(), "original");
/// # Ok::<(), Error>(())
/// ```
#[proc_macro_attribute]
pub fn protected(args: TokenStream, item: TokenStream) -> TokenStream {
    protected::expand(args.into(), item.into()).into()
}

/// Derives `resilience::Checkpointable` for a state type saved in checkpoints.
///
/// Derive `serde::Serialize` and `serde::Deserialize` next to it. The generated `SCHEMA` is a
/// 64-bit fingerprint of the type's name (not its module path), its field names and types,
/// `#[checkpoint(version = N)]`, and the same of every struct and enum reachable from its
/// fields (through `Option`, `Vec`, `Box`, maps, tuples, arrays and other derived types), so
/// that a checkpoint written by a different definition is refused (`Error::SchemaMismatch`)
/// instead of misread. Bump `version` when the meaning of the fields changes without their
/// names or types changing.
///
/// - `#[checkpoint(cursor)]` on an integer field mirrors the number of items the tracked loop
///   has completed (`cursor()` / `set_cursor()`; out-of-range values saturate).
/// - `#[checkpoint(total)]` on an integer field gives the progress ratio (`total()`).
/// - `#[checkpoint(opaque)]` on a field (of a struct or of an enum's variant) leaves what is
///   inside the field's type out of the fingerprint; see below.
///
/// Structs (named, tuple, unit) and enums derive it; `cursor` and `total` go on a struct's
/// fields. Type parameters get a `Serialize + DeserializeOwned` bound, and the bound that lets
/// the fingerprint see inside them.
///
/// **Nested types.** Every struct or enum inside the state derives `Checkpointable` too (it
/// is then usable as a state of its own as well); a type that does not is a compile error at
/// the field. The standard types serde stores (numbers, `String`, `Duration`, `SystemTime`,
/// `PathBuf`, `std::net` addresses, `Option`, `Result`, `Vec`, `VecDeque`, `Box`, `Rc`, `Arc`,
/// `Cow`, the maps and sets, arrays, tuples up to 12, ...) need nothing.
///
/// **What the fingerprint cannot see**, and how `#[checkpoint(version = N)]` covers it:
/// - A type from another crate (`chrono::DateTime`, `uuid::Uuid`, `serde_json::Value`) cannot
///   derive it: mark the field `#[checkpoint(opaque)]`. The field's name and the spelling of its
///   type still count; what changes inside the type when you upgrade that crate does not, so
///   bump `version` when such an upgrade changes how the type is serialized.
/// - A field whose type names the type itself (`children: Vec<Node>` in `Node`, or `Self`) is
///   left out of the fingerprint's nested part, since it would be defined by itself; the rest of
///   the type already covers its fields. Two types that hold each other (`Folder` holds `File`,
///   `File` holds `Folder`) are a compile error ("cycle detected when ... `SHAPE`"): mark one of
///   the two fields `#[checkpoint(opaque)]`, and bump the `version` of the type that holds it
///   when the other type changes.
/// - Type parameters and type aliases count through the type they stand for: a derived type
///   there counts, a standard type does not (`State<u8>` and `State<String>` have the same
///   `SCHEMA`, and so do `count: Count` with `type Count = u64` or `u32`).
/// - The check for a field that names the type itself is by name: a field of another type with
///   the same name (`Node` holding `tree::Node`) is left out of the nested part too.
/// - Serde attributes (`#[serde(rename = ..)]`, `default`, `with`) and hand-written
///   `Serialize`/`Deserialize` impls change the stored bytes without the fingerprint seeing
///   it: bump `version` with them.
///
/// ```
/// use resilience::Checkpointable;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
/// #[checkpoint(version = 2)]
/// struct ImportProgress {
///     #[checkpoint(cursor)]
///     done: u64,
///     #[checkpoint(total)]
///     total: u32,
///     imported_bytes: u64,
/// }
///
/// let mut progress = ImportProgress { total: 40, ..Default::default() };
/// progress.set_cursor(12);
/// assert_eq!((progress.done, progress.cursor(), progress.total()), (12, 12, Some(40)));
/// assert_ne!(ImportProgress::SCHEMA, 0);
/// ```
///
/// ```compile_fail
/// #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
/// struct P {
///     #[checkpoint(cursor)] // `#[checkpoint(cursor)]` needs an integer field ...
///     done: String,
/// }
/// ```
///
/// A nested type from another crate, and a recursive type:
///
/// ```
/// use std::collections::BTreeMap;
///
/// use resilience::Checkpointable;
/// # mod other_crate {
/// #     #[derive(serde::Serialize, serde::Deserialize)]
/// #     pub struct Timestamp(pub u64);
/// # }
///
/// #[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
/// #[checkpoint(version = 3)] // bumped when `other_crate::Timestamp` changed its format
/// struct Mirror {
///     folders: BTreeMap<String, Option<Folder>>,
///     #[checkpoint(opaque)]
///     started: other_crate::Timestamp,
/// }
///
/// #[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
/// struct Folder {
///     files: Vec<(String, u64)>,
///     children: Vec<Folder>,
/// }
/// # assert_ne!(Mirror::SCHEMA, Folder::SCHEMA);
/// ```
///
/// ```compile_fail
/// # mod other_crate {
/// #     #[derive(serde::Serialize, serde::Deserialize)]
/// #     pub struct Timestamp(pub u64);
/// # }
/// #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
/// struct Mirror {
///     started: other_crate::Timestamp, // `Timestamp` is inside a checkpointed state, ...
/// }
/// ```
///
/// ```compile_fail
/// #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
/// struct Folder {
///     files: Vec<File>,
/// }
///
/// #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
/// struct File {
///     parent: Option<Box<Folder>>, // cycle detected ...: `#[checkpoint(opaque)]` here
/// }
///
/// let _ = <Folder as resilience::Checkpointable>::SCHEMA;
/// ```
#[proc_macro_derive(Checkpointable, attributes(checkpoint))]
pub fn derive_checkpointable(input: TokenStream) -> TokenStream {
    checkpointable::expand(input.into()).into()
}

/// Derives `resilience::Classify` for an error enum or struct.
///
/// `#[classify(..)]` on the type sets the defaults of every variant; on a variant it overrides
/// them. Options: one of `retry`, `skip`, `abort` (the recovery), `code = "..."`,
/// `category = "..."`, `severity = "info" | "warning" | "error" | "critical"`.
/// `#[classify(transparent)]` on a variant with one field (or on a struct with one field)
/// delegates every method to that field's `Classify` impl. `retry_after = field` on a variant
/// (or a struct) with a named field of type `Duration` or `Option<Duration>` makes
/// `retry_after()` return it: the delay a server asked for, which retries then wait exactly.
///
/// Defaults: recovery `retry`, code `"Type::Variant"` (a struct's: `"Type"`), category
/// `"Type"`, severity `error`.
///
/// ```
/// use resilience::{Classify, Recovery, Severity};
///
/// #[derive(Debug, Classify)]
/// #[classify(category = "network")]
/// enum FetchError {
///     #[classify(code = "E_TIMEOUT", severity = "warning")]
///     Timeout,
///     #[classify(skip)]
///     BadRecord { line: u64 },
///     #[classify(transparent)]
///     Io(std::io::Error),
/// }
///
/// let timeout = FetchError::Timeout;
/// assert_eq!(timeout.recovery(), Recovery::Retry);
/// assert_eq!(timeout.error_code(), "E_TIMEOUT");
/// assert_eq!(timeout.category(), "network");
/// assert_eq!(timeout.severity(), Severity::Warning);
///
/// let bad = FetchError::BadRecord { line: 7 };
/// assert_eq!((bad.recovery(), &*bad.error_code()), (Recovery::Skip, "FetchError::BadRecord"));
///
/// let io = FetchError::Io(std::io::ErrorKind::NotFound.into());
/// assert_eq!(io.recovery(), Recovery::Abort); // as `std::io::Error` classifies it
///
/// #[derive(Debug, Classify)]
/// #[classify(retry, retry_after = reset_in)]
/// struct RateLimited {
///     reset_in: Option<std::time::Duration>,
/// }
/// let limited = RateLimited { reset_in: Some(std::time::Duration::from_secs(3)) };
/// assert_eq!(limited.retry_after(), Some(std::time::Duration::from_secs(3)));
/// ```
///
/// ```compile_fail
/// #[derive(Debug, resilience::Classify)]
/// enum E {
///     #[classify(transparent)] // needs exactly one field to delegate to; `Io` has 2
///     Io(std::io::Error, String),
/// }
/// ```
#[proc_macro_derive(Classify, attributes(classify))]
pub fn derive_classify(input: TokenStream) -> TokenStream {
    classify::expand(input.into()).into()
}
