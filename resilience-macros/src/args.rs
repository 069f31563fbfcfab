//! Attribute arguments shared by every macro: `key`, `key = value` and `key(...)`, comma
//! separated.
//!
//! [`Args::parse`] checks the keys once (unknown keys with a suggestion, duplicates); the typed
//! getters then take each key out, check its value and keep the value's span for later errors.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Expr, Ident, Lit, LitStr, Token, UnOp};

/// A value together with the span of the tokens it was read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spanned<T> {
    /// The value.
    pub(crate) value: T,
    /// Where it was written.
    pub(crate) span: Span,
}

/// The value part of one argument.
#[derive(Clone)]
pub(crate) enum Value {
    /// A bare `key`.
    Flag,
    /// `key = expr`.
    Expr(Expr),
    /// `key(...)`: the tokens inside the parentheses, parsed on demand with [`Args::list`].
    List(TokenStream, Span),
}

/// One `key`, `key = value` or `key(...)` argument.
#[derive(Clone)]
pub(crate) struct Arg {
    /// The key as written.
    pub(crate) key: Ident,
    /// Its value.
    pub(crate) value: Value,
}

impl Arg {
    /// The span of the value, or of the key for a flag.
    pub(crate) fn value_span(&self) -> Span {
        match &self.value {
            Value::Flag => self.key.span(),
            Value::Expr(expr) => expr.span(),
            Value::List(_, span) => *span,
        }
    }

    /// The `key = expr` expression, or an error saying that `key` needs a value.
    pub(crate) fn expr(&self, example: &str) -> syn::Result<&Expr> {
        match &self.value {
            Value::Expr(expr) => Ok(expr),
            _ => Err(syn::Error::new(
                self.key.span(),
                format!("`{}` needs a value: `{} = {}`", self.key, self.key, example),
            )),
        }
    }
}

/// The parsed arguments of one attribute, checked against the keys it allows.
pub(crate) struct Args {
    args: Vec<Arg>,
}

impl Args {
    /// Parses `tokens` (the attribute's arguments) and checks every key against `allowed`.
    ///
    /// Unknown keys (with a "did you mean" suggestion and the list of allowed keys) and
    /// repeated keys are reported together, each at the offending key.
    pub(crate) fn parse(tokens: TokenStream, allowed: &[&str]) -> syn::Result<Self> {
        let parser = |input: ParseStream| {
            Punctuated::<Arg, Token![,]>::parse_terminated_with(input, parse_arg)
        };
        let args: Vec<Arg> = parser.parse2(tokens)?.into_iter().collect();
        let mut errors = Errors::default();
        for (i, arg) in args.iter().enumerate() {
            let key = arg.key.to_string();
            if !allowed.contains(&key.as_str()) {
                errors.push(syn::Error::new(arg.key.span(), unknown_key_message(&key, allowed)));
            } else if args[..i].iter().any(|earlier| earlier.key == arg.key) {
                errors.push(syn::Error::new(
                    arg.key.span(),
                    format!("duplicate argument `{key}`: give it once"),
                ));
            }
        }
        errors.finish()?;
        Ok(Args { args })
    }

    /// Parses the arguments of a helper attribute such as `#[classify(skip, code = "E1")]`.
    pub(crate) fn from_attr(attr: &Attribute, allowed: &[&str]) -> syn::Result<Self> {
        let list = attr.meta.require_list()?;
        Args::parse(list.tokens.clone(), allowed)
    }

    /// Takes the argument `key` out, if it was given.
    pub(crate) fn take(&mut self, key: &str) -> Option<Arg> {
        let i = self.args.iter().position(|arg| arg.key == key)?;
        Some(self.args.remove(i))
    }

    /// A bare `key` (also accepted: `key = true`; `key = false` reads as absent).
    pub(crate) fn flag(&mut self, key: &str) -> syn::Result<Option<Span>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        match &arg.value {
            Value::Flag => Ok(Some(arg.key.span())),
            Value::Expr(Expr::Lit(lit)) => match &lit.lit {
                Lit::Bool(b) => Ok(b.value.then(|| arg.key.span())),
                _ => Err(takes_no_value(&arg)),
            },
            _ => Err(takes_no_value(&arg)),
        }
    }

    /// `key = true` / `key = false`; a bare `key` means `true`.
    pub(crate) fn bool(&mut self, key: &str) -> syn::Result<Option<Spanned<bool>>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        if let Value::Flag = arg.value {
            return Ok(Some(Spanned { value: true, span: arg.key.span() }));
        }
        let expr = arg.expr("true")?;
        match expr {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Bool(b) => Ok(Some(Spanned { value: b.value, span: b.span() })),
                _ => Err(expected(expr, format!("`{key}` must be `true` or `false`"))),
            },
            _ => Err(expected(expr, format!("`{key}` must be `true` or `false`"))),
        }
    }

    /// `key = 3`: an integer literal that fits in `N` (a suffix such as `3u32` is accepted).
    pub(crate) fn int<N>(&mut self, key: &str) -> syn::Result<Option<Spanned<N>>>
    where
        N: FromStr,
        N::Err: Display,
    {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("3")?;
        let ty = short_type_name::<N>();
        match expr {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Int(int) => match int.base10_parse::<N>() {
                    Ok(value) => Ok(Some(Spanned { value, span: int.span() })),
                    Err(_) => Err(expected(
                        expr,
                        format!("`{key}` is out of range: it must fit in `{ty}`"),
                    )),
                },
                _ => Err(expected(expr, format!("`{key}` must be an integer, like `{key} = 3`"))),
            },
            Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
                Err(expected(expr, format!("`{key}` cannot be negative: it must fit in `{ty}`")))
            }
            _ => {
                Err(expected(expr, format!("`{key}` must be an integer literal, like `{key} = 3`")))
            }
        }
    }

    /// `key = 1.5` (an integer literal is accepted too; a leading `-` is kept).
    pub(crate) fn float(&mut self, key: &str) -> syn::Result<Option<Spanned<f64>>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("1.5")?;
        let (negative, lit) = match expr {
            Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => (true, &*unary.expr),
            other => (false, other),
        };
        let value = match lit {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Float(float) => float.base10_parse::<f64>().ok(),
                Lit::Int(int) => int.base10_parse::<f64>().ok(),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) if value.is_finite() => Ok(Some(Spanned {
                value: if negative { -value } else { value },
                span: expr.span(),
            })),
            _ => Err(expected(expr, format!("`{key}` must be a number, like `{key} = 1.5`"))),
        }
    }

    /// `key = "text"`.
    pub(crate) fn string(&mut self, key: &str) -> syn::Result<Option<LitStr>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("\"...\"")?;
        lit_str(expr).cloned().map(Some).ok_or_else(|| {
            expected(expr, format!("`{key}` must be a string literal, like `{key} = \"...\"`"))
        })
    }

    /// `key = "off"` or `key = "on"`, the two values a two-way string option takes: `true` for
    /// `on`, `false` for `off` or no `key` at all. Any other value is an error at the literal,
    /// which lists both values with what each means (`off_means`, `on_means`).
    pub(crate) fn switch(
        &mut self,
        key: &str,
        (off, off_means): (&str, &str),
        (on, on_means): (&str, &str),
    ) -> syn::Result<bool> {
        let Some(value) = self.string(key)? else { return Ok(false) };
        match value.value().as_str() {
            v if v == on => Ok(true),
            v if v == off => Ok(false),
            other => Err(syn::Error::new(
                value.span(),
                format!(
                    "`{key}` must be \"{off}\" (the default: {off_means}) or \"{on}\" \
                     ({on_means}); got \"{other}\""
                ),
            )),
        }
    }

    /// `key = "a"` or `key = ["a", "b"]`.
    pub(crate) fn strings(&mut self, key: &str) -> syn::Result<Option<Vec<LitStr>>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("[\"...\", \"...\"]")?;
        let message = || {
            format!(
                "`{key}` must be a string literal or a list of them, like `{key} = [\"a\", \"b\"]`"
            )
        };
        if let Some(lit) = lit_str(expr) {
            return Ok(Some(vec![lit.clone()]));
        }
        let Expr::Array(array) = expr else { return Err(expected(expr, message())) };
        let mut values = Vec::with_capacity(array.elems.len());
        for elem in &array.elems {
            values.push(lit_str(elem).cloned().ok_or_else(|| expected(elem, message()))?);
        }
        Ok(Some(values))
    }

    /// `key = "250ms"`: see [`parse_duration`] for the accepted units.
    pub(crate) fn duration(&mut self, key: &str) -> syn::Result<Option<Spanned<Duration>>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("\"250ms\"")?;
        if let Some(lit) = lit_str(expr) {
            return match parse_duration(&lit.value()) {
                Ok(value) => Ok(Some(Spanned { value, span: lit.span() })),
                Err(message) => Err(syn::Error::new(lit.span(), message)),
            };
        }
        let hint = match expr {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Int(int) => format!("`{key} = \"{}ms\"`", int.base10_digits()),
                _ => format!("`{key} = \"250ms\"`"),
            },
            _ => format!("`{key} = \"250ms\"`"),
        };
        Err(expected(
            expr,
            format!(
                "`{key}` must be a duration string with a unit (`ms`, `s`, `m`, `h`), like {hint}"
            ),
        ))
    }

    /// `key = some::path` (a path expression; for predicates and types).
    pub(crate) fn path(&mut self, key: &str) -> syn::Result<Option<syn::Path>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("path::to::item")?;
        match expr {
            Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                Ok(Some(path.path.clone()))
            }
            _ => Err(expected(
                expr,
                format!("`{key}` must be a path, like `{key} = path::to::item`"),
            )),
        }
    }

    /// `key = name` (a single identifier, e.g. a parameter name).
    pub(crate) fn ident(&mut self, key: &str) -> syn::Result<Option<Ident>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        let expr = arg.expr("name")?;
        match expr {
            Expr::Path(path) if path.qself.is_none() => match path.path.get_ident() {
                Some(ident) => Ok(Some(ident.clone())),
                None => Err(expected(
                    expr,
                    format!("`{key}` must be a single name, like `{key} = name`"),
                )),
            },
            _ => Err(expected(expr, format!("`{key}` must be a single name, like `{key} = name`"))),
        }
    }

    /// `key = <any expression>`.
    pub(crate) fn expr(&mut self, key: &str) -> syn::Result<Option<Expr>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        arg.expr("...").cloned().map(Some)
    }

    /// `key(...)`: the nested arguments, checked against `allowed`. Returns the span of `key` too.
    pub(crate) fn list(
        &mut self,
        key: &str,
        allowed: &[&str],
    ) -> syn::Result<Option<(Span, Args)>> {
        let Some(arg) = self.take(key) else { return Ok(None) };
        match arg.value {
            Value::List(tokens, _) => Ok(Some((arg.key.span(), Args::parse(tokens, allowed)?))),
            _ => Err(syn::Error::new(
                arg.value_span(),
                format!("`{key}` takes a list of arguments: `{key}(...)`"),
            )),
        }
    }
}

fn parse_arg(input: ParseStream) -> syn::Result<Arg> {
    let key = input.call(Ident::parse_any)?;
    let value = if input.peek(Token![=]) {
        let _: Token![=] = input.parse()?;
        let mut expr = input.parse()?;
        Ungroup.visit_expr_mut(&mut expr);
        Value::Expr(expr)
    } else if input.peek(syn::token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        Value::List(content.parse()?, paren.span.join())
    } else {
        Value::Flag
    };
    Ok(Arg { key, value })
}

/// Replaces every invisible group in an argument's value by its contents: a value passed
/// through `macro_rules!` as `$x:literal`, `$x:expr` or `$x:path` arrives wrapped in one
/// (a `None`-delimited group), and must read exactly like the same tokens written directly.
struct Ungroup;

impl VisitMut for Ungroup {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        while let Expr::Group(group) = expr {
            *expr = (*group.expr).clone();
        }
        visit_mut::visit_expr_mut(self, expr);
    }
}

fn takes_no_value(arg: &Arg) -> syn::Error {
    syn::Error::new(
        arg.value_span(),
        format!("`{}` takes no value: write just `{}`", arg.key, arg.key),
    )
}

fn expected(tokens: impl ToTokens, message: String) -> syn::Error {
    syn::Error::new_spanned(tokens, message)
}

fn lit_str(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn short_type_name<N>() -> &'static str {
    let name = std::any::type_name::<N>();
    name.rsplit("::").next().unwrap_or(name)
}

/// The message for a key that is not in `allowed`: a suggestion when one is close, then the
/// full list.
pub(crate) fn unknown_key_message(key: &str, allowed: &[&str]) -> String {
    let list = allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    match did_you_mean(key, allowed) {
        Some(close) => {
            format!("unknown argument `{key}`; did you mean `{close}`? expected one of: {list}")
        }
        None => format!("unknown argument `{key}`; expected one of: {list}"),
    }
}

/// Words users reach for from other retry libraries, and the key they mean.
const SYNONYMS: &[(&str, &str)] = &[
    ("max_retries", "max"),
    ("retries", "max"),
    ("attempts", "max"),
    ("max_attempts", "max"),
    ("times", "max"),
    ("delay", "initial"),
    ("initial_delay", "initial"),
    ("min_delay", "initial"),
    ("backoff", "multiplier"),
    ("factor", "multiplier"),
    ("max_interval", "max_delay"),
    ("randomization_factor", "jitter"),
    ("timeout", "max_elapsed"),
    ("max_elapsed_time", "max_elapsed"),
    ("retry_if", "when"),
    ("predicate", "when"),
];

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo, the
/// one `word` is a common synonym of (`retries` for `max`), or one that `word` abbreviates
/// (`warn` for `warning`).
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let synonym = SYNONYMS
        .iter()
        .filter(|(synonym, _)| *synonym == word)
        .find_map(|(_, key)| candidates.iter().find(|c| *c == key).copied());
    if synonym.is_some() {
        return synonym;
    }
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
        .or_else(|| {
            let prefix = |c: &&&str| word.len() >= 3 && c.starts_with(word);
            candidates.iter().find(prefix).copied()
        })
}

/// Edit distance counting a swap of two neighbouring characters as one edit (`retyr` is one
/// edit from `retry`): the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Parses a duration literal: an integer followed by `ms`, `s`, `m` or `h` (`"250ms"`, `"2s"`,
/// `"5m"`, `"1h"`). The error text names the input and the accepted form.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration \"{text}\": expected an integer and a unit (`ms`, `s`, `m` or `h`), \
             like \"250ms\", \"2s\", \"5m\" or \"1h\""
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| invalid())?;
    let millis = match unit {
        "ms" => Some(amount),
        "s" => amount.checked_mul(1_000),
        "m" => amount.checked_mul(60_000),
        "h" => amount.checked_mul(3_600_000),
        _ => return Err(invalid()),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("duration \"{text}\" is too large"))
}

/// `::core::time::Duration::from_secs(n)` or `from_millis(n)`: a `const` expression.
pub(crate) fn duration_tokens(duration: Duration) -> TokenStream {
    let millis = duration.as_millis() as u64;
    if millis.is_multiple_of(1_000) {
        let secs = proc_macro2::Literal::u64_unsuffixed(millis / 1_000);
        quote!(::core::time::Duration::from_secs(#secs))
    } else {
        let millis = proc_macro2::Literal::u64_unsuffixed(millis);
        quote!(::core::time::Duration::from_millis(#millis))
    }
}

/// Collects errors so that several independent mistakes are reported in one compile
/// (serde's `Ctxt`, built on `syn::Error::combine`).
#[derive(Default)]
pub(crate) struct Errors {
    error: Option<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.error {
            Some(first) => first.combine(error),
            None => self.error = Some(error),
        }
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Both values, or every error of the two.
    pub(crate) fn both<A, B>(a: syn::Result<A>, b: syn::Result<B>) -> syn::Result<(A, B)> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(mut first), Err(second)) => {
                first.combine(second);
                Err(first)
            }
            (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
        }
    }

    /// `Err` with every recorded error, or `Ok(())`.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["max", "initial", "multiplier", "name", "when", "backup", "retry"];

    fn args(tokens: TokenStream) -> Args {
        Args::parse(tokens, KEYS).unwrap()
    }

    fn error(tokens: TokenStream) -> String {
        Args::parse(tokens, KEYS).err().unwrap().to_string()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "ms", "10", "2 s", "1.5s", "-1s", "3d", "2S"] {
            assert!(parse_duration(bad).unwrap_err().contains("invalid duration"), "{bad}");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
        assert_eq!(
            duration_tokens(Duration::from_secs(2)).to_string(),
            quote!(::core::time::Duration::from_secs(2)).to_string()
        );
    }

    #[test]
    fn unknown_and_duplicate_keys() {
        let message = error(quote!(maxx = 3));
        assert!(
            message
                .starts_with("unknown argument `maxx`; did you mean `max`? expected one of: `max`"),
            "{message}"
        );
        assert_eq!(
            error(quote!(zzz = 3)),
            "unknown argument `zzz`; expected one of: `max`, `initial`, `multiplier`, `name`, `when`, `backup`, `retry`"
        );
        assert_eq!(error(quote!(max = 3, max = 4)), "duplicate argument `max`: give it once");
    }

    #[test]
    fn typed_values() {
        let mut a = args(quote!(
            max = 5,
            initial = "2s",
            multiplier = 2,
            name = "x",
            when = a::b,
            backup = ["a", "b"],
            retry(max = 1)
        ));
        assert_eq!(a.int::<u32>("max").unwrap().unwrap().value, 5);
        assert_eq!(a.duration("initial").unwrap().unwrap().value, Duration::from_secs(2));
        assert_eq!(a.float("multiplier").unwrap().unwrap().value, 2.0);
        assert_eq!(a.string("name").unwrap().unwrap().value(), "x");
        assert_eq!(a.path("when").unwrap().unwrap().segments.len(), 2);
        assert_eq!(a.strings("backup").unwrap().unwrap().len(), 2);
        let (_, mut nested) = a.list("retry", &["max"]).unwrap().unwrap();
        assert_eq!(nested.int::<u32>("max").unwrap().unwrap().value, 1);
        assert!(a.args.is_empty());
    }

    #[test]
    fn typed_errors() {
        let e = |tokens: TokenStream, f: fn(&mut Args) -> syn::Result<()>| {
            f(&mut args(tokens)).unwrap_err().to_string()
        };
        assert_eq!(
            e(quote!(max = 2.5), |a| a.int::<u32>("max").map(drop)),
            "`max` must be an integer, like `max = 3`"
        );
        assert_eq!(
            e(quote!(max = -1), |a| a.int::<u32>("max").map(drop)),
            "`max` cannot be negative: it must fit in `u32`"
        );
        assert_eq!(
            e(quote!(max = 99999999999), |a| a.int::<u32>("max").map(drop)),
            "`max` is out of range: it must fit in `u32`"
        );
        assert_eq!(
            e(quote!(max), |a| a.int::<u32>("max").map(drop)),
            "`max` needs a value: `max = 3`"
        );
        assert_eq!(
            e(quote!(initial = 250), |a| a.duration("initial").map(drop)),
            "`initial` must be a duration string with a unit (`ms`, `s`, `m`, `h`), like `initial = \"250ms\"`"
        );
        assert!(
            e(quote!(initial = "2 sec"), |a| a.duration("initial").map(drop))
                .starts_with("invalid duration \"2 sec\"")
        );
        assert_eq!(
            e(quote!(name = x), |a| a.string("name").map(drop)),
            "`name` must be a string literal, like `name = \"...\"`"
        );
        assert_eq!(
            e(quote!(retry = 3), |a| a.list("retry", &[]).map(drop)),
            "`retry` takes a list of arguments: `retry(...)`"
        );
        assert_eq!(
            e(quote!(max(1)), |a| a.flag("max").map(drop)),
            "`max` takes no value: write just `max`"
        );
        assert_eq!(a_float(quote!(multiplier = -0.5)), -0.5);
    }

    /// Values passed through `macro_rules!` (`$x:literal`, `$x:expr`, `$x:path`) arrive in
    /// invisible groups; they read like the same tokens written directly.
    #[test]
    fn invisible_groups() {
        let group = |tokens: TokenStream| {
            proc_macro2::Group::new(proc_macro2::Delimiter::None, tokens).into_token_stream()
        };
        let (three, two_s, name, path, list) = (
            group(quote!(3)),
            group(quote!("2s")),
            group(quote!("x")),
            group(quote!(a::b)),
            group(quote!(["a", "b"])),
        );
        let mut a = args(quote!(
            max = #three,
            initial = #two_s,
            name = #name,
            when = #path,
            backup = [#name, #name],
            multiplier = - #three,
            retry(max = #three)
        ));
        assert_eq!(a.int::<u32>("max").unwrap().unwrap().value, 3);
        assert_eq!(a.duration("initial").unwrap().unwrap().value, Duration::from_secs(2));
        assert_eq!(a.string("name").unwrap().unwrap().value(), "x");
        assert_eq!(a.path("when").unwrap().unwrap().segments.len(), 2);
        assert_eq!(a.strings("backup").unwrap().unwrap().len(), 2);
        assert_eq!(a.float("multiplier").unwrap().unwrap().value, -3.0);
        let (_, mut nested) = a.list("retry", &["max"]).unwrap().unwrap();
        assert_eq!(nested.int::<u32>("max").unwrap().unwrap().value, 3);
        assert_eq!(args(quote!(backup = #list)).strings("backup").unwrap().unwrap().len(), 2);
    }

    fn a_float(tokens: TokenStream) -> f64 {
        args(tokens).float("multiplier").unwrap().unwrap().value
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("jiter", &["jitter", "max"]), Some("jitter"));
        assert_eq!(did_you_mean("transparnt", &["transparent", "retry"]), Some("transparent"));
        assert_eq!(did_you_mean("foo", &["jitter", "max"]), None);
        assert_eq!(did_you_mean("warn", &["info", "warning"]), Some("warning"));
        assert_eq!(did_you_mean("retyr", &["retry", "skip"]), Some("retry"));
        let retry = crate::retry::KEYS;
        for (word, key) in [
            ("max_retries", "max"),
            ("retries", "max"),
            ("attempts", "max"),
            ("delay", "initial"),
            ("initial_delay", "initial"),
            ("backoff", "multiplier"),
            ("factor", "multiplier"),
        ] {
            assert_eq!(did_you_mean(word, retry), Some(key), "{word}");
        }
    }
}
