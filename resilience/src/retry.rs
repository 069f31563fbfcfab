//! Retry with exponential backoff and jitter.
