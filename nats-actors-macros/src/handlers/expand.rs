//! Expansion of checked handlers into `impl nats_actors::__private::Handlers`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Arg, Handler, Kind, Ret, Role};

/// The `Handlers` implementation for the impl block's type, listing `handlers`.
pub fn handlers_impl(item: &syn::ItemImpl, handlers: &[Handler]) -> TokenStream {
    let (impl_g, _, where_c) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let specs = handlers.iter().enumerate().map(|(i, h)| {
        let (cfgs, spec) = (&h.cfgs, spec(i, h));
        quote!(#(#cfgs)* __nats_actors_specs.push(#spec);)
    });
    let invokes = handlers.iter().enumerate().map(|(i, h)| {
        let body = invoke_body(h);
        let cfgs = &h.cfgs;
        quote! {
            #(#cfgs)*
            impl #impl_g ::nats_actors::__private::Invoke<#i> for #self_ty #where_c {
                fn invoke<'__nats_actors_a>(
                    __nats_actors_cell: &'__nats_actors_a ::nats_actors::__private::Cell<Self>,
                    __nats_actors_ctx: &'__nats_actors_a ::nats_actors::Context,
                ) -> impl ::core::future::Future<Output = ::nats_actors::__private::Outcome>
                       + ::core::marker::Send + '__nats_actors_a {
                    #body
                }
            }
        }
    });
    let jetstream = handlers
        .iter()
        .any(|h| h.kind.jetstream())
        .then(|| quote!(::nats_actors::__require_jetstream!();));
    // `#[command]` and `#[ask]` need `#[actor(key = ...)]`: one error where they are.
    let keyed = handlers.iter().find(|h| h.kind.keyed()).map(|h| {
        let span = h.method.span();
        quote_spanned! {span=> ::nats_actors::__private::require_keyed::<Self>(); }
    });
    quote! {
        #jetstream
        const _: () = {
            impl #impl_g ::nats_actors::__private::Handlers for #self_ty #where_c {
                fn handlers() -> ::std::vec::Vec<::nats_actors::__private::HandlerSpec<Self>> {
                    #[allow(unused_mut)]
                    let mut __nats_actors_specs = ::std::vec::Vec::new();
                    #keyed
                    #(#specs)*
                    __nats_actors_specs
                }
            }
            #(#invokes)*
        };
    }
}

fn spec(index: usize, h: &Handler) -> TokenStream {
    let p = quote!(::nats_actors::__private);
    let method = &h.method;
    let method_name = method.to_string();
    let template = &h.template;
    let subject = &h.subject.subscribe;
    let (kind, start) = match h.kind {
        Kind::Subscribe => (quote!(&#p::SUBSCRIBE), quote!(#p::start_core)),
        Kind::Request => (quote!(&#p::REQUEST), quote!(#p::start_core)),
        Kind::Consume => (quote!(&#p::CONSUME), quote!(#p::start_consumer)),
        // An ordered consumer on the bucket's stream, with a kind of its own.
        Kind::KvWatch => (quote!(&#p::KV_WATCH), quote!(#p::start_consumer)),
        Kind::ObjectWatch => (quote!(&#p::OBJECT_WATCH), quote!(#p::start_consumer)),
        // Started together by the keyed actor's host, which calls their turns.
        Kind::Command => (quote!(&#p::COMMAND), quote!(#p::start_unkeyed)),
        Kind::Ask => (quote!(&#p::ASK), quote!(#p::start_unkeyed)),
    };
    let turn = match h.kind.keyed() {
        true => quote!(::core::option::Option::Some(#p::turn::<Self, #index>)),
        false => quote!(::core::option::Option::None),
    };
    let consumer = option(h.consumer.as_ref().map(|c| c.spec()));
    let queue = option(h.queue.as_ref().map(|q| quote!(#q)));
    let codec = option(h.codec.map(|c| quote!(#c)));
    let concurrency = option(h.concurrency.map(|c| quote!(#c)));
    let buffer = option(h.buffer.clone());
    let compress = option(h.compress.clone());
    let exclusive = h.mutable;
    // The schemas of the payload and the reply, where their types have them.
    let schema = |ty: Option<&syn::Type>| match ty {
        Some(ty) => quote_spanned! {ty.span()=> {
            #[allow(unused_imports)]
            use #p::{NoSchema as _, SchemaByType as _};
            (&&#p::Probe::<#ty>::new()).schema()
        }},
        None => quote!(::core::option::Option::None),
    };
    let payload = schema(h.args.iter().find_map(|a| match a {
        Arg::Other {
            ty,
            role: Role::Payload,
        } if !matches!(ty, syn::Type::Reference(_)) => Some(ty),
        _ => None,
    }));
    let reply_ty = match (&h.ret, h.kind) {
        (Ret::Value(ty), Kind::Request | Kind::Ask) => Some(ty.clone()),
        (Ret::Result(ty), Kind::Request | Kind::Ask) => super::client::first_generic(ty),
        _ => None,
    };
    let reply = schema(reply_ty.as_ref());
    quote! {
        #p::HandlerSpec {
            method: #method_name,
            kind: #kind,
            template: #template,
            subject: #subject,
            queue: #queue,
            codec: #codec,
            concurrency: #concurrency,
            buffer: #buffer,
            compress: #compress,
            exclusive: #exclusive,
            consumer: #consumer,
            start: #start::<Self, #index>,
            turn: #turn,
            payload: #payload,
            reply: #reply,
        }
    }
}

/// The body of `Invoke::invoke` for one handler: extract, call, turn the result into an outcome.
fn invoke_body(h: &Handler) -> TokenStream {
    let p = quote!(::nats_actors::__private);
    let method = &h.method;
    let ctx = format_ident!("__nats_actors_ctx");
    let mut bindings = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in h.args.iter().enumerate() {
        let var = format_ident!("__nats_actors_arg{}", i);
        let extract = match arg {
            Arg::Param { ty, name, index } => {
                quote_spanned! {ty.span()=> #p::param::<#ty>(#ctx, #index, #name) }
            }
            // A reference is never the payload (payloads are owned): an extractor or an error.
            Arg::Other { ty, .. } if matches!(ty, syn::Type::Reference(_)) => {
                quote_spanned! {ty.span()=>
                    ::core::result::Result::map_err(
                        <#ty as ::nats_actors::FromContext<'_>>::from_context(#ctx),
                        ::core::convert::Into::<::nats_actors::HandlerError>::into,
                    )
                }
            }
            Arg::Other { ty, .. } => {
                quote_spanned! {ty.span()=> (&&#p::Probe::<#ty>::new()).extract(#ctx) }
            }
        };
        bindings.push(quote! {
            let #var = match #extract {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(e) => return #p::Outcome::Rejected(e),
            };
        });
        call_args.push(quote!(#var));
    }
    let guard = if h.mutable {
        quote! {
            let mut __nats_actors_guard = match __nats_actors_cell.write().await {
                ::core::result::Result::Ok(g) => g,
                ::core::result::Result::Err(e) => return #p::Outcome::Failed(e),
            };
        }
    } else {
        quote! {
            let __nats_actors_guard = match __nats_actors_cell.free() {
                ::core::option::Option::Some(g) => g,
                ::core::option::Option::None => __nats_actors_cell.read().await,
            };
        }
    };
    let receiver = if h.mutable {
        quote!(&mut *__nats_actors_guard)
    } else {
        quote!(&*__nats_actors_guard)
    };
    let finish = match (&h.ret, h.kind) {
        (Ret::Unit, _) => quote!(#p::outcome(__nats_actors_ret)),
        (
            Ret::Result(ty) | Ret::Value(ty),
            Kind::Subscribe | Kind::Consume | Kind::KvWatch | Kind::ObjectWatch | Kind::Command,
        ) => {
            quote_spanned! {ty.span()=> #p::outcome(__nats_actors_ret) }
        }
        (Ret::Result(ty) | Ret::Value(ty), Kind::Request | Kind::Ask) => {
            quote_spanned! {ty.span()=>
                (&&#p::Probe::of(&__nats_actors_ret)).reply(__nats_actors_ret, #ctx)
            }
        }
    };
    let checks = checks(h);
    quote! {
        async move {
            #[allow(unused_imports)]
            use #p::{ArgByExtractor as _, ArgByPayload as _, ReplyByResult as _, ReplyByValue as _};
            #checks
            #(#bindings)*
            let __nats_actors_ret = {
                #guard
                // Called through `Self::`, so that no method of the guard can shadow it.
                Self::#method(#receiver, #(#call_args),*).await
            };
            #finish
        }
    }
}

/// Compile-time checks, in a closure that is never called: at most one payload argument, and,
/// where a client is generated, that it sends the payload and leaves the extractors out as the
/// traits of their types say, and decodes the reply the handler sends.
fn checks(h: &Handler) -> TokenStream {
    let p = quote!(::nats_actors::__private);
    let mut lines = Vec::new();
    for arg in &h.args {
        let Arg::Other { ty, role } = arg else {
            continue;
        };
        if matches!(ty, syn::Type::Reference(_)) {
            // Always an extractor, checked where it is extracted.
            continue;
        }
        let probe = quote_spanned! {ty.span()=> (&&#p::Probe::<#ty>::new()).role() };
        lines.push(quote_spanned! {ty.span()=> let __nats_actors_count = #p::then(__nats_actors_count, #probe); });
        if h.client {
            lines.push(match role {
                Role::Payload => quote_spanned! {ty.span()=> #p::client_sends(#probe); },
                Role::Extractor => quote_spanned! {ty.span()=> #p::client_skips(#probe); },
            });
        }
    }
    if let (true, Ret::Value(ty)) = (h.client, &h.ret) {
        lines.push(quote_spanned! {ty.span()=>
            #p::client_decodes_whole((&&#p::Probe::<#ty>::new()).whole());
        });
    }
    quote! {
        let _ = || {
            #[allow(unused_imports)]
            use #p::{ArgByExtractor as _, ArgByPayload as _, ReplyAliased as _, ReplyWhole as _};
            let __nats_actors_count = #p::NoPayload;
            #(#lines)*
            let _ = __nats_actors_count;
        };
    }
}

fn option(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}
