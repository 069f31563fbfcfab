//! `#[derive(Classify)]`: recovery, code, category and severity from `#[classify(..)]` on the
//! type and its variants, or delegated to the inner error with `#[classify(transparent)]`.
//!
//! ast ([`Input::from_syn`]: attributes read and checked, errors accumulated) → expand.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Member, Type};

use crate::args::{Args, Errors, did_you_mean};
use crate::function::{Name, internal};

const KEYS: &[&str] =
    &["retry", "skip", "abort", "transparent", "code", "category", "severity", "retry_after"];
const SEVERITIES: &[&str] = &["info", "warning", "error", "critical"];
/// The recovery keywords and the `Recovery` variants they stand for.
const RECOVERIES: [(&str, &str); 3] = [("retry", "Retry"), ("skip", "Skip"), ("abort", "Abort")];

/// Expands the derive, or the errors found (all of them, each at its token) plus a fallback
/// impl (as thiserror does), so that code using the type as `Classify` adds no errors of its
/// own: one mistake is one error.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    match Input::from_syn(&input) {
        Ok(parsed) => parsed.expand(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(fallback(&input));
            tokens
        }
    }
}

/// An impl that compiles whatever the attributes say and is never run: the compile error next
/// to it stops the build.
fn fallback(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::resilience::Classify for #ident #ty_generics #where_clause {
            fn recovery(&self) -> ::resilience::Recovery {
                ::core::unreachable!()
            }
            fn error_code(&self) -> ::std::borrow::Cow<'_, str> {
                ::core::unreachable!()
            }
            fn category(&self) -> ::std::borrow::Cow<'_, str> {
                ::core::unreachable!()
            }
            fn severity(&self) -> ::resilience::Severity {
                ::core::unreachable!()
            }
        }
    }
}

/// The options of one `#[classify(..)]` site (the type, or one variant); `None` is "not given".
#[derive(Default, Clone)]
struct Options {
    /// The `Recovery` variant, and the keyword as written.
    recovery: Option<(Ident, Ident)>,
    code: Option<LitStr>,
    category: Option<LitStr>,
    severity: Option<Ident>,
    transparent: Option<Span>,
    /// `retry_after = field`: the field holding the error's retry hint.
    retry_after: Option<Ident>,
}

impl Options {
    /// Reads every `#[classify(..)]` among `attrs`; options repeated across attributes are
    /// duplicates too.
    fn from_attrs(attrs: &[Attribute], errors: &mut Errors) -> Options {
        let mut options = Options::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("classify")) {
            let Some(mut args) = errors.ok(Args::from_attr(attr, KEYS)) else { continue };
            for (keyword, variant) in RECOVERIES {
                let Some(span) = errors.ok(args.flag(keyword)).flatten() else { continue };
                if let Some((_, first)) = &options.recovery {
                    let message = format!(
                        "conflicting recovery: `{first}` is already given; \
                         pick one of `retry`, `skip`, `abort`"
                    );
                    errors.push(syn::Error::new(span, message));
                } else {
                    options.recovery = Some((Ident::new(variant, span), Ident::new(keyword, span)));
                }
            }
            if let Some(span) = errors.ok(args.flag("transparent")).flatten() {
                set_once(&mut options.transparent, span, "transparent", span, errors);
            }
            for (key, slot) in [("code", &mut options.code), ("category", &mut options.category)] {
                if let Some(lit) = errors.ok(args.string(key)).flatten() {
                    let span = lit.span();
                    set_once(slot, lit, key, span, errors);
                }
            }
            if let Some(lit) = errors.ok(args.string("severity")).flatten()
                && let Some(ident) = errors.ok(severity(&lit))
            {
                set_once(&mut options.severity, ident, "severity", lit.span(), errors);
            }
            if let Some(field) = errors.ok(args.ident("retry_after")).flatten() {
                let span = field.span();
                set_once(&mut options.retry_after, field, "retry_after", span, errors);
            }
        }
        options
    }

    /// `self` where given, else `outer` (a variant's options over the type's).
    fn or(&self, outer: &Options) -> Options {
        Options {
            recovery: self.recovery.clone().or_else(|| outer.recovery.clone()),
            code: self.code.clone().or_else(|| outer.code.clone()),
            category: self.category.clone().or_else(|| outer.category.clone()),
            severity: self.severity.clone().or_else(|| outer.severity.clone()),
            transparent: self.transparent,
            retry_after: self.retry_after.clone(),
        }
    }
}

/// `"warning"` → `Warning`, the `Severity` variant.
fn severity(lit: &LitStr) -> syn::Result<Ident> {
    let value = lit.value();
    if !SEVERITIES.contains(&value.as_str()) {
        let hint = did_you_mean(&value, SEVERITIES)
            .map(|s| format!("did you mean \"{s}\"? "))
            .unwrap_or_default();
        let message = format!(
            "unknown severity \"{value}\"; {hint}expected one of: \
             \"info\", \"warning\", \"error\", \"critical\""
        );
        return Err(syn::Error::new(lit.span(), message));
    }
    let mut variant = value;
    variant[..1].make_ascii_uppercase();
    Ok(Ident::new(&variant, lit.span()))
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &str, span: Span, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(syn::Error::new(span, format!("duplicate argument `{key}`: give it once")));
    } else {
        *slot = Some(value);
    }
}

struct Input<'a> {
    input: &'a DeriveInput,
    /// One entry per variant (a struct is one pattern-less "variant").
    cases: Vec<Case<'a>>,
    is_enum: bool,
}

/// What a case answers itself.
struct Own<'a> {
    recovery: Ident,
    code: String,
    category: String,
    severity: Ident,
    /// `retry_after = field`: the field and its type.
    retry_after: Option<(&'a Ident, &'a Type)>,
}

struct Case<'a> {
    /// `Self::Variant { .. }` / `Self::Variant(__inner, ..)`; empty for a struct.
    pattern: TokenStream,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Own(Own<'a>),
    /// Delegates to this field; for a struct, `self.<member>`, for a variant, the binding.
    Transparent {
        access: TokenStream,
        ty: &'a Type,
    },
}

impl<'a> Input<'a> {
    fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let container = Options::from_attrs(&input.attrs, &mut errors);
        let name = input.ident.to_string();
        let mut cases = Vec::new();
        let is_enum = matches!(input.data, Data::Enum(_));
        match &input.data {
            Data::Struct(data) => {
                let case =
                    Case::new(&container, &container, &data.fields, &name, None, &mut errors);
                cases.extend(case);
            }
            Data::Enum(data) => {
                if let Some(span) = container.transparent {
                    errors.push(syn::Error::new(
                        span,
                        "`#[classify(transparent)]` goes on a variant with one field, not on the enum",
                    ));
                }
                if let Some(field) = &container.retry_after {
                    errors.push(syn::Error::new(
                        field.span(),
                        "`retry_after = field` goes on a variant with that field, not on the enum",
                    ));
                }
                for variant in &data.variants {
                    let own = Options::from_attrs(&variant.attrs, &mut errors);
                    let code = format!("{name}::{}", variant.ident);
                    let case = Case::new(
                        &own.or(&container),
                        &own,
                        &variant.fields,
                        &code,
                        Some(&variant.ident),
                        &mut errors,
                    );
                    cases.extend(case);
                }
            }
            Data::Union(data) => errors.push(syn::Error::new(
                data.union_token.span,
                "`Classify` cannot be derived for a union; use an enum or a struct",
            )),
        }
        errors.finish()?;
        Ok(Input { input, cases, is_enum })
    }

    fn expand(&self) -> TokenStream {
        let ident = &self.input.ident;
        let mut generics = self.input.generics.clone();
        // A bound per delegated type: needed for type parameters, and for any other type it
        // turns a missing `Classify` into one error at the field's type.
        for case in &self.cases {
            if let Kind::Transparent { ty, .. } = &case.kind {
                let bound = quote_spanned!(ty.span()=> #ty: ::resilience::Classify);
                generics.make_where_clause().predicates.push(syn::parse_quote!(#bound));
            }
        }
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let cow = |s: &str| quote!(::std::borrow::Cow::Borrowed(#s));
        let recovery = self.method(quote!(recovery), |own| {
            let recovery = &own.recovery;
            quote!(::resilience::Recovery::#recovery)
        });
        let code = self.method(quote!(error_code), |own| cow(&own.code));
        let category = self.method(quote!(category), |own| cow(&own.category));
        let severity = self.method(quote!(severity), |own| {
            let severity = &own.severity;
            quote!(::resilience::Severity::#severity)
        });
        let retry_after = self.retry_after();
        quote! {
            #[automatically_derived]
            impl #impl_generics ::resilience::Classify for #ident #ty_generics #where_clause {
                fn recovery(&self) -> ::resilience::Recovery {
                    #recovery
                }
                fn error_code(&self) -> ::std::borrow::Cow<'_, str> {
                    #code
                }
                fn category(&self) -> ::std::borrow::Cow<'_, str> {
                    #category
                }
                fn severity(&self) -> ::resilience::Severity {
                    #severity
                }
                #retry_after
            }
        }
    }

    /// `retry_after()`, when a case has a `retry_after` field or delegates; else nothing (the
    /// trait's default, `None`).
    fn retry_after(&self) -> TokenStream {
        let hint = |ty: &Type, access: TokenStream| quote_spanned!(ty.span()=> <#ty as ::resilience::__private::RetryAfterField>::retry_after(#access));
        let mut arms = Vec::new();
        let mut any = false;
        for case in &self.cases {
            let arm = match &case.kind {
                Kind::Transparent { access, .. } => {
                    any = true;
                    Some((
                        case.pattern.clone(),
                        quote!(::resilience::Classify::retry_after(#access)),
                    ))
                }
                Kind::Own(Own { retry_after: Some((field, ty)), .. }) => {
                    any = true;
                    let inner = internal(Name::Inner);
                    if self.is_enum {
                        let pattern = with_binding(&case.pattern, field, &inner);
                        Some((pattern, hint(ty, quote!(#inner))))
                    } else {
                        Some((TokenStream::new(), hint(ty, quote!(&self.#field))))
                    }
                }
                Kind::Own(_) => None,
            };
            arms.extend(arm);
        }
        if !any {
            return TokenStream::new();
        }
        let body = if self.is_enum {
            let arms = arms.iter().map(|(pattern, value)| quote!(#pattern => #value));
            let rest =
                (arms.len() < self.cases.len()).then(|| quote!(_ => ::core::option::Option::None,));
            quote! {
                match self {
                    #(#arms,)*
                    #rest
                }
            }
        } else {
            arms.into_iter().next().map(|(_, value)| value).unwrap_or_default()
        };
        quote! {
            fn retry_after(&self) -> ::core::option::Option<::core::time::Duration> {
                #body
            }
        }
    }

    /// The body of one method: a constant when every case gives the same tokens, else a
    /// `match self`. Transparent cases call the same method on the inner error.
    fn method(&self, method: TokenStream, own: impl Fn(&Own) -> TokenStream) -> TokenStream {
        let arms: Vec<TokenStream> = self
            .cases
            .iter()
            .map(|case| match &case.kind {
                Kind::Transparent { access, .. } => {
                    quote!(::resilience::Classify::#method(#access))
                }
                Kind::Own(kind) => own(kind),
            })
            .collect();
        if !self.is_enum {
            return arms.into_iter().next().unwrap_or_default();
        }
        if self.cases.is_empty() {
            return quote!(match *self {});
        }
        // Cases that answer the same constant share one arm (`A | B { .. } => ..`).
        let mut groups: Vec<(Vec<&TokenStream>, TokenStream, String)> = Vec::new();
        for (case, arm) in self.cases.iter().zip(arms) {
            let key = match case.kind {
                Kind::Own(_) => arm.to_string(),
                Kind::Transparent { .. } => String::new(),
            };
            match groups.iter_mut().find(|g| !key.is_empty() && g.2 == key) {
                Some(group) => group.0.push(&case.pattern),
                None => groups.push((vec![&case.pattern], arm, key)),
            }
        }
        if let [(_, arm, key)] = &groups[..]
            && !key.is_empty()
        {
            return arm.clone();
        }
        let arms = groups.iter().map(|(patterns, arm, _)| quote!(#(#patterns)|* => #arm));
        quote! {
            match self {
                #(#arms,)*
            }
        }
    }
}

impl<'a> Case<'a> {
    /// `merged`: the options in effect (variant over container); `own`: those written on this
    /// variant (or the struct), where `transparent` may appear.
    fn new(
        merged: &Options,
        own: &Options,
        fields: &'a Fields,
        default_code: &str,
        variant: Option<&Ident>,
        errors: &mut Errors,
    ) -> Option<Case<'a>> {
        let inner = internal(Name::Inner);
        let pattern = match variant {
            None => TokenStream::new(),
            Some(variant) => match fields {
                Fields::Named(_) if own.transparent.is_some() && fields.len() == 1 => {
                    let member = fields.iter().next().and_then(|f| f.ident.as_ref());
                    quote!(Self::#variant { #member: #inner })
                }
                Fields::Unnamed(_) if own.transparent.is_some() && fields.len() == 1 => {
                    quote!(Self::#variant(#inner))
                }
                Fields::Named(_) => quote!(Self::#variant { .. }),
                Fields::Unnamed(_) => quote!(Self::#variant(..)),
                Fields::Unit => quote!(Self::#variant),
            },
        };
        if let Some(span) = own.transparent {
            let what = variant.map_or_else(|| "the struct".to_owned(), |v| format!("`{v}`"));
            if fields.len() != 1 {
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "`#[classify(transparent)]` needs exactly one field to delegate to; {what} has {}",
                        fields.len()
                    ),
                ));
                return None;
            }
            let others = [
                own.recovery.as_ref().map(|r| r.1.span()),
                own.retry_after.as_ref().map(Ident::span),
                own.code.as_ref().map(LitStr::span),
                own.category.as_ref().map(LitStr::span),
                own.severity.as_ref().map(Ident::span),
            ];
            if let Some(span) = others.into_iter().flatten().next() {
                errors.push(syn::Error::new(
                    span,
                    "`#[classify(transparent)]` takes everything from the inner error; remove this option",
                ));
                return None;
            }
            let field = fields.iter().next()?;
            let access = match variant {
                Some(_) => quote!(#inner),
                None => {
                    let member = fields.members().next().unwrap_or(Member::Named(inner));
                    quote!(&self.#member)
                }
            };
            return Some(Case { pattern, kind: Kind::Transparent { access, ty: &field.ty } });
        }
        let type_name = default_code.split("::").next().unwrap_or(default_code);
        let retry_after = match &own.retry_after {
            None => None,
            Some(name) => {
                let field = fields.iter().find(|f| f.ident.as_ref() == Some(name));
                match field {
                    Some(field) => field.ident.as_ref().map(|ident| (ident, &field.ty)),
                    None => {
                        let what =
                            variant.map_or_else(|| "the struct".to_owned(), |v| format!("`{v}`"));
                        let named: Vec<String> = fields
                            .iter()
                            .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                            .collect();
                        let has = if named.is_empty() {
                            "has no named fields".to_owned()
                        } else {
                            format!("has {}", named.join(", "))
                        };
                        errors.push(syn::Error::new(
                            name.span(),
                            format!(
                                "`retry_after` names a field of type `Duration` or `Option<Duration>`; \
                                 {what} has no field `{name}` ({what} {has})"
                            ),
                        ));
                        return None;
                    }
                }
            }
        };
        Some(Case {
            pattern,
            kind: Kind::Own(Own {
                recovery: merged
                    .recovery
                    .as_ref()
                    .map_or_else(|| Ident::new("Retry", Span::call_site()), |r| r.0.clone()),
                code: merged.code.as_ref().map_or_else(|| default_code.to_owned(), LitStr::value),
                category: merged
                    .category
                    .as_ref()
                    .map_or_else(|| type_name.to_owned(), LitStr::value),
                severity: merged
                    .severity
                    .clone()
                    .unwrap_or_else(|| Ident::new("Error", Span::call_site())),
                retry_after,
            }),
        })
    }
}

/// `Self::Variant { .. }` with `field` bound to `binding`: `Self::Variant { field: binding, .. }`.
fn with_binding(pattern: &TokenStream, field: &Ident, binding: &Ident) -> TokenStream {
    let tokens: Vec<proc_macro2::TokenTree> = pattern.clone().into_iter().collect();
    let (path, _) = tokens.split_at(tokens.len().saturating_sub(1));
    let path: TokenStream = path.iter().cloned().collect();
    quote!(#path { #field: #binding, .. })
}
