//! `#[protected(...)]`: everything `#[checkpointed]` does (shared through [`Checkpointed`]),
//! plus backups at entry, restore on failure, a retry of the whole operation and error
//! recording. The body becomes a closure that takes the state, so that a retry can restore the
//! state from the last checkpoint before it runs the body again.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::args::{Args, Errors};
use crate::checkpointed::{self, Checkpointed};
use crate::function;
use crate::function::Name;
use crate::loops;
use crate::retry::{self, RetryOptions};

/// The keys `#[protected]` accepts: `#[checkpointed]`'s and its own.
const KEYS: &[&str] = &[
    "every",
    "interval",
    "id",
    "name",
    "manager",
    "state",
    "backup",
    "backup_missing",
    "restore_on_failure",
    "retry",
    "errors",
    "skip_limit",
    "input",
    "on_input_change",
];

struct Protection {
    backups: Vec<TokenStream>,
    skip_missing: bool,
    restore_on_failure: bool,
    retry: Option<RetryOptions>,
    errors: Option<syn::Expr>,
}

impl Protection {
    /// `function` is the annotated function (its parameters interpolate into backup paths).
    fn from_args(args: &mut Args, function: &syn::ItemFn) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let backups = errors.ok(args.strings("backup")).flatten().unwrap_or_default();
        let backups = backups
            .iter()
            .filter_map(|path| errors.ok(checkpointed::interpolate(path, function, "backup")))
            .collect();
        let skip_missing = errors
            .ok(args.switch(
                "backup_missing",
                ("error", "a missing file fails the call"),
                ("skip", "back up the files that exist"),
            ))
            .unwrap_or(false);
        let restore_on_failure =
            errors.ok(args.bool("restore_on_failure")).flatten().is_some_and(|b| b.value);
        let retry = match errors.ok(args.list("retry", retry::KEYS)).flatten() {
            Some((_, mut nested)) => errors.ok(RetryOptions::from_args(&mut nested)),
            None => None,
        };
        // Read here, before `Checkpointed::new` (which takes it for `#[checkpointed]`).
        let handler = errors.ok(args.expr("errors")).flatten();
        errors.finish()?;
        Ok(Protection { backups, skip_missing, restore_on_failure, retry, errors: handler })
    }
}

/// Expands `#[protected(args)] item`; on a mistake, the item unchanged plus the error.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => function::item_with_error(loops::without_markers(item), error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function = function::parse(item, "protected")?;
    let mut args = Args::parse(args, KEYS)?;
    // Every argument is checked before the first error is returned: the checkpointing ones and
    // the protection ones alike.
    let protection = Protection::from_args(&mut args, &function);
    let plan = Checkpointed::new(function, &mut args, "protected");
    let (mut plan, protection) = Errors::both(plan, protection)?;
    plan.state_mut_in_closure_only();
    let body = body(&plan, &protection);
    Ok(function::with_body(&plan.function, body))
}

fn body(plan: &Checkpointed, protection: &Protection) -> TokenStream {
    let private = function::private();
    let run = function::internal(Name::Run);
    let result = function::internal(Name::Result);
    let site = function::internal(Name::Site);
    let (e, h, c) = (
        function::internal(Name::Error),
        function::internal(Name::Handler),
        function::internal(Name::Context),
    );
    let Checkpointed { options, id, uses, .. } = plan;
    let state = plan.state_tokens();
    let handler = match &protection.errors {
        Some(expr) => quote_spanned!(expr.span()=> #expr),
        None => quote!(::resilience::ErrorHandler::global()),
    };
    let mut guard = quote! {
        #private::Protection::new(#handler, |#e, #h, #c| #private::record_error!(#h, #e, #c))
    };
    for path in &protection.backups {
        guard = quote!(#guard.backup(#path));
    }
    if protection.skip_missing {
        guard = quote!(#guard.skip_missing());
    }
    if protection.restore_on_failure {
        guard = quote!(#guard.restore_on_failure());
    }
    let begin = plan.begin("Protect", quote!(#options, #id, #state, #guard));
    let block = &plan.function.block;
    let span = function::body_span(&plan.function);
    let param = match &plan.state_pat {
        Some(pat) => quote!(#pat),
        None => quote!(_),
    };
    let asyncness = function::asyncness(&plan.function.sig);
    let body = match asyncness {
        None => quote_spanned!(span=> |#param| #block),
        Some(_) => quote_spanned!(span=> async |#param| #block),
    };
    let method = |name: &str| match asyncness {
        None => syn::Ident::new(name, proc_macro2::Span::call_site()),
        Some(_) => syn::Ident::new(&format!("{name}_async"), proc_macro2::Span::call_site()),
    };
    let call = method("call");
    let (site_static, call) = match &protection.retry {
        None => (TokenStream::new(), quote!(#run.#call(#state, #body))),
        Some(retry) => {
            let ret = match &plan.function.sig.output {
                syn::ReturnType::Type(_, ty) => (**ty).clone(),
                syn::ReturnType::Default => syn::parse_quote!(()),
            };
            let verdict = retry.verdict(&plan.function.sig, &ret, false);
            let (call_retry, hooks) = match retry.hooks(&ret) {
                Some(hooks) => (method("call_retry_with"), quote!(#hooks,)),
                None => (method("call_retry"), TokenStream::new()),
            };
            (
                retry.site(&plan.function.sig),
                quote!(#run.#call_retry(&#site, #verdict, #hooks #state, #body)),
            )
        }
    };
    let call = match asyncness {
        None => call,
        Some(async_token) => quote_spanned!(async_token.span=> #call.await),
    };
    quote! {
        #site_static
        #uses
        #begin
        let #result = #call;
        #run.finish(#state, #result)
    }
}
