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
/// Each `expr?` in the loop's body (outside closures, `async` blocks and nested items) becomes
///
/// ```text
/// match __at.ok(expr)? {      // the error converted and returned, unless it is skipped
///     Some(v) => v,
///     None => continue 'label,  // skipped: on with the next item
/// }
/// ```
/// and, when there is one, the position is taken with `skipping` (`skipping(..)`, maybe
/// `.errors(..)`) instead of `position()`. `let mut` bindings before the loop that the loop changes are an error
/// (a resumed run would restart them), unless marked `#[checkpoint(transient)]`.
///
/// Removes the `#[checkpoint]` markers.
pub(crate) fn rewrite(
    block: &mut Block,
    run: &TokenStream,
    state: &TokenStream,
    skipping: &TokenStream,
) -> syn::Result<LoopRewrite> {
    ungroup_loops(block);
    let Some(index) = find(block)? else {
        strip_transient(&mut block.stmts);
        return Ok(LoopRewrite { found: false, skipping: false });
    };
    check_locals(block, index)?;
    let Stmt::Expr(Expr::ForLoop(for_loop), _) = &mut block.stmts[index] else {
        unreachable!("`find` returns the index of a `for` statement")
    };
    for_loop.attrs.retain(|attr| !is_marker(attr));
    let expr = &for_loop.expr;
    let skip = quote_spanned!(expr.span()=> #run.skip(#expr));
    let at = crate::function::internal(Name::At);
    let items = crate::function::internal(Name::Items);
    let label = for_loop.label.as_ref().map_or_else(
        || syn::Lifetime::new("'__item", proc_macro2::Span::mixed_site()),
        |label| label.name.clone(),
    );
    let mut tries = RewriteTries { at: &at, label: &label, count: 0 };
    tries.visit_block_mut(&mut for_loop.body);
    let position = if tries.count > 0 {
        if for_loop.label.is_none() {
            for_loop.label = Some(syn::parse_quote!(#label:));
        }
        skipping.clone()
    } else {
        quote::quote!(position())
    };
    *for_loop.expr = syn::parse_quote!(&mut #items);
    let step: Stmt = syn::parse_quote!(#at.step(#state););
    for_loop.body.stmts.insert(0, step);
    let tracked: Stmt = syn::parse_quote!(while #at.resume(&mut #items, #state)? { #for_loop });
    block.stmts[index] = tracked;
    let position: Stmt = syn::parse_quote!(let mut #at = #run.#position;);
    let skip: Stmt = syn::parse_quote!(let mut #items = #skip;);
    block.stmts.splice(index..index, [position, skip]);
    Ok(LoopRewrite { found: true, skipping: tries.count > 0 })
}

/// A `for` loop a `macro_rules!` passed as `$e:expr` arrives in an invisible group: the
/// statement becomes the loop itself, so that it can be found and tracked.
fn ungroup_loops(block: &mut Block) {
    for stmt in &mut block.stmts {
        if let Stmt::Expr(expr @ Expr::Group(_), _) = stmt {
            while let Expr::Group(group) = expr
                && matches!(&*group.expr, Expr::ForLoop(_) | Expr::Group(_))
            {
                // Attributes written before the group (`#[checkpoint] $tracked`) go with the loop.
                let mut inner = (*group.expr).clone();
                if let Some(attrs) = expr_attrs_mut(&mut inner) {
                    attrs.splice(0..0, group.attrs.drain(..));
                }
                *expr = inner;
            }
        }
    }
}

/// What [`rewrite`] did.
pub(crate) struct LoopRewrite {
    /// There was a loop to track.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) found: bool,
    /// Its body has `?`s, rewritten to skip.
    pub(crate) skipping: bool,
}

/// Rewrites the `?`s of a tracked loop's body (see [`rewrite`]).
struct RewriteTries<'a> {
    at: &'a syn::Ident,
    label: &'a syn::Lifetime,
    count: usize,
}

impl VisitMut for RewriteTries<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            // Another function's body, or code that runs later: its `?` is not the loop's.
            Expr::Closure(_) | Expr::Async(_) | Expr::TryBlock(_) => {}
            Expr::Try(try_expr) => {
                visit_mut::visit_expr_mut(self, &mut try_expr.expr);
                let inner = &try_expr.expr;
                let span = try_expr.question_token.span;
                let (at, label) = (self.at, self.label);
                let v = crate::function::internal(Name::Value);
                *expr = syn::parse_quote_spanned!(span=> match #at.ok(#inner)? {
                    ::core::option::Option::Some(#v) => #v,
                    ::core::option::Option::None => continue #label,
                });
                self.count += 1;
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Whether `attr` is `#[checkpoint(transient)]`.
fn is_transient(attr: &Attribute) -> bool {
    is_marker(attr)
        && matches!(&attr.meta, Meta::List(list) if list.tokens.to_string() == "transient")
}

fn strip_transient(stmts: &mut [Stmt]) {
    for stmt in stmts {
        if let Stmt::Local(local) = stmt {
            local.attrs.retain(|attr| !is_transient(attr));
        }
    }
}

/// `let mut` bindings before the tracked loop (at `index`) that the loop assigns, borrows
/// `&mut` or calls a method on would restart from their initial value after a resume: an error
/// at each binding, unless it is marked `#[checkpoint(transient)]` (the marker is removed).
fn check_locals(block: &mut Block, index: usize) -> syn::Result<()> {
    let mut locals = Vec::new();
    for stmt in &mut block.stmts[..index] {
        let Stmt::Local(local) = stmt else { continue };
        let transient = local.attrs.iter().any(is_transient);
        local.attrs.retain(|attr| !is_transient(attr));
        if !transient {
            mutable_bindings(&local.pat, &mut locals);
        }
    }
    // A later `let` of the same name shadows an earlier one.
    let mut seen = std::collections::HashSet::new();
    locals.reverse();
    locals.retain(|ident: &syn::Ident| seen.insert(ident.to_string()));
    locals.reverse();
    let Stmt::Expr(Expr::ForLoop(for_loop), _) = &block.stmts[index] else {
        unreachable!("`find` returns the index of a `for` statement")
    };
    let mut errors = Errors::default();
    for local in &locals {
        let mut finder = FindChange { name: local, found: None, shadowed: false };
        // `visit-mut` is the one visitor feature of syn this crate builds; a copy is cheap.
        finder.visit_block_mut(&mut for_loop.body.clone());
        if let Some((what, _)) = finder.found {
            errors.push(syn::Error::new(
                local.span(),
                format!(
                    "`{local}` is declared before the tracked loop and {what} inside it: a run \
                     resumed from a checkpoint would start it again from its initial value, \
                     without the items before the checkpoint. Move it into the state struct (a \
                     field saved with each checkpoint), or mark the binding \
                     `#[checkpoint(transient)]` if starting it over on a resume is what you want"
                ),
            ));
        }
    }
    errors.finish()
}

/// The names a pattern binds mutably (`mut x`, also inside tuples and structs).
fn mutable_bindings(pat: &syn::Pat, out: &mut Vec<syn::Ident>) {
    match pat {
        syn::Pat::Ident(p) => {
            if p.mutability.is_some() && p.by_ref.is_none() {
                out.push(p.ident.clone());
            }
            if let Some((_, sub)) = &p.subpat {
                mutable_bindings(sub, out);
            }
        }
        syn::Pat::Type(p) => mutable_bindings(&p.pat, out),
        syn::Pat::Tuple(p) => p.elems.iter().for_each(|p| mutable_bindings(p, out)),
        syn::Pat::TupleStruct(p) => p.elems.iter().for_each(|p| mutable_bindings(p, out)),
        syn::Pat::Struct(p) => p.fields.iter().for_each(|f| mutable_bindings(&f.pat, out)),
        syn::Pat::Slice(p) => p.elems.iter().for_each(|p| mutable_bindings(p, out)),
        syn::Pat::Paren(p) => mutable_bindings(&p.pat, out),
        _ => {}
    }
}

/// Finds the first change of `name` in a loop body: an assignment, a compound assignment, a
/// `&mut` borrow or a method call on it (of the binding itself, a field or an element of it).
struct FindChange<'a> {
    name: &'a syn::Ident,
    found: Option<(&'static str, proc_macro2::Span)>,
    shadowed: bool,
}

impl FindChange<'_> {
    /// Whether `expr` is the binding, or a field, element or dereference of it.
    fn is_place_of_name(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Path(p) => p.qself.is_none() && p.path.is_ident(self.name),
            Expr::Field(f) => self.is_place_of_name(&f.base),
            Expr::Index(i) => self.is_place_of_name(&i.expr),
            Expr::Paren(p) => self.is_place_of_name(&p.expr),
            Expr::Group(g) => self.is_place_of_name(&g.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => self.is_place_of_name(&u.expr),
            _ => false,
        }
    }

    fn note(&mut self, what: &'static str, span: proc_macro2::Span) {
        if self.found.is_none() && !self.shadowed {
            self.found = Some((what, span));
        }
    }
}

impl VisitMut for FindChange<'_> {
    fn visit_block_mut(&mut self, block: &mut Block) {
        // A `let` of the same name inside a block hides the binding until the block ends.
        let outer = self.shadowed;
        for stmt in &mut block.stmts {
            visit_mut::visit_stmt_mut(self, stmt);
            if let Stmt::Local(local) = stmt {
                let mut names = Vec::new();
                bound_names(&local.pat, &mut names);
                if names.iter().any(|n| n == self.name) {
                    self.shadowed = true;
                }
            }
        }
        self.shadowed = outer;
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match &*expr {
            Expr::Assign(a) if self.is_place_of_name(&a.left) => self.note("assigned", a.span()),
            Expr::Binary(b) if is_compound(&b.op) && self.is_place_of_name(&b.left) => {
                self.note("changed with a compound assignment", b.span());
            }
            Expr::Reference(r) if r.mutability.is_some() && self.is_place_of_name(&r.expr) => {
                self.note("borrowed `&mut`", r.span());
            }
            Expr::MethodCall(m) if self.is_place_of_name(&m.receiver) => {
                self.note("used as a method receiver", m.span());
            }
            _ => {}
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

fn bound_names(pat: &syn::Pat, out: &mut Vec<syn::Ident>) {
    match pat {
        syn::Pat::Ident(p) => {
            out.push(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                bound_names(sub, out);
            }
        }
        syn::Pat::Type(p) => bound_names(&p.pat, out),
        syn::Pat::Tuple(p) => p.elems.iter().for_each(|p| bound_names(p, out)),
        syn::Pat::TupleStruct(p) => p.elems.iter().for_each(|p| bound_names(p, out)),
        syn::Pat::Struct(p) => p.fields.iter().for_each(|f| bound_names(&f.pat, out)),
        syn::Pat::Slice(p) => p.elems.iter().for_each(|p| bound_names(p, out)),
        syn::Pat::Paren(p) => bound_names(&p.pat, out),
        _ => {}
    }
}

fn is_compound(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
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
            if is_transient(attr) {
                if !matches!(stmt, Stmt::Local(_)) {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        "`#[checkpoint(transient)]` marks a `let` binding before the tracked loop \
                         that may start over on a resume: put it on a `let` statement",
                    ));
                }
            } else if !matches!(attr.meta, Meta::Path(_)) {
                errors.push(syn::Error::new_spanned(
                    &attr.meta,
                    "`#[checkpoint]` on a loop takes no arguments: write just `#[checkpoint]` \
                     (`#[checkpoint(transient)]` is for a `let` binding before the loop)",
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
        let found = rewrite(&mut block, &quote!(run), &quote!(state), &quote!(skipping(s)))?.found;
        Ok((found, show(&block)))
    }

    fn error(body: TokenStream) -> String {
        rewritten(body).err().unwrap().to_string()
    }

    #[test]
    fn single_loop() {
        let (found, text) = rewritten(quote!(let a = 1; for x in xs { f(x); } Ok(()))).unwrap();
        assert!(found);
        assert_eq!(
            text,
            quote!(let a = 1; let mut __at = run.position(); let mut __items = run.skip(xs); while __at.resume(&mut __items, state)? { for x in &mut __items { __at.step(state); f(x); } } Ok(()))
                .to_string()
        );
    }

    #[test]
    fn question_marks_in_the_body_may_skip() {
        let (_, text) = rewritten(quote!(for x in xs {
            let n = f(x)?;
            let g = || h()?;
            for y in ys { k(y)?; }
        } Ok(())))
        .unwrap();
        assert!(text.starts_with("let mut __at = run . skipping (s) ;"), "{text}");
        // Closures keep their `?`; nested loops go on with the tracked loop's next item.
        assert_eq!(text.matches("continue '__item").count(), 2, "{text}");
        assert!(text.contains("| | h () ?"), "{text}");
        // A loop's own label is used.
        let (_, text) = rewritten(quote!('rows: for x in xs {
            f(x)?;
        }))
        .unwrap();
        assert!(text.contains("continue 'rows") && !text.contains("'__item"), "{text}");
    }

    #[test]
    fn locals_a_resume_would_lose_are_errors() {
        for body in [
            quote!(let mut sum = 0; for x in xs { sum += x; }),
            quote!(let mut sum = 0; for x in xs { sum = sum + x; }),
            quote!(let mut seen = Vec::new(); for x in xs { seen.push(x); }),
            quote!(let mut acc = S::default(); for x in xs { add(&mut acc, x); }),
            quote!(let (mut a, b) = (0, 1); for x in xs { a.field = x; }),
        ] {
            let message = error(body.clone());
            assert!(message.contains("declared before the tracked loop"), "{body}: {message}");
        }
        for body in [
            quote!(#[checkpoint(transient)] let mut sum = 0; for x in xs { sum += x; }),
            quote!(let sum = 0; for x in xs { let s = sum + x; }),
            quote!(let mut sum = 0; for x in xs { let mut sum = 1; sum += x; }),
            quote!(for x in xs {
                let mut sum = 0;
                sum += x;
            }),
            quote!(let mut sum = 0; for x in xs { f(x); } sum += 1;),
        ] {
            assert!(rewritten(body.clone()).is_ok(), "{body}");
        }
        let (_, text) =
            rewritten(quote!(#[checkpoint(transient)] let mut n = 0; for x in xs { n += 1; }))
                .unwrap();
        assert!(!text.contains("checkpoint"), "{text}");
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
    fn loop_in_an_invisible_group() {
        // What `macro_rules!` makes of a `for` loop passed as `$e:expr`.
        let group = Expr::Group(syn::ExprGroup {
            attrs: Vec::new(),
            group_token: Default::default(),
            expr: Box::new(syn::parse_quote!(for x in xs {
                f(x);
            })),
        });
        let mut block: Block = syn::parse_quote!({
            let a = 1;
        });
        block.stmts.push(Stmt::Expr(group, Some(Default::default())));
        let done = rewrite(&mut block, &quote!(run), &quote!(state), &quote!(skipping(s)));
        assert!(done.unwrap().found);
        assert!(show(&block).contains("for x in & mut __items"), "{}", show(&block));

        // `#[checkpoint] $tracked`: the marker is on the group, and picks the loop.
        let group = Expr::Group(syn::ExprGroup {
            attrs: vec![syn::parse_quote!(#[checkpoint])],
            group_token: Default::default(),
            expr: Box::new(syn::parse_quote!(for x in xs {
                f(x);
            })),
        });
        let mut block: Block = syn::parse_quote!({ for a in b {} });
        block.stmts.push(Stmt::Expr(group, Some(Default::default())));
        rewrite(&mut block, &quote!(run), &quote!(state), &quote!(skipping(s))).unwrap();
        let text = show(&block);
        assert!(text.contains("for x in & mut __items") && !text.contains("checkpoint"), "{text}");
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
