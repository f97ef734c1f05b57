//! The model of a handler method: its attribute, subject template, arguments and return type,
//! checked so that every mistake is one spanned error that says how to fix it.

use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, LitStr, Pat, ReturnType, Token, Type};

use crate::options::{self, Codec};
use crate::subject::{self, Template};

const KNOWN: &[&str] = &[
    "queue",
    "codec",
    "concurrency",
    "buffer",
    "compress",
    "compress_min",
];

/// What a handler answers to.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Subscribe,
    Request,
    Consume,
    KvWatch,
    ObjectWatch,
    /// A keyed actor's durable command.
    Command,
    /// A keyed actor's ask, answered in order with its commands.
    Ask,
}

impl Kind {
    /// A keyed actor's handler.
    pub fn keyed(self) -> bool {
        matches!(self, Kind::Command | Kind::Ask)
    }

    /// A handler on a JetStream stream.
    pub fn jetstream(self) -> bool {
        matches!(
            self,
            Kind::Consume | Kind::KvWatch | Kind::ObjectWatch | Kind::Command | Kind::Ask
        )
    }
}

/// The attributes `#[handlers]` reads.
const HANDLER_ATTRS: &[(&str, Kind)] = &[
    ("subscribe", Kind::Subscribe),
    ("request", Kind::Request),
    ("consumer", Kind::Consume),
    ("kv_watch", Kind::KvWatch),
    ("object_watch", Kind::ObjectWatch),
    ("command", Kind::Command),
    ("ask", Kind::Ask),
];

/// The options of `#[command]` and `#[ask]`: the rest comes from the keyed actor.
const KEYED_KNOWN: &[&str] = &["codec"];

/// How one argument is extracted from the message.
pub enum Arg {
    /// An argument named after the `{name}` at token `index` of the subject (a `Param<T>`).
    Param {
        ty: Type,
        name: String,
        index: usize,
    },
    /// Any other argument: an extractor or the payload, as its type's traits decide. `role` is
    /// what a generated client and an endpoint's schema take it for (checked against the
    /// traits at compile time).
    Other { ty: Type, role: Role },
}

/// What a generated client does with an argument: sends it (the payload) or leaves it out.
#[derive(Clone, Copy, PartialEq)]
pub enum Role {
    Payload,
    Extractor,
}

/// The argument attributes that set the [`Role`] where its type's name does not tell.
const ROLE_ATTRS: &[(&str, Role)] = &[("payload", Role::Payload), ("extract", Role::Extractor)];

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
    /// The `buffer = ...` expression.
    pub buffer: Option<proc_macro2::TokenStream>,
    /// The `Packing` of `compress = ...`.
    pub compress: Option<proc_macro2::TokenStream>,
    pub mutable: bool,
    pub args: Vec<Arg>,
    pub ret: Ret,
    /// The method's `#[cfg(...)]` attributes, repeated on everything generated for it.
    pub cfgs: Vec<syn::Attribute>,
    /// The options of a `#[consumer]`.
    pub consumer: Option<super::consumer::Consumer>,
    /// Whether a typed client is generated for it (its argument roles are then checked).
    pub client: bool,
}

/// Collects the `#[subscribe]`/`#[request]` handlers of `item`, removing their attributes;
/// returns every error combined.
pub fn collect(item: &mut syn::ItemImpl) -> (Vec<Handler>, Option<syn::Error>) {
    collect_with(item, HANDLER_ATTRS, |_, attr, name, kind| match kind {
        Kind::Consume | Kind::KvWatch | Kind::ObjectWatch => {
            let parsed = match kind {
                Kind::KvWatch => super::watch::parse_kv(attr)?,
                Kind::ObjectWatch => super::watch::parse_objects(attr)?,
                _ => super::consumer::parse(attr)?,
            };
            Ok(HandlerAttr {
                template: parsed.template,
                subject: Some(parsed.subject),
                queue: None,
                codec: parsed.codec,
                concurrency: parsed.concurrency,
                buffer: None,
                compress: parsed.compress,
                consumer: Some(parsed.consumer),
            })
        }
        Kind::Command | Kind::Ask => parse_attr(attr, name, KEYED_KNOWN),
        _ => parse_attr(attr, name, KNOWN),
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
    pub buffer: Option<proc_macro2::TokenStream>,
    pub compress: Option<proc_macro2::TokenStream>,
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
        if found.is_empty() {
            continue;
        }
        let roles = take_roles(method);
        let result = match found.as_slice() {
            [] => continue,
            [(name, kind, attr)] => roles.and_then(|roles| {
                parse(method, attr, name, *kind)
                    .and_then(|parsed| build(method, name, *kind, parsed, &roles))
            }),
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

fn parse_attr(attr: &syn::Attribute, name: &str, known: &[&str]) -> syn::Result<HandlerAttr> {
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
        Ok((template, options::parse_list(input, name, known)?))
    })?;
    let mut out = HandlerAttr {
        template,
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
            "queue" => out.queue = Some(options::queue_name(&opt.str()?)?),
            "codec" => out.codec = Some(opt.codec()?),
            "concurrency" => out.concurrency = Some(opt.count()?.0),
            "buffer" => out.buffer = Some(opt.buffer()?),
            "compress" | "compress_min" => {}
            _ => unreachable!("filtered by parse_list"),
        }
    }
    Ok(out)
}

/// Checks the method behind a handler attribute `#[name]` and builds its model.
fn build(
    method: &ImplItemFn,
    name: &str,
    kind: Kind,
    parsed: HandlerAttr,
    roles: &[Option<Role>],
) -> syn::Result<Handler> {
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
    for (input, role) in sig.inputs.iter().skip(1).zip(roles) {
        let FnArg::Typed(pt) = input else { continue };
        args.push(classify(
            &pt.ty,
            &pt.pat,
            *role,
            &subject,
            &parsed.template,
        )?);
    }
    let ret = match (&sig.output, kind) {
        (ReturnType::Default, Kind::Request | Kind::Ask) => {
            return Err(syn::Error::new(
                sig.paren_token.span.close(),
                format!("{} #[{name}] handler returns its reply; add a return type, e.g. `-> Result<Reply, HandlerError>`", if name.starts_with('a') { "an" } else { "a" }),
            ))
        }
        (ReturnType::Default, _) => Ret::Unit,
        (ReturnType::Type(_, ty), _) if last_segment(ty).as_deref() == Some("Result") => {
            Ret::Result((**ty).clone())
        }
        (ReturnType::Type(_, ty), _) => Ret::Value((**ty).clone()),
    };
    let mut consumer = parsed.consumer;
    batch_checks(&mut consumer, kind, &args)?;
    Ok(Handler {
        method: sig.ident.clone(),
        kind,
        template: parsed.template,
        subject,
        queue: parsed.queue,
        codec: parsed.codec,
        concurrency: parsed.concurrency,
        buffer: parsed.buffer,
        compress: parsed.compress,
        mutable,
        args,
        ret,
        cfgs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
        consumer,
        client: false,
    })
}

/// Removes the `#[payload]`/`#[extract]` attributes of the method's arguments; returns the
/// role each argument after the receiver was given, if any.
fn take_roles(method: &mut ImplItemFn) -> syn::Result<Vec<Option<Role>>> {
    let mut roles = Vec::new();
    for input in method.sig.inputs.iter_mut() {
        let FnArg::Typed(pt) = input else { continue };
        let mut role = None;
        let mut error = None;
        pt.attrs.retain(|a| {
            let Some((_, r)) = ROLE_ATTRS.iter().find(|(n, _)| a.path().is_ident(n)) else {
                return true;
            };
            if role.is_some() {
                error = Some(syn::Error::new_spanned(
                    a,
                    "an argument is the payload or an extractor: keep one of #[payload] and #[extract]",
                ));
            }
            role = Some(*r);
            false
        });
        if let Some(e) = error {
            return Err(e);
        }
        roles.push(role);
    }
    Ok(roles)
}

/// The built-in extractors a generated client leaves out, by name; any other argument type is
/// taken for the payload unless marked `#[extract]` (the traits check the guess).
const EXTRACTOR_NAMES: &[&str] = &[
    "Context",
    "HeaderMap",
    "Message",
    "Bytes",
    "Subject",
    "Delivery",
    "Batch",
];

fn classify(
    ty: &Type,
    pat: &Pat,
    role: Option<Role>,
    subject: &Template,
    template: &LitStr,
) -> syn::Result<Arg> {
    if let Type::Reference(r) = ty {
        if r.mutability.is_some() {
            return Err(syn::Error::new(
                ty.span(),
                "handler arguments are owned values or shared references (`&Context`); remove the `mut`",
            ));
        }
    }
    let name = param_name(pat);
    if let Some((name, index)) = name
        .as_ref()
        .and_then(|n| subject.params.iter().find(|(p, _)| p == n))
    {
        return Ok(Arg::Param {
            ty: ty.clone(),
            name: name.clone(),
            index: *index,
        });
    }
    if last_segment(ty).as_deref() == Some("Param") {
        let Some(name) = name else {
            return Err(syn::Error::new(
                pat.span(),
                "bind a Param<T> to a plain name that matches a `{name}` of the subject, e.g. `region: Param<String>`",
            ));
        };
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
        return Err(syn::Error::new(
            pat.span(),
            format!(
                "`{name}` names no `{{{name}}}` in subject \"{}\"; {hint}",
                template.value()
            ),
        ));
    }
    let guessed = match ty {
        Type::Reference(_) => Role::Extractor,
        _ => match last_segment(ty) {
            Some(n) if EXTRACTOR_NAMES.contains(&n.as_str()) => Role::Extractor,
            _ => Role::Payload,
        },
    };
    Ok(Arg::Other {
        ty: ty.clone(),
        role: role.unwrap_or(guessed),
    })
}

/// A `Batch<T>` argument makes a `#[consumer]` a batch handler: durable, not idempotent, and
/// taking its messages in the batch only; `batch_wait` needs one.
fn batch_checks(
    consumer: &mut Option<super::consumer::Consumer>,
    kind: Kind,
    args: &[Arg],
) -> syn::Result<()> {
    let is_batch = |ty: &Type| last_segment(ty).as_deref() == Some("Batch");
    let batch = args.iter().find_map(|a| match a {
        Arg::Other { ty, .. } if is_batch(ty) => Some(ty.span()),
        _ => None,
    });
    let err = |span, msg: &str| Err(syn::Error::new(span, msg));
    match (consumer.as_mut(), kind, batch) {
        (Some(c), Kind::Consume, Some(span)) => {
            if c.durable.is_none() {
                return err(
                    span,
                    "a `Batch<T>` handler needs a durable consumer: an ordered one does not ack",
                );
            }
            if c.idempotent {
                return err(span, "`idempotent` does not apply to a `Batch<T>` handler; settle each message in the batch");
            }
            if let Some(other) = args.iter().find(|a| match a {
                Arg::Param { .. } => true,
                Arg::Other { ty, role } => *role == Role::Payload && !is_batch(ty),
            }) {
                let span = match other {
                    Arg::Param { ty, .. } | Arg::Other { ty, .. } => ty.span(),
                };
                return err(span, "a `Batch<T>` handler takes its messages in the batch; read each one's subject and delivery from its item");
            }
            c.batched = true;
            Ok(())
        }
        (_, _, Some(span)) => err(span, "`Batch<T>` is taken by #[consumer] handlers only"),
        (Some(c), _, None) => match c.batch_wait {
            Some((_, span)) => err(span, "`batch_wait` needs a `Batch<T>` argument"),
            None => Ok(()),
        },
        (None, _, None) => Ok(()),
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
