//! The model of a handler method: its attribute, subject template, arguments and return type,
//! checked so that every mistake is one spanned error that says how to fix it.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, LitStr, Pat, ReturnType, Token, Type};

use crate::options::{self, Codec};
use crate::subject::{self, Template};

const KNOWN: &[&str] = &["queue", "codec", "concurrency"];

/// What a handler answers to.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Subscribe,
    Request,
    Consume,
}

/// The attributes `#[handlers]` reads.
const HANDLER_ATTRS: &[(&str, Kind)] = &[
    ("subscribe", Kind::Subscribe),
    ("request", Kind::Request),
    ("consumer", Kind::Consume),
];

/// How one argument is extracted from the message.
pub enum Arg {
    /// `&Context`.
    Context,
    /// `Param<T>` bound to the `{name}` at token `index`.
    Param {
        ty: Type,
        name: String,
        index: usize,
    },
    /// An extractor type implementing `FromContext` (`HeaderMap`, `Message`, `Bytes`, `Subject`).
    Extract(Type),
    /// The typed payload.
    Payload(Type),
}

/// What the method returns.
pub enum Ret {
    Unit,
    Result(Type),
    Value(Type),
}

/// One checked handler method.
pub struct Handler {
    pub method: syn::Ident,
    pub kind: Kind,
    pub template: LitStr,
    pub subject: Template,
    pub queue: Option<String>,
    pub codec: Option<Codec>,
    pub concurrency: Option<usize>,
    pub mutable: bool,
    pub args: Vec<Arg>,
    pub ret: Ret,
    /// The method's `#[cfg(...)]` attributes, repeated on everything generated for it.
    pub cfgs: Vec<syn::Attribute>,
    /// The options of a `#[consumer]`.
    pub consumer: Option<super::consumer::Consumer>,
}

/// Collects the `#[subscribe]`/`#[request]` handlers of `item`, removing their attributes;
/// returns every error combined.
pub fn collect(item: &mut syn::ItemImpl) -> (Vec<Handler>, Option<syn::Error>) {
    collect_with(item, HANDLER_ATTRS, |_, attr, name, kind| match kind {
        Kind::Consume => {
            let parsed = super::consumer::parse(attr)?;
            Ok(HandlerAttr {
                template: parsed.template,
                subject: Some(parsed.subject),
                queue: None,
                codec: parsed.codec,
                concurrency: parsed.concurrency,
                consumer: Some(parsed.consumer),
            })
        }
        _ => parse_attr(attr, name),
    })
}

/// The options of one handler attribute, read by the macro that owns the attribute.
pub struct HandlerAttr {
    /// The subject template, spanned at what the user wrote.
    pub template: LitStr,
    /// The checked template, when the parser made it (else `template` is parsed as a subject).
    pub subject: Option<Template>,
    pub queue: Option<String>,
    pub codec: Option<Codec>,
    pub concurrency: Option<usize>,
    pub consumer: Option<super::consumer::Consumer>,
}

/// Collects the methods of `item` carrying one of `attrs` (attribute name and handler kind),
/// reading each attribute with `parse(method, attribute, name, kind)`. The attributes are
/// removed; every error is returned combined.
pub fn collect_with(
    item: &mut syn::ItemImpl,
    attrs: &[(&'static str, Kind)],
    mut parse: impl FnMut(&ImplItemFn, &syn::Attribute, &'static str, Kind) -> syn::Result<HandlerAttr>,
) -> (Vec<Handler>, Option<syn::Error>) {
    let ours = |a: &syn::Attribute| attrs.iter().find(|(n, _)| a.path().is_ident(n)).copied();
    let mut handlers = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let found: Vec<(&'static str, Kind, syn::Attribute)> = method
            .attrs
            .iter()
            .filter_map(|a| ours(a).map(|(name, kind)| (name, kind, a.clone())))
            .collect();
        method.attrs.retain(|a| ours(a).is_none());
        let result = match found.as_slice() {
            [] => continue,
            [(name, kind, attr)] => parse(method, attr, name, *kind)
                .and_then(|parsed| build(method, name, *kind, parsed)),
            [_, (_, _, second), ..] => {
                let names: Vec<String> = attrs.iter().map(|(n, _)| format!("#[{n}]")).collect();
                Err(syn::Error::new_spanned(
                    second,
                    format!(
                        "a method can be one handler only; remove the second {}",
                        names.join("/")
                    ),
                ))
            }
        };
        match result {
            Ok(h) => handlers.push(h),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    (handlers, errors)
}

fn parse_attr(attr: &syn::Attribute, name: &str) -> syn::Result<HandlerAttr> {
    let missing = || {
        syn::Error::new_spanned(
            attr,
            format!("#[{name}] needs a subject, e.g. #[{name}(\"orders.created\")]"),
        )
    };
    let syn::Meta::List(list) = &attr.meta else {
        return Err(missing());
    };
    if list.tokens.is_empty() {
        return Err(missing());
    }
    let (template, opts) = list.parse_args_with(|input: ParseStream| {
        let template: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "#[{name}] takes the subject first, as a string: #[{name}(\"orders.created\")]"
                ),
            )
        })?;
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        Ok((template, options::parse_list(input, name, KNOWN)?))
    })?;
    let mut out = HandlerAttr {
        template,
        subject: None,
        queue: None,
        codec: None,
        concurrency: None,
        consumer: None,
    };
    for opt in &opts {
        match opt.key.to_string().as_str() {
            "queue" => out.queue = Some(options::queue_name(&opt.str()?)?),
            "codec" => out.codec = Some(opt.codec()?),
            "concurrency" => out.concurrency = Some(opt.count()?.0),
            _ => unreachable!("filtered by parse_list"),
        }
    }
    Ok(out)
}

/// Checks the method behind a handler attribute `#[name]` and builds its model.
fn build(method: &ImplItemFn, name: &str, kind: Kind, parsed: HandlerAttr) -> syn::Result<Handler> {
    let subject = match parsed.subject {
        Some(subject) => subject,
        None => subject::parse(&parsed.template.value())
            .map_err(|msg| syn::Error::new(parsed.template.span(), msg))?,
    };
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            format!("a #[{name}] handler must be an `async fn`; add `async`"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a handler cannot be generic; use concrete types for its arguments",
        ));
    }
    let mutable = match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() => r.mutability.is_some(),
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "a handler takes `&self` or `&mut self`, not `self` by value",
            ))
        }
        _ => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "a handler is a method: take `&self` (or `&mut self`) first",
            ))
        }
    };
    let mut args = Vec::new();
    let mut payload: Option<Span> = None;
    for input in sig.inputs.iter().skip(1) {
        let FnArg::Typed(pt) = input else { continue };
        let arg = classify(&pt.ty, &pt.pat, &subject, &parsed.template)?;
        if let Arg::Payload(ty) = &arg {
            if payload.is_some() {
                return Err(syn::Error::new(
                    ty.span(),
                    "a handler takes at most one payload argument; the other arguments must be extractors (&Context, Param<T>, HeaderMap, Message, Bytes, Subject)",
                ));
            }
            payload = Some(ty.span());
        }
        args.push(arg);
    }
    let ret = match (&sig.output, kind) {
        (ReturnType::Default, Kind::Request) => {
            return Err(syn::Error::new(
                sig.paren_token.span.close(),
                format!("a #[{name}] handler returns its reply; add a return type, e.g. `-> Result<Reply, HandlerError>`"),
            ))
        }
        (ReturnType::Default, _) => Ret::Unit,
        (ReturnType::Type(_, ty), _) if last_segment(ty).as_deref() == Some("Result") => {
            Ret::Result((**ty).clone())
        }
        (ReturnType::Type(_, ty), _) => Ret::Value((**ty).clone()),
    };
    Ok(Handler {
        method: sig.ident.clone(),
        kind,
        template: parsed.template,
        subject,
        queue: parsed.queue,
        codec: parsed.codec,
        concurrency: parsed.concurrency,
        mutable,
        args,
        ret,
        cfgs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
        consumer: parsed.consumer,
    })
}

fn classify(ty: &Type, pat: &Pat, subject: &Template, template: &LitStr) -> syn::Result<Arg> {
    if let Type::Reference(r) = ty {
        if last_segment(&r.elem).as_deref() == Some("Context") && r.mutability.is_none() {
            return Ok(Arg::Context);
        }
        return Err(syn::Error::new(
            ty.span(),
            "handler arguments are owned values, except `&Context`; remove the `&`",
        ));
    }
    match last_segment(ty).as_deref() {
        Some("Context") => Err(syn::Error::new(
            ty.span(),
            "take the context by reference: `ctx: &Context`",
        )),
        Some("Param") => {
            let name = param_name(pat).ok_or_else(|| {
                syn::Error::new(
                    pat.span(),
                    "bind a Param<T> to a plain name that matches a `{name}` of the subject, e.g. `region: Param<String>`",
                )
            })?;
            match subject.params.iter().find(|(n, _)| *n == name) {
                Some((_, index)) => Ok(Arg::Param {
                    ty: ty.clone(),
                    name,
                    index: *index,
                }),
                None => {
                    let have: Vec<String> = subject
                        .params
                        .iter()
                        .map(|(n, _)| format!("`{n}`"))
                        .collect();
                    let hint = if have.is_empty() {
                        "it has no parameters; add `{".to_string() + &name + "}` to the subject"
                    } else {
                        format!("rename the argument to one of {}", have.join(", "))
                    };
                    Err(syn::Error::new(
                        pat.span(),
                        format!(
                            "`{name}` names no `{{{name}}}` in subject \"{}\"; {hint}",
                            template.value()
                        ),
                    ))
                }
            }
        }
        Some("HeaderMap" | "Message" | "Bytes" | "Subject" | "Delivery") => {
            Ok(Arg::Extract(ty.clone()))
        }
        _ => Ok(Arg::Payload(ty.clone())),
    }
}

fn param_name(pat: &Pat) -> Option<String> {
    match pat {
        Pat::Ident(p) => Some(p.ident.to_string()),
        Pat::TupleStruct(ts) if ts.elems.len() == 1 => param_name(&ts.elems[0]),
        _ => None,
    }
}

fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}
