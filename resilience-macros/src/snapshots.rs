//! Expansion snapshots: each case expands a `quote!` input with the macro's `expand`, formats
//! the result with `prettyplease` and compares it with `tests/expand/<name>.expanded.rs` at the
//! workspace root. Update them with `UPDATE_EXPECT=1 cargo test -p resilience-macros`.

use proc_macro2::TokenStream;
use quote::quote;

fn check(name: &str, expanded: TokenStream) {
    let file = syn::parse2::<syn::File>(expanded.clone())
        .unwrap_or_else(|e| panic!("{name}: the expansion does not parse: {e}\n{expanded}"));
    let path = format!("{}/../tests/expand/{name}.expanded.rs", env!("CARGO_MANIFEST_DIR"));
    expect_test::expect_file![path].assert_eq(&prettyplease::unparse(&file));
}

fn non_blank_lines(expanded: TokenStream) -> usize {
    let file = syn::parse2::<syn::File>(expanded).unwrap();
    prettyplease::unparse(&file).lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn retry_one_line() {
    let item = quote! {
        pub fn load(path: &str) -> Result<String, std::io::Error> {
            std::fs::read_to_string(path)
        }
    };
    let expanded = crate::retry::expand(quote!(max = 3, initial = "50ms"), item.clone());
    assert!(non_blank_lines(expanded.clone()) <= 15);
    check("retry-one-line", expanded);
}

/// A generic error type asks `Classify` outright; a `mut` argument is copied in each attempt
/// (and loses its `mut` in the signature, where the copy made it unused).
#[test]
fn retry_generic_error_mut_argument() {
    let item = quote! {
        fn send<E: Classify>(mut tries: u32, sink: &Sink<E>) -> Result<u32, E> {
            tries += 1;
            sink.send(tries)
        }
    };
    let expanded = crate::retry::expand(TokenStream::new(), item);
    let lines = non_blank_lines(expanded.clone());
    check("retry-generic-mut", expanded);
    // Two lines over the one-line function's budget: the second line of the body, the copy.
    assert!(lines <= 16, "{lines} lines");
}

/// A method as `#[async_trait]` leaves it: only the body inside `let __ret: R = { .. };` is
/// retried; the arguments move into the future once, before it.
#[test]
fn retry_async_trait_method() {
    let item = quote! {
        fn get<'life0, 'async_trait>(&'life0 self, key: String)
            -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'async_trait>>
        where 'life0: 'async_trait, Self: 'async_trait
        {
            Box::pin(async move {
                if let Some(__ret) = None::<Result<u32, ApiError>> {
                    #[allow(unreachable_code)]
                    return __ret;
                }
                let __self = self;
                let key = key;
                let __ret: Result<u32, ApiError> = { __self.client.get(&key).await };
                #[allow(unreachable_code)]
                __ret
            })
        }
    };
    check("retry-async-trait", crate::retry::expand(TokenStream::new(), item));
}

#[test]
fn retry_all_options() {
    let item = quote! {
        /// Sends it.
        #[inline]
        async fn send<T: Clone>(&mut self, msg: &T) -> Result<usize, SendError> {
            #![allow(clippy::needless_return)]
            self.socket.send(msg.clone()).await
        }
    };
    let args = quote! {
        max = 5, initial = "250ms", max_delay = "2s", multiplier = 1.5, jitter = 0.25,
        max_elapsed = "1m", when = SendError::is_transient, name = "socket send"
    };
    check("retry-all-options", crate::retry::expand(args, item));
}

#[test]
fn retry_hooks() {
    let item = quote! {
        fn poll(job: &Job) -> Result<Status, ApiError> {
            job.status()
        }
    };
    let args = quote! {
        when_ok = Status::is_pending, on_retry = log_retry, fallback = last_known,
        budget = "api"
    };
    check("retry-hooks", crate::retry::expand(args, item));
}

#[test]
fn checkpointed_loop() {
    let item = quote! {
        fn import(batch: u32, photos: &[Photo], progress: &mut ImportProgress) -> Result<(), ImportError> {
            progress.total = photos.len() as u64;
            for photo in photos {
                progress.imported_bytes += upload(photo)?;
            }
            Ok(())
        }
    };
    let expanded = crate::checkpointed::expand(quote!(every = 10, id = "import-{batch}"), item);
    let lines = non_blank_lines(expanded.clone());
    check("checkpointed-loop", expanded.clone());
    // With the input guard and a skipping `?`; the body's own lines count too.
    assert!(lines <= 30, "{lines} lines");
    check("checkpointed-loop", expanded);
}

#[test]
fn checkpointed_async_method() {
    let item = quote! {
        /// Syncs one folder.
        pub async fn sync(&mut self, folder: &Folder, out: &mut Vec<u8>, progress: &mut SyncState) -> anyhow::Result<usize> {
            let mut setup = Vec::new();
            for file in &folder.pending {
                setup.push(file);
            }
            #[checkpoint]
            for file in folder.files.iter().skip(1) {
                if file.is_hidden() {
                    continue;
                }
                self.client.upload(file, out).await?;
            }
            Ok(setup.len())
        }
    };
    let args =
        quote!(state = progress, interval = "5s", name = "Folder sync", manager = &self.store);
    check("checkpointed-async-method", crate::checkpointed::expand(args, item));
}

#[test]
fn protected_all_options() {
    let item = quote! {
        fn nightly(db: &str, report: &mut Report) -> Result<(), JobError> {
            for table in TABLES {
                report.rows += vacuum(db, table)?;
            }
            Ok(())
        }
    };
    let args = quote! {
        id = "nightly-{db}", every = 5, backup = ["data/{db}.db", "data/{db}.wal"],
        backup_missing = "skip", restore_on_failure = true, errors = &HANDLER,
        retry(max = 3, initial = "1s")
    };
    check("protected-all-options", crate::protected::expand(args, item));
}

#[test]
fn checkpointable_struct() {
    let input = quote! {
        #[checkpoint(version = 2)]
        struct ImportProgress {
            #[checkpoint(cursor)]
            done: u64,
            #[checkpoint(total)]
            total: u32,
            imported_bytes: u64,
        }
    };
    check("checkpointable-struct", crate::checkpointable::expand(input));
}

#[test]
fn checkpointable_generic_enum() {
    let input = quote! {
        enum Phase<T> {
            Scanning { seen: u64 },
            Copying(T),
            Done,
        }
    };
    check("checkpointable-generic-enum", crate::checkpointable::expand(input));
}

#[test]
fn checkpointable_nested() {
    let input = quote! {
        struct SyncState {
            #[checkpoint(cursor)]
            done: u64,
            folders: BTreeMap<String, Option<Folder>>,
            #[checkpoint(opaque)]
            started: chrono::DateTime<chrono::Utc>,
            children: Vec<SyncState>,
        }
    };
    check("checkpointable-nested", crate::checkpointable::expand(input));
}

#[test]
fn classify_enum() {
    let input = quote! {
        #[classify(category = "network")]
        enum FetchError {
            #[classify(code = "E_TIMEOUT", severity = "warning")]
            Timeout,
            #[classify(skip)]
            BadRecord { line: u64 },
            #[classify(abort, severity = "critical")]
            Denied(String),
            #[classify(transparent)]
            Io(std::io::Error),
        }
    };
    check("classify-enum", crate::classify::expand(input));
}

#[test]
fn classify_retry_after() {
    let input = quote! {
        enum ApiError {
            #[classify(retry, retry_after = wait)]
            RateLimited { wait: Duration, limit: u32 },
            #[classify(retry, retry_after = hint)]
            Unavailable { hint: Option<Duration> },
            #[classify(abort)]
            Denied,
        }
    };
    check("classify-retry-after", crate::classify::expand(input));
}

#[test]
fn classify_struct() {
    let input = quote! {
        #[classify(skip, code = "E_PARSE")]
        struct ParseError {
            line: u64,
        }
    };
    check("classify-struct", crate::classify::expand(input));
}

#[test]
fn retry_async_borrowing_nothing_mutably() {
    let item = quote! {
        async fn fetch(&self, key: &str) -> Result<Vec<u8>, FetchError> {
            let url = self.base.join(key)?;
            self.client.get(url).await
        }
    };
    check("retry-async", crate::retry::expand(TokenStream::new(), item));
}
