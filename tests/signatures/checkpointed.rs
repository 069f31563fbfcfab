//! Shapes under `#[checkpointed]`.
