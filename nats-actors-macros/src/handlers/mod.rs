//! `#[handlers]` on an `impl` block: parse the handler methods into a model, check them, and
//! expand to the `Handlers` implementation the runtime calls.

pub(crate) mod client;
mod consumer;
pub(crate) mod expand;
mod keyed_ref;
pub(crate) mod model;
mod watch;

use proc_macro2::TokenStream;
use quote::quote;

/// Expands `#[handlers]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let (client_vis, args_error) = match client::parse_args(args, "handlers") {
        Ok(v) => (v, None),
        Err(e) => (None, Some(e.to_compile_error())),
    };
    let mut item: syn::ItemImpl = match syn::parse2(input.clone()) {
        Ok(i) => i,
        Err(_) => {
            let err = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[handlers] goes on an inherent `impl` block, e.g. `#[handlers] impl MyActor { ... }`",
            )
            .to_compile_error();
            return quote! { #err #input };
        }
    };
    let (mut handlers, errors) = model::collect(&mut item);
    // A keyed actor always gets its reference: what it sends is checked like a client's.
    for h in handlers.iter_mut().filter(|h| h.kind.keyed()) {
        h.client = true;
    }
    if client_vis.is_some() {
        for h in handlers
            .iter_mut()
            .filter(|h| h.kind == model::Kind::Request)
        {
            h.client = true;
        }
    }
    match errors {
        // Emit the user's impl (handler attributes removed) beside the error, and an empty
        // handler list, so that one mistake gives one error.
        Some(err) => {
            let err = err.to_compile_error();
            let empty = expand::handlers_impl(&item, &[]);
            quote! { #item #args_error #err #empty }
        }
        None => {
            let generated = expand::handlers_impl(&item, &handlers);
            let client = match client_vis {
                Some(vis) => client::expand(&item, &handlers, &vis, &client::HANDLERS)
                    .unwrap_or_else(|e| e.to_compile_error()),
                None => TokenStream::new(),
            };
            let reference = match handlers.iter().any(|h| h.kind.keyed()) {
                true => {
                    keyed_ref::expand(&item, &handlers).unwrap_or_else(|e| e.to_compile_error())
                }
                false => TokenStream::new(),
            };
            quote! { #item #args_error #generated #client #reference }
        }
    }
}
