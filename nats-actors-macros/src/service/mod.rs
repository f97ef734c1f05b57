//! `#[derive(Service)]` and `#[endpoints]`: a NATS micro service (ADR-32) from a struct and the
//! `#[endpoint]` methods of its `impl` block. Endpoints are request handlers: the model and the
//! expansion of `#[handlers]` are reused, with the endpoint's own attribute parser.

mod attr;
mod endpoints;
mod names;

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::handlers::{client, expand as handlers_expand};

/// Expands `#[derive(Service)]`: `Actor` (endpoints in queue group `q` unless told otherwise)
/// and `Service` (what discovery answers).
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    match attr::parse(&input) {
        Ok(service) => attr::expand(&input, &service),
        Err(e) => {
            // Still implement the traits, so that the user sees this one error, not a cascade.
            let err = e.to_compile_error();
            let stub = attr::expand(&input, &attr::ServiceAttr::fallback(&input.ident));
            quote! { #err #stub }
        }
    }
}

/// Expands `#[endpoints]` on an `impl` block.
pub fn endpoints(args: TokenStream, input: TokenStream) -> TokenStream {
    let (client_vis, args_error) = match client::parse_args(args, "endpoints") {
        Ok(v) => (v.unwrap_or_else(|| syn::parse_quote!(pub)), None),
        Err(e) => (syn::parse_quote!(pub), Some(e.to_compile_error())),
    };
    let mut item: syn::ItemImpl = match syn::parse2(input.clone()) {
        Ok(i) => i,
        Err(_) => {
            let err = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[endpoints] goes on an inherent `impl` block of a #[derive(Service)] type, e.g. `#[endpoints] impl Users { ... }`",
            )
            .to_compile_error();
            return quote! { #err #input };
        }
    };
    let (handlers, endpoints, errors) = endpoints::collect(&mut item);
    match errors {
        Some(err) => {
            let err = err.to_compile_error();
            let empty = handlers_expand::handlers_impl(&item, &[]);
            let no_endpoints = endpoints::expand(&item, &[], &[]);
            quote! { #item #args_error #err #empty #no_endpoints }
        }
        None => {
            let generated = handlers_expand::handlers_impl(&item, &handlers);
            let specs = endpoints::expand(&item, &handlers, &endpoints);
            let client = client::expand(&item, &handlers, &client_vis, &endpoints::CLIENT)
                .unwrap_or_else(|e| e.to_compile_error());
            quote! { #item #args_error #generated #specs #client }
        }
    }
}
