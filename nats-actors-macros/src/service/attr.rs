//! `#[service(...)]` on the struct: parse and check the options, then implement `Actor` and
//! `Service` for it.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use super::names;
use crate::options;

const KNOWN: &[&str] = &["name", "version", "description", "metadata", "queue_group"];

/// The model of `#[service(...)]`, checked.
pub struct ServiceAttr {
    name: String,
    version: String,
    description: String,
    metadata: Vec<(LitStr, LitStr)>,
    queue_group: Option<String>,
}

impl ServiceAttr {
    /// Placeholder options, used beside a compile error.
    pub fn fallback(ident: &syn::Ident) -> Self {
        Self {
            name: ident.to_string(),
            version: "0.0.0".into(),
            description: String::new(),
            metadata: Vec::new(),
            queue_group: None,
        }
    }
}

/// Reads the one `#[service(...)]` attribute of `input`.
pub fn parse(input: &DeriveInput) -> syn::Result<ServiceAttr> {
    let attrs: Vec<&syn::Attribute> = input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("service"))
        .collect();
    let attr = match attrs.as_slice() {
        [] => {
            return Err(syn::Error::new(
                input.ident.span(),
                "a service needs a version: add #[service(version = \"1.0.0\")]",
            ))
        }
        [one] => one,
        [_, second, ..] => {
            return Err(syn::Error::new_spanned(
                second,
                "duplicate #[service(...)] attribute; put every option in one",
            ))
        }
    };
    let opts = attr
        .parse_args_with(|s: syn::parse::ParseStream| options::parse_list(s, "service", KNOWN))?;
    let mut out = ServiceAttr::fallback(&input.ident);
    let mut version = None;
    for opt in &opts {
        match opt.key.to_string().as_str() {
            "name" => out.name = names::check_name(&opt.str()?, "service")?,
            "version" => version = Some(names::check_version(&opt.str()?)?),
            "description" => out.description = opt.str()?.value(),
            "metadata" => out.metadata = opt.map()?,
            "queue_group" => out.queue_group = Some(options::queue_name(&opt.str()?)?),
            _ => unreachable!("filtered by parse_list"),
        }
    }
    if opts.iter().all(|o| o.key != "name") {
        let ident = LitStr::new(&input.ident.to_string(), input.ident.span());
        out.name = names::check_name(&ident, "service")?;
    }
    out.version = version.ok_or_else(|| {
        syn::Error::new_spanned(
            attr,
            "a service needs a version: add version = \"1.0.0\" (SemVer)",
        )
    })?;
    Ok(out)
}

/// `impl Actor` and `impl Service` for the struct.
pub fn expand(input: &DeriveInput, service: &ServiceAttr) -> TokenStream {
    let p = quote!(::nats_actors::__private);
    let ident = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let ServiceAttr {
        name,
        version,
        description,
        metadata,
        queue_group,
    } = service;
    let keys = metadata.iter().map(|(k, _)| k);
    let values = metadata.iter().map(|(_, v)| v);
    let queue = queue_group.as_deref().unwrap_or("q");
    let handlers = quote::quote_spanned! {ident.span()=>
        <Self as #p::Endpoints>::endpoint_handlers()
    };
    let endpoints = quote::quote_spanned! {ident.span()=>
        <Self as #p::Endpoints>::endpoints()
    };
    quote! {
        ::nats_actors::__require_service!();
        const _: () = {
            impl #impl_g ::nats_actors::Actor for #ident #ty_g #where_c {
                fn options() -> #p::ActorOptions {
                    #p::ActorOptions {
                        queue: ::core::option::Option::Some(#queue),
                        ..#p::ActorOptions::new(#name)
                    }
                }
                fn handlers() -> ::std::vec::Vec<#p::HandlerSpec<Self>> {
                    #handlers
                }
                fn instances(self) -> ::std::vec::Vec<Self> {
                    ::std::vec![self]
                }
            }
            impl #impl_g ::nats_actors::Service for #ident #ty_g #where_c {
                fn info() -> #p::ServiceInfo {
                    #p::ServiceInfo {
                        name: #name,
                        version: #version,
                        description: #description,
                        metadata: &[#((#keys, #values)),*],
                    }
                }
                fn endpoints() -> ::std::vec::Vec<#p::EndpointSpec> {
                    #endpoints
                }
            }
        };
    }
}
