//! `#[retry(...)]`: the signature stays, the body becomes one call into
//! `::resilience::__private` with a per-call-site `static` holding the configuration.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, FnArg, ItemFn, LitStr, Pat, Stmt};

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

    /// The verdict on an error: `when = path`'s answer (`when = always`: retry every error),
    /// or the `Classify`-aware default (autoref specialization written at the call site, where
    /// the error type is concrete, so that errors implementing `Classify` are retried when
    /// their recovery is `Retry`, after their `retry_after()` hint, and all others always).
    ///
    /// A generic error type (see [`generic_error`]) cannot be told apart from a concrete one
    /// without `Classify` at the call site, so there the default asks `Classify` outright: a
    /// missing bound is a compile error at the type, never a silent "retry everything".
    ///
    /// With `in_scope`, the caller has put `use __private::Retryable as _;` in scope (see
    /// [`retryable_in_scope`]) and the closure is one call.
    pub(crate) fn verdict(
        &self,
        sig: &syn::Signature,
        ret: &syn::Type,
        in_scope: bool,
    ) -> TokenStream {
        let private = function::private();
        let e = function::internal(Name::Error);
        let verdict = match &self.when {
            Some(when) if when.is_ident("always") => quote!(verdict_when(true)),
            Some(when) => {
                let asked = quote_spanned!(when.span()=> #when(#e));
                quote!(verdict_when(#asked))
            }
            None => match generic_error(sig, ret) {
                Some(error) => {
                    let mut at_error = e.clone();
                    at_error.set_span(e.span().located_at(error.span()));
                    let call = quote_spanned!(error.span()=> #private::classified(#at_error));
                    return quote!(|#e| #call);
                }
                None => quote!(verdict()),
            },
        };
        if in_scope {
            return quote!(|#e| #private::Probe(#e).#verdict);
        }
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
    if async_trait_block(&function.block).is_some() && function.sig.asyncness.is_none() {
        return async_trait_method(function, &options);
    }
    let ret = function::result_type(&function.sig, "retry")?;
    let attempt = Attempt {
        block: &function.block,
        copies: mut_params(&function).into_iter().cloned().collect(),
        asyncness: function::asyncness(&function.sig).map(|token| token.span),
    };
    let body = body(&function.sig, &attempt, &options, ret.ty);
    let mut function = without_mut_params(&function);
    inline_unless_told(&mut function);
    Ok(function::with_body(&function, body))
}

/// The `async move { .. }` of a body that `#[async_trait]` rewrote into
/// `Box::pin(async move { .. })` (what tracing-attributes' `AsyncInfo` recognises too).
fn async_trait_block(block: &syn::Block) -> Option<&syn::ExprAsync> {
    let [Stmt::Expr(Expr::Call(call), None)] = block.stmts.as_slice() else { return None };
    let Expr::Path(path) = &*call.func else { return None };
    let segments: Vec<_> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(Expr::Async(block)) => Some(block),
        _ => None,
    }
}

/// An `#[async_trait]` method: `Box::pin(async move { ..; let __ret: R = { body }; __ret })`,
/// where the statements before `__ret` move the arguments into the future once. Only the
/// body is retried: `let __ret: R = { static __SITE ..; retry_if_async(..).await };`. The
/// arguments bound `let mut x = x;` are copied in each attempt instead.
fn async_trait_method(mut function: ItemFn, options: &RetryOptions) -> syn::Result<TokenStream> {
    let unsupported = |message: &str| syn::Error::new(function.sig.ident.span(), message);
    let borrows_mut = borrows_mut(&function.sig);
    let sendable =
        function::any_ident(function.sig.output.to_token_stream(), &|ident| ident == "Send");
    if borrows_mut && sendable {
        return Err(unsupported(
            "`#[retry]` cannot keep this `#[async_trait]` method's future `Send`: its body \
             borrows mutably (`&mut self` or a `&mut` argument) in every attempt, and rustc \
             cannot yet prove such a future `Send` \
             (https://github.com/rust-lang/rust/issues/138207); use `#[async_trait(?Send)]`, \
             or take `&self` and keep the mutable state behind a `Mutex` or an atomic",
        ));
    }
    let sig = function.sig.clone();
    let Some(Stmt::Expr(Expr::Call(call), None)) = function.block.stmts.first_mut() else {
        unreachable!("checked by `async_trait_block`")
    };
    let Some(Expr::Async(future)) = call.args.first_mut() else {
        unreachable!("checked by `async_trait_block`")
    };
    let position = future.block.stmts.iter().position(|stmt| match stmt {
        Stmt::Local(local) => match &local.pat {
            Pat::Type(typed) => matches!(&*typed.pat, Pat::Ident(p) if p.ident == "__ret"),
            _ => false,
        },
        _ => false,
    });
    let Some(position) = position else {
        return Err(unsupported(
            "`#[retry]` cannot find the body of this `#[async_trait]` method (a \
             `let __ret: R = { .. };` in its `Box::pin(async move { .. })`); write it as a \
             native `async fn` in the trait (stable since Rust 1.75) and put `#[retry]` on it",
        ));
    };
    let (before, rest) = future.block.stmts.split_at_mut(position);
    let mut copies = Vec::new();
    for stmt in before {
        if let Stmt::Local(local) = stmt
            && let Pat::Ident(pat) = &mut local.pat
            && pat.mutability.is_some()
            && pat.ident != "__self"
            && let Some(init) = &local.init
            && matches!(&*init.expr, Expr::Path(path) if path.path.is_ident(&pat.ident))
        {
            pat.mutability = None;
            copies.push(pat.ident.clone());
        }
    }
    let Stmt::Local(local) = &mut rest[0] else { unreachable!("found above") };
    let Pat::Type(typed) = &local.pat else { unreachable!("found above") };
    let ret = (*typed.ty).clone();
    let Some(init) = &mut local.init else { return Err(unsupported("`__ret` has no value")) };
    let Expr::Block(block) = &*init.expr else {
        return Err(unsupported("the body of this `#[async_trait]` method is not a block"));
    };
    let attempt = Attempt { block: &block.block, copies, asyncness: Some(sig.fn_token.span) };
    let body = body(&sig, &attempt, options, &ret);
    *init.expr = Expr::Verbatim(quote!({ #body }));
    Ok(function.into_token_stream())
}

/// Whether the body borrows something mutably in every attempt: `&mut self` or a `&mut T`
/// argument.
fn borrows_mut(sig: &syn::Signature) -> bool {
    function::receiver(sig).is_some_and(|(_, k)| k == SelfKind::RefMut)
        || function::params(sig).iter().any(|p| p.passing == Passing::RefMut)
}

/// What one attempt runs.
struct Attempt<'a> {
    /// The user's block.
    block: &'a syn::Block,
    /// The `mut` bindings each attempt starts with a copy of (see [`mut_params`]).
    copies: Vec<syn::Ident>,
    /// The span of `async` when the attempts are futures.
    asyncness: Option<Span>,
}

/// The bindings `mut name` of the by-value parameters (also inside a pattern such as
/// `(mut a, b): (u32, u32)`): each attempt starts from the value the call passed, in a copy of
/// its own (`let mut name = fresh(&name);` inside the attempt, where `fresh` asks for `Copy`
/// with a message that says why).
fn mut_params(function: &ItemFn) -> Vec<&syn::Ident> {
    fn walk<'a>(pat: &'a Pat, found: &mut Vec<&'a syn::Ident>) {
        match pat {
            Pat::Ident(p) => {
                if p.mutability.is_some() && p.by_ref.is_none() {
                    found.push(&p.ident);
                }
                if let Some((_, sub)) = &p.subpat {
                    walk(sub, found);
                }
            }
            Pat::Tuple(p) => p.elems.iter().for_each(|p| walk(p, found)),
            Pat::TupleStruct(p) => p.elems.iter().for_each(|p| walk(p, found)),
            Pat::Struct(p) => p.fields.iter().for_each(|f| walk(&f.pat, found)),
            Pat::Slice(p) => p.elems.iter().for_each(|p| walk(p, found)),
            Pat::Paren(p) => walk(&p.pat, found),
            Pat::Type(p) => walk(&p.pat, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for param in function::params(&function.sig) {
        if param.passing == Passing::Value {
            walk(param.pat, &mut found);
        }
    }
    found
}

/// The function with `mut` taken off the bindings [`mut_params`] copies: the copy is what
/// the body mutates, and a `mut` left on the parameter would be reported unused. (A binding's
/// `mut` is not part of the signature callers see.)
fn without_mut_params(function: &ItemFn) -> ItemFn {
    struct Strip<'a>(&'a [syn::Ident]);
    impl VisitMut for Strip<'_> {
        fn visit_pat_ident_mut(&mut self, pat: &mut syn::PatIdent) {
            if self.0.contains(&pat.ident) && pat.by_ref.is_none() {
                pat.mutability = None;
            }
            visit_mut::visit_pat_ident_mut(self, pat);
        }
    }
    let mut function = function.clone();
    let copied: Vec<syn::Ident> = mut_params(&function).into_iter().cloned().collect();
    for input in &mut function.sig.inputs {
        if let FnArg::Typed(typed) = input {
            Strip(&copied).visit_pat_mut(&mut typed.pat);
        }
    }
    function
}

fn body(
    sig: &syn::Signature,
    attempt: &Attempt<'_>,
    options: &RetryOptions,
    ret: &syn::Type,
) -> TokenStream {
    let private = function::private();
    let site = function::internal(Name::Site);
    let site_static = options.site(sig);
    let verdict = options.verdict(sig, ret, true);
    // `classified(..)`, the verdict of a generic error without `when`, needs no trait in scope.
    let classified = options.when.is_none() && generic_error(sig, ret).is_some();
    let retryable = if classified { TokenStream::new() } else { retryable_in_scope() };
    let hooks = options.hooks(ret);
    let (with, hooks) = match hooks {
        Some(hooks) => ("with", quote!(, #hooks)),
        None => ("if", TokenStream::new()),
    };
    // Where the return type is not spelled `…Result`, the call is located at it, so that the
    // error for a type that is not a `Result` after all (unmet `Outcome` bound) points there,
    // once.
    let span = match spelled_result(ret) {
        true => Span::call_site(),
        false => ret.span(),
    };
    let private_at: TokenStream = private
        .clone()
        .into_iter()
        .map(|mut tree| {
            tree.set_span(span);
            tree
        })
        .collect();
    let Some(async_span) = attempt.asyncness else {
        let op = op(attempt, ret, Op::Closure);
        let call = format_ident!("retry_{with}", span = span);
        let call = quote_spanned!(span=> #private_at::#call(&#site, #op, #verdict #hooks));
        return quote! {
            #retryable
            #site_static
            #call
        };
    };
    // Each attempt's future borrows the arguments from the function's own future (`|| async`),
    // which keeps it `Send`; a body that needs `&mut self` or a `&mut` argument in every
    // attempt can only be an async closure, whose future the compiler cannot always prove
    // `Send` yet.
    let (call, op) = if borrows_mut(sig) {
        (format_ident!("retry_{with}_async_borrowing"), op(attempt, ret, Op::AsyncClosure))
    } else {
        (format_ident!("retry_{with}_async"), op(attempt, ret, Op::ClosureOfAsyncBlock))
    };
    // The site is spanned at `async` so that without the `tokio` feature the one error (an
    // unimplemented `TokioFeature`) points there.
    let mut site_at_async = site.clone();
    site_at_async.set_span(site.span().located_at(async_span));
    let site_ref = quote_spanned!(async_span=> &#site_at_async);
    let call = syn::Ident::new(&call.to_string(), span);
    let call = quote_spanned!(span=> #private_at::#call(#site_ref, #op, #verdict #hooks));
    quote! {
        #retryable
        #site_static
        #call.await
    }
}

/// Marks a sync function `#[inline]` unless it says how to inline itself. What runs on the
/// success path is the first attempt and a few instructions around it; a call to the wrapper
/// cost 4.8 ns more than a plain call on an AMD EPYC host, and 1.9 ns inlined (bench 1 in
/// docs/PERFORMANCE.md). It is a hint: the compiler still weighs the size of the whole
/// function. An async fn's call only builds its future, and is left alone.
fn inline_unless_told(function: &mut ItemFn) {
    let told = function.attrs.iter().any(|attr| attr.path().is_ident("inline"));
    if function.sig.asyncness.is_none() && !told {
        function.attrs.push(syn::parse_quote!(#[inline]));
    }
}

/// `use __private::Retryable as _;`, at the top of the generated body: the verdict's
/// autoref specialization needs the trait in scope. It names only `Probe`'s methods, so the
/// user's code in the body sees no new method on its own types.
fn retryable_in_scope() -> TokenStream {
    let private = function::private();
    quote!(use #private::Retryable as _;)
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    /// `|| -> Ret { body }`
    Closure,
    /// `|| async { let __result: Ret = { body }; __result }`
    ClosureOfAsyncBlock,
    /// `async || -> Ret { body }`
    AsyncClosure,
}

/// The body as a closure, keeping the user's spans. The return type is written out, so that
/// `?` converts and the verdict sees the error type exactly as in the original function; an
/// async block cannot name its output type, so a typed binding does the same there. Each
/// `impl Trait` in it is written `_` (a closure cannot name it; the error type is what `?`
/// needs). `mut` parameters are copied first, so that every attempt starts from the call's
/// arguments.
fn op(attempt: &Attempt<'_>, ret: &syn::Type, kind: Op) -> TokenStream {
    let span = attempt.block.span();
    let copies = &attempt.copies;
    let block = match copies.as_slice() {
        [] => attempt.block.to_token_stream(),
        _ => {
            let private = function::private();
            let copies = copies.iter().map(
                |ident| quote_spanned!(ident.span()=> let mut #ident = #private::fresh(&#ident);),
            );
            let stmts = &attempt.block.stmts;
            quote_spanned!(span=> { #(#copies)* #(#stmts)* })
        }
    };
    let ret = inferred(ret);
    match kind {
        Op::Closure => quote_spanned!(span=> || -> #ret #block),
        Op::AsyncClosure => quote_spanned!(span=> async || -> #ret #block),
        Op::ClosureOfAsyncBlock => {
            let result = function::internal(Name::Result);
            quote_spanned!(span=> || async {
                let #result: #ret = #block;
                #result
            })
        }
    }
}

/// `ret` with every `impl Trait` written `_`, which a closure's return type may contain.
fn inferred(ret: &syn::Type) -> syn::Type {
    struct Infer;
    impl VisitMut for Infer {
        fn visit_type_mut(&mut self, ty: &mut syn::Type) {
            if let syn::Type::ImplTrait(impl_trait) = ty {
                *ty = syn::parse_quote_spanned!(impl_trait.impl_token.span=> _);
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut ret = ret.clone();
    Infer.visit_type_mut(&mut ret);
    ret
}

/// The error type of `ret` when it is spelled `…Result<T, E>` and `E` is generic: it names a
/// type parameter of the function, or `Self` (`Self::Error` in a trait), or is one capital
/// letter (`E`, `E2`: a type parameter of the `impl`, which the attribute cannot see).
fn generic_error<'a>(sig: &syn::Signature, ret: &'a syn::Type) -> Option<&'a syn::Type> {
    let syn::Type::Path(path) = function::ungroup(ret) else { return None };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let types: Vec<&syn::Type> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    let [_, error] = types.as_slice() else { return None };
    if !last.ident.to_string().ends_with("Result") {
        return None;
    }
    let params: Vec<&syn::Ident> = sig.generics.type_params().map(|p| &p.ident).collect();
    let single_letter = match function::ungroup(error) {
        syn::Type::Path(p) if p.qself.is_none() => p.path.get_ident().is_some_and(|ident| {
            let name = ident.to_string();
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_digit())
        }),
        _ => false,
    };
    let names_generic = function::any_ident(error.to_token_stream(), &|ident| {
        ident == "Self" || params.contains(&ident)
    });
    (single_letter || names_generic).then_some(*error)
}

/// Whether `ret` is spelled as a `Result` (`Result<T, E>`, `io::Result<T>`), rather than an
/// alias of another name that the compiler must check.
fn spelled_result(ret: &syn::Type) -> bool {
    match function::ungroup(ret) {
        syn::Type::Path(path) => {
            path.path.segments.last().is_some_and(|last| last.ident.to_string().ends_with("Result"))
        }
        _ => false,
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
    fn generic_error_types() {
        let generic = |function: TokenStream| {
            let function = syn::parse2::<ItemFn>(function).unwrap();
            let ret = function::result_type(&function.sig, "retry").unwrap().ty;
            generic_error(&function.sig, ret).map(function::compact)
        };
        assert_eq!(
            generic(quote!(
                fn f<E>() -> Result<u8, E> {}
            ))
            .as_deref(),
            Some("E")
        );
        assert_eq!(
            generic(quote!(
                fn f(&self) -> Result<u8, Self::Error> {}
            ))
            .as_deref(),
            Some("Self::Error")
        );
        assert_eq!(
            generic(quote!(
                fn f<Err>() -> io::Result<u8, Box<Err>> {}
            ))
            .as_deref(),
            Some("Box<Err>")
        );
        assert_eq!(
            generic(quote!(
                fn f() -> Result<u8, E2> {}
            ))
            .as_deref(),
            Some("E2")
        );
        assert_eq!(
            generic(quote!(
                fn f<T>() -> Result<T, JobError> {}
            )),
            None
        );
        assert_eq!(
            generic(quote!(
                fn f<E>() -> io::Result<E> {}
            )),
            None
        );
        assert_eq!(
            generic(quote!(
                fn f<E>() -> Fallible<u8, E> {}
            )),
            None
        );
    }

    #[test]
    fn async_trait_bodies() {
        let body = |function: TokenStream| {
            async_trait_block(&syn::parse2::<ItemFn>(function).unwrap().block).is_some()
        };
        assert!(body(quote!(
            fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = R> + Send + 'a>> {
                Box::pin(async move { Ok(1) })
            }
        )));
        assert!(!body(quote!(
            async fn f(&self) -> Result<u8, E> {
                Box::pin(async move { Ok(1) }).await
            }
        )));
        assert!(!body(quote!(
            fn f(&self) -> Result<Pin<Box<u8>>, E> {
                Ok(Box::pin(1))
            }
        )));
        // A layout without `let __ret: R = { .. };` (not what `#[async_trait]` writes today).
        let old_layout = quote!(
            fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = R> + Send + 'a>> {
                Box::pin(async move { Ok(1) })
            }
        );
        let error = try_expand(TokenStream::new(), old_layout).unwrap_err().to_string();
        assert!(error.starts_with("`#[retry]` cannot find the body of this `#[async_trait]`"));
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
