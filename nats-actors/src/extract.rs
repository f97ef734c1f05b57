//! Handler arguments: the [`FromContext`] extractors, subject parameters ([`Param`]) and the
//! payload, each recognised by the traits its type implements, never by its name.

use std::convert::Infallible;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::{DecodeError, HandlerError};
#[cfg(feature = "jetstream")]
use crate::jetstream::Delivery;

/// A handler argument taken from the message's [`Context`]: implement it to write your own
/// extractor (a tenant from a header, an authenticated caller), usable in every handler kind.
///
/// A rejection stops the message before the handler runs: a request gets an error reply with
/// the rejection's code, a subscription logs and counts it, a JetStream consumer terminates the
/// message and dead-letters it. Built in: `&Context`, [`HeaderMap`] (empty when the message
/// has none), [`Message`], [`Bytes`] (the raw payload, untouched), [`Subject`],
/// [`Delivery`] (in `#[consumer]` handlers) and `Option<T>` of any extractor (`None` when it
/// rejects). Any other argument type is the payload, decoded with the handler's codec, or a
/// [`Param`] named after a `{name}` of the subject.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// /// The caller's tenant, from the `Tenant` header; a message without one is refused (401).
/// struct Tenant(String);
///
/// impl<'a> FromContext<'a> for Tenant {
///     type Rejection = HandlerError;
///     fn from_context(ctx: &'a Context) -> Result<Self, HandlerError> {
///         match ctx.header("Tenant") {
///             Some(t) if !t.is_empty() => Ok(Tenant(t.to_string())),
///             _ => Err(HandlerError::with_code(401, "no Tenant header")),
///         }
///     }
/// }
///
/// #[derive(Actor)]
/// struct Orders;
///
/// #[handlers]
/// impl Orders {
///     #[request("orders.count")]
///     async fn count(&self, tenant: Tenant) -> Result<u64, HandlerError> {
///         Ok(tenant.0.len() as u64)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be extracted from a NATS message",
    note = "extractors are &Context, HeaderMap, Message, Bytes, Subject, Delivery, Option<extractor> and types implementing FromContext; a Param<T> is named after a `{{name}}` of the subject; any other argument is the payload"
)]
pub trait FromContext<'a>: Sized {
    /// Why a message is refused; its [`HandlerError::code`] is the reply's error code.
    type Rejection: Into<HandlerError>;

    /// Extracts the value from the message, or rejects it.
    fn from_context(ctx: &'a Context) -> Result<Self, Self::Rejection>;
}

impl<'a> FromContext<'a> for &'a Context {
    type Rejection = Infallible;
    fn from_context(ctx: &'a Context) -> Result<Self, Infallible> {
        Ok(ctx)
    }
}

impl FromContext<'_> for HeaderMap {
    type Rejection = Infallible;
    fn from_context(ctx: &Context) -> Result<Self, Infallible> {
        Ok(ctx.headers().cloned().unwrap_or_default())
    }
}

impl FromContext<'_> for Message {
    type Rejection = Infallible;
    fn from_context(ctx: &Context) -> Result<Self, Infallible> {
        Ok(ctx.message().clone())
    }
}

impl FromContext<'_> for Bytes {
    type Rejection = Infallible;
    fn from_context(ctx: &Context) -> Result<Self, Infallible> {
        Ok(ctx.payload().clone())
    }
}

impl FromContext<'_> for Subject {
    type Rejection = Infallible;
    fn from_context(ctx: &Context) -> Result<Self, Infallible> {
        Ok(ctx.message().subject.clone())
    }
}

#[cfg(feature = "jetstream")]
impl FromContext<'_> for Delivery {
    type Rejection = HandlerError;
    fn from_context(ctx: &Context) -> Result<Self, HandlerError> {
        ctx.delivery().cloned().ok_or_else(|| {
            HandlerError::new("`Delivery` is only available in #[consumer] handlers")
        })
    }
}

impl<'a, T: FromContext<'a>> FromContext<'a> for Option<T> {
    type Rejection = Infallible;
    fn from_context(ctx: &'a Context) -> Result<Self, Infallible> {
        Ok(T::from_context(ctx).ok())
    }
}

/// A named subject parameter: `region: Param<String>` takes the token matched by `{region}`.
///
/// The argument's name picks the parameter; the token is parsed with [`FromStr`], and a token
/// that does not parse rejects the message (an error reply with code 400 for a request, a
/// counted warning for a subscription).
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Actor)]
/// struct Shelves;
///
/// #[handlers]
/// impl Shelves {
///     #[request("shelves.{id}.count")]
///     async fn count(&self, id: Param<u32>) -> Result<u32, HandlerError> {
///         Ok(*id * 10)
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Param<T>(pub T);

impl<T> Param<T> {
    /// The parsed value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Param<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Display> fmt::Display for Param<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An argument named after a `{name}` of the subject.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an argument named after a subject parameter takes its token: `{Self}` cannot",
    label = "write this argument's type as Param<T>, with T: FromStr (e.g. Param<String>), or rename the argument"
)]
pub trait FromParam: Sized {
    fn from_param(ctx: &Context, index: usize, name: &str) -> Result<Self, HandlerError>;
}

impl<T> FromParam for Param<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn from_param(ctx: &Context, index: usize, name: &str) -> Result<Self, HandlerError> {
        let subject = ctx.subject();
        let token = subject.split('.').nth(index).ok_or_else(|| {
            HandlerError::bad_request(format!(
                "subject `{subject}` has no token for parameter `{name}`"
            ))
        })?;
        token.parse::<T>().map(Param).map_err(|e| {
            HandlerError::bad_request(format!(
                "subject parameter `{name}`: invalid value `{token}`: {e}"
            ))
        })
    }
}

/// The payload argument: any `serde::Deserialize` type, decoded with the message's codec.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither an extractor nor a payload type",
    label = "nats-actors cannot provide this argument",
    note = "a payload type implements serde::Deserialize (#[derive(Deserialize)]); an extractor implements FromContext (&Context, HeaderMap, Message, Bytes, Subject, Delivery, or your own); a Param<T> is named after a `{{name}}` of the subject"
)]
pub trait Payload: Sized {
    fn decode(ctx: &Context) -> Result<Self, HandlerError>;
}

impl<T: DeserializeOwned> Payload for T {
    #[inline(always)]
    fn decode(ctx: &Context) -> Result<Self, HandlerError> {
        match ctx.headers() {
            // The common case: no headers, so no `Content-Type` and no `Content-Encoding`.
            None => ctx.handler_codec().decode(ctx.payload()).map_err(rejected),
            Some(_) => decode_with_headers(ctx),
        }
    }
}

/// [`Payload::decode`] of a message with headers: the codec its `Content-Type` names, the
/// payload inflated as its `Content-Encoding` says.
#[inline(never)]
fn decode_with_headers<T: DeserializeOwned>(ctx: &Context) -> Result<T, HandlerError> {
    let codec = ctx.message_codec().map_err(rejected)?;
    let payload = crate::compression::payload(ctx.headers(), ctx.payload(), || {
        crate::compression::inflate_limit(ctx.client().nats().server_info().max_payload)
    })
    .map_err(rejected)?;
    codec.decode(&payload).map_err(rejected)
}

/// A payload that does not decode: bad input (400), or a compressed one that inflates past
/// the bound (413) or whose encoding is unknown (415).
#[cold]
#[inline(never)]
pub(crate) fn rejected(e: DecodeError) -> HandlerError {
    match e {
        DecodeError::TooLarge { .. } => HandlerError::with_code(413, e.to_string()),
        DecodeError::UnknownEncoding(_) => HandlerError::with_code(415, e.to_string()),
        _ => HandlerError::bad_request(e.to_string()),
    }
}
