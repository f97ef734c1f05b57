//! `#[kv_watch(bucket = "...", key = "...", from = "...")]` and `#[object_watch(bucket =
//! "...", from = "...")]`: handlers of a KV bucket's or an object store's changes, each made
//! an ordered consumer on the bucket's stream, each option checked with a spanned error.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::LitStr;

use super::consumer::{Consumer, Parsed};
use crate::options;
use crate::subject;

/// What differs between the two kinds of bucket watched.
struct Watched {
    attribute: &'static str,
    example: &'static str,
    known: &'static [&'static str],
    /// The bucket's stream: this and the bucket's name.
    stream: &'static str,
    /// The subjects watched, from the bucket's name and the key.
    subject: fn(&str, &str) -> String,
    /// `from = "..."` values and the deliver policy each means; the first is the default.
    from: &'static [(&'static str, &'static str)],
    from_help: &'static str,
}

const KV: Watched = Watched {
    attribute: "kv_watch",
    example: "#[kv_watch(bucket = \"config\", key = \"services.{name}\")]",
    known: &["bucket", "key", "from", "codec"],
    stream: "KV_",
    subject: |bucket, key| format!("$KV.{bucket}.{key}"),
    from: &[
        ("last_per_key", "LastPerSubject"),
        ("new", "New"),
        ("all_history", "All"),
    ],
    from_help: "\"last_per_key\" (the default: each key's current value, then changes), \"new\" (changes only) or \"all_history\"",
};

const OBJECTS: Watched = Watched {
    attribute: "object_watch",
    example: "#[object_watch(bucket = \"uploads\")]",
    known: &["bucket", "from"],
    stream: "OBJ_",
    subject: |bucket, _| format!("$O.{bucket}.M.>"),
    from: &[("last_per_object", "LastPerSubject"), ("new", "New")],
    from_help: "\"last_per_object\" (the default: each object's current info, then changes) or \"new\" (changes only)",
};

pub fn parse_kv(attr: &syn::Attribute) -> syn::Result<Parsed> {
    parse(attr, &KV)
}

pub fn parse_objects(attr: &syn::Attribute) -> syn::Result<Parsed> {
    parse(attr, &OBJECTS)
}

fn parse(attr: &syn::Attribute, w: &Watched) -> syn::Result<Parsed> {
    let (name, example) = (w.attribute, w.example);
    let syn::Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[{name}] needs a bucket, e.g. {example}"),
        ));
    };
    let opts =
        list.parse_args_with(|input: ParseStream| options::parse_list(input, name, w.known))?;
    let get = |key: &str| opts.iter().find(|o| o.key == key);
    let Some(bucket) = get("bucket") else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[{name}] needs `bucket = \"NAME\"`, e.g. {example}"),
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
    let full = (w.subject)(&bucket, &key.value());
    let t = subject::parse(&full).map_err(|m| syn::Error::new(key.span(), m))?;
    let deliver = match get("from") {
        None => w.from[0].1,
        Some(o) => {
            let lit = o.str()?;
            let value = lit.value();
            match w.from.iter().find(|(v, _)| *v == value) {
                Some((_, policy)) => policy,
                None => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("unknown `from = \"{value}\"`; expected {}", w.from_help),
                    ))
                }
            }
        }
    };
    let codec = get("codec").map(|o| o.codec()).transpose()?;
    Ok(Parsed {
        template: LitStr::new(&full, key.span()),
        compress: None,
        consumer: Consumer {
            stream: format!("{}{bucket}", w.stream),
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
            batch_wait: None,
            batched: false,
        },
        subject: t,
        codec,
        concurrency: None,
    })
}
