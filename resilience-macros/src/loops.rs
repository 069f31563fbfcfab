//! The tracked loop of `#[checkpointed]` / `#[protected]`: the body's single top-level `for`
//! loop, or the one marked `#[checkpoint]`. Finding it, checking the markers and rewriting it.

use proc_macro2::TokenStream;
#[cfg(test)]
use quote::quote;
use quote::{ToTokens, quote_spanned};
use syn::spanned::Spanned as _;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, ExprForLoop, Meta, Stmt};

use crate::args::Errors;
use crate::function::Name;

/// Finds the tracked loop in `block` and rewrites it in place:
///
/// ```text
/// for PAT in EXPR { BODY }
/// // becomes
/// let mut __at = __run.position();
/// let mut __items = __run.skip(EXPR);
/// while __at.resume(&mut __items, STATE)? {
///     for PAT in &mut __items { __at.step(STATE); BODY }
/// }
/// ```
/// (the last `resume` checkpoints the end of the loop).
///
/// The user's `for` stays whole (its `break`, `continue` and label keep their meaning); the
/// checkpoints are taken between runs of it, so that no call inside it sees the state, which
/// would keep the state's fields out of registers.
///
/// Removes the `#[checkpoint]` marker. Returns whether there was a loop to track.
pub(crate) fn rewrite(
    block: &mut Block,
    run: &TokenStream,
    state: &TokenStream,
) -> syn::Result<bool> {
    let Some(index) = find(block)? else { return Ok(false) };
    let Stmt::Expr(Expr::ForLoop(for_loop), _) = &mut block.stmts[index] else {
        unreachable!("`find` returns the index of a `for` statement")
    };
    for_loop.attrs.retain(|attr| !is_marker(attr));
    let expr = &for_loop.expr;
    let skip = quote_spanned!(expr.span()=> #run.skip(#expr));
    let at = crate::function::internal(Name::At);
    let items = crate::function::internal(Name::Items);
    *for_loop.expr = syn::parse_quote!(&mut #items);
    let step: Stmt = syn::parse_quote!(#at.step(#state););
    for_loop.body.stmts.insert(0, step);
    let tracked: Stmt = syn::parse_quote!(while #at.resume(&mut #items, #state)? { #for_loop });
    block.stmts[index] = tracked;
    let position: Stmt = syn::parse_quote!(let mut #at = #run.position(););
    let skip: Stmt = syn::parse_quote!(let mut #items = #skip;);
    block.stmts.splice(index..index, [position, skip]);
    Ok(true)
}

/// The item as written but without `#[checkpoint]` markers, for the error path: the compiler
/// would report a marker left in place as an unknown attribute on top of the real error.
pub(crate) fn without_markers(item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(mut function) => {
            StripMarkers.visit_block_mut(&mut function.block);
            function.into_token_stream()
        }
        Err(_) => item,
    }
}

struct StripMarkers;

impl VisitMut for StripMarkers {
    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        let attrs = match stmt {
            Stmt::Local(local) => Some(&mut local.attrs),
            Stmt::Expr(expr, _) => expr_attrs_mut(expr),
            Stmt::Macro(mac) => Some(&mut mac.attrs),
            _ => None,
        };
        if let Some(attrs) = attrs {
            attrs.retain(|attr| !is_marker(attr));
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

fn is_marker(attr: &Attribute) -> bool {
    attr.path().is_ident("checkpoint")
}

fn stmt_attrs(stmt: &Stmt) -> &[Attribute] {
    match stmt {
        Stmt::Local(local) => &local.attrs,
        Stmt::Item(_) => &[],
        Stmt::Expr(expr, _) => expr_attrs(expr),
        Stmt::Macro(mac) => &mac.attrs,
    }
}

fn expr_attrs(expr: &Expr) -> &[Attribute] {
    macro_rules! attrs {
        ($($variant:ident)*) => {
            match expr {
                $(Expr::$variant(e) => &e.attrs,)*
                _ => &[],
            }
        };
    }
    attrs!(Array Assign Async Await Binary Block Break Call Cast Closure Const Continue Field
        ForLoop Group If Index Infer Let Lit Loop Macro Match MethodCall Paren Path Range RawAddr
        Reference Repeat Return Struct Try TryBlock Tuple Unary Unsafe While Yield)
}

fn expr_attrs_mut(expr: &mut Expr) -> Option<&mut Vec<Attribute>> {
    macro_rules! attrs {
        ($($variant:ident)*) => {
            match expr {
                $(Expr::$variant(e) => Some(&mut e.attrs),)*
                _ => None,
            }
        };
    }
    attrs!(Array Assign Async Await Binary Block Break Call Cast Closure Const Continue Field
        ForLoop Group If Index Infer Let Lit Loop Macro Match MethodCall Paren Path Range RawAddr
        Reference Repeat Return Struct Try TryBlock Tuple Unary Unsafe While Yield)
}

/// The index of the tracked loop among the block's statements, if any.
fn find(block: &Block) -> syn::Result<Option<usize>> {
    let mut errors = Errors::default();
    let mut marked = None;
    let mut loops = Vec::new();
    for (i, stmt) in block.stmts.iter().enumerate() {
        let is_for = matches!(stmt, Stmt::Expr(Expr::ForLoop(_), _));
        if is_for {
            loops.push(i);
        }
        for attr in stmt_attrs(stmt).iter().filter(|a| is_marker(a)) {
            if !matches!(attr.meta, Meta::Path(_)) {
                errors.push(syn::Error::new_spanned(
                    &attr.meta,
                    "`#[checkpoint]` takes no arguments: write just `#[checkpoint]`",
                ));
            } else if !is_for {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`#[checkpoint]` marks the loop to track: put it on a top-level `for` loop",
                ));
            } else if marked.is_some() {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "only one loop can be tracked, but a second loop is marked `#[checkpoint]`: \
                     remove one of the markers",
                ));
            } else {
                marked = Some(i);
            }
        }
    }
    // Markers anywhere else (nested blocks, inner loops) would reach the compiler as an
    // unknown attribute; say where they belong instead.
    let mut nested = NestedMarkers { errors: &mut errors };
    let mut top = block.clone();
    for stmt in &mut top.stmts {
        match stmt {
            Stmt::Expr(expr, _) => visit_mut::visit_expr_mut(&mut nested, expr),
            Stmt::Local(local) => visit_mut::visit_local_mut(&mut nested, local),
            Stmt::Macro(_) | Stmt::Item(_) => {}
        }
    }
    errors.finish()?;
    if marked.is_some() {
        return Ok(marked);
    }
    match loops.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        [_, second, ..] => {
            let Stmt::Expr(Expr::ForLoop(ExprForLoop { for_token, .. }), _) = &block.stmts[*second]
            else {
                unreachable!("`loops` holds indices of `for` statements")
            };
            Err(syn::Error::new(
                for_token.span,
                "this function has several top-level `for` loops, and a checkpointed function \
                 tracks one: mark the loop to track with `#[checkpoint]`",
            ))
        }
    }
}

struct NestedMarkers<'a> {
    errors: &'a mut Errors,
}

impl VisitMut for NestedMarkers<'_> {
    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        for attr in stmt_attrs(stmt).iter().filter(|a| is_marker(a)) {
            self.errors.push(syn::Error::new_spanned(
                attr,
                "`#[checkpoint]` marks the loop to track: only a `for` loop at the top level of \
                 the function body can be tracked",
            ));
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    // A nested function is a different function, maybe with its own attribute.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// `quote!` of a statement list, for tests.
#[cfg(test)]
fn show(block: &Block) -> String {
    let stmts = &block.stmts;
    quote!(#(#stmts)*).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(body: TokenStream) -> syn::Result<(bool, String)> {
        let mut block: Block = syn::parse2(quote!({ #body }))?;
        let found = rewrite(&mut block, &quote!(run), &quote!(state))?;
        Ok((found, show(&block)))
    }

    fn error(body: TokenStream) -> String {
        rewritten(body).err().unwrap().to_string()
    }

    #[test]
    fn single_loop() {
        let (found, text) = rewritten(quote!(let a = 1; for x in xs { f(x)?; } Ok(()))).unwrap();
        assert!(found);
        assert_eq!(
            text,
            quote!(let a = 1; let mut __at = run.position(); let mut __items = run.skip(xs); while __at.resume(&mut __items, state)? { for x in &mut __items { __at.step(state); f(x)?; } } Ok(()))
                .to_string()
        );
    }

    #[test]
    fn marked_loop_among_several() {
        let (_, text) =
            rewritten(quote!(for a in b {} #[checkpoint] 'outer: for x in xs {} Ok(()))).unwrap();
        assert_eq!(
            text,
            quote!(for a in b {} let mut __at = run.position(); let mut __items = run.skip(xs); while __at.resume(&mut __items, state)? { 'outer: for x in &mut __items { __at.step(state); } } Ok(()))
                .to_string()
        );
    }

    #[test]
    fn no_loop_and_nested_loops() {
        assert!(!rewritten(quote!(let x = 1; Ok(x))).unwrap().0);
        // Only top-level loops count.
        let (found, text) = rewritten(quote!(if c { for x in xs {} } Ok(()))).unwrap();
        assert!(!found);
        assert!(!text.contains("skip"));
    }

    #[test]
    fn markers_are_removed_for_the_error_path() {
        let item = quote!(
            fn f() {
                #[checkpoint]
                let x = 1;
                #[checkpoint]
                if c {
                    #[checkpoint]
                    for a in b {}
                }
            }
        );
        let text = without_markers(item).to_string();
        assert!(!text.contains("checkpoint"), "{text}");
    }

    #[test]
    fn mistakes() {
        assert!(
            error(quote!(for a in b {} for c in d {})).starts_with("this function has several")
        );
        assert!(
            error(quote!(#[checkpoint] for a in b {} #[checkpoint] for c in d {}))
                .starts_with("only one loop")
        );
        assert!(
            error(quote!(#[checkpoint] let x = 1;)).starts_with("`#[checkpoint]` marks the loop")
        );
        assert!(
            error(quote!(for a in b {
                #[checkpoint]
                for c in d {}
            }))
            .contains("top level")
        );
        assert!(
            error(quote!(
                #[checkpoint(x)]
                for a in b {}
            ))
            .contains("takes no arguments")
        );
    }
}
