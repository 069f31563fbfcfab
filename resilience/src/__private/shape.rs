//! The shapes of the types inside a checkpointed state, so that `Checkpointable::SCHEMA` sees a
//! change to any struct or enum reachable from it.
//!
//! `#[derive(Checkpointable)]` hashes what it can read (the type's name, its fields' names and
//! the spelling of their types, the version) into a literal, and adds, in a `const` expression,
//! the [`Shape`] of every field whose type may hold other derived types. Types whose spelling
//! says everything (`u64`, `String`, `Duration`) have shape 0; containers pass their
//! parameters' shapes through (0 when those are all 0); a derived type's shape is its `SCHEMA`.
//! A state whose fields all have shape 0 keeps the literal as its `SCHEMA`.

use std::borrow::{Cow, ToOwned};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::{
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize, NonZeroU8,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize, Wrapping,
};
use std::ops::{Bound, Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize,
};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// The part of a type's layout that its spelling in a field does not show: the fields of the
/// structs and enums it holds. Implemented by `#[derive(Checkpointable)]` and, here, for the
/// standard types serde stores.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is inside a checkpointed state, so its shape must be part of the schema fingerprint",
    label = "the schema fingerprint cannot see inside `{Self}`",
    note = "add `#[derive(resilience::Checkpointable)]` to it (with serde's derives), or, for a type from another crate, mark the field `#[checkpoint(opaque)]` and bump `#[checkpoint(version = N)]` when that type changes"
)]
pub trait Shape {
    /// 0 when the type's spelling says everything about its layout, else a fingerprint of the
    /// fields reachable through it.
    const SHAPE: u64;
}

/// The `SCHEMA` of a derived type: `literal` (the hash of its own definition) mixed with the
/// shape of each listed field and the field's position; `literal` itself when they are all 0.
pub const fn schema(literal: u64, fields: &[(u64, u64)]) -> u64 {
    let mut hash = literal;
    let mut i = 0;
    while i < fields.len() {
        let (position, shape) = fields[i];
        if shape != 0 {
            hash = mix(mix(hash, position), shape);
        }
        i += 1;
    }
    hash
}

/// A container's shape: 0 when its parameters' shapes are all 0, else their mix under `kind`
/// (so that `Option<T>` and `Vec<T>` differ when `T` is a type parameter).
const fn container(kind: &str, shapes: &[u64]) -> u64 {
    let mut hash = fnv1a(kind.as_bytes());
    let mut any = false;
    let mut i = 0;
    while i < shapes.len() {
        any |= shapes[i] != 0;
        hash = mix(hash, shapes[i]);
        i += 1;
    }
    if any { hash } else { 0 }
}

/// splitmix64's finalizer over `hash` and `value`: every input bit reaches every output bit.
const fn mix(hash: u64, value: u64) -> u64 {
    let mut z = hash.rotate_left(23) ^ value.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! leaves {
    ($($ty:ty),* $(,)?) => {
        $(impl Shape for $ty {
            const SHAPE: u64 = 0;
        })*
    };
}

leaves! {
    bool, char, f32, f64, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize,
    str, String, (), Duration, SystemTime, Path, PathBuf, OsStr, OsString, CStr, CString,
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6,
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize,
    NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize,
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize,
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
}

impl<T: ?Sized> Shape for PhantomData<T> {
    const SHAPE: u64 = 0;
}

/// Types serde stores exactly as the `T` inside.
macro_rules! transparent {
    ($($ty:ident),*) => {
        $(impl<T: ?Sized + Shape> Shape for $ty<T> {
            const SHAPE: u64 = T::SHAPE;
        })*
    };
}

transparent!(Box, Rc, Arc, RefCell, Mutex, RwLock);

impl<T: Copy + Shape> Shape for Cell<T> {
    const SHAPE: u64 = T::SHAPE;
}

impl<T: Shape> Shape for Wrapping<T> {
    const SHAPE: u64 = T::SHAPE;
}

impl<T: Shape> Shape for std::cmp::Reverse<T> {
    const SHAPE: u64 = T::SHAPE;
}

impl<T: ?Sized + Shape> Shape for &T {
    const SHAPE: u64 = T::SHAPE;
}

impl<B: ?Sized + ToOwned + Shape> Shape for Cow<'_, B> {
    const SHAPE: u64 = B::SHAPE;
}

impl<T: Shape> Shape for Option<T> {
    const SHAPE: u64 = container("option", &[T::SHAPE]);
}

impl<T: Shape, E: Shape> Shape for Result<T, E> {
    const SHAPE: u64 = container("result", &[T::SHAPE, E::SHAPE]);
}

impl<T: Shape> Shape for Bound<T> {
    const SHAPE: u64 = container("bound", &[T::SHAPE]);
}

impl<T: Shape> Shape for Range<T> {
    const SHAPE: u64 = container("range", &[T::SHAPE]);
}

impl<T: Shape> Shape for RangeInclusive<T> {
    const SHAPE: u64 = container("range", &[T::SHAPE]);
}

impl<T: Shape, const N: usize> Shape for [T; N] {
    const SHAPE: u64 = if T::SHAPE == 0 { 0 } else { container("array", &[T::SHAPE, N as u64]) };
}

impl<T: Shape> Shape for [T] {
    const SHAPE: u64 = container("seq", &[T::SHAPE]);
}

impl<T: Shape, S> Shape for HashSet<T, S> {
    const SHAPE: u64 = container("seq", &[T::SHAPE]);
}

/// Sequences other than `[T]` and `HashSet`, which serde stores alike.
macro_rules! sequences {
    ($($ty:ident),*) => {
        $(impl<T: Shape> Shape for $ty<T> {
            const SHAPE: u64 = container("seq", &[T::SHAPE]);
        })*
    };
}

sequences!(Vec, VecDeque, LinkedList, BinaryHeap, BTreeSet);

impl<K: Shape, V: Shape, S> Shape for HashMap<K, V, S> {
    const SHAPE: u64 = container("map", &[K::SHAPE, V::SHAPE]);
}

impl<K: Shape, V: Shape> Shape for BTreeMap<K, V> {
    const SHAPE: u64 = container("map", &[K::SHAPE, V::SHAPE]);
}

macro_rules! tuples {
    ($(($($t:ident),+))*) => {
        $(impl<$($t: Shape),+> Shape for ($($t,)+) {
            const SHAPE: u64 = container("tuple", &[$($t::SHAPE),+]);
        })*
    };
}

tuples! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
    (A, B, C, D, E, F, G, H, I)
    (A, B, C, D, E, F, G, H, I, J)
    (A, B, C, D, E, F, G, H, I, J, K)
    (A, B, C, D, E, F, G, H, I, J, K, L)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Inner;

    impl Shape for Inner {
        const SHAPE: u64 = 0x1234;
    }

    #[test]
    fn leaves_and_containers_of_leaves_are_zero() {
        assert_eq!(<Option<Vec<Box<(String, u64)>>> as Shape>::SHAPE, 0);
        assert_eq!(<HashMap<String, BTreeMap<u8, [Duration; 3]>> as Shape>::SHAPE, 0);
        assert_eq!(<Result<Cow<'static, str>, PathBuf> as Shape>::SHAPE, 0);
        assert_eq!(schema(7, &[(0, 0), (3, 0)]), 7);
    }

    #[test]
    fn containers_pass_a_nested_shape_through() {
        let shapes = [
            <Inner as Shape>::SHAPE,
            <Option<Inner> as Shape>::SHAPE,
            <Vec<Inner> as Shape>::SHAPE,
            <[Inner; 2] as Shape>::SHAPE,
            <[Inner; 3] as Shape>::SHAPE,
            <(Inner, u8) as Shape>::SHAPE,
            <(u8, Inner) as Shape>::SHAPE,
            <BTreeMap<Inner, u8> as Shape>::SHAPE,
            <BTreeMap<u8, Inner> as Shape>::SHAPE,
            <Result<Inner, u8> as Shape>::SHAPE,
        ];
        for (i, a) in shapes.iter().enumerate() {
            assert_ne!(*a, 0);
            for b in &shapes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(<Box<Inner> as Shape>::SHAPE, <Inner as Shape>::SHAPE);
        assert_eq!(<Vec<Inner> as Shape>::SHAPE, <VecDeque<Inner> as Shape>::SHAPE);
    }

    #[test]
    fn a_field_shape_counts_with_its_position() {
        let (a, b) = (schema(7, &[(0, 5)]), schema(7, &[(1, 5)]));
        assert!(a != 7 && b != 7 && a != b);
        assert_ne!(schema(7, &[(0, 5), (1, 6)]), schema(7, &[(0, 6), (1, 5)]));
    }

    /// Stored checkpoints carry these values: the mixing must not change by accident.
    #[test]
    fn mixing_is_pinned() {
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(schema(7, &[(1, 5)]), 0x6bcc_b1ee_2fa2_2a52);
        assert_eq!(<Option<Inner> as Shape>::SHAPE, 0x44be_3c1d_12b4_4844);
    }
}
