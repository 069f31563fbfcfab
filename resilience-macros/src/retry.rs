//! `#[retry(...)]`: the signature stays, the body becomes one call into
//! `::resilience::__private` with a per-call-site `static` holding the configuration.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{ItemFn, LitStr};

use crate::args::{Args, Errors, Spanned, duration_tokens};
use crate::function::Name;
use crate::function::{self, Passing, SelfKind};

/// The keys `#[retry]` accepts; `#[protected(retry(...))]` accepts the same.
pub(crate) const KEYS: &[&str] = &[
    "max",
    "initial",
    "max_delay",
    "multiplier",
    "jitter",
    "max_elapsed",
    "when",
    "when_ok",
    "on_retry",
    "fallback",
    "budget",
    "name",
];

/// The options of `#[retry(...)]`, validated. Reused by `#[protected(retry(...))]`.
pub(crate) struct RetryOptions {
    max: Option<Spanned<u32>>,
    initial: Option<Spanned<std::time::Duration>>,
    max_delay: Option<Spanned<std::time::Duration>>,
    multiplier: Option<Spanned<f64>>,
    jitter: Option<Spanned<f64>>,
    max_elapsed: Option<Spanned<std::time::Duration>>,
    /// `when = path`: the retry predicate, `fn(&E) -> bool`.
    when: Option<syn::Path>,
    /// `when_ok = path`: `fn(&T) -> bool`, retry this `Ok` value.
    when_ok: Option<syn::Path>,
    /// `on_retry = path`: `fn(&E, u32, Duration)`, called before each sleep.
    on_retry: Option<syn::Path>,
    /// `fallback = path`: `fn(E) -> Result<T, E>`, called with the final error.
    fallback: Option<syn::Path>,
    /// `budget = "name"`: the shared retry budget.
    budget: Option<LitStr>,
    /// `name = "..."`: the operation name in statistics and logs.
    name: Option<LitStr>,
}

impl RetryOptions {
    /// Takes the retry keys out of `args` (parsed with [`KEYS`] among the allowed keys) and
    /// checks their values; every mistake is reported, each at its value.
    pub(crate) fn from_args(args: &mut Args) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let options = RetryOptions {
            max: errors.ok(args.int("max")).flatten(),
            initial: errors.ok(args.duration("initial")).flatten(),
            max_delay: errors.ok(args.duration("max_delay")).flatten(),
            multiplier: errors.ok(args.float("multiplier")).flatten(),
            jitter: errors.ok(args.float("jitter")).flatten(),
            max_elapsed: errors.ok(args.duration("max_elapsed")).flatten(),
            when: errors.ok(args.path("when")).flatten(),
            when_ok: errors.ok(args.path("when_ok")).flatten(),
            on_retry: errors.ok(args.path("on_retry")).flatten(),
            fallback: errors.ok(args.path("fallback")).flatten(),
            budget: errors.ok(args.string("budget")).flatten(),
            name: errors.ok(args.string("name")).flatten(),
        };
        if let Some(m) = options.multiplier
            && m.value < 1.0
        {
            errors.push(syn::Error::new(
                m.span,
                format!("`multiplier` must be at least 1.0 (delays never shrink); got {}", m.value),
            ));
        }
        if let Some(j) = options.jitter
            && !(0.0..=1.0).contains(&j.value)
        {
            errors.push(syn::Error::new(
                j.span,
                format!(
                    "`jitter` must be between 0.0 and 1.0 (a fraction of each delay); got {}",
                    j.value
                ),
            ));
        }
        if let Some(initial) = options.initial {
            let (max_delay, which) = match options.max_delay {
                Some(max_delay) => (max_delay.value, "`max_delay`"),
                None => (std::time::Duration::from_secs(30), "the default `max_delay` (30s)"),
            };
            if initial.value > max_delay {
                errors.push(syn::Error::new(
                    initial.span,
                    format!("`initial` is longer than {which}: every delay would be cut to it"),
                ));
            }
        }
        errors.finish()?;
        Ok(options)
    }

    /// The `::resilience::RetryConfig` as a `const` expression; only the options given are set,
    /// the rest keep `RetryConfig::new`'s defaults.
    pub(crate) fn config(&self) -> TokenStream {
        let max = proc_macro2::Literal::u32_unsuffixed(self.max.map_or(3, |m| m.value));
        let mut config = quote!(::resilience::RetryConfig::new(#max));
        let duration =
            |d: Option<Spanned<std::time::Duration>>| d.map(|d| duration_tokens(d.value));
        let float =
            |f: Option<Spanned<f64>>| f.map(|f| proc_macro2::Literal::f64_unsuffixed(f.value));
        let setters = [
            ("initial_delay", duration(self.initial)),
            ("max_delay", duration(self.max_delay)),
            ("multiplier", float(self.multiplier).map(|f| quote!(#f))),
            ("jitter", float(self.jitter).map(|f| quote!(#f))),
            ("max_elapsed", duration(self.max_elapsed)),
        ];
        for (setter, value) in setters {
            if let Some(value) = value {
                let setter = syn::Ident::new(setter, Span::call_site());
                config = quote!(#config.#setter(#value));
            }
        }
        config
    }

    /// The operation name: `name = "..."`, else `module_path::fn_name`.
    fn name(&self, sig: &syn::Signature) -> TokenStream {
        match &self.name {
            Some(name) => quote!(#name),
            None => function::default_name(sig),
        }
    }

    /// `static __SITE: RetrySite = RetrySite::new(name, config)`, with `.budget("..")`.
    pub(crate) fn site(&self, sig: &syn::Signature) -> TokenStream {
        let private = function::private();
        let site = function::internal(Name::Site);
        let name = self.name(sig);
        let config = self.config();
        let budget = self.budget.as_ref().map(|budget| quote!(.budget(#budget)));
        quote! {
            static #site: #private::RetrySite = #private::RetrySite::new(#name, #config)#budget;
        }
    }

    /// The verdict on an error: `when = path`'s answer, or the `Classify`-aware default
    /// (autoref specialization written at the call site, where the error type is concrete, so
    /// that errors implementing `Classify` are retried when their recovery is `Retry`, after
    /// their `retry_after()` hint, and all others always).
    pub(crate) fn verdict(&self) -> TokenStream {
        let private = function::private();
        let e = function::internal(Name::Error);
        let verdict = match &self.when {
            Some(when) => {
                let asked = quote_spanned!(when.span()=> #when(#e));
                quote!(verdict_when(#asked))
            }
            None => quote!(verdict()),
        };
        quote! {
            |#e| {
                use #private::Retryable as _;
                #private::Probe(#e).#verdict
            }
        }
    }

    /// `when_ok`, `on_retry` and `fallback` as arguments (`NoHook` for those not given), or
    /// `None` when none is given. `ret` is the function's return type.
    ///
    /// Each is called from a closure whose parameters are typed from `ret` (where it names no
    /// `impl Trait`) and which rustc checks after the body's closure, so a hook of the wrong
    /// type is reported at the user's path (the closure is spanned there), not as a mismatch
    /// in the body.
    pub(crate) fn hooks(&self, ret: &syn::Type) -> Option<TokenStream> {
        if [&self.when_ok, &self.on_retry, &self.fallback].iter().all(|hook| hook.is_none()) {
            return None;
        }
        let private = function::private();
        let typed = function::closure_return(ret).is_some();
        let projection = |assoc: &str| {
            let assoc = syn::Ident::new(assoc, Span::call_site());
            typed.then(|| quote!(: <#ret as #private::Outcome>::#assoc))
        };
        let (ok, err) = (projection("Ok"), projection("Error"));
        let by_ref = |ty: &Option<TokenStream>| {
            ty.as_ref().map(|ty| {
                let ty: TokenStream = ty.clone().into_iter().skip(1).collect();
                quote!(: &#ty)
            })
        };
        let (v, e, n, d) = (
            function::internal(Name::Value),
            function::internal(Name::Error),
            function::internal(Name::Attempt),
            function::internal(Name::Delay),
        );
        let (ok_ref, err_ref) = (by_ref(&ok), by_ref(&err));
        let (n_ty, d_ty) = typed.then(|| (quote!(: u32), quote!(: ::core::time::Duration))).unzip();
        let hook = |path: &Option<syn::Path>, params: TokenStream, args: TokenStream| match path {
            Some(path) => {
                // The arguments are located at the path too, so that a mismatch points there.
                let at_path = |tree: proc_macro2::TokenTree| match tree {
                    proc_macro2::TokenTree::Ident(mut ident) => {
                        ident.set_span(ident.span().located_at(path.span()));
                        proc_macro2::TokenTree::Ident(ident)
                    }
                    other => other,
                };
                let args: TokenStream = args.into_iter().map(at_path).collect();
                quote_spanned!(path.span()=> |#params| #path(#args))
            }
            None => quote!(#private::NoHook),
        };
        let hooks = [
            hook(&self.when_ok, quote!(#v #ok_ref), quote!(#v)),
            hook(&self.on_retry, quote!(#e #err_ref, #n #n_ty, #d #d_ty), quote!(#e, #n, #d)),
            hook(&self.fallback, quote!(#e #err), quote!(#e)),
        ];
        Some(quote!(#(#hooks),*))
    }
}

/// Expands `#[retry(args)] item`; on a mistake, the item unchanged plus the error.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => function::item_with_error(item, error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function = function::parse(item, "retry")?;
    crate::stacking::retry_above_checkpointing(&function)?;
    if let Some(constness) = function.sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "`#[retry]` cannot be applied to a `const fn`: retrying sleeps and runs at run time",
        ));
    }
    let mut args = Args::parse(args, KEYS)?;
    let options = RetryOptions::from_args(&mut args)?;
    let ret = function::result_type(&function.sig, "retry")?;
    Ok(function::with_body(&function, body(&function, &options, ret.ty)))
}

fn body(function: &ItemFn, options: &RetryOptions, ret: &syn::Type) -> TokenStream {
    let private = function::private();
    let site = function::internal(Name::Site);
    let site_static = options.site(&function.sig);
    let verdict = options.verdict();
    let hooks = options.hooks(ret);
    let (with, hooks) = match hooks {
        Some(hooks) => ("with", quote!(, #hooks)),
        None => ("if", TokenStream::new()),
    };
    let Some(async_token) = function::asyncness(&function.sig) else {
        let op = op(function, ret, Op::Closure);
        let call = format_ident!("retry_{with}");
        return quote! {
            #site_static
            #private::#call(&#site, #op, #verdict #hooks)
        };
    };
    // Each attempt's future owns copies of the captures (`|| async move`), which keeps it
    // `Send`; a body that needs `&mut self` or a `&mut` argument in every attempt can only be
    // an async closure, whose future the compiler cannot always prove `Send` yet.
    let borrows_mut = function::receiver(&function.sig).is_some_and(|(_, k)| k == SelfKind::RefMut)
        || function::params(&function.sig).iter().any(|p| p.passing == Passing::RefMut);
    let (call, op) = if borrows_mut {
        (format_ident!("retry_{with}_async_borrowing"), op(function, ret, Op::AsyncClosure))
    } else {
        (format_ident!("retry_{with}_async"), op(function, ret, Op::ClosureOfAsyncBlock))
    };
    // The site is spanned at `async` so that without the `tokio` feature the one error (an
    // unimplemented `TokioFeature`) points there.
    let mut site_at_async = site.clone();
    site_at_async.set_span(site.span().located_at(async_token.span));
    let site_ref = quote_spanned!(async_token.span=> &#site_at_async);
    quote! {
        #site_static
        #private::#call(#site_ref, #op, #verdict #hooks).await
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    /// `|| -> Ret { body }`
    Closure,
    /// `|| async move { let __result: Ret = { body }; __result }`
    ClosureOfAsyncBlock,
    /// `async || -> Ret { body }`
    AsyncClosure,
}

/// The body as a closure, keeping the user's spans. The return type is written out where the
/// syntax allows it, so that `?` converts and the verdict sees the error type exactly as in
/// the original function; an async block cannot name its output type, so a typed binding does
/// the same there. With `impl Trait` in the return type nothing is written (a closure cannot
/// name it).
fn op(function: &ItemFn, ret: &syn::Type, kind: Op) -> TokenStream {
    let block = function::block_tokens(function);
    let span = function::body_span(function);
    let ret_arrow = function::closure_return(ret);
    match (kind, ret_arrow) {
        (Op::Closure, ret_arrow) => quote_spanned!(span=> || #ret_arrow #block),
        (Op::AsyncClosure, ret_arrow) => quote_spanned!(span=> async || #ret_arrow #block),
        (Op::ClosureOfAsyncBlock, Some(_)) => {
            let result = function::internal(Name::Result);
            quote_spanned!(span=> || async move {
                let #result: #ret = #block;
                #result
            })
        }
        (Op::ClosureOfAsyncBlock, None) => quote_spanned!(span=> || async move #block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: TokenStream) -> Vec<String> {
        let mut args = Args::parse(args, KEYS).unwrap();
        let error = RetryOptions::from_args(&mut args).err().unwrap();
        error.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_mistake_is_reported() {
        assert_eq!(
            errors(quote!(max = 2.5, jitter = -0.1, multiplier = 0.5)),
            [
                "`max` must be an integer, like `max = 3`",
                "`multiplier` must be at least 1.0 (delays never shrink); got 0.5",
                "`jitter` must be between 0.0 and 1.0 (a fraction of each delay); got -0.1",
            ]
        );
    }

    #[test]
    fn initial_longer_than_max_delay() {
        assert_eq!(
            errors(quote!(initial = "2s", max_delay = "1s")),
            ["`initial` is longer than `max_delay`: every delay would be cut to it"]
        );
        assert_eq!(
            errors(quote!(initial = "1m")),
            [
                "`initial` is longer than the default `max_delay` (30s): every delay would be cut to it"
            ]
        );
    }

    #[test]
    fn config_sets_only_what_is_given() {
        let mut args = Args::parse(quote!(jitter = 0, max = 7), KEYS).unwrap();
        let config = RetryOptions::from_args(&mut args).unwrap().config();
        assert_eq!(
            config.to_string(),
            quote!(::resilience::RetryConfig::new(7).jitter(0.0)).to_string()
        );
    }
}
