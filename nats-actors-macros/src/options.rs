//! `key = value` option lists shared by every attribute, with unknown and duplicate detection.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Ident, Lit, LitInt, LitStr, Token};

/// One `key = literal` (or `key(k = "v", ...)`) option as written, kept for its spans.
pub struct Opt {
    pub key: Ident,
    pub value: Value,
}

/// The value of an option.
pub enum Value {
    /// `key = literal`.
    Lit(Lit),
    /// `key(name = "value", "any.name" = "value")`: string pairs, e.g. metadata.
    Map(Span, Vec<(LitStr, LitStr)>),
}

/// Parses `key = lit, key = lit, ...` (after any positional argument was consumed), rejecting
/// keys outside `known` and keys given twice.
pub fn parse_list(input: ParseStream, attr: &str, known: &[&str]) -> syn::Result<Vec<Opt>> {
    let mut opts: Vec<Opt> = Vec::new();
    while !input.is_empty() {
        let key: Ident = input.parse()?;
        let name = key.to_string();
        if !known.contains(&name.as_str()) {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown option `{name}` for #[{attr}]; expected one of: {}",
                    known.join(", ")
                ),
            ));
        }
        if opts.iter().any(|o| o.key == key) {
            return Err(syn::Error::new(
                key.span(),
                format!("duplicate option `{name}` in #[{attr}]; give it once"),
            ));
        }
        let value = if input.peek(syn::token::Paren) {
            let content;
            let paren = syn::parenthesized!(content in input);
            Value::Map(paren.span.join(), parse_map(&content)?)
        } else {
            input.parse::<Token![=]>()?;
            Value::Lit(input.parse()?)
        };
        opts.push(Opt { key, value });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(opts)
}

/// `name = "value", "other.name" = "value"`, names unique.
fn parse_map(input: ParseStream) -> syn::Result<Vec<(LitStr, LitStr)>> {
    let mut pairs: Vec<(LitStr, LitStr)> = Vec::new();
    while !input.is_empty() {
        let key = if input.peek(LitStr) {
            input.parse::<LitStr>()?
        } else {
            let id: Ident = input.parse()?;
            LitStr::new(&id.to_string(), id.span())
        };
        if pairs.iter().any(|(k, _)| k.value() == key.value()) {
            return Err(syn::Error::new(
                key.span(),
                format!("duplicate key `{}`; give it once", key.value()),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: LitStr = input.parse()?;
        pairs.push((key, value));
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(pairs)
}

impl Opt {
    /// The literal of `key = literal` (an error for `key(...)`).
    pub fn lit(&self) -> syn::Result<&Lit> {
        match &self.value {
            Value::Lit(l) => Ok(l),
            Value::Map(span, _) => Err(syn::Error::new(
                *span,
                format!("option `{}` takes a value: {} = ...", self.key, self.key),
            )),
        }
    }

    /// String pairs: `key(name = "value", ...)`.
    pub fn map(&self) -> syn::Result<Vec<(LitStr, LitStr)>> {
        match &self.value {
            Value::Map(_, pairs) => Ok(pairs.clone()),
            Value::Lit(l) => Err(syn::Error::new(
                l.span(),
                format!(
                    "option `{}` takes a list of string pairs, e.g. {}(owner = \"billing\")",
                    self.key, self.key
                ),
            )),
        }
    }

    pub fn str(&self) -> syn::Result<LitStr> {
        match self.lit()? {
            Lit::Str(s) => Ok(s.clone()),
            other => Err(syn::Error::new(
                other.span(),
                format!(
                    "option `{}` takes a string, e.g. {} = \"...\"",
                    self.key, self.key
                ),
            )),
        }
    }

    /// A positive integer (at least 1).
    pub fn count(&self) -> syn::Result<(usize, Span)> {
        let lit = self.lit()?;
        let bad = || {
            syn::Error::new(
                lit.span(),
                format!(
                    "option `{}` takes an integer of at least 1, e.g. {} = 4",
                    self.key, self.key
                ),
            )
        };
        match lit {
            Lit::Int(i) => {
                let n = LitInt::base10_parse::<usize>(i).map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok((n, i.span()))
            }
            _ => Err(bad()),
        }
    }

    /// A buffer: `buffer = 10_000` (messages) or `buffer = "8MiB"` (bytes; the unit is checked
    /// when the generated constant is evaluated, at compile time). Returns the expression.
    pub fn buffer(&self) -> syn::Result<proc_macro2::TokenStream> {
        match self.lit()? {
            Lit::Str(s) => Ok(quote::quote_spanned! {s.span()=>
                const { ::nats_actors::Buffer::of_attribute(#s) }
            }),
            Lit::Int(_) => {
                let (n, span) = self.count()?;
                Ok(quote::quote_spanned! {span=> ::nats_actors::Buffer::messages(#n) })
            }
            other => Err(syn::Error::new(
                other.span(),
                "option `buffer` takes a number of messages or a size: buffer = 10_000, buffer = \"8MiB\"",
            )),
        }
    }

    /// A codec name: `json` or `msgpack`.
    pub fn codec(&self) -> syn::Result<Codec> {
        let s = self.str()?;
        match s.value().as_str() {
            "json" => Ok(Codec::Json),
            "msgpack" => Ok(Codec::MsgPack),
            other => Err(syn::Error::new(
                s.span(),
                format!("unknown codec \"{other}\"; expected \"json\" or \"msgpack\""),
            )),
        }
    }
}

/// Codecs the macros know by name.
#[derive(Clone, Copy)]
pub enum Codec {
    Json,
    MsgPack,
}

impl quote::ToTokens for Codec {
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        tokens.extend(match self {
            Codec::Json => quote::quote!(::nats_actors::Codec::Json),
            Codec::MsgPack => quote::quote!(::nats_actors::Codec::MsgPack),
        });
    }
}

/// Checks a queue group name: non-empty, no whitespace, no `.`-less wildcard characters.
pub fn queue_name(s: &LitStr) -> syn::Result<String> {
    let v = s.value();
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '*' || c == '>') {
        return Err(syn::Error::new(
            s.span(),
            "a queue group name must be non-empty, without whitespace, `*` or `>`",
        ));
    }
    Ok(v)
}

/// A duration literal (`"500ms"`, `"30s"`, `"5m"`, `"1h"`) in milliseconds; zero is refused.
pub fn duration_ms(lit: &LitStr) -> syn::Result<u64> {
    let v = lit.value();
    let bad = || {
        syn::Error::new(
            lit.span(),
            format!("invalid duration \"{v}\"; write a number and a unit: \"500ms\", \"30s\", \"5m\", \"1h\""),
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(scale) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(bad()),
    }
}

/// `compress = "zstd" | "gzip" | "none"` with `compress_min = <bytes>`: the expression of the
/// `Packing` of what the handler (or actor) sends, if either option is given.
pub fn compress(opts: &[Opt]) -> syn::Result<Option<proc_macro2::TokenStream>> {
    let get = |name: &str| opts.iter().find(|o| o.key == name);
    let min = match get("compress_min") {
        Some(o) => {
            let lit = o.lit()?;
            match lit {
                Lit::Int(i) => Some((i.base10_parse::<usize>()?, i.span())),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "option `compress_min` takes a size in bytes, e.g. compress_min = 4096",
                    ))
                }
            }
        }
        None => None,
    };
    let Some(o) = get("compress") else {
        return match min {
            Some((_, span)) => Err(syn::Error::new(
                span,
                "`compress_min` needs `compress = \"zstd\"` or `compress = \"gzip\"`",
            )),
            None => Ok(None),
        };
    };
    let s = o.str()?;
    let p = quote::quote!(::nats_actors::__private);
    let constructor = match s.value().as_str() {
        "none" => {
            if let Some((_, span)) = min {
                return Err(syn::Error::new(
                    span,
                    "`compress_min` does not apply to `compress = \"none\"`",
                ));
            }
            return Ok(Some(quote::quote_spanned! {s.span()=> #p::Packing::Off }));
        }
        "zstd" => quote::quote_spanned! {s.span()=> zstd },
        "gzip" => quote::quote_spanned! {s.span()=> gzip },
        other => {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "unknown `compress = \"{other}\"`; expected \"zstd\", \"gzip\" or \"none\""
                ),
            ))
        }
    };
    let min = min.map(|(n, span)| quote::quote_spanned! {span=> .min_size(#n) });
    Ok(Some(quote::quote_spanned! {s.span()=>
        #p::Packing::On(::nats_actors::Compression::#constructor() #min)
    }))
}
