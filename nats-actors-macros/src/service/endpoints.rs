//! `#[endpoint(...)]` methods of an `#[endpoints]` block: read the endpoint options into the
//! request-handler model (the group prefixes the subject), and list what discovery says about
//! each endpoint (name, metadata, request and reply schemas).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItemFn, LitStr};

use super::names;
use crate::handlers::client::{self, Origin};
use crate::handlers::model::{self, Arg, Handler, HandlerAttr, Kind, Ret, Role};
use crate::options;
use crate::subject;

const KNOWN: &[&str] = &[
    "subject",
    "name",
    "group",
    "queue_group",
    "metadata",
    "codec",
    "concurrency",
    "buffer",
    "compress",
    "compress_min",
];

/// The origin of the clients `#[endpoints]` generates.
pub const CLIENT: Origin = Origin {
    r#macro: "#[endpoints]",
    calls: "endpoints",
    rename: "rename the method; the endpoint keeps its name with #[endpoint(name = \"...\")]",
};

/// What an endpoint adds to its request handler.
pub struct EndpointAttr {
    method: String,
    name: String,
    /// Where the name was given (or the method name).
    span: proc_macro2::Span,
    metadata: Vec<(LitStr, LitStr)>,
}

/// The handlers and endpoint options of `item`, and every error combined.
pub fn collect(item: &mut syn::ItemImpl) -> (Vec<Handler>, Vec<EndpointAttr>, Option<syn::Error>) {
    let mut endpoints: Vec<EndpointAttr> = Vec::new();
    let (handlers, errors) = model::collect_with(
        item,
        &[("endpoint", Kind::Request)],
        |method, attr, _, _| {
            let (endpoint, handler) = parse_attr(method, attr)?;
            if endpoints.iter().any(|e| e.name == endpoint.name) {
                return Err(syn::Error::new(
                    endpoint.span,
                    format!(
                        "a second endpoint named \"{}\"; endpoint names are unique in a service: set another with #[endpoint(name = \"...\")]",
                        endpoint.name
                    ),
                ));
            }
            endpoints.push(endpoint);
            Ok(handler)
        },
    );
    let handlers = handlers
        .into_iter()
        .map(|h| Handler { client: true, ..h })
        .collect();
    (handlers, endpoints, errors)
}

fn parse_attr(
    method: &ImplItemFn,
    attr: &syn::Attribute,
) -> syn::Result<(EndpointAttr, HandlerAttr)> {
    let opts =
        match &attr.meta {
            syn::Meta::Path(_) => Vec::new(),
            syn::Meta::List(list) => list.parse_args_with(|s: syn::parse::ParseStream| {
                options::parse_list(s, "endpoint", KNOWN)
            })?,
            syn::Meta::NameValue(_) => return Err(syn::Error::new_spanned(
                attr,
                "write the endpoint options in parentheses: #[endpoint(subject = \"users.get\")]",
            )),
        };
    let ident = &method.sig.ident;
    let mut name = LitStr::new(&ident.to_string(), ident.span());
    let (mut subject, mut group) = (None, None);
    let mut metadata = Vec::new();
    let mut handler = HandlerAttr {
        template: name.clone(),
        subject: None,
        queue: None,
        codec: None,
        concurrency: None,
        buffer: None,
        compress: options::compress(&opts)?,
        consumer: None,
    };
    for opt in &opts {
        match opt.key.to_string().as_str() {
            "subject" => subject = Some(opt.str()?),
            "name" => name = opt.str()?,
            "group" => group = Some(opt.str()?),
            "queue_group" => handler.queue = Some(options::queue_name(&opt.str()?)?),
            "metadata" => metadata = opt.map()?,
            "codec" => handler.codec = Some(opt.codec()?),
            "concurrency" => handler.concurrency = Some(opt.count()?.0),
            "buffer" => handler.buffer = Some(opt.buffer()?),
            "compress" | "compress_min" => {}
            _ => unreachable!("filtered by parse_list"),
        }
    }
    let name_value = names::check_name(&name, "endpoint")?;
    // The subject defaults to the endpoint name, as in the other NATS clients.
    let subject = subject.unwrap_or_else(|| LitStr::new(&name_value, name.span()));
    handler.template = match group {
        Some(g) => {
            check_group(&g)?;
            LitStr::new(
                &format!("{}.{}", g.value(), subject.value()),
                subject.span(),
            )
        }
        None => subject,
    };
    let endpoint = EndpointAttr {
        method: ident.to_string(),
        name: name_value,
        span: name.span(),
        metadata,
    };
    Ok((endpoint, handler))
}

/// A group is a plain subject prefix: tokens without wildcards or parameters.
fn check_group(group: &LitStr) -> syn::Result<()> {
    let t = subject::parse(&group.value()).map_err(|msg| syn::Error::new(group.span(), msg))?;
    if !t.params.is_empty() || t.subscribe.split('.').any(|tok| tok == "*" || tok == ">") {
        return Err(syn::Error::new(
            group.span(),
            "a group is a subject prefix without wildcards or parameters, e.g. group = \"v1\"",
        ));
    }
    Ok(())
}

/// `impl Endpoints`: one `EndpointSpec` per handler.
pub fn expand(
    item: &syn::ItemImpl,
    handlers: &[Handler],
    endpoints: &[EndpointAttr],
) -> TokenStream {
    let p = quote!(::nats_actors::__private);
    let (impl_g, _, where_c) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let specs = handlers.iter().filter_map(|h| {
        let e = endpoints.iter().find(|e| h.method == e.method)?;
        let method = h.method.to_string();
        let name = &e.name;
        let keys = e.metadata.iter().map(|(k, _)| k);
        let values = e.metadata.iter().map(|(_, v)| v);
        let schema = |ty: Option<&syn::Type>| match ty {
            Some(ty) => quote_spanned! {ty.span()=>
                ::core::option::Option::Some(#p::schema::<#ty> as fn() -> #p::TypeSchema)
            },
            None => quote!(::core::option::Option::None),
        };
        let request = schema(h.args.iter().find_map(|a| match a {
            Arg::Other {
                ty,
                role: Role::Payload,
            } => Some(ty),
            _ => None,
        }));
        let reply = match &h.ret {
            Ret::Value(ty) => Some(ty.clone()),
            Ret::Result(ty) => client::first_generic(ty),
            Ret::Unit => None,
        };
        let response = schema(reply.as_ref());
        let cfgs = &h.cfgs;
        Some(quote! {
            #(#cfgs)*
            __nats_actors_specs.push(#p::EndpointSpec {
                method: #method,
                name: #name,
                metadata: &[#((#keys, #values)),*],
                request: #request,
                response: #response,
            });
        })
    });
    quote! {
        ::nats_actors::__require_service!();
        const _: () = {
            impl #impl_g #p::Endpoints for #self_ty #where_c {
                fn endpoints() -> ::std::vec::Vec<#p::EndpointSpec> {
                    #[allow(unused_mut)]
                    let mut __nats_actors_specs = ::std::vec::Vec::new();
                    #(#specs)*
                    __nats_actors_specs
                }
            }
        };
    }
}
