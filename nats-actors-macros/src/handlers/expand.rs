//! Expansion of checked handlers into `impl nats_actors::__private::Handlers`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Arg, Handler, Kind, Ret};

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
    quote! {
        const _: () = {
            impl #impl_g ::nats_actors::__private::Handlers for #self_ty #where_c {
                fn handlers() -> ::std::vec::Vec<::nats_actors::__private::HandlerSpec<Self>> {
                    #[allow(unused_mut)]
                    let mut __nats_actors_specs = ::std::vec::Vec::new();
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
    let kind = match h.kind {
        Kind::Subscribe => quote!(#p::HandlerKind::Subscribe),
        Kind::Request => quote!(#p::HandlerKind::Request),
        Kind::Consume => quote!(#p::HandlerKind::Consume),
    };
    let consumer = option(h.consumer.as_ref().map(|c| c.spec()));
    let queue = option(h.queue.as_ref().map(|q| quote!(#q)));
    let codec = option(h.codec.map(|c| quote!(#c)));
    let concurrency = option(h.concurrency.map(|c| quote!(#c)));
    let exclusive = h.mutable;
    quote! {
        #p::HandlerSpec {
            method: #method_name,
            kind: #kind,
            template: #template,
            subject: #subject,
            queue: #queue,
            codec: #codec,
            concurrency: #concurrency,
            exclusive: #exclusive,
            consumer: #consumer,
            spawn: #p::spawn::<Self, #index>,
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
            Arg::Context => {
                call_args.push(quote!(#ctx));
                continue;
            }
            Arg::Payload(ty) => quote_spanned! {ty.span()=> #p::decode::<#ty>(#ctx) },
            Arg::Param { ty, name, index } => {
                quote_spanned! {ty.span()=> #p::param::<#ty>(#ctx, #index, #name) }
            }
            Arg::Extract(ty) => {
                quote_spanned! {ty.span()=> <#ty as ::nats_actors::FromContext>::from_context(#ctx) }
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
        (Ret::Result(ty) | Ret::Value(ty), Kind::Subscribe | Kind::Consume) => {
            quote_spanned! {ty.span()=> #p::outcome(__nats_actors_ret) }
        }
        (Ret::Result(ty), Kind::Request) => {
            quote_spanned! {ty.span()=> #p::reply_result(__nats_actors_ret, #ctx) }
        }
        (Ret::Value(ty), Kind::Request) => {
            quote_spanned! {ty.span()=> #p::reply_value(__nats_actors_ret, #ctx) }
        }
    };
    quote! {
        async move {
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

fn option(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}
