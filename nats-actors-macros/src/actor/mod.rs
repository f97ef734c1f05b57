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
                _ => unreachable!("filtered by parse_list"),
            }
        }
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
                    }
                }
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
