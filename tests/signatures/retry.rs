//! Shapes under `#[retry]`.
