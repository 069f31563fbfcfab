//! Procedural macros for the `resilience` crate. Use them through `resilience`.

use proc_macro::TokenStream;

// The shared toolkit: every attribute uses part of it.
#[allow(dead_code)]
mod args;
mod checkpointable;
mod checkpointed;
mod classify;
#[allow(dead_code)]
mod function;
mod loops;
mod protected;
mod retry;

#[cfg(test)]
mod snapshots;

/// Retries the function body with exponential backoff and jitter.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    retry::expand(args.into(), item.into()).into()
}

/// Makes a processing function resumable from its last checkpoint.
#[proc_macro_attribute]
pub fn checkpointed(args: TokenStream, item: TokenStream) -> TokenStream {
    checkpointed::expand(args.into(), item.into()).into()
}

/// Full layered protection: checkpoints, backups, retry and error recording.
#[proc_macro_attribute]
pub fn protected(args: TokenStream, item: TokenStream) -> TokenStream {
    protected::expand(args.into(), item.into()).into()
}

/// Derives `resilience::Checkpointable`.
#[proc_macro_derive(Checkpointable, attributes(checkpoint))]
pub fn derive_checkpointable(input: TokenStream) -> TokenStream {
    checkpointable::expand(input.into()).into()
}

/// Derives `resilience::Classify`.
#[proc_macro_derive(Classify, attributes(classify))]
pub fn derive_classify(input: TokenStream) -> TokenStream {
    classify::expand(input.into()).into()
}
