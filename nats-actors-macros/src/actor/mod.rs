//! `#[derive(Actor)]`: parse the `#[actor(...)]` options, then implement `nats_actors::Actor`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{DeriveInput, LitStr};

use crate::options::{self, Codec};

const KNOWN: &[&str] = &[
    "name",
    "queue",
    "codec",
    "instances",
    "concurrency",
    "buffer",
    "compress",
    "compress_min",
    "restart",
    "max_restarts",
    "restart_window",
    "on_limit",
    "key",
    "partitions",
    "idle",
    "max_active",
    "replicas",
    "attempts",
];

/// The options that only a keyed actor takes.
const KEYED_ONLY: &[&str] = &["partitions", "idle", "max_active", "replicas", "attempts"];

/// The model of `#[actor(...)]`.
#[derive(Default)]
struct ActorAttr {
    name: Option<LitStr>,
    queue: Option<String>,
    codec: Option<Codec>,
    instances: Option<(usize, proc_macro2::Span)>,
    concurrency: Option<usize>,
    buffer: Option<TokenStream>,
    /// The `Packing` of `compress = ...`.
    compress: Option<TokenStream>,
    /// `restart = "reset"`: a panic resets the state to `Default::default()`.
    reset: bool,
    max_restarts: Option<(usize, proc_macro2::Span)>,
    restart_window_ms: Option<(u64, proc_macro2::Span)>,
    /// `on_limit = "stop_actor"`: past `max_restarts`, stop this instance, not the runtime.
    stop_actor: Option<(bool, proc_macro2::Span)>,
    /// `key = "account.{id}"`: one actor per key, and its options.
    key: Option<LitStr>,
    partitions: Option<usize>,
    idle_ms: Option<u64>,
    max_active: Option<usize>,
    replicas: Option<usize>,
    attempts: Option<usize>,
    /// The first keyed-only option given, for the error when `key` is missing.
    keyed_only: Option<(String, proc_macro2::Span)>,
}

fn parse_attr(input: &DeriveInput) -> syn::Result<ActorAttr> {
    let mut out = ActorAttr::default();
    let mut seen = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("actor")) {
        if seen {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate #[actor(...)] attribute; put every option in one",
            ));
        }
        seen = true;
        let opts = attr
            .parse_args_with(|s: syn::parse::ParseStream| options::parse_list(s, "actor", KNOWN))?;
        out.compress = options::compress(&opts)?;
        for opt in opts {
            let option = opt.key.to_string();
            if KEYED_ONLY.contains(&option.as_str()) && out.keyed_only.is_none() {
                out.keyed_only = Some((option.clone(), opt.key.span()));
            }
            match option.as_str() {
                "name" => {
                    let s = opt.str()?;
                    if s.value().is_empty() || s.value().contains(char::is_whitespace) {
                        return Err(syn::Error::new(
                            s.span(),
                            "an actor name must be non-empty and without whitespace",
                        ));
                    }
                    out.name = Some(s);
                }
                "queue" => out.queue = Some(options::queue_name(&opt.str()?)?),
                "codec" => out.codec = Some(opt.codec()?),
                "instances" => out.instances = Some(opt.count()?),
                "concurrency" => out.concurrency = Some(opt.count()?.0),
                "buffer" => out.buffer = Some(opt.buffer()?),
                "compress" | "compress_min" => {}
                "restart" => {
                    let s = opt.str()?;
                    out.reset = match s.value().as_str() {
                        "keep" => false,
                        "reset" => true,
                        other => {
                            return Err(syn::Error::new(
                                s.span(),
                                format!("unknown `restart = \"{other}\"`; expected \"keep\" (the default: the state stays as the panic left it) or \"reset\" (the state becomes `Default::default()`)"),
                            ))
                        }
                    };
                }
                "max_restarts" => out.max_restarts = Some(opt.count()?),
                "restart_window" => {
                    let s = opt.str()?;
                    out.restart_window_ms = Some((options::duration_ms(&s)?, s.span()));
                }
                "on_limit" => {
                    let s = opt.str()?;
                    let stop_actor = match s.value().as_str() {
                        "stop_runtime" => false,
                        "stop_actor" => true,
                        other => {
                            return Err(syn::Error::new(
                                s.span(),
                                format!("unknown `on_limit = \"{other}\"`; expected \"stop_runtime\" (the default: the process exits non-zero) or \"stop_actor\" (this instance stops, the runtime goes on)"),
                            ))
                        }
                    };
                    out.stop_actor = Some((stop_actor, s.span()));
                }
                "key" => {
                    let s = opt.str()?;
                    let t = crate::subject::parse(&s.value())
                        .map_err(|m| syn::Error::new(s.span(), m))?;
                    let wildcard = s.value().split('.').any(|t| t == "*" || t == ">");
                    if t.params.is_empty() || wildcard {
                        return Err(syn::Error::new(
                            s.span(),
                            "a key is literal tokens and at least one `{param}`, without `*` or `>`, e.g. \"account.{id}\"",
                        ));
                    }
                    out.key = Some(s);
                }
                "partitions" => {
                    let (n, span) = opt.count()?;
                    if n > 1024 {
                        return Err(syn::Error::new(span, "`partitions` is 1 to 1024"));
                    }
                    out.partitions = Some(n);
                }
                "idle" => out.idle_ms = Some(options::duration_ms(&opt.str()?)?),
                "max_active" => out.max_active = Some(opt.count()?.0),
                "replicas" => out.replicas = Some(opt.count()?.0),
                "attempts" => out.attempts = Some(opt.count()?.0),
                _ => unreachable!("filtered by parse_list"),
            }
        }
    }
    if let (Some((option, span)), None) = (&out.keyed_only, &out.key) {
        return Err(syn::Error::new(
            *span,
            format!("`{option}` is an option of keyed actors; add `key = \"...\"`"),
        ));
    }
    if let Some(key) = &out.key {
        if out.reset || out.max_restarts.is_some() || out.instances.is_some() || out.queue.is_some()
        {
            return Err(syn::Error::new(
                key.span(),
                "a keyed actor has one instance per key, placed by the server, and a failed turn leaves no trace in its state: `instances`, `queue`, `restart` and `max_restarts` do not apply",
            ));
        }
    }
    if let (Some((_, span)), None) = (out.restart_window_ms, out.max_restarts) {
        return Err(syn::Error::new(
            span,
            "`restart_window` bounds `max_restarts`; set `max_restarts = N` too",
        ));
    }
    if let (Some((_, span)), None) = (out.stop_actor, out.max_restarts) {
        return Err(syn::Error::new(
            span,
            "`on_limit` says what happens past `max_restarts`; set `max_restarts = N` too",
        ));
    }
    Ok(out)
}

/// Expands `#[derive(Actor)]`.
pub fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let ident = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let attr = match parse_attr(&input) {
        Ok(a) => a,
        Err(e) => {
            // Still implement the trait so the user sees this one error, not a cascade.
            let err = e.to_compile_error();
            let keyed = mentions_key(&input).then(|| {
                quote! { impl #impl_g ::nats_actors::__private::KeyedActor for #ident #ty_g #where_c {} }
            });
            return quote! {
                #err
                const _: () = {
                    impl #impl_g ::nats_actors::Actor for #ident #ty_g #where_c {
                        fn options() -> ::nats_actors::__private::ActorOptions {
                            ::nats_actors::__private::ActorOptions::new(::core::stringify!(#ident))
                        }
                        fn handlers() -> ::std::vec::Vec<::nats_actors::__private::HandlerSpec<Self>> {
                            ::std::vec::Vec::new()
                        }
                        fn instances(self) -> ::std::vec::Vec<Self> { ::std::vec![self] }
                    }
                    #keyed
                };
            };
        }
    };
    let name = match &attr.name {
        Some(n) => quote!(#n),
        None => quote!(::core::stringify!(#ident)),
    };
    let queue = opt_tokens(attr.queue.as_ref().map(|q| quote!(#q)));
    let codec = opt_tokens(attr.codec.map(|c| quote!(#c)));
    let concurrency = opt_tokens(attr.concurrency.map(|c| quote!(#c)));
    let buffer = opt_tokens(attr.buffer.clone());
    let compress = opt_tokens(attr.compress.clone());
    let restart_limit = opt_tokens(attr.max_restarts.map(|(n, _)| {
        let window = attr.restart_window_ms.map_or(60_000, |(ms, _)| ms);
        quote!((#n as u32, ::core::time::Duration::from_millis(#window)))
    }));
    let reset = attr.reset;
    let stop_actor = attr.stop_actor.is_some_and(|(stop, _)| stop);
    // The fresh state a panic resets to: `Default`, checked where `restart` is written.
    let fresh = attr.reset.then(|| {
        quote_spanned! {ident.span()=>
            fn restart_state() -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::default::Default>::default())
            }
        }
    });
    let (count, instances) = match attr.instances {
        Some((n, span)) if n > 1 => {
            // Spanned at `instances`, where a missing `Clone` is reported; `self` is bound at
            // the call site to a name of that span (the option may come from a user's
            // `macro_rules!`, whose hygiene `self` must not take).
            let this = syn::Ident::new("__nats_actors_this", span);
            let body = quote_spanned! {span=>
                let mut __nats_actors_all = ::std::vec::Vec::with_capacity(#n);
                for _ in 1..#n {
                    __nats_actors_all.push(::core::clone::Clone::clone(&#this));
                }
                __nats_actors_all.push(#this);
                __nats_actors_all
            };
            (n, quote! { let #this = self; #body })
        }
        _ => (1, quote!(::std::vec![self])),
    };
    let handlers = quote_spanned! {ident.span()=>
        <Self as ::nats_actors::__private::Handlers>::handlers()
    };
    let keyed = attr.key.as_ref().map(|key| keyed(&attr, key, &input));
    let (keyed_fn, keyed_impl) = match keyed {
        Some((f, i)) => (Some(f), Some(i)),
        None => (None, None),
    };
    quote! {
        const _: () = {
            impl #impl_g ::nats_actors::Actor for #ident #ty_g #where_c {
                fn options() -> ::nats_actors::__private::ActorOptions {
                    ::nats_actors::__private::ActorOptions {
                        name: #name,
                        queue: #queue,
                        codec: #codec,
                        instances: #count,
                        concurrency: #concurrency,
                        buffer: #buffer,
                        compress: #compress,
                        reset: #reset,
                        restart_limit: #restart_limit,
                        stop_actor_on_limit: #stop_actor,
                    }
                }
                #fresh
                #keyed_fn
                fn handlers() -> ::std::vec::Vec<::nats_actors::__private::HandlerSpec<Self>> {
                    #handlers
                }
                fn instances(self) -> ::std::vec::Vec<Self> {
                    #instances
                }
            }
            #keyed_impl
        };
    }
}

/// `Actor::keyed` and the `KeyedActor` marker of a keyed actor; its state must be `Default`,
/// `Serialize` and `Deserialize` (checked where `key` is written).
fn keyed(attr: &ActorAttr, key: &LitStr, input: &DeriveInput) -> (TokenStream, TokenStream) {
    let p = quote!(::nats_actors::__private);
    let ident = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let mut set = Vec::new();
    if let Some(n) = attr.partitions {
        let n = n as u16;
        set.push(quote!(options.partitions = #n;));
    }
    if let Some(ms) = attr.idle_ms {
        set.push(quote!(options.idle = ::core::time::Duration::from_millis(#ms);));
    }
    if let Some(n) = attr.max_active {
        set.push(quote!(options.max_active = #n;));
    }
    if let Some(n) = attr.replicas {
        set.push(quote!(options.replicas = #n;));
    }
    if let Some(n) = attr.attempts {
        let n = n as u32;
        set.push(quote!(options.attempts = #n;));
    }
    let keyed_fn = quote_spanned! {key.span()=>
        fn keyed() -> ::core::option::Option<#p::Keyed<Self>> {
            #[allow(unused_mut)]
            let mut options = #p::KeyedOptions::new(#key);
            #(#set)*
            ::core::option::Option::Some(#p::keyed::<Self>(options))
        }
    };
    (
        keyed_fn,
        quote! {
            ::nats_actors::__require_jetstream!();
            impl #impl_g #p::KeyedActor for #ident #ty_g #where_c {}
        },
    )
}

/// Whether `#[actor(...)]` sets `key` (read from the tokens, for when it does not parse).
fn mentions_key(input: &DeriveInput) -> bool {
    input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("actor"))
        .filter_map(|a| a.meta.require_list().ok())
        .any(|l| {
            l.tokens
                .clone()
                .into_iter()
                .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "key"))
        })
}

fn opt_tokens(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}
