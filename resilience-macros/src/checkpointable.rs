//! `#[derive(Checkpointable)]`: the schema fingerprint and the cursor/total accessors.
//!
//! ast ([`Input::from_syn`]: attributes read, fields found) → expand ([`Input::expand`]).
//!
//! The fingerprint is a literal (the type's name, its fields' names and the spelling of their
//! types, the version) plus, in a `const` expression, the `Shape` of each field whose type may
//! hold another derived type, so that a change inside a nested struct or enum changes it too.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Attribute, Data, DeriveInput, Field, Fields, Generics, Ident, Member, Type};

use crate::args::{Args, Errors};

const CONTAINER_KEYS: &[&str] = &["version"];
const FIELD_KEYS: &[&str] = &["cursor", "total", "opaque"];
const INTEGERS: &[&str] =
    &["u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"];
/// Other primitive types: their spelling says everything, so their shape is left out.
const PRIMITIVES: &[&str] = &["bool", "char", "f32", "f64", "str"];

/// Expands the derive. On a mistake in the attributes: the errors, plus impls with a
/// placeholder fingerprint so that the uses of the type do not report it as not
/// `Checkpointable` as well (thiserror's fallback).
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    match Input::from_syn(&input) {
        Ok(parsed) => parsed.expand(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            if !matches!(input.data, Data::Union(_)) {
                tokens.extend(Input::fallback(&input).expand());
            }
            tokens
        }
    }
}

struct Input<'a> {
    ident: &'a Ident,
    generics: &'a Generics,
    /// The hash of what the derive can read.
    schema: u64,
    /// The fields whose shape enters the fingerprint, with their position (struct fields, or
    /// all variants' fields in order).
    shapes: Vec<(usize, &'a Type)>,
    cursor: Option<Marked<'a>>,
    total: Option<Marked<'a>>,
}

/// A field marked `#[checkpoint(cursor)]` or `#[checkpoint(total)]`.
struct Marked<'a> {
    member: Member,
    ty: &'a Type,
    /// The integer type's name (`u64`, `i32`, ...).
    int: String,
    /// The field's name, for messages.
    name: String,
}

impl<'a> Input<'a> {
    fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let version = version(&input.attrs, &mut errors);
        let (mut cursor, mut total) = (None, None);
        let mut shapes = Vec::new();
        let mut position = 0;
        let mut field_shape = |field: &'a Field, opaque: bool| {
            if !opaque && !primitive(&field.ty) && !mentions(&field.ty, &input.ident) {
                shapes.push((position, &field.ty));
            }
            position += 1;
        };
        match &input.data {
            Data::Struct(data) => {
                for (field, member) in data.fields.iter().zip(data.fields.members()) {
                    let markers = markers(field, &mut errors);
                    for (key, spans, slot) in [
                        ("cursor", markers.cursor, &mut cursor),
                        ("total", markers.total, &mut total),
                    ] {
                        for span in spans {
                            mark(slot, key, span, field, &member, &mut errors);
                        }
                    }
                    field_shape(field, markers.opaque);
                }
            }
            Data::Enum(data) => {
                for variant in &data.variants {
                    for attr in checkpoint_attrs(&variant.attrs) {
                        errors.push(syn::Error::new_spanned(
                            attr,
                            "`#[checkpoint(..)]` does not go on an enum's variant: \
                             `#[checkpoint(opaque)]` goes on a field",
                        ));
                    }
                    for field in &variant.fields {
                        let markers = markers(field, &mut errors);
                        for (key, spans) in [("cursor", markers.cursor), ("total", markers.total)] {
                            for span in spans {
                                let message = format!(
                                    "`#[checkpoint({key})]` on an enum's field is not supported: \
                                     the cursor and the total are fields of a struct"
                                );
                                errors.push(syn::Error::new(span, message));
                            }
                        }
                        field_shape(field, markers.opaque);
                    }
                }
            }
            Data::Union(data) => errors.push(syn::Error::new(
                data.union_token.span,
                "`Checkpointable` cannot be derived for a union; use a struct or an enum",
            )),
        }
        errors.finish()?;
        Ok(Input {
            ident: &input.ident,
            generics: &input.generics,
            schema: fnv1a(shape(input, version).as_bytes()),
            shapes,
            cursor,
            total,
        })
    }

    /// The impls emitted next to an error: no shapes, no accessors, a placeholder fingerprint.
    fn fallback(input: &'a DeriveInput) -> Self {
        Input {
            ident: &input.ident,
            generics: &input.generics,
            schema: 0,
            shapes: Vec::new(),
            cursor: None,
            total: None,
        }
    }

    fn expand(&self) -> TokenStream {
        let ident = self.ident;
        let shape_trait = quote!(::resilience::__private::Shape);
        let shape_generics = bounded(self.generics, &[&shape_trait]);
        let (impl_generics, ty_generics, where_clause) = shape_generics.split_for_impl();
        let literal = syn::LitInt::new(&format!("{:#018x}", self.schema), Span::call_site());
        let schema = if self.shapes.is_empty() {
            literal.into_token_stream()
        } else {
            let fields = self.shapes.iter().map(|(position, ty)| {
                let position = syn::LitInt::new(&position.to_string(), Span::call_site());
                quote_spanned!(ty.span()=> (#position, <#ty as #shape_trait>::SHAPE))
            });
            quote!(::resilience::__private::schema(#literal, &[#(#fields),*]))
        };
        // At the type's name: a cycle through types that hold each other is reported there.
        let shape_impl = quote_spanned! {ident.span()=>
            #[automatically_derived]
            impl #impl_generics #shape_trait for #ident #ty_generics #where_clause {
                const SHAPE: u64 = #schema;
            }
        };
        let data_trait = quote!(::resilience::__private::CheckpointData);
        let mut generics = bounded(self.generics, &[&data_trait, &shape_trait]);
        // `Self: CheckpointData` carries the serde supertraits: a type without serde's derives
        // gets serde's errors at its name (`Serialize` and `Deserialize` not implemented).
        let self_bound =
            quote_spanned!(ident.span()=> Self: ::resilience::__private::CheckpointData);
        generics.make_where_clause().predicates.push(syn::parse_quote!(#self_bound));
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let cursor = self.cursor.as_ref().map(|field| {
            let get = to_u64(field);
            let member = &field.member;
            let set = from_u64(field, quote!(n));
            quote! {
                fn cursor(&self) -> u64 {
                    #get
                }
                fn set_cursor(&mut self, n: u64) {
                    self.#member = #set;
                }
            }
        });
        let total = self.total.as_ref().map(|field| {
            let get = to_u64(field);
            quote! {
                fn total(&self) -> ::core::option::Option<u64> {
                    ::core::option::Option::Some(#get)
                }
            }
        });
        quote! {
            #shape_impl
            #[automatically_derived]
            impl #impl_generics ::resilience::Checkpointable for #ident #ty_generics #where_clause {
                const SCHEMA: u64 = <Self as #shape_trait>::SHAPE;
                #cursor
                #total
            }
        }
    }
}

/// `generics` with `bounds` added to every type parameter.
fn bounded(generics: &Generics, bounds: &[&TokenStream]) -> Generics {
    let mut generics = generics.clone();
    for param in generics.type_params_mut() {
        for bound in bounds {
            param.bounds.push(syn::parse_quote!(#bound));
        }
    }
    generics
}

fn checkpoint_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("checkpoint"))
}

/// The `#[checkpoint(..)]` markers on one field.
struct Markers {
    /// Where `cursor` is written (more than once is an error).
    cursor: Vec<Span>,
    /// Where `total` is written.
    total: Vec<Span>,
    /// `#[checkpoint(opaque)]`: the field's type is left out of the shape.
    opaque: bool,
}

fn markers(field: &Field, errors: &mut Errors) -> Markers {
    let mut markers = Markers { cursor: Vec::new(), total: Vec::new(), opaque: false };
    for attr in checkpoint_attrs(&field.attrs) {
        let Some(mut args) = errors.ok(Args::from_attr(attr, FIELD_KEYS)) else { continue };
        markers.cursor.extend(errors.ok(args.flag("cursor")).flatten());
        markers.total.extend(errors.ok(args.flag("total")).flatten());
        markers.opaque |= errors.ok(args.flag("opaque")).flatten().is_some();
    }
    markers
}

/// `#[checkpoint(version = N)]` on the type; 0 when absent.
fn version(attrs: &[Attribute], errors: &mut Errors) -> u64 {
    let mut version = 0;
    for attr in checkpoint_attrs(attrs) {
        if let Some(mut args) = errors.ok(Args::from_attr(attr, CONTAINER_KEYS))
            && let Some(v) = errors.ok(args.int::<u64>("version")).flatten()
        {
            version = v.value;
        }
    }
    version
}

/// Records `field` as the cursor (or total) in `slot`: it must be an integer, and the only one.
fn mark<'a>(
    slot: &mut Option<Marked<'a>>,
    key: &str,
    span: Span,
    field: &'a Field,
    member: &Member,
    errors: &mut Errors,
) {
    let name = match member {
        Member::Named(ident) => ident.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    };
    if let Some(first) = slot {
        let message = format!(
            "a second `#[checkpoint({key})]` field: `{}` is already the {key}; mark only one field",
            first.name
        );
        return errors.push(syn::Error::new(span, message));
    }
    match integer(&field.ty) {
        Some(int) => *slot = Some(Marked { member: member.clone(), ty: &field.ty, int, name }),
        None => errors.push(syn::Error::new_spanned(
            &field.ty,
            format!(
                "`#[checkpoint({key})]` needs an integer field (`u64`, `usize`, `u32`, `i64`, ...); \
                 `{name}` is `{}`",
                crate::function::compact(&field.ty)
            ),
        )),
    }
}

/// What the fingerprint covers, whitespace-free: `struct Name{a:u64,b:Vec<u8>,} version 2`.
fn shape(input: &DeriveInput, version: u64) -> String {
    let mut shape = String::new();
    match &input.data {
        Data::Struct(data) => {
            shape.push_str("struct ");
            shape.push_str(&input.ident.to_string());
            push_fields(&mut shape, &data.fields);
        }
        Data::Enum(data) => {
            shape.push_str("enum ");
            shape.push_str(&input.ident.to_string());
            shape.push('{');
            for variant in &data.variants {
                shape.push_str(&variant.ident.to_string());
                push_fields(&mut shape, &variant.fields);
                shape.push(',');
            }
            shape.push('}');
        }
        Data::Union(_) => {}
    }
    shape.push_str(&format!(" version {version}"));
    shape
}

/// Appends the fields' names and types, whitespace-free: `{done:u64,total:u64}`, `(u8,String)`.
fn push_fields(shape: &mut String, fields: &Fields) {
    let (open, close) = match fields {
        Fields::Named(_) => ('{', '}'),
        Fields::Unnamed(_) => ('(', ')'),
        Fields::Unit => return,
    };
    shape.push(open);
    for field in fields {
        if let Some(ident) = &field.ident {
            shape.push_str(&ident.to_string());
            shape.push(':');
        }
        let ty = field.ty.to_token_stream().to_string();
        shape.extend(ty.chars().filter(|c| !c.is_whitespace()));
        shape.push(',');
    }
    shape.push(close);
}

/// 64-bit FNV-1a: small, stable across compiler versions and platforms (unlike `Hash`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The integer type's name, when `ty` is one (also `core::primitive::u64` and the like).
fn integer(ty: &Type) -> Option<String> {
    primitive_name(ty).filter(|name| INTEGERS.contains(&name.as_str()))
}

/// Whether `ty` is a primitive type (an integer, `bool`, `char`, `f32`, `f64`, `str`).
fn primitive(ty: &Type) -> bool {
    primitive_name(ty).is_some()
}

/// Whether the tokens of `ty` name `ident` or `Self`: a recursive type, whose shape would be
/// defined by itself (its spelling still counts).
fn mentions(ty: &Type, ident: &Ident) -> bool {
    crate::function::any_ident(ty.to_token_stream(), &|name| name == ident || name == "Self")
}

/// The primitive type's name, when `ty` is one (also `core::primitive::u64` and the like).
fn primitive_name(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let name = last.ident.to_string();
    let prefix_ok = path.path.segments.len() == 1
        || path.path.segments.iter().rev().nth(1).is_some_and(|s| s.ident == "primitive");
    (path.qself.is_none()
        && last.arguments.is_none()
        && prefix_ok
        && (INTEGERS.contains(&name.as_str()) || PRIMITIVES.contains(&name.as_str())))
    .then_some(name)
}

/// The field as a `u64`: lossless where it can be, else saturating (negative values read as 0).
fn to_u64(field: &Marked) -> TokenStream {
    let member = &field.member;
    match field.int.as_str() {
        "u64" => quote!(self.#member),
        "u8" | "u16" | "u32" => quote!(u64::from(self.#member)),
        "usize" => quote!(self.#member as u64),
        "u128" => quote!(::core::convert::TryFrom::try_from(self.#member).unwrap_or(u64::MAX)),
        _ => quote!(::core::convert::TryFrom::try_from(self.#member.max(0)).unwrap_or(u64::MAX)),
    }
}

/// `n: u64` converted to the field's type: lossless where it can be, else saturating.
fn from_u64(field: &Marked, n: TokenStream) -> TokenStream {
    let ty = field.ty;
    match field.int.as_str() {
        "u64" => n,
        "u128" | "i128" => quote!(::core::convert::From::from(#n)),
        _ => quote!(::core::convert::TryFrom::try_from(#n).unwrap_or(<#ty>::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(tokens: TokenStream) -> u64 {
        let input = syn::parse2::<DeriveInput>(tokens).unwrap();
        Input::from_syn(&input).ok().unwrap().schema
    }

    #[test]
    fn fingerprint_follows_name_fields_types_and_version() {
        let base = schema(quote!(
            struct P {
                done: u64,
                bytes: Vec<u8>,
            }
        ));
        assert_eq!(
            base,
            schema(quote!(
                pub struct P {
                    pub done: u64,
                    pub bytes: Vec<u8>,
                }
            ))
        );
        assert_ne!(
            base,
            schema(quote!(
                struct Q {
                    done: u64,
                    bytes: Vec<u8>,
                }
            ))
        );
        assert_ne!(
            base,
            schema(quote!(
                struct P {
                    done: u32,
                    bytes: Vec<u8>,
                }
            ))
        );
        assert_ne!(
            base,
            schema(quote!(
                struct P {
                    count: u64,
                    bytes: Vec<u8>,
                }
            ))
        );
        assert_ne!(
            base,
            schema(quote!(
                struct P {
                    bytes: Vec<u8>,
                    done: u64,
                }
            ))
        );
        assert_ne!(
            base,
            schema(quote!(
                #[checkpoint(version = 2)]
                struct P {
                    done: u64,
                    bytes: Vec<u8>,
                }
            ))
        );
        assert_ne!(
            schema(quote!(
                struct P(u8);
            )),
            schema(quote!(
                struct P {
                    x: u8,
                }
            ))
        );
        assert_ne!(
            schema(quote!(
                enum E {
                    A,
                    B,
                }
            )),
            schema(quote!(
                enum E {
                    A,
                    C,
                }
            ))
        );
    }

    /// The fields whose shape enters the fingerprint, as `position: type`.
    fn shaped(tokens: TokenStream) -> Vec<String> {
        let input = syn::parse2::<DeriveInput>(tokens).unwrap();
        let parsed = Input::from_syn(&input).ok().unwrap();
        let shapes = parsed.shapes.iter();
        shapes.map(|(i, ty)| format!("{i}: {}", crate::function::compact(ty))).collect()
    }

    #[test]
    fn primitive_opaque_and_recursive_fields_are_left_out_of_the_shape() {
        assert_eq!(
            shaped(quote!(
                struct Node {
                    #[checkpoint(cursor)]
                    done: u64,
                    ok: core::primitive::bool,
                    name: String,
                    #[checkpoint(opaque)]
                    at: chrono::DateTime<chrono::Utc>,
                    children: Vec<Node>,
                    parent: Option<Box<Self>>,
                    meta: BTreeMap<String, Meta>,
                }
            )),
            ["2: String", "6: BTreeMap<String,Meta>"]
        );
        assert_eq!(
            shaped(quote!(
                enum Tree {
                    Leaf(f64, Meta),
                    Branch {
                        children: Vec<Tree>,
                        #[checkpoint(opaque)]
                        raw: Foreign,
                    },
                    Done,
                }
            )),
            ["1: Meta"]
        );
    }

    /// Stored checkpoints carry the fingerprint: the algorithm must not change by accident.
    #[test]
    fn fingerprint_is_pinned() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let pinned = schema(quote!(
            struct ImportProgress {
                done: u64,
                total: u64,
                bytes: Vec<u8>,
            }
        ));
        assert_eq!(format!("{pinned:#018x}"), "0x7352515c27c7293c");
    }
}
