//! `#[derive(Checkpointable)]` and `#[derive(Classify)]` as users see them.

use std::borrow::Cow;

use resilience::{Checkpointable, Classify, Recovery, Severity};
use serde::{Deserialize, Serialize};

// The same definition in two modules: the fingerprint ignores the module path.
mod v1 {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        #[checkpoint(cursor)]
        pub done: u64,
        #[checkpoint(total)]
        pub total: u64,
        pub bytes: u64,
    }
}

mod same {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        #[checkpoint(cursor)]
        pub done: u64,
        #[checkpoint(total)]
        pub total: u64,
        pub bytes: u64,
    }
}

mod renamed_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
        pub total: u64,
        pub bytes_written: u64,
    }
}

mod retyped_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
        pub total: u64,
        pub bytes: u32,
    }
}

mod added_field {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
        pub total: u64,
        pub bytes: u64,
        pub skipped: u64,
    }
}

mod new_version {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    #[checkpoint(version = 2)]
    pub struct Progress {
        #[checkpoint(cursor)]
        pub done: u64,
        #[checkpoint(total)]
        pub total: u64,
        pub bytes: u64,
    }
}

mod other_name {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progres {
        pub done: u64,
        pub total: u64,
        pub bytes: u64,
    }
}

mod unmarked {
    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Progress {
        pub done: u64,
        pub total: u64,
        pub bytes: u64,
    }
}

#[test]
fn schema_is_stable_for_the_same_definition() {
    assert_eq!(v1::Progress::SCHEMA, same::Progress::SCHEMA);
    // `#[checkpoint(cursor)]` says how to read the struct, not what it stores.
    assert_eq!(v1::Progress::SCHEMA, unmarked::Progress::SCHEMA);
}

#[test]
fn schema_changes_with_names_types_fields_and_version() {
    let base = v1::Progress::SCHEMA;
    for (what, other) in [
        ("a renamed field", renamed_field::Progress::SCHEMA),
        ("a field's type", retyped_field::Progress::SCHEMA),
        ("an added field", added_field::Progress::SCHEMA),
        ("the version", new_version::Progress::SCHEMA),
        ("the type's name", other_name::Progres::SCHEMA),
    ] {
        assert_ne!(base, other, "changing {what} must change SCHEMA");
    }
}

/// Checkpoints already on disk carry this value: a state whose fields are all leaf types keeps
/// the fingerprint it had before nested types were covered.
#[test]
fn flat_schema_is_pinned() {
    assert_eq!(v1::Progress::SCHEMA, 0x1c8d_ea6a_607d_ebbd);
    assert_eq!(Plain::SCHEMA, 0x5515_57db_aa8e_e021);
    assert_eq!(Phase::SCHEMA, 0x5d6e_3743_fb9f_73a9);
    assert_eq!(Generic::<String>::SCHEMA, 0x0e5b_0b02_eaf6_135f);
}

#[test]
fn cursor_and_total_accessors() {
    let mut p = v1::Progress { done: 7, total: 20, bytes: 1 };
    assert_eq!(p.cursor(), 7);
    assert_eq!(p.total(), Some(20));
    p.set_cursor(9);
    assert_eq!(p.done, 9);
    assert_eq!(p.bytes, 1);
}

#[derive(Serialize, Deserialize, Checkpointable)]
struct Narrow(#[checkpoint(cursor)] u8, #[checkpoint(total)] i32);

#[test]
fn narrow_and_signed_integers_saturate() {
    let mut n = Narrow(3, -5);
    assert_eq!(n.cursor(), 3);
    assert_eq!(n.total(), Some(0), "a negative total reads as 0");
    n.set_cursor(1_000);
    assert_eq!(n.0, u8::MAX, "a cursor too large for the field saturates");
    n.set_cursor(42);
    assert_eq!(n.0, 42);
}

#[derive(Serialize, Deserialize, Checkpointable)]
struct Plain {
    items: Vec<String>,
}

#[test]
fn without_markers_the_defaults_apply() {
    let mut p = Plain { items: vec![] };
    p.set_cursor(5);
    assert_eq!(p.cursor(), 0);
    assert_eq!(p.total(), None);
    assert!(p.items.is_empty());
}

#[derive(Serialize, Deserialize, Checkpointable)]
struct Generic<T> {
    #[checkpoint(cursor)]
    position: usize,
    last: Option<T>,
}

#[derive(Serialize, Deserialize, Checkpointable)]
enum Phase {
    Scanning { seen: u64 },
    Copying(u64),
    Done,
}

#[derive(Serialize, Deserialize, Checkpointable)]
struct Unit;

#[test]
fn generic_enum_and_unit_types_derive() {
    let mut g = Generic::<String> { position: 4, last: None };
    g.set_cursor(6);
    assert_eq!(g.cursor(), 6);
    assert!(g.last.is_none());
    assert_eq!(
        Generic::<String>::SCHEMA,
        Generic::<u8>::SCHEMA,
        "a standard type given as a parameter is not part of it"
    );
    let phases = [Phase::Scanning { seen: 1 }, Phase::Copying(2), Phase::Done];
    assert!(phases.iter().all(|p| p.cursor() == 0));
    assert_ne!(Phase::SCHEMA, Unit::SCHEMA);
}

// ---------------------------------------------------------------------------------------------
// Classify

#[derive(Debug, Classify)]
enum FetchError {
    Dns,
    #[classify(skip, code = "E_BAD_RECORD", category = "input", severity = "warning")]
    BadRecord {
        line: u64,
    },
    #[classify(abort, severity = "critical")]
    Denied(String),
    #[classify(transparent)]
    Io(std::io::Error),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Dns => f.write_str("name resolution failed"),
            FetchError::BadRecord { line } => write!(f, "bad record on line {line}"),
            FetchError::Denied(who) => write!(f, "denied by {who}"),
            FetchError::Io(e) => e.fmt(f),
        }
    }
}

#[test]
fn classify_defaults() {
    let e = FetchError::Dns;
    assert_eq!(e.recovery(), Recovery::Retry);
    assert_eq!(e.error_code(), "FetchError::Dns");
    assert_eq!(e.category(), "FetchError");
    assert_eq!(e.severity(), Severity::Error);
    assert!(matches!(e.error_code(), Cow::Borrowed(_)));
}

#[test]
fn classify_variant_options() {
    let e = FetchError::BadRecord { line: 3 };
    assert_eq!(
        (e.recovery(), &*e.error_code(), &*e.category(), e.severity()),
        (Recovery::Skip, "E_BAD_RECORD", "input", Severity::Warning)
    );
    assert_eq!(e.to_string(), "bad record on line 3");
    let e = FetchError::Denied("no".into());
    assert_eq!(
        (e.recovery(), &*e.error_code(), &*e.category(), e.severity()),
        (Recovery::Abort, "FetchError::Denied", "FetchError", Severity::Critical)
    );
}

#[test]
fn classify_transparent_delegates_to_the_inner_error() {
    let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
    let expected = (
        timed_out.recovery(),
        timed_out.error_code().into_owned(),
        timed_out.category().into_owned(),
        timed_out.severity(),
    );
    let e = FetchError::Io(timed_out);
    assert_eq!(
        (e.recovery(), e.error_code().into_owned(), e.category().into_owned(), e.severity()),
        expected
    );
    assert_eq!(e.recovery(), Recovery::Retry);
    let e = FetchError::Io(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(e.recovery(), Recovery::Abort);
}

#[derive(Debug, Classify)]
#[classify(skip, category = "network", severity = "info")]
enum Container {
    Inherits,
    #[classify(retry, code = "C1")]
    Overrides,
}

#[test]
fn variant_options_override_the_container() {
    assert_eq!(Container::Inherits.recovery(), Recovery::Skip);
    assert_eq!(Container::Inherits.category(), "network");
    assert_eq!(Container::Inherits.severity(), Severity::Info);
    assert_eq!(Container::Inherits.error_code(), "Container::Inherits");
    assert_eq!(Container::Overrides.recovery(), Recovery::Retry);
    assert_eq!(Container::Overrides.error_code(), "C1");
    assert_eq!(Container::Overrides.category(), "network");
}

#[derive(Debug, Classify)]
struct Timeout;

#[derive(Debug, Classify)]
#[classify(abort, code = "E_QUOTA")]
struct Quota {
    limit: u64,
}

#[derive(Debug, Classify)]
#[classify(transparent)]
struct Wrapped(FetchError);

#[derive(Debug, Classify)]
enum Layer<E> {
    #[classify(transparent)]
    Inner(E),
    #[classify(skip)]
    Other,
}

#[test]
fn structs_transparent_structs_and_generics() {
    assert_eq!(
        (Timeout.recovery(), &*Timeout.error_code(), &*Timeout.category()),
        (Recovery::Retry, "Timeout", "Timeout")
    );
    let q = Quota { limit: 1 };
    assert_eq!((q.recovery(), &*q.error_code(), q.limit), (Recovery::Abort, "E_QUOTA", 1));
    let w = Wrapped(FetchError::BadRecord { line: 1 });
    assert_eq!(
        (w.recovery(), &*w.error_code(), &*w.category()),
        (Recovery::Skip, "E_BAD_RECORD", "input")
    );
    let l: Layer<Quota> = Layer::Inner(Quota { limit: 2 });
    assert_eq!((l.recovery(), &*l.error_code()), (Recovery::Abort, "E_QUOTA"));
    assert_eq!(Layer::<Quota>::Other.recovery(), Recovery::Skip);
    assert_eq!(Layer::<Quota>::Other.error_code(), "Layer::Other");
}

#[derive(Debug, Classify)]
enum Never {}

#[test]
fn empty_enums_derive() {
    fn assert_classify<E: Classify>() {}
    assert_classify::<Never>();
}
