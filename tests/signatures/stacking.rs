//! The attributes stacked with each other and with `#[tracing::instrument]`, in both orders.
