//! `Checkpointable::SCHEMA` sees into the types nested in a state: a change three levels down
//! (inside a map of `Option<Vec<Box<..>>>`, or in an enum variant's field) changes it, and a
//! checkpoint written before the change is refused instead of misread.

use std::collections::HashMap;

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState};
use serde::{Deserialize, Serialize};

/// One definition of the state: `Outer` → map of `Option<Vec<Box<Middle>>>` → `Middle` →
/// `Inner` and `Phase`, where `Inner` and `Phase` are given by each case.
macro_rules! state {
    ($module:ident, $(#[$inner_attr:meta])* Inner $inner:tt, Phase $phase:tt) => {
        mod $module {
            use std::collections::HashMap;

            #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
            #[derive(resilience::Checkpointable)]
            pub struct Outer {
                #[checkpoint(cursor)]
                pub done: u64,
                pub runs: HashMap<String, Option<Vec<Box<Middle>>>>,
            }

            #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
            #[derive(resilience::Checkpointable)]
            pub struct Middle {
                pub inner: Inner,
                pub phase: Phase,
            }

            #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
            #[derive(resilience::Checkpointable)]
            $(#[$inner_attr])*
            pub struct Inner $inner

            #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
            #[derive(resilience::Checkpointable)]
            pub enum Phase $phase
        }
    };
}

state!(base, Inner { pub a: u64, pub b: u32 }, Phase { Copying { bytes: u64 }, Done });
state!(same, Inner { pub a: u64, pub b: u32 }, Phase { Copying { bytes: u64 }, Done });
state!(renamed, Inner { pub a: u64, pub c: u32 }, Phase { Copying { bytes: u64 }, Done });
state!(added, Inner { pub a: u64, pub b: u32, pub c: u8 }, Phase { Copying { bytes: u64 }, Done });
state!(removed, Inner { pub a: u64 }, Phase { Copying { bytes: u64 }, Done });
state!(retyped, Inner { pub a: u64, pub b: u64 }, Phase { Copying { bytes: u64 }, Done });
state!(issue_11, Inner { pub total_bytes: u64 }, Phase { Copying { bytes: u64 }, Done });
state!(
    versioned,
    #[checkpoint(version = 2)]
    Inner { pub a: u64, pub b: u32 },
    Phase { Copying { bytes: u64 }, Done }
);
state!(
    variant_field_renamed,
    Inner { pub a: u64, pub b: u32 },
    Phase { Copying { copied: u64 }, Done }
);
state!(
    variant_field_retyped,
    Inner { pub a: u64, pub b: u32 },
    Phase { Copying { bytes: u32 }, Done }
);
state!(
    variant_field_added,
    Inner { pub a: u64, pub b: u32 },
    Phase { Copying { bytes: u64, of: u64 }, Done }
);
state!(
    variant_added,
    Inner { pub a: u64, pub b: u32 },
    Phase { Copying { bytes: u64 }, Done, Failed }
);

#[test]
fn the_same_nested_definition_keeps_the_schema() {
    assert_eq!(base::Outer::SCHEMA, same::Outer::SCHEMA);
    assert_eq!(base::Middle::SCHEMA, same::Middle::SCHEMA);
}

#[test]
fn a_change_three_levels_down_changes_the_schema() {
    let base = base::Outer::SCHEMA;
    for (what, other) in [
        ("a renamed field", renamed::Outer::SCHEMA),
        ("an added field", added::Outer::SCHEMA),
        ("a removed field", removed::Outer::SCHEMA),
        ("a retyped field", retyped::Outer::SCHEMA),
        ("`{ a: u64, b: u32 }` → `{ total_bytes: u64 }`", issue_11::Outer::SCHEMA),
        ("a nested type's version", versioned::Outer::SCHEMA),
        ("a renamed variant field", variant_field_renamed::Outer::SCHEMA),
        ("a retyped variant field", variant_field_retyped::Outer::SCHEMA),
        ("an added variant field", variant_field_added::Outer::SCHEMA),
        ("an added variant", variant_added::Outer::SCHEMA),
    ] {
        assert_ne!(base, other, "changing {what} of a nested type must change the outer SCHEMA");
    }
}

/// A checkpoint written by the old definition is `Error::SchemaMismatch` for the new one,
/// never a value decoded from the old bytes.
#[test]
fn a_checkpoint_of_the_old_nested_definition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(dir.path()).unwrap();
    let middle = base::Middle { inner: base::Inner { a: 1000, b: 1 }, phase: base::Phase::Done };
    let old = base::Outer {
        done: 3,
        runs: HashMap::from([("photos".to_owned(), Some(vec![Box::new(middle)]))]),
    };
    store.save_checkpoint("nested", "nested", ProcessState::Running, 0.5, &old).unwrap();
    assert_eq!(store.load_checkpoint::<base::Outer>("nested").unwrap().unwrap().data, old);

    let result = store.load_checkpoint::<issue_11::Outer>("nested");
    match result {
        Err(Error::SchemaMismatch { operation_id, expected, found }) => {
            assert_eq!(operation_id, "nested");
            assert_eq!((expected, found), (issue_11::Outer::SCHEMA, base::Outer::SCHEMA));
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// What the fingerprint leaves out, and how it is still safe.

/// A type from "another crate": serde's derives, no `Checkpointable`.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Foreign {
    at: u64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
struct WithForeign {
    #[checkpoint(opaque)]
    seen: Option<Foreign>,
    kept: Vec<Foreign2>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
#[checkpoint(version = 2)]
struct WithForeignV2 {
    #[checkpoint(opaque)]
    seen: Option<Foreign>,
    kept: Vec<Foreign2>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Foreign2 {
    x: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
enum Event {
    Seen(#[checkpoint(opaque)] Foreign),
    Kept { item: Foreign2 },
}

#[test]
fn opaque_fields_count_by_their_spelling_and_the_version_covers_them() {
    assert_ne!(WithForeign::SCHEMA, WithForeignV2::SCHEMA);
    assert_ne!(Event::SCHEMA, 0);
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Node {
    name: String,
    children: Vec<Node>,
    leaf: Option<Inner2>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
enum Tree {
    Leaf(Inner2),
    Branch(Vec<Tree>),
    Boxed(Box<Self>),
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
struct Inner2 {
    a: u64,
}

#[test]
fn recursive_types_derive_and_round_trip() {
    assert_ne!(Node::SCHEMA, Tree::SCHEMA);
    let dir = tempfile::tempdir().unwrap();
    let store = FailsafeManager::open(dir.path()).unwrap();
    let node = Node {
        name: "root".into(),
        children: vec![Node { name: "child".into(), children: vec![], leaf: None }],
        leaf: Some(Inner2 { a: 7 }),
    };
    store.save_checkpoint("tree", "tree", ProcessState::Running, 0.0, &node).unwrap();
    assert_eq!(store.load_checkpoint::<Node>("tree").unwrap().unwrap().data, node);
    let tree = Tree::Branch(vec![
        Tree::Leaf(Inner2 { a: 1 }),
        Tree::Boxed(Box::new(Tree::Branch(vec![]))),
    ]);
    store.save_checkpoint("tree", "tree", ProcessState::Running, 0.0, &tree).unwrap();
    assert_eq!(store.load_checkpoint::<Tree>("tree").unwrap().unwrap().data, tree);
}

/// A type parameter is seen through its shape: a derived type in it counts, a leaf type
/// (whose spelling is only `T` here) does not.
#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Wrapper<T> {
    item: Option<T>,
}

#[test]
fn type_parameters_are_seen_through_their_shape() {
    assert_ne!(Wrapper::<base::Inner>::SCHEMA, Wrapper::<renamed::Inner>::SCHEMA);
    assert_ne!(Wrapper::<base::Inner>::SCHEMA, Wrapper::<Vec<base::Inner>>::SCHEMA);
    assert_eq!(Wrapper::<u8>::SCHEMA, Wrapper::<String>::SCHEMA);
}

mod alias_v1 {
    type Item = super::base::Inner;

    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Holder {
        pub item: Item,
    }
}

mod alias_v2 {
    type Item = super::renamed::Inner;

    #[derive(serde::Serialize, serde::Deserialize, resilience::Checkpointable)]
    pub struct Holder {
        pub item: Item,
    }
}

#[test]
fn a_type_alias_is_seen_through() {
    assert_ne!(alias_v1::Holder::SCHEMA, alias_v2::Holder::SCHEMA);
}

/// Stored checkpoints of nested states carry this value: the mixing must not change by accident.
#[test]
fn nested_schema_is_pinned() {
    assert_eq!(base::Outer::SCHEMA, 0x6459_8eb7_3ac8_aa57);
}
