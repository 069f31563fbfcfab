//! Workspace-level tests and examples of `resilience`; not published.

/// The README's Rust snippets, compiled as doctests (so that "Use it" compiles as written).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
