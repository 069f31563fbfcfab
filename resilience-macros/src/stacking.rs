//! Which attributes can be stacked on one function, and in which order. An attribute macro
//! sees the attributes below it (they are still in the item's attribute list) and the
//! expansions of those above it (they ran first), so each order is checked by the attribute
//! that can see the other: `#[retry]` above `#[checkpointed]`/`#[protected]` by `#[retry]`,
//! `#[tracing::instrument]` above them and the two together by `#[checkpointed]`/`#[protected]`.

use quote::ToTokens;
use syn::ItemFn;

/// The attribute's path is `name` or `resilience::name` (`::resilience::name`).
fn is_attr(attr: &syn::Attribute, name: &str) -> bool {
    let path = attr.path();
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [one] => path.leading_colon.is_none() && one == name,
        [krate, last] => krate == "resilience" && last == name,
        _ => false,
    }
}

/// Errors for attributes this one cannot be stacked with: `#[checkpointed]` or `#[protected]`
/// below it (two runs of one operation), or `#[tracing::instrument]` above it, whose expansion
/// (seen here as its `__tracing_attr_` locals) moves the loop out of the body's top level.
pub(crate) fn checkpointing(function: &ItemFn, attr: &str) -> syn::Result<()> {
    for other in &function.attrs {
        let name = ["checkpointed", "protected"].into_iter().find(|name| is_attr(other, name));
        if let Some(name) = name {
            let keep = if attr == name {
                format!("remove one `#[{name}]`")
            } else {
                "keep only `#[protected]`, which does everything `#[checkpointed]` does, plus \
                 backups and retries"
                    .to_owned()
            };
            return Err(syn::Error::new_spanned(
                other,
                format!(
                    "`#[{attr}]` and `#[{name}]` on one function would checkpoint it twice, as two \
                     runs of one operation: {keep}"
                ),
            ));
        }
    }
    let tracing_locals =
        |ident: &proc_macro2::Ident| ident.to_string().starts_with("__tracing_attr_");
    if crate::function::any_ident(function.block.to_token_stream(), &tracing_locals) {
        return Err(syn::Error::new(
            function.sig.ident.span(),
            format!(
                "`#[tracing::instrument]` above `#[{attr}]` moves the body into the code it \
                 generates, where `#[{attr}]` cannot track the loop: put `#[{attr}]` above \
                 `#[tracing::instrument]` (its span then covers the whole call)"
            ),
        ));
    }
    Ok(())
}

/// `#[retry]` above `#[checkpointed]` or `#[protected]` (still in the attributes, since the
/// outer attribute expands first) would run the whole checkpointed call again on each attempt,
/// with the state the failed attempt left: an error at that attribute naming the right order.
pub(crate) fn retry_above_checkpointing(function: &ItemFn) -> syn::Result<()> {
    for attr in &function.attrs {
        if is_attr(attr, "checkpointed") {
            return Err(syn::Error::new_spanned(
                attr,
                "`#[retry]` above `#[checkpointed]` would run the checkpointed call again on each \
                 attempt, on the state the failed attempt left, counting its items twice: put \
                 `#[retry]` below `#[checkpointed]` (each attempt then resumes from the last \
                 checkpoint), or use `#[protected(retry(..))]`",
            ));
        }
        if is_attr(attr, "protected") {
            return Err(syn::Error::new_spanned(
                attr,
                "`#[retry]` above `#[protected]` would run the protected call again on each \
                 attempt, on the state the failed attempt left, counting its items twice: use \
                 `#[protected(retry(..))]`, which restores the last checkpoint before each attempt",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_paths() {
        let attrs: Vec<syn::Attribute> = vec![
            syn::parse_quote!(#[checkpointed]),
            syn::parse_quote!(#[resilience::checkpointed(every = 10)]),
            syn::parse_quote!(#[::resilience::checkpointed]),
            syn::parse_quote!(#[other::checkpointed]),
            syn::parse_quote!(#[::checkpointed]),
        ];
        let found: Vec<bool> = attrs.iter().map(|a| is_attr(a, "checkpointed")).collect();
        assert_eq!(found, [true, true, true, false, false]);
    }

    #[test]
    fn retry_names_the_order() {
        let function: ItemFn = syn::parse_quote! {
            #[checkpointed(every = 10)]
            fn f(state: &mut S) -> Result<(), E> { Ok(()) }
        };
        let message = retry_above_checkpointing(&function).unwrap_err().to_string();
        assert!(message.contains("put `#[retry]` below `#[checkpointed]`"), "{message}");
        let function: ItemFn = syn::parse_quote! {
            fn f(state: &mut S) -> Result<(), E> {
                let __tracing_attr_span;
                { for x in xs {} }
                Ok(())
            }
        };
        assert!(retry_above_checkpointing(&function).is_ok());
        let message = checkpointing(&function, "checkpointed").unwrap_err().to_string();
        assert!(message.contains("put `#[checkpointed]` above `#[tracing::instrument]`"));
    }
}
