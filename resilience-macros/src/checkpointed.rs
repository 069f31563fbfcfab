//! `#[checkpointed(...)]`: the body runs inside a `::resilience::__private::Run` that locks the
//! operation, resumes it from its last checkpoint and checkpoints the tracked loop.
//!
//! ```text
//! use ::resilience::__private::{self as __rt, Fingerprint as _};   // once, for what follows
//! let __run: __rt::Run<Ret> = __rt::Run::begin(__rt::Options::new("name").every(10), id, state)?;
//! let __op = __run.bind(state);
//! __op.call(|state| {   // then saves Completed or Failed
//!     let mut __at = __run.position();
//!     let mut __items = __run.skip(xs);
//!     while __at.resume(&mut __items, state)? {
//!         for x in &mut __items { __at.step(state); ... }
//!     }
//!     ...
//! })
//! ```
//!
//! [`Checkpointed`] holds what `#[protected]` shares: the options, the state parameter, the
//! rewritten body and the interpolated strings.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Ident, ItemFn, LitStr, Pat};

use crate::args::{Args, Errors, Spanned};
use crate::function::Name;
use crate::function::{self, Passing};
use crate::loops;

/// The keys `#[checkpointed]` accepts; `#[protected]` accepts these and more.
pub(crate) const KEYS: &[&str] = &[
    "every",
    "interval",
    "id",
    "name",
    "manager",
    "state",
    "errors",
    "skip_limit",
    "input",
    "on_input_change",
];

/// The analysed function: everything both attributes emit.
pub(crate) struct Checkpointed {
    /// The function with the tracked loop rewritten and the `#[checkpoint]` marker removed.
    pub(crate) function: ItemFn,
    /// The state parameter's name (`None`: the checkpoint carries `()`).
    pub(crate) state: Option<Ident>,
    /// Its pattern as written (`progress`, `mut progress`).
    pub(crate) state_pat: Option<Pat>,
    /// `__rt::Options::new("name").every(10)...`, with `.manager(&(expr))` for `manager = expr`.
    pub(crate) options: TokenStream,
    pub(crate) id: TokenStream,
    /// The return type, spanned as written.
    pub(crate) ret: syn::Type,
    /// Statements before the run begins: `__private` imported as `__rt` with the probes'
    /// traits, the input fingerprints.
    pub(crate) uses: TokenStream,
}

/// What `input = ...` says.
enum Inputs {
    /// Every parameter but the state, the manager and the handler (the default).
    All,
    /// None: the guard is off.
    None,
    /// These parameters, which must be `Hash`.
    Named(Vec<Ident>),
}

impl Checkpointed {
    /// Takes the `#[checkpointed]` keys out of `args` (parsed with [`KEYS`] among the allowed
    /// keys) and analyses `function`. Every mistake is reported, each at its token.
    pub(crate) fn new(mut function: ItemFn, args: &mut Args, attr: &str) -> syn::Result<Self> {
        let mut errors = Errors::default();
        errors.ok(crate::stacking::checkpointing(&function, attr));
        let every: Option<Spanned<u64>> = errors.ok(args.int("every")).flatten();
        if let Some(every) = every
            && every.value == 0
        {
            errors.push(syn::Error::new(
                every.span,
                "`every` must be at least 1: a checkpoint after every `every` completed items",
            ));
        }
        let interval = errors.ok(args.duration("interval")).flatten();
        if let Some(interval) = interval
            && interval.value.is_zero()
        {
            errors.push(syn::Error::new(interval.span, "`interval` must be longer than zero"));
        }
        let id = errors.ok(args.string("id")).flatten();
        let name = errors.ok(args.string("name")).flatten();
        let manager = errors.ok(args.expr("manager")).flatten();
        let state_arg = errors.ok(args.ident("state")).flatten();
        let handler = errors.ok(args.expr("errors")).flatten();
        let skip_limit: Option<Spanned<u64>> = errors.ok(args.int("skip_limit")).flatten();
        let inputs =
            errors.ok(args.take("input").map(|arg| inputs_arg(&arg, &function)).transpose());
        let restart = errors
            .ok(args.switch(
                "on_input_change",
                ("fail", "resuming a checkpoint of other arguments is `Error::InputChanged`"),
                ("restart", "start a fresh run instead"),
            ))
            .unwrap_or(false);
        let ret = errors.ok(function::result_type(&function.sig, attr).map(|r| r.ty.clone()));
        if let Some(ty) = &ret
            && function::closure_return(ty).is_none()
        {
            errors.push(syn::Error::new_spanned(
                ty,
                format!("`#[{attr}]` names the return type in the code it generates, so it cannot contain `impl Trait`; use a concrete type or a `Box<dyn Trait>`"),
            ));
        }
        let state = errors.ok(state_param(&function, state_arg.as_ref(), attr)).flatten();
        let id_source = id.clone();
        let id = match &id {
            Some(id) => errors.ok(interpolate(id, &function, "id")),
            None => Some(function::default_name(&function.sig)),
        };
        errors.finish()?;

        let run = function::internal(Name::Run);
        let state_tokens = state_expr(state.as_ref().map(|(ident, _)| ident));
        let e = function::internal(Name::Error);
        let rt = function::internal(Name::Private);
        let mut skipping = quote!(skipping(|#e| #rt::Probe(#e).skippable()));
        if let (Some(handler), "checkpointed") = (&handler, attr) {
            skipping = quote!(#skipping.errors(#handler));
        }
        let mut uses = vec![quote!(self as #rt)];
        let tracked =
            loops::rewrite(&mut function.block, &run.to_token_stream(), &state_tokens, &skipping)?;
        if tracked.skipping {
            uses.push(quote!(Skippable as _));
        }

        let name = match name {
            Some(name) => name.to_token_stream(),
            None => LitStr::new(&function.sig.ident.to_string(), function.sig.ident.span())
                .to_token_stream(),
        };
        let mut options = quote!(#rt::Options::new(#name));
        if let Some(every) = every.filter(|e| e.value != 1) {
            let n = proc_macro2::Literal::u64_unsuffixed(every.value);
            options = quote!(#options.every(#n));
        }
        if let Some(interval) = interval {
            let ms = proc_macro2::Literal::u64_unsuffixed(interval.value.as_millis() as u64);
            options = quote!(#options.interval_ms(#ms));
        }
        if let Some(limit) = skip_limit {
            let n = proc_macro2::Literal::u64_unsuffixed(limit.value);
            options = quote!(#options.skip_limit(#n));
        }
        if restart {
            options = quote!(#options.restart_on_input_change());
        }
        // Parameters in the id need no fingerprint: other values make another operation.
        let excluded: Vec<String> = [manager.as_ref(), handler.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(idents_in)
            .chain(id_source.iter().flat_map(|lit| placeholders(&lit.value())))
            .chain(state.iter().map(|(ident, _)| ident.to_string()))
            .chain(conditional(&function).into_iter().map(ToString::to_string))
            .collect();
        let inputs = inputs.flatten().unwrap_or(Inputs::All);
        let fingerprints = fingerprints(&function, inputs, &excluded, &rt);
        let mut prelude = TokenStream::new();
        if !fingerprints.is_empty() {
            if fingerprints.iter().any(|(_, probed)| *probed) {
                uses.push(quote!(Fingerprint as _));
            }
            let entries = fingerprints.iter().map(|(tokens, _)| tokens);
            let inputs = function::internal(Name::Inputs);
            prelude = quote!(let #inputs = [#(#entries),*];);
            options = quote!(#options.inputs(&#inputs));
        }
        if let Some(manager) = manager {
            let manager = quote_spanned!(manager.span()=> &(#manager));
            options = quote!(#options.manager(#manager));
        }
        let (state, state_pat) = match state {
            Some((ident, pat)) => (Some(ident), Some(pat)),
            None => (None, None),
        };
        let uses = match uses.as_slice() {
            [_] => quote!(use ::resilience::__private as #rt;),
            many => quote!(use ::resilience::__private::{#(#many),*};),
        };
        let uses = quote!(#uses #prelude);
        Ok(Checkpointed {
            function,
            state,
            state_pat,
            options,
            id: id.unwrap_or_default(),
            ret: ret.expect("errors.finish() returned early otherwise"),
            uses,
        })
    }

    /// For an expansion that hands the state to the body as a closure parameter (`|mut state|`,
    /// the pattern as written): the signature's `mut` goes, since the parameter itself is then
    /// only reborrowed, and `#![deny(unused_mut)]` would report a `mut` the user needs.
    pub(crate) fn state_mut_in_closure_only(&mut self) {
        let Some(state) = &self.state else { return };
        for arg in &mut self.function.sig.inputs {
            if let syn::FnArg::Typed(typed) = arg
                && let Pat::Ident(pat) = &mut *typed.pat
                && pat.ident == *state
            {
                pat.mutability = None;
            }
        }
    }

    /// The state argument of the runtime calls: `progress`, or `&mut ()` without a state.
    pub(crate) fn state_tokens(&self) -> TokenStream {
        state_expr(self.state.as_ref())
    }

    /// `let __run: __rt::Run<Ret> = __rt::Run::begin(args)?;`, the call spanned at the return
    /// type (the arguments keep theirs) so that an error type without
    /// `From<resilience::Error>` is reported there. The type is on the `let` rather than in a
    /// turbofish, which `prettyplease` breaks over three lines.
    ///
    /// `Protect::<Ret>::begin` keeps the turbofish: its arguments hold the recording closure,
    /// whose probe of the error type is resolved while the call is checked, before the type of
    /// the `let` is known.
    pub(crate) fn begin(&self, ty: &str, args: TokenStream) -> TokenStream {
        let run = function::internal(Name::Run);
        let ret = &self.ret;
        let rt = private_at(ret.span());
        if ty == "Protect" {
            let call = quote_spanned!(ret.span()=> #rt::Protect::<#ret>::begin(#args));
            return quote!(let #run = #call?;);
        }
        let ty = Ident::new(ty, Span::call_site());
        let call = quote_spanned!(ret.span()=> #rt::#ty::begin(#args));
        quote!(let #run: #rt::#ty<#ret> = #call?;)
    }
}

/// `input = none` or `input = [a, b]`; names are checked against the parameters.
fn inputs_arg(arg: &crate::args::Arg, function: &ItemFn) -> syn::Result<Inputs> {
    let expr = arg.expr("[a, b]")?;
    let bad = || {
        syn::Error::new(
            arg.value_span(),
            "`input` takes a list of parameters to fingerprint, `input = [a, b]`, or \
             `input = none` to turn the input guard off",
        )
    };
    match expr {
        syn::Expr::Path(p) if p.path.is_ident("none") => Ok(Inputs::None),
        syn::Expr::Array(array) => {
            let params = function::params(&function.sig);
            let known: Vec<String> =
                params.iter().filter_map(|p| p.ident).map(ToString::to_string).collect();
            let mut names = Vec::new();
            for mut elem in &array.elems {
                // A name a `macro_rules!` passed as `$x:expr` is in an invisible group.
                while let syn::Expr::Group(group) = elem {
                    elem = &group.expr;
                }
                let syn::Expr::Path(p) = elem else { return Err(bad()) };
                let Some(ident) = p.path.get_ident() else { return Err(bad()) };
                if !known.iter().any(|k| ident == k) {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "`input` names `{ident}`, but the function has no parameter `{ident}`; \
                             its parameters are {}",
                            list(&known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>())
                        ),
                    ));
                }
                names.push(ident.clone());
            }
            Ok(Inputs::Named(names))
        }
        _ => Err(bad()),
    }
}

/// The parameter names a format string interpolates (`{batch}`, `{batch:>4}`).
fn placeholders(text: &str) -> Vec<String> {
    text.replace("{{", "")
        .split('{')
        .skip(1)
        .filter_map(|rest| {
            let inner = rest.split('}').next()?;
            Some(inner.split(':').next().unwrap_or_default().trim().to_owned())
        })
        .collect()
}

/// The identifiers an expression mentions (to leave `manager = mgr`'s parameter out).
fn idents_in(expr: &syn::Expr) -> Vec<String> {
    fn walk(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                proc_macro2::TokenTree::Ident(ident) => out.push(ident.to_string()),
                proc_macro2::TokenTree::Group(group) => walk(group.stream(), out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(expr.to_token_stream(), &mut out);
    out
}

/// The parameters under `#[cfg(..)]`. A macro cannot tell whether they exist, so none of them
/// is the state or fingerprinted (the code would name a parameter that the compiler removed).
fn conditional(function: &ItemFn) -> Vec<&Ident> {
    function
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(typed) if typed.attrs.iter().any(|a| a.path().is_ident("cfg")) => {
                match &*typed.pat {
                    Pat::Ident(pat) => Some(&pat.ident),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// `("name", fingerprint)` entries for `Options::inputs`, and whether each goes through the
/// `Probe` (types that may not be `Hash`) rather than requiring `Hash`.
fn fingerprints(
    function: &ItemFn,
    inputs: Inputs,
    excluded: &[String],
    rt: &Ident,
) -> Vec<(TokenStream, bool)> {
    let params = function::params(&function.sig);
    match inputs {
        Inputs::None => Vec::new(),
        Inputs::All => params
            .iter()
            .filter(|p| p.passing != Passing::RefMut)
            .filter_map(|p| p.ident)
            .filter(|ident| !excluded.iter().any(|e| *ident == e))
            .map(|ident| {
                let name = LitStr::new(&ident.to_string(), ident.span());
                let tokens = quote!((#name, #rt::Probe(&#ident).fingerprint()));
                (tokens, true)
            })
            .collect(),
        Inputs::Named(names) => names
            .iter()
            .map(|ident| {
                let name = LitStr::new(&ident.to_string(), ident.span());
                let rt = private_at(ident.span());
                let hash = quote_spanned!(ident.span()=> #rt::fingerprint(&#ident));
                (quote!((#name, ::core::option::Option::Some(#hash))), false)
            })
            .collect(),
    }
}

/// The `__rt` alias of `::resilience::__private` spanned at `span`, so that a call's path has
/// that span (an unmet bound of the call is reported there, not at the attribute).
fn private_at(span: Span) -> Ident {
    Ident::new(Name::Private.as_str(), span)
}

fn state_expr(state: Option<&Ident>) -> TokenStream {
    match state {
        Some(ident) => ident.to_token_stream(),
        None => quote!(&mut ()),
    }
}

/// The state parameter: the one `state = name` names, else the single `&mut` parameter.
fn state_param(
    function: &ItemFn,
    named: Option<&Ident>,
    attr: &str,
) -> syn::Result<Option<(Ident, Pat)>> {
    let params = function::params(&function.sig);
    let conditional = conditional(function);
    if let Some(named) = named {
        if conditional.contains(&named) {
            return Err(syn::Error::new(
                named.span(),
                format!(
                    "`state = {named}` names a parameter under `#[cfg(..)]`, which the compiler \
                     may remove, but a `#[{attr}]` function needs its state in every \
                     configuration: remove the `#[cfg]` from `{named}`"
                ),
            ));
        }
        let Some(param) = params.iter().find(|p| p.ident == Some(named)) else {
            let names: Vec<String> =
                params.iter().filter_map(|p| p.ident).map(|i| format!("`{i}`")).collect();
            return Err(syn::Error::new(
                named.span(),
                format!(
                    "`state = {named}`: the function has no parameter `{named}`; its parameters are {}",
                    list(&names)
                ),
            ));
        };
        if param.passing != Passing::RefMut {
            return Err(syn::Error::new(
                named.span(),
                format!(
                    "`state = {named}` must name a `&mut` parameter, so that `#[{attr}]` can restore \
                     the state into it; `{named}` is `{}`",
                    function::compact(param.ty)
                ),
            ));
        }
        return Ok(Some((named.clone(), param.pat.clone())));
    }
    let candidates: Vec<_> = params
        .iter()
        .filter(|p| p.passing == Passing::RefMut)
        .filter(|p| p.ident.is_none_or(|ident| !conditional.contains(&ident)))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => match one.ident {
            Some(ident) => Ok(Some((ident.clone(), one.pat.clone()))),
            None => Err(syn::Error::new_spanned(
                one.pat,
                format!(
                    "the state parameter of a `#[{attr}]` function needs a plain name, like `state: &mut State`"
                ),
            )),
        },
        [first, ..] => {
            let names: Vec<String> = candidates
                .iter()
                .map(|p| {
                    format!(
                        "`{}`",
                        p.ident.map_or_else(|| function::compact(p.pat), ToString::to_string)
                    )
                })
                .collect();
            let example = first.ident.map_or_else(|| "name".to_owned(), ToString::to_string);
            Err(syn::Error::new_spanned(
                first.pat,
                format!(
                    "`#[{attr}]` cannot tell which parameter is the checkpointed state: {} are {} `&mut`; \
                     pick one with `state = {example}`",
                    list(&names),
                    if names.len() == 2 { "both" } else { "all" }
                ),
            ))
        }
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => "none".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `"import-{batch}"` → `::std::format!("import-{batch}")` after checking that every `{name}`
/// is a parameter; a string without placeholders stays a literal.
pub(crate) fn interpolate(lit: &LitStr, function: &ItemFn, key: &str) -> syn::Result<TokenStream> {
    let text = lit.value();
    let params = function::params(&function.sig);
    let known: Vec<String> =
        params.iter().filter_map(|p| p.ident).map(ToString::to_string).collect();
    let mut placeholders = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
            }
            '{' => {
                let Some(len) = text[start + 1..].find('}') else {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "`{key}` has a `{{` without its `}}`; write `{{{{` for a literal brace"
                        ),
                    ));
                };
                let inner = &text[start + 1..start + 1 + len];
                let name = inner.split(':').next().unwrap_or_default().trim();
                if !known.iter().any(|k| k == name) {
                    let names: Vec<String> = known.iter().map(|k| format!("`{{{k}}}`")).collect();
                    let hint = match crate::args::did_you_mean(
                        name,
                        &known.iter().map(String::as_str).collect::<Vec<_>>(),
                    ) {
                        Some(close) => format!("did you mean `{{{close}}}`? "),
                        None => String::new(),
                    };
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "`{key}` interpolates `{{{name}}}`, but the function has no parameter `{name}`; {hint}\
                             the parameters are {}",
                            list(&names)
                        ),
                    ));
                }
                placeholders += 1;
                for _ in 0..=len {
                    chars.next();
                }
            }
            '}' => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "`{key}` has a `}}` without its `{{`; write `}}}}` for a literal brace"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(if placeholders == 0 { quote!(#lit) } else { quote!(::std::format!(#lit)) })
}

/// Expands `#[checkpointed(args)] item`; on a mistake, the item unchanged plus the error.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => function::item_with_error(loops::without_markers(item), error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function = function::parse(item, "checkpointed")?;
    let mut args = Args::parse(args, KEYS)?;
    let mut plan = Checkpointed::new(function, &mut args, "checkpointed")?;
    if function::asyncness(&plan.function.sig).is_none() {
        plan.state_mut_in_closure_only();
    }
    let body = plan.body();
    Ok(function::with_body(&plan.function, body))
}

impl Checkpointed {
    fn body(&self) -> TokenStream {
        let run = function::internal(Name::Run);
        let result = function::internal(Name::Result);
        let Checkpointed { options, id, uses, .. } = self;
        let state = self.state_tokens();
        let begin = self.begin("Run", quote!(#options, #id, #state));
        let block = &self.function.block;
        let span = function::body_span(&self.function);
        if function::asyncness(&self.function.sig).is_none() {
            let Some(pat) = &self.state_pat else {
                // The `&mut ()` lives as long as the statement that borrows it.
                let call = quote_spanned!(span=> #run.bind(#state).call(|_| #block));
                return quote!(#uses #begin #call);
            };
            // `__op.call(|state| ..)` rather than `__run.bind(state).call(..)`: prettyplease
            // keeps a call on a name of four letters or fewer on one line.
            let op = function::internal(Name::Bound);
            let call = quote_spanned!(span=> #op.call(|#pat| #block));
            return quote! {
                #uses
                #begin
                let #op = #run.bind(#state);
                #call
            };
        }
        let call = quote_spanned!(span=> #run.call_async(async #block).await);
        quote! {
            #uses
            #begin
            let #result = #call;
            #run.finish(#state, #result)
        }
    }
}
