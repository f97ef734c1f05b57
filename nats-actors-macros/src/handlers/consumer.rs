//! `#[consumer(stream = "...", durable = "...", ...)]`: the options of a JetStream pull-consumer
//! handler, each checked at compile time with a spanned error.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::ParseStream;
use syn::{Lit, LitStr};

use crate::options::{self, Codec, Opt};
use crate::subject::{self, Template};

const KNOWN: &[&str] = &[
    "stream",
    "durable",
    "filter",
    "filters",
    "ack_wait",
    "max_deliver",
    "backoff",
    "max_ack_pending",
    "deliver_policy",
    "concurrency",
    "codec",
    "dead_letter",
    "idempotent",
    "idempotency_ttl",
    "ordered",
    "double_ack",
    "batch",
    "batch_wait",
    "compress",
    "compress_min",
];

/// Options that make no sense on an ordered (ephemeral, unacknowledged) consumer.
const NOT_ORDERED: &[&str] = &[
    "durable",
    "ack_wait",
    "max_deliver",
    "backoff",
    "max_ack_pending",
    "dead_letter",
    "idempotent",
    "idempotency_ttl",
    "double_ack",
];

/// Checked consumer options.
pub struct Consumer {
    pub stream: String,
    pub durable: Option<String>,
    pub filters: Vec<String>,
    pub ack_wait_ms: Option<u64>,
    pub max_deliver: Option<u32>,
    pub backoff_ms: Vec<u64>,
    pub max_ack_pending: Option<i64>,
    pub deliver: &'static str,
    /// `None`: the default `<STREAM>_DLQ`; `Some(None)`: off.
    pub dead_letter: Option<Option<String>>,
    pub idempotent: bool,
    pub idempotency_ttl_ms: Option<u64>,
    pub double_ack: bool,
    pub batch: Option<usize>,
    /// `batch_wait = "50ms"`, with the option's span (it needs a `Batch<T>` argument).
    pub batch_wait: Option<(u64, Span)>,
    /// The handler takes a `Batch<T>` (set where its arguments are read).
    pub batched: bool,
}

/// What `#[consumer(...)]` gives the handler model.
pub struct Parsed {
    /// The subject template (the one filter, else the stream name), for spans and `Param`.
    pub template: LitStr,
    pub subject: Template,
    pub codec: Option<Codec>,
    pub concurrency: Option<usize>,
    /// The `Packing` of `compress = ...`.
    pub compress: Option<TokenStream>,
    pub consumer: Consumer,
}

pub fn parse(attr: &syn::Attribute) -> syn::Result<Parsed> {
    let example =
        "#[consumer(stream = \"ORDERS\", durable = \"inventory\", filter = \"orders.>\")]";
    let syn::Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[consumer] needs a stream and a durable name, e.g. {example}"),
        ));
    };
    let opts =
        list.parse_args_with(|input: ParseStream| options::parse_list(input, "consumer", KNOWN))?;
    let get = |name: &str| opts.iter().find(|o| o.key == name);
    let ordered = match get("ordered") {
        Some(o) => flag(o)?,
        None => false,
    };
    if ordered {
        if let Some(o) = opts
            .iter()
            .find(|o| NOT_ORDERED.contains(&o.key.to_string().as_str()))
        {
            return Err(syn::Error::new(
                o.key.span(),
                format!(
                    "`{}` does not apply to an ordered consumer (ephemeral, no acks); remove it or `ordered = true`",
                    o.key
                ),
            ));
        }
    }
    let stream = match get("stream") {
        Some(o) => name(o, "stream")?,
        None => {
            return Err(syn::Error::new_spanned(
                attr,
                format!("#[consumer] needs `stream = \"NAME\"`, e.g. {example}"),
            ))
        }
    };
    let durable = match get("durable") {
        Some(o) => Some(name(o, "consumer")?),
        None if ordered => None,
        None => {
            return Err(syn::Error::new_spanned(
                attr,
                "#[consumer] needs `durable = \"name\"` (shared by all instances, kept across restarts), or `ordered = true` for an ephemeral replay",
            ))
        }
    };
    let (template, subject, filters) = match (get("filter"), get("filters")) {
        (Some(a), Some(b)) => {
            let _ = a;
            return Err(syn::Error::new(
                b.key.span(),
                "give either `filter` (one subject, may have {parameters}) or `filters` (several), not both",
            ));
        }
        (Some(o), None) => {
            let lit = o.str()?;
            let t = subject::parse(&lit.value()).map_err(|m| syn::Error::new(lit.span(), m))?;
            let filters = vec![t.subscribe.clone()];
            (lit, t, filters)
        }
        (None, Some(o)) => {
            let lit = o.str()?;
            let mut filters = Vec::new();
            for f in lit.value().split(',').map(str::trim) {
                let t = subject::parse(f).map_err(|m| syn::Error::new(lit.span(), m))?;
                if !t.params.is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`filters` cannot have {parameters}; use `filter` with one subject for Param<T>",
                    ));
                }
                filters.push(t.subscribe);
            }
            let template = LitStr::new(&stream, lit.span());
            let t = subject::parse(">").map_err(|m| syn::Error::new(lit.span(), m))?;
            (template, t, filters)
        }
        (None, None) => {
            let t = subject::parse(">").map_err(|m| syn::Error::new(Span::call_site(), m))?;
            (LitStr::new(&stream, Span::call_site()), t, Vec::new())
        }
    };
    let mut consumer = Consumer {
        stream,
        durable,
        filters,
        ack_wait_ms: None,
        max_deliver: None,
        backoff_ms: Vec::new(),
        max_ack_pending: None,
        deliver: "All",
        dead_letter: None,
        idempotent: false,
        idempotency_ttl_ms: None,
        double_ack: false,
        batch: None,
        batch_wait: None,
        batched: false,
    };
    let (mut codec, mut concurrency) = (None, None);
    for o in &opts {
        match o.key.to_string().as_str() {
            "ack_wait" => consumer.ack_wait_ms = Some(crate::options::duration_ms(&o.str()?)?),
            "max_deliver" => {
                let (n, span) = o.count()?;
                consumer.max_deliver = Some(u32::try_from(n).map_err(|_| {
                    syn::Error::new(span, "max_deliver is at most 4294967295")
                })?)
            }
            "backoff" => {
                let lit = o.str()?;
                for step in lit.value().split(',').map(str::trim) {
                    consumer.backoff_ms.push(crate::options::duration_ms(&LitStr::new(step, lit.span()))?);
                }
            }
            "max_ack_pending" => consumer.max_ack_pending = Some(o.count()?.0 as i64),
            "deliver_policy" => {
                let lit = o.str()?;
                consumer.deliver = match lit.value().as_str() {
                    "all" => "All",
                    "new" => "New",
                    "last" => "Last",
                    "last_per_subject" => "LastPerSubject",
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!("unknown deliver_policy \"{other}\"; expected \"all\", \"new\", \"last\" or \"last_per_subject\""),
                        ))
                    }
                }
            }
            "concurrency" => concurrency = Some(o.count()?.0),
            "codec" => codec = Some(o.codec()?),
            "dead_letter" => {
                consumer.dead_letter = Some(match o.lit()? {
                    Lit::Bool(b) if !b.value => None,
                    Lit::Bool(b) => {
                        return Err(syn::Error::new(
                            b.span(),
                            "dead letters go to <STREAM>_DLQ by default; give a stream name, e.g. dead_letter = \"ORDERS_DLQ\", or `false` to turn them off",
                        ))
                    }
                    _ => Some(name(o, "dead-letter stream")?),
                })
            }
            "idempotent" => consumer.idempotent = flag(o)?,
            "idempotency_ttl" => consumer.idempotency_ttl_ms = Some(crate::options::duration_ms(&o.str()?)?),
            "double_ack" => consumer.double_ack = flag(o)?,
            "batch" => consumer.batch = Some(o.count()?.0),
            "batch_wait" => {
                let lit = o.str()?;
                consumer.batch_wait = Some((crate::options::duration_ms(&lit)?, lit.span()));
            }
            _ => {}
        }
    }
    if consumer.deliver == "LastPerSubject" && consumer.filters.is_empty() {
        let o = get("deliver_policy")
            .map(|o| o.key.span())
            .unwrap_or_else(Span::call_site);
        return Err(syn::Error::new(
            o,
            "deliver_policy = \"last_per_subject\" needs `filter` or `filters` (the server refuses it on a whole stream)",
        ));
    }
    if consumer.idempotency_ttl_ms.is_some() && !consumer.idempotent {
        let o = get("idempotency_ttl")
            .map(|o| o.key.span())
            .unwrap_or_else(Span::call_site);
        return Err(syn::Error::new(
            o,
            "`idempotency_ttl` needs `idempotent = true`",
        ));
    }
    Ok(Parsed {
        template,
        subject,
        codec,
        concurrency,
        compress: options::compress(&opts)?,
        consumer,
    })
}

fn flag(o: &Opt) -> syn::Result<bool> {
    match o.lit()? {
        Lit::Bool(b) => Ok(b.value),
        other => Err(syn::Error::new(
            other.span(),
            format!("option `{}` takes `true` or `false`", o.key),
        )),
    }
}

/// A stream or consumer name: non-empty, no whitespace, `.`, `*`, `>`, `/` or `\`.
fn name(o: &Opt, what: &str) -> syn::Result<String> {
    let lit = o.str()?;
    let v = lit.value();
    if v.is_empty()
        || v.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
    {
        return Err(syn::Error::new(
            lit.span(),
            format!("invalid {what} name \"{v}\": use letters, digits, `-` and `_` (no `.`, `*`, `>`, `/`, spaces)"),
        ));
    }
    Ok(v)
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"` in milliseconds (at least 1 ms).
impl Consumer {
    /// `&ConsumerSpec { ... }`, promoted to a static.
    pub fn spec(&self) -> TokenStream {
        let p = quote!(::nats_actors::__private);
        let opt = |v: Option<TokenStream>| match v {
            Some(t) => quote!(::core::option::Option::Some(#t)),
            None => quote!(::core::option::Option::None),
        };
        let stream = &self.stream;
        let durable = opt(self.durable.as_ref().map(|d| quote!(#d)));
        let filters = &self.filters;
        let ack_wait = opt(self.ack_wait_ms.map(|v| quote!(#v)));
        let max_deliver = opt(self.max_deliver.map(|v| quote!(#v)));
        let backoff = &self.backoff_ms;
        let max_ack_pending = opt(self.max_ack_pending.map(|v| quote!(#v)));
        let deliver = syn::Ident::new(self.deliver, Span::call_site());
        let dead_letter = match &self.dead_letter {
            None => quote!(#p::DeadLetterTarget::Default),
            Some(None) => quote!(#p::DeadLetterTarget::Off),
            Some(Some(s)) => quote!(#p::DeadLetterTarget::Stream(#s)),
        };
        let idempotent = self.idempotent;
        let ttl = opt(self.idempotency_ttl_ms.map(|v| quote!(#v)));
        let double_ack = self.double_ack;
        let batch = opt(self.batch.map(|v| quote!(#v)));
        let batch_wait = opt(self.batch_wait.map(|(v, _)| quote!(#v)));
        let batched = self.batched;
        quote! {
            &#p::ConsumerSpec {
                stream: #stream,
                durable: #durable,
                filters: &[#(#filters),*],
                ack_wait_ms: #ack_wait,
                max_deliver: #max_deliver,
                backoff_ms: &[#(#backoff),*],
                max_ack_pending: #max_ack_pending,
                deliver: #p::DeliverFrom::#deliver,
                dead_letter: #dead_letter,
                idempotent: #idempotent,
                idempotency_ttl_ms: #ttl,
                double_ack: #double_ack,
                batch: #batch,
                batch_wait_ms: #batch_wait,
                batched: #batched,
            }
        }
    }
}
