//! `key = value` option lists shared by every attribute, with unknown and duplicate detection.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Ident, Lit, LitInt, LitStr, Token};

/// One `key = literal` option as written, kept for its spans.
pub struct Opt {
    pub key: Ident,
    pub value: Lit,
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
        input.parse::<Token![=]>()?;
        let value: Lit = input.parse()?;
        opts.push(Opt { key, value });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(opts)
}

impl Opt {
    pub fn str(&self) -> syn::Result<LitStr> {
        match &self.value {
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
        let bad = || {
            syn::Error::new(
                self.value.span(),
                format!(
                    "option `{}` takes an integer of at least 1, e.g. {} = 4",
                    self.key, self.key
                ),
            )
        };
        match &self.value {
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
