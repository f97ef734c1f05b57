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
    "restart",
    "max_restarts",
    "restart_window",
];

/// The model of `#[actor(...)]`.
#[derive(Default)]
struct ActorAttr {
    name: Option<LitStr>,
    queue: Option<String>,
    codec: Option<Codec>,
    instances: Option<(usize, proc_macro2::Span)>,
    concurrency: Option<usize>,
    buffer: Option<TokenStream>,
    /// `restart = "reset"`: a panic resets the state to `Default::default()`.
    reset: bool,
    max_restarts: Option<(usize, proc_macro2::Span)>,
    restart_window_ms: Option<(u64, proc_macro2::Span)>,
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
        for opt in opts {
            match opt.key.to_string().as_str() {
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
                _ => unreachable!("filtered by parse_list"),
            }
        }
    }
    if let (Some((_, span)), None) = (out.restart_window_ms, out.max_restarts) {
        return Err(syn::Error::new(
            span,
            "`restart_window` bounds `max_restarts`; set `max_restarts = N` too",
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
    let restart_limit = opt_tokens(attr.max_restarts.map(|(n, _)| {
        let window = attr.restart_window_ms.map_or(60_000, |(ms, _)| ms);
        quote!((#n as u32, ::core::time::Duration::from_millis(#window)))
    }));
    let reset = attr.reset;
    // The fresh state a panic resets to: `Default`, checked where `restart` is written.
    let fresh = attr.reset.then(|| {
        quote_spanned! {ident.span()=>
            fn restart_state() -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::default::Default>::default())
            }
        }
    });
    let (count, instances) = match attr.instances {
        Some((n, span)) if n > 1 => (
            n,
            quote_spanned! {span=>
                let mut __nats_actors_all = ::std::vec::Vec::with_capacity(#n);
                for _ in 1..#n {
                    __nats_actors_all.push(::core::clone::Clone::clone(&self));
                }
                __nats_actors_all.push(self);
                __nats_actors_all
            },
        ),
        _ => (1, quote!(::std::vec![self])),
    };
    let handlers = quote_spanned! {ident.span()=>
        <Self as ::nats_actors::__private::Handlers>::handlers()
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
                        reset: #reset,
                        restart_limit: #restart_limit,
                    }
                }
                #fresh
                fn handlers() -> ::std::vec::Vec<::nats_actors::__private::HandlerSpec<Self>> {
                    #handlers
                }
                fn instances(self) -> ::std::vec::Vec<Self> {
                    #instances
                }
            }
        };
    }
}

fn opt_tokens(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}
