//! `#[kv_watch(bucket = "...", key = "...", from = "...")]`: a handler of a KV bucket's changes,
//! made an ordered consumer on the bucket's stream, each option checked with a spanned error.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::LitStr;

use super::consumer::{Consumer, Parsed};
use crate::options;
use crate::subject;

const KNOWN: &[&str] = &["bucket", "key", "from", "codec"];

pub fn parse(attr: &syn::Attribute) -> syn::Result<Parsed> {
    let example = "#[kv_watch(bucket = \"config\", key = \"services.{name}\")]";
    let syn::Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[kv_watch] needs a bucket, e.g. {example}"),
        ));
    };
    let opts =
        list.parse_args_with(|input: ParseStream| options::parse_list(input, "kv_watch", KNOWN))?;
    let get = |name: &str| opts.iter().find(|o| o.key == name);
    let Some(bucket) = get("bucket") else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[kv_watch] needs `bucket = \"NAME\"`, e.g. {example}"),
        ));
    };
    let bucket_lit = bucket.str()?;
    let bucket = bucket_lit.value();
    if bucket.is_empty()
        || !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(syn::Error::new(
            bucket_lit.span(),
            format!("invalid bucket name \"{bucket}\": use letters, digits, `-` and `_`"),
        ));
    }
    let key = match get("key") {
        Some(o) => o.str()?,
        None => LitStr::new(">", Span::call_site()),
    };
    // Parsed under the bucket's subject prefix, so that `{parameters}` count its tokens.
    let full = format!("$KV.{bucket}.{}", key.value());
    let t = subject::parse(&full).map_err(|m| syn::Error::new(key.span(), m))?;
    let deliver = match get("from") {
        None => "LastPerSubject",
        Some(o) => {
            let lit = o.str()?;
            match lit.value().as_str() {
                "last_per_key" => "LastPerSubject",
                "new" => "New",
                "all_history" => "All",
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("unknown `from = \"{other}\"`; expected \"last_per_key\" (the default: each key's current value, then changes), \"new\" (changes only) or \"all_history\""),
                    ))
                }
            }
        }
    };
    let codec = get("codec").map(|o| o.codec()).transpose()?;
    Ok(Parsed {
        template: LitStr::new(&full, key.span()),
        consumer: Consumer {
            stream: format!("KV_{bucket}"),
            durable: None,
            filters: vec![t.subscribe.clone()],
            ack_wait_ms: None,
            max_deliver: None,
            backoff_ms: Vec::new(),
            max_ack_pending: None,
            deliver,
            dead_letter: Some(None),
            idempotent: false,
            idempotency_ttl_ms: None,
            double_ack: false,
            batch: None,
        },
        subject: t,
        codec,
        concurrency: None,
    })
}
