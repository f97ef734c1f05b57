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

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Request => "request",
            Kind::Consume => "consumer",
        }
    }

    fn of(attr: &syn::Attribute) -> Option<Self> {
        [Kind::Subscribe, Kind::Request, Kind::Consume]
            .into_iter()
            .find(|k| attr.path().is_ident(k.attr()))
    }
}

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
    /// The options of a `#[consumer]`.
    pub consumer: Option<super::consumer::Consumer>,
    /// The method's `#[cfg(...)]` attributes, repeated on everything generated for it.
    pub cfgs: Vec<syn::Attribute>,
}

/// Collects the handlers of `item`, removing their attributes; returns every error combined.
pub fn collect(item: &mut syn::ItemImpl) -> (Vec<Handler>, Option<syn::Error>) {
    let mut handlers = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs: Vec<(Kind, syn::Attribute)> = method
            .attrs
            .iter()
            .filter_map(|a| Kind::of(a).map(|kind| (kind, a.clone())))
            .collect();
        method.attrs.retain(|a| Kind::of(a).is_none());
        let result = match attrs.as_slice() {
            [] => continue,
            [(kind, attr)] => parse_handler(method, *kind, attr),
            [_, (_, second), ..] => Err(syn::Error::new_spanned(
                second,
                "a method can be one handler only; remove the second #[subscribe]/#[request]/#[consumer]",
            )),
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

struct HandlerAttr {
    template: LitStr,
    opts: Vec<options::Opt>,
}

fn parse_attr(attr: &syn::Attribute, kind: Kind) -> syn::Result<HandlerAttr> {
    let name = kind.attr();
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
    list.parse_args_with(|input: ParseStream| {
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
        let opts = options::parse_list(input, name, KNOWN)?;
        Ok(HandlerAttr { template, opts })
    })
}

fn parse_handler(method: &ImplItemFn, kind: Kind, attr: &syn::Attribute) -> syn::Result<Handler> {
    let (mut queue, mut codec, mut concurrency, mut consumer) = (None, None, None, None);
    let (template, subject) = if kind == Kind::Consume {
        let parsed = super::consumer::parse(attr)?;
        (codec, concurrency) = (parsed.codec, parsed.concurrency);
        consumer = Some(parsed.consumer);
        (parsed.template, parsed.subject)
    } else {
        let parsed = parse_attr(attr, kind)?;
        let subject = subject::parse(&parsed.template.value())
            .map_err(|msg| syn::Error::new(parsed.template.span(), msg))?;
        for opt in &parsed.opts {
            match opt.key.to_string().as_str() {
                "queue" => queue = Some(options::queue_name(&opt.str()?)?),
                "codec" => codec = Some(opt.codec()?),
                "concurrency" => concurrency = Some(opt.count()?.0),
                _ => unreachable!("filtered by parse_list"),
            }
        }
        (parsed.template, subject)
    };
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            format!(
                "a #[{}] handler must be an `async fn`; add `async`",
                kind.attr()
            ),
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
        let arg = classify(&pt.ty, &pt.pat, &subject, &template)?;
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
                "a #[request] handler returns its reply; add a return type, e.g. `-> Result<Reply, HandlerError>`",
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
        template,
        subject,
        queue,
        codec,
        concurrency,
        mutable,
        args,
        ret,
        consumer,
        cfgs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
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
