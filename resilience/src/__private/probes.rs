//! Questions generated code asks about a concrete type through [`Probe`]: whether an error is
//! skipped, and an argument's fingerprint. Method resolution tries the impl on `Probe` (by
//! value) first, where the bound holds, and finds the fallback on `&Probe` one autoref later
//! ("autoref specialization",
//! <https://github.com/dtolnay/case-studies/blob/master/autoref-specialization/README.md>).

use std::error::Error as StdError;
use std::hash::{Hash, Hasher};

use super::Probe;
use super::protect::Recorder;
use crate::errors::{Classify, Recovery};

/// Whether a probed error is skipped in a tracked loop, and how it is recorded.
pub trait Skippable<E> {
    /// `Some(recorder)` when the error classifies as [`Recovery::Skip`].
    fn skippable(self) -> Option<Recorder<E>>;
}

impl<E: StdError + Classify> Skippable<E> for Probe<'_, E> {
    #[inline]
    fn skippable(self) -> Option<Recorder<E>> {
        (self.0.recovery() == Recovery::Skip).then_some(|e, h, c| h.handle_error(e, c))
    }
}

impl<E> Skippable<E> for &Probe<'_, E> {
    #[inline]
    fn skippable(self) -> Option<Recorder<E>> {
        None
    }
}

/// The fingerprint of a probed argument: `Some` when its type implements `Hash`.
pub trait Fingerprint {
    /// XXH3-64 (seed 0) of what the type's `Hash` feeds the hasher.
    fn fingerprint(self) -> Option<u64>;
}

impl<T: Hash + ?Sized> Fingerprint for Probe<'_, T> {
    #[inline]
    fn fingerprint(self) -> Option<u64> {
        Some(fingerprint(self.0))
    }
}

impl<T: ?Sized> Fingerprint for &Probe<'_, T> {
    #[inline]
    fn fingerprint(self) -> Option<u64> {
        None
    }
}

/// XXH3-64 with seed 0: the same value in every process and on every run of a build, and a
/// frozen algorithm, unlike `std`'s `DefaultHasher`.
pub fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashable_arguments_have_fingerprints_others_none() {
        struct NotHash;
        let numbers = [1u64, 2, 3];
        let slice: &[u64] = &numbers;
        assert_eq!(Probe(&slice).fingerprint(), Some(fingerprint(&slice)));
        assert_eq!(Probe(&"a.csv").fingerprint(), Some(fingerprint("a.csv")));
        assert_ne!(Probe(&"a.csv").fingerprint(), Probe(&"b.csv").fingerprint());
        assert_eq!((&Probe(&NotHash)).fingerprint(), None);
        // Pinned: a fingerprint must not change between builds of one version.
        assert_eq!(fingerprint(&42u64), 0xd5a6_f8c8_38df_27c8);
    }
}
