//! The function shapes real code puts under an attribute (after `tracing-attributes`' own
//! suite), each under `#[retry]` and `#[checkpointed]`: every shape compiles and behaves — a
//! retry really retries, a resumed loop lands at its boundary with the right sum — or is a
//! compile error in `tests/ui` that says what to do.

mod checkpointed;
mod retry;
mod stacking;
