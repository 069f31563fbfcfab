//! The function wrapper shared by the attribute macros: parse the annotated function, read its
//! signature, and re-emit it untouched with only the block replaced.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::spanned::Spanned as _;
use syn::{
    Block, Expr, FnArg, Ident, ItemFn, Pat, Receiver, ReceiverKind, ReturnType, Signature, Stmt,
    Type,
};

/// Parses the item under `#[attr]`: any function with a body (free function, inherent or trait
/// impl method, default trait method).
pub(crate) fn parse(item: TokenStream, attr: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        let span = item.into_iter().next().map_or_else(Span::call_site, |t| t.span());
        syn::Error::new(span, format!("`#[{attr}]` can only be applied to a function with a body"))
    })
}

/// What an attribute emits when its arguments are wrong: the item as written, plus the error,
/// so the user sees one error and not a cascade of "cannot find function" errors. A function
/// also gets `#[allow(unused_variables)]`: parameters that only the attribute used (`id =
/// "import-{batch}"`) would otherwise be reported unused on top of the error.
pub(crate) fn item_with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(mut function) => {
            function.attrs.push(syn::parse_quote!(#[allow(unused_variables)]));
            quote!(#function #error)
        }
        Err(_) => quote!(#item #error),
    }
}

/// Re-emits `function` (attributes, visibility, signature, inner attributes: all untouched) with
/// `body` as the contents of its block. The block keeps the original braces' span.
pub(crate) fn with_body(function: &ItemFn, body: TokenStream) -> TokenStream {
    let mut function = function.clone();
    function.block = Box::new(Block {
        brace_token: function.block.brace_token,
        stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)],
    });
    function.into_token_stream()
}

/// `::resilience::__private`, the one path generated code calls into.
pub(crate) fn private() -> TokenStream {
    quote!(::resilience::__private)
}

/// An identifier for generated locals (`__SITE`, `__state`, ...). Mixed-site hygiene: it cannot
/// clash with, or be named by, the user's code.
pub(crate) fn internal(name: Name) -> Ident {
    Ident::new(name.as_str(), Span::mixed_site())
}

/// Every name the expansions define, once: the modules that emit a name and those that refer
/// to it share the variant, so the compiler checks that they agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// The `static` retry site.
    Site,
    /// The run of a `#[checkpointed]`/`#[protected]` call.
    Run,
    /// The tracked loop's position.
    At,
    /// The tracked loop's iterator.
    Items,
    /// The body's result.
    Result,
    /// An error, in generated closures.
    Error,
    /// An `Ok` value, in the `when_ok` closure.
    Value,
    /// The retry number, in the `on_retry` closure.
    Attempt,
    /// The delay, in the `on_retry` closure.
    Delay,
    /// The error handler, in the recording closure.
    Handler,
    /// The error context, in the recording closure.
    Context,
    /// The field a derive delegates to.
    Inner,
    /// The input fingerprints of a `#[checkpointed]` call.
    Inputs,
    /// `::resilience::__private`, imported once at the top of a `#[checkpointed]` body.
    Private,
    /// The run bound to its state, in a `#[checkpointed]` body (four letters: see its use).
    Bound,
}

impl Name {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Name::Site => "__SITE",
            Name::Run => "__run",
            Name::At => "__at",
            Name::Items => "__items",
            Name::Result => "__result",
            Name::Error => "__e",
            Name::Value => "__v",
            Name::Attempt => "__n",
            Name::Delay => "__d",
            Name::Handler => "__h",
            Name::Context => "__c",
            Name::Inputs => "__inputs",
            Name::Inner => "__inner",
            Name::Private => "__rt",
            Name::Bound => "__op",
        }
    }
}

/// `concat!(module_path!(), "::fn_name")`: the default operation name of a function.
pub(crate) fn default_name(sig: &Signature) -> TokenStream {
    let name = format!("::{}", sig.ident);
    quote!(::core::concat!(::core::module_path!(), #name))
}

/// The return type of a function that must return a `Result`.
pub(crate) struct ResultType<'a> {
    /// The full return type as written (`Result<T, E>`, `io::Result<T>`, ...).
    pub(crate) ty: &'a Type,
}

/// The `Result` the function returns, or an error at the return type (or at the function's
/// name when it has none) saying that `#[attr]` needs one.
///
/// Any path type counts (`Result<T, E>`, `io::Result<T>`, an alias such as `Fallible<T>`)
/// except the common types that are plainly not a `Result` (`Option<T>`, `u32`, `String`):
/// the generated code resolves `T` and `E` through `__private::Outcome`, so the compiler
/// checks the rest, at the return type. Invisible groups (`-> $t` in a `macro_rules!`) and
/// parentheses are looked through.
pub(crate) fn result_type<'a>(sig: &'a Signature, attr: &str) -> syn::Result<ResultType<'a>> {
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!(
                    "`#[{attr}]` needs a function that returns `Result<_, _>`; `{}` returns `()`",
                    sig.ident
                ),
            ));
        }
    };
    let inner = ungroup(ty);
    const NOT_RESULTS: &[&str] = &[
        "Option", "String", "Vec", "Box", "bool", "char", "str", "u8", "u16", "u32", "u64", "u128",
        "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64",
    ];
    let result = match inner {
        Type::Path(path) => path.path.segments.last().is_some_and(|last| {
            path.qself.is_some() || !NOT_RESULTS.iter().any(|name| last.ident == name)
        }),
        Type::Macro(_) => true,
        _ => false,
    };
    if result {
        return Ok(ResultType { ty });
    }
    Err(syn::Error::new_spanned(
        ty,
        format!(
            "`#[{attr}]` needs a function that returns `Result<_, _>`; found `{}`",
            compact(ty)
        ),
    ))
}

/// `-> Type` for a closure that stands for the body, so that `?` and `.into()` inside it infer as
/// they did in the function. `None` when the type mentions `impl Trait`, which a closure's
/// return type cannot name.
pub(crate) fn closure_return(ty: &Type) -> Option<TokenStream> {
    (!any_ident(ty.to_token_stream(), &|ident| ident == "impl")).then(|| quote!(-> #ty))
}

/// `ty` without the parentheses and the invisible groups (a `macro_rules!` `$t:ty`) around it.
pub(crate) fn ungroup(mut ty: &Type) -> &Type {
    while let Type::Paren(syn::TypeParen { elem, .. }) | Type::Group(syn::TypeGroup { elem, .. }) =
        ty
    {
        ty = elem;
    }
    ty
}

/// Whether `hit` accepts an identifier of `tokens`, at any depth of groups.
pub(crate) fn any_ident(tokens: TokenStream, hit: &dyn Fn(&proc_macro2::Ident) -> bool) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => hit(&ident),
        TokenTree::Group(group) => any_ident(group.stream(), hit),
        _ => false,
    })
}

/// Tokens printed without the spaces `TokenStream`'s `Display` puts between them, for
/// messages (`Vec<u8>`, not `Vec < u8 >`).
pub(crate) fn compact(tokens: &impl ToTokens) -> String {
    let mut out = String::new();
    let text = tokens.to_token_stream().to_string();
    let mut chars = text.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if c == ' ' {
            let next = chars.peek().copied().unwrap_or(' ');
            // Keep the spaces that separate two words (`dyn Trait`, `impl Fn`, `& 'a mut T`).
            let word = |ch: char| ch.is_alphanumeric() || ch == '_' || ch == '\'';
            if word(prev) && word(next) {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
        prev = c;
    }
    out
}

/// How a parameter is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passing {
    /// `x: T`.
    Value,
    /// `x: &T`.
    Ref,
    /// `x: &mut T`.
    RefMut,
}

/// One typed parameter of the function (the receiver is separate: [`receiver`]).
pub(crate) struct Param<'a> {
    /// The pattern; `x`, `mut x`, or a destructuring pattern.
    pub(crate) pat: &'a Pat,
    /// The bound name when the pattern is a plain identifier.
    pub(crate) ident: Option<&'a Ident>,
    /// The declared type.
    pub(crate) ty: &'a Type,
    /// `T`, `&T` or `&mut T`.
    pub(crate) passing: Passing,
}

/// The typed parameters in order, without the receiver.
pub(crate) fn params(sig: &Signature) -> Vec<Param<'_>> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .map(|typed| {
            let ident = match &*typed.pat {
                Pat::Ident(pat) if pat.subpat.is_none() => Some(&pat.ident),
                _ => None,
            };
            let ty = ungroup(&typed.ty);
            let passing = match ty {
                Type::Reference(r) if r.mutability.is_some() => Passing::RefMut,
                Type::Reference(_) => Passing::Ref,
                _ => Passing::Value,
            };
            Param { pat: &typed.pat, ident, ty: &typed.ty, passing }
        })
        .collect()
}

/// How a method takes `self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelfKind {
    /// `self` / `mut self` (also `self: Box<Self>` and other typed receivers).
    Value,
    /// `&self`.
    Ref,
    /// `&mut self`.
    RefMut,
}

/// The receiver of a method, if the function is one.
pub(crate) fn receiver(sig: &Signature) -> Option<(&Receiver, SelfKind)> {
    let receiver = sig.receiver()?;
    let kind = match &receiver.kind {
        ReceiverKind::Reference(_, _, Some(_)) => SelfKind::RefMut,
        ReceiverKind::Reference(_, _, None) => SelfKind::Ref,
        _ => SelfKind::Value,
    };
    Some((receiver, kind))
}

/// The `async` keyword, when the function is an `async fn`.
pub(crate) fn asyncness(sig: &Signature) -> Option<syn::token::Async> {
    sig.asyncness
}

/// The span of the user's block (its braces), for `quote_spanned!` around the body.
pub(crate) fn body_span(function: &ItemFn) -> Span {
    function.block.span()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(tokens: TokenStream) -> Signature {
        syn::parse2::<ItemFn>(tokens).unwrap().sig
    }

    #[test]
    fn result_types() {
        let s = sig(quote!(
            fn f() -> Result<u8, MyError> {}
        ));
        assert_eq!(compact(result_type(&s, "retry").unwrap().ty), "Result<u8,MyError>");
        let s = sig(quote!(
            fn f() -> std::io::Result<Vec<u8>> {}
        ));
        assert_eq!(compact(result_type(&s, "retry").unwrap().ty), "std::io::Result<Vec<u8>>");
        let s = sig(quote!(
            fn f() -> Option<u8> {}
        ));
        assert_eq!(
            result_type(&s, "retry").err().unwrap().to_string(),
            "`#[retry]` needs a function that returns `Result<_, _>`; found `Option<u8>`"
        );
        let s = sig(quote!(
            fn f() -> Fallible<u8> {}
        ));
        assert_eq!(compact(result_type(&s, "retry").unwrap().ty), "Fallible<u8>");
        let invisible =
            proc_macro2::Group::new(proc_macro2::Delimiter::None, quote!(Result<u32, JobError>));
        let s = sig(quote!(
            fn f() -> #invisible {}
        ));
        assert!(result_type(&s, "retry").is_ok());
        let s = sig(quote!(
            fn f() -> (u8, u8) {}
        ));
        assert!(result_type(&s, "retry").is_err());
        let s = sig(quote!(
            fn load() {}
        ));
        assert_eq!(
            result_type(&s, "retry").err().unwrap().to_string(),
            "`#[retry]` needs a function that returns `Result<_, _>`; `load` returns `()`"
        );
    }

    #[test]
    fn params_and_receivers() {
        let s = sig(quote!(
            fn f(&mut self, a: u8, b: &str, mut c: &mut Vec<u8>, (d, e): (u8, u8)) {}
        ));
        assert_eq!(receiver(&s).unwrap().1, SelfKind::RefMut);
        let p = params(&s);
        assert_eq!(p.len(), 4);
        assert_eq!(
            p.iter().map(|p| p.passing).collect::<Vec<_>>(),
            [Passing::Value, Passing::Ref, Passing::RefMut, Passing::Value]
        );
        assert_eq!(p[2].ident.unwrap(), "c");
        assert!(p[3].ident.is_none());
        assert_eq!(
            receiver(&sig(quote!(
                fn f(self) {}
            )))
            .unwrap()
            .1,
            SelfKind::Value
        );
        assert_eq!(
            receiver(&sig(quote!(
                fn f(&self) {}
            )))
            .unwrap()
            .1,
            SelfKind::Ref
        );
        assert!(
            receiver(&sig(quote!(
                fn f(x: u8) {}
            )))
            .is_none()
        );
    }

    #[test]
    fn params_through_invisible_groups() {
        // `state: $t` with `$t:ty` = `&mut Sum`, as `macro_rules!` passes it.
        let mut s = sig(quote!(
            fn f(state: T) {}
        ));
        let FnArg::Typed(typed) = &mut s.inputs[0] else { unreachable!() };
        *typed.ty = Type::Group(syn::TypeGroup {
            attrs: Vec::new(),
            group_token: Default::default(),
            elem: syn::parse_quote!(&mut Sum),
        });
        assert_eq!(params(&s)[0].passing, Passing::RefMut);
    }

    #[test]
    fn closure_returns() {
        let ty: Type = syn::parse_quote!(Result<impl Iterator<Item = u8>, E>);
        assert!(closure_return(&ty).is_none());
        let ty: Type = syn::parse_quote!(Result<u8, E>);
        assert!(closure_return(&ty).is_some());
    }

    #[test]
    fn rejects_non_functions() {
        let err = parse(
            quote!(
                struct S;
            ),
            "retry",
        )
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "`#[retry]` can only be applied to a function with a body");
    }
}
