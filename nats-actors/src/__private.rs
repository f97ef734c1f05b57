//! What the macros' expansion calls; not part of the API. Generated code reaches it as
//! `::nats_actors::__private::...`.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::context::Context;
use crate::error::{HandlerError, RequestError};
use crate::extract::{FromContext, FromParam, Payload};
use crate::outcome::{self, IntoOutcome, IntoReply};

pub use crate::actor::ActorOptions;
pub use crate::cell::Cell;
pub use crate::compression::Packing;
pub use crate::handler::core::{start as start_core, REQUEST, SUBSCRIBE};
pub use crate::handler::{turn, Turn};
pub use crate::handler::{HandlerKind, HandlerSpec, Handlers, Invoke};
#[cfg(feature = "jetstream")]
pub use crate::jetstream::consumer::{start as start_consumer, CONSUME};
#[cfg(feature = "jetstream")]
pub use crate::jetstream::{ConsumerSpec, DeadLetterTarget, DeliverFrom};
#[cfg(feature = "jetstream")]
pub use crate::keyed::{
    keyed, keyed_ref, start_unkeyed, Keyed, KeyedActor, KeyedOptions, ASK, COMMAND,
};
#[cfg(feature = "jetstream")]
pub use crate::kv::watch::KV_WATCH;

/// Compiles only for a keyed actor: where `#[command]` or `#[ask]` is written.
#[cfg(feature = "jetstream")]
pub fn require_keyed<A: KeyedActor>() {}
#[cfg(feature = "jetstream")]
pub use crate::objects::watch::OBJECT_WATCH;
pub use crate::outcome::Outcome;
#[cfg(feature = "service")]
pub use crate::service::{EndpointSpec, EndpointType, Endpoints, ServiceInfo, TypeSchema};

/// Expands to nothing with the `jetstream` feature; the expansion of `#[consumer]` calls it.
#[cfg(feature = "jetstream")]
#[macro_export]
#[doc(hidden)]
macro_rules! __require_jetstream {
    () => {};
}

/// Without the `jetstream` feature: one clear error where a `#[consumer]` is declared.
#[cfg(not(feature = "jetstream"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __require_jetstream {
    () => {
        ::core::compile_error!(
            "#[consumer] handlers need the `jetstream` feature of nats-actors (on by default): enable it in Cargo.toml"
        );
    };
}

/// Expands to nothing with the `service` feature; the expansions of `#[derive(Service)]` and
/// `#[endpoints]` call it.
#[cfg(feature = "service")]
#[macro_export]
#[doc(hidden)]
macro_rules! __require_service {
    () => {};
}

/// Without the `service` feature: one clear error where a service is declared.
#[cfg(not(feature = "service"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __require_service {
    () => {
        ::core::compile_error!(
            "services (#[derive(Service)], #[endpoints]) need the `service` feature of nats-actors (on by default): enable it in Cargo.toml"
        );
    };
}

/// A type, for choosing by the traits it implements which impl handles it (autoref
/// specialisation: `(&&Probe::<T>::new()).method()` takes the impl on `&Probe<T>` when its
/// bounds hold, else the one on `Probe<T>`). Zero-sized; every call inlines to the chosen path.
pub struct Probe<T: ?Sized>(PhantomData<fn() -> PhantomData<T>>);

impl<T: ?Sized> Probe<T> {
    #[inline(always)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: ?Sized> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Probe<T> {
    /// The probe of `value`'s type.
    #[inline(always)]
    pub fn of(_value: &T) -> Self {
        Self(PhantomData)
    }
}

/// An argument whose type is an extractor: [`FromContext`] decides.
pub trait ArgByExtractor<'a, T> {
    fn extract(&self, ctx: &'a Context) -> Result<T, HandlerError>;
    fn role(&self) -> IsAnExtractor;
}

impl<'a, T: FromContext<'a>> ArgByExtractor<'a, T> for &Probe<T> {
    #[inline(always)]
    fn extract(&self, ctx: &'a Context) -> Result<T, HandlerError> {
        T::from_context(ctx).map_err(Into::into)
    }
    fn role(&self) -> IsAnExtractor {
        IsAnExtractor
    }
}

/// Any other argument is the payload.
pub trait ArgByPayload<T> {
    fn extract(&self, ctx: &Context) -> Result<T, HandlerError>
    where
        T: Payload;
    fn role(&self) -> IsThePayload;
}

impl<T> ArgByPayload<T> for Probe<T> {
    #[inline(always)]
    fn extract(&self, ctx: &Context) -> Result<T, HandlerError>
    where
        T: Payload,
    {
        T::decode(ctx)
    }
    fn role(&self) -> IsThePayload {
        IsThePayload
    }
}

/// A `Result` return value of a request: `Ok` is the reply, `Err` the error reply.
pub trait ReplyByResult<T, E> {
    fn reply(&self, ret: Result<T, E>, ctx: &Context) -> Outcome
    where
        T: IntoReply,
        E: Into<HandlerError>;
}

impl<T, E> ReplyByResult<T, E> for &Probe<Result<T, E>> {
    #[inline(always)]
    fn reply(&self, ret: Result<T, E>, ctx: &Context) -> Outcome
    where
        T: IntoReply,
        E: Into<HandlerError>,
    {
        outcome::reply_result(ret, ctx)
    }
}

/// Any other return value of a request is the reply.
pub trait ReplyByValue<R> {
    fn reply(&self, ret: R, ctx: &Context) -> Outcome
    where
        R: IntoReply;
}

impl<R> ReplyByValue<R> for Probe<R> {
    #[inline(always)]
    fn reply(&self, ret: R, ctx: &Context) -> Outcome
    where
        R: IntoReply,
    {
        ret.into_reply(ctx)
    }
}

/// What a handler that does not reply returns.
#[inline(always)]
pub fn outcome<R: IntoOutcome>(ret: R) -> Outcome {
    ret.into_outcome()
}

/// A `Param<T>` argument bound to the `{name}` at token `index`.
#[inline(always)]
pub fn param<P: FromParam>(ctx: &Context, index: usize, name: &str) -> Result<P, HandlerError> {
    P::from_param(ctx, index, name)
}

/// The role an argument's type gives it: an extractor.
pub struct IsAnExtractor;
/// The role an argument's type gives it: the payload.
pub struct IsThePayload;

/// Payloads counted so far in a handler's arguments: none.
pub struct NoPayload;
/// Payloads counted so far in a handler's arguments: one.
pub struct OnePayload;

/// Counts the payload arguments of a handler, at compile time: a second one has no impl.
#[diagnostic::on_unimplemented(
    message = "a handler takes at most one payload argument",
    label = "a second argument that is not an extractor",
    note = "the payload is the argument whose type is not an extractor (FromContext); the other arguments must be extractors: &Context, Param<T>, HeaderMap, Message, Bytes, Subject, Delivery or your own"
)]
pub trait Then<Role> {
    type Next;
    fn next(self) -> Self::Next;
}

impl Then<IsAnExtractor> for NoPayload {
    type Next = NoPayload;
    fn next(self) -> NoPayload {
        NoPayload
    }
}

impl Then<IsThePayload> for NoPayload {
    type Next = OnePayload;
    fn next(self) -> OnePayload {
        OnePayload
    }
}

impl Then<IsAnExtractor> for OnePayload {
    type Next = OnePayload;
    fn next(self) -> OnePayload {
        OnePayload
    }
}

/// Never an argument's role: a second impl for [`OnePayload`], so that the compiler reports a
/// second payload through [`Then`]'s message instead of inferring the role it expected.
pub enum NoRole {}

impl Then<NoRole> for OnePayload {
    type Next = OnePayload;
    fn next(self) -> OnePayload {
        OnePayload
    }
}

/// The next count after an argument of role `role`.
pub fn then<S: Then<R>, R>(count: S, _role: R) -> S::Next {
    count.next()
}

/// The role a generated client gives an argument it sends as the payload.
#[diagnostic::on_unimplemented(
    message = "the generated client would send this argument as the payload, but its type is an extractor",
    label = "mark it `#[extract]` so that the client leaves it out"
)]
pub trait ClientSends {}
impl ClientSends for IsThePayload {}

/// The role a generated client gives an argument it leaves out.
#[diagnostic::on_unimplemented(
    message = "the generated client would leave this argument out as an extractor, but its type is the payload",
    label = "mark it `#[payload]` so that the client sends it"
)]
pub trait ClientSkips {}
impl ClientSkips for IsAnExtractor {}

/// Checks that the generated client sends an argument of role `R`.
pub fn client_sends<R: ClientSends>(_role: R) {}

/// Checks that the generated client leaves out an argument of role `R`.
pub fn client_skips<R: ClientSkips>(_role: R) {}

/// A generated client decodes the `T` of a `Result<T, E>` return type, or the whole type:
/// checks that a return type it takes whole is not a `Result` under another name.
pub trait ReplyWhole {
    fn whole(&self) -> IsWhole;
}
impl<R> ReplyWhole for Probe<R> {
    fn whole(&self) -> IsWhole {
        IsWhole
    }
}

/// A `Result` under another name, as a generated client sees it.
pub trait ReplyAliased {
    fn whole(&self) -> IsAliasedResult;
}
impl<T, E> ReplyAliased for &Probe<Result<T, E>> {
    fn whole(&self) -> IsAliasedResult {
        IsAliasedResult
    }
}

/// A return type the client decodes whole.
pub struct IsWhole;
/// A `Result` under another name.
pub struct IsAliasedResult;

/// Checks that a generated client may decode a return type whole.
#[diagnostic::on_unimplemented(
    message = "the generated client cannot see that this return type is a `Result`",
    label = "write it as `Result<Reply, E>` in the handler's signature"
)]
pub trait ClientDecodesWhole {}
impl ClientDecodesWhole for IsWhole {}

/// See [`ClientDecodesWhole`].
pub fn client_decodes_whole<R: ClientDecodesWhole>(_role: R) {}

/// The schema of an endpoint's payload or reply type.
#[cfg(feature = "service")]
pub fn schema<T: EndpointType + ?Sized>() -> TypeSchema {
    T::type_schema()
}

/// Puts parameter values into a subject template: `orders.{id}` with `[(1, "7")]` gives
/// `orders.7`. A value that is not a valid subject token is an error, never a wrong subject.
pub fn fill_subject(template: &str, values: &[(usize, String)]) -> Result<String, RequestError> {
    let mut tokens: Vec<&str> = template.split('.').collect();
    for (index, value) in values {
        let bad = value.is_empty()
            || value
                .chars()
                .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control());
        if bad {
            return Err(RequestError::InvalidSubject {
                subject: template.to_string(),
                reason: format!("parameter value `{value}` is not a subject token"),
            });
        }
        if let Some(t) = tokens.get_mut(*index) {
            *t = value;
        }
    }
    Ok(tokens.join("."))
}

/// A typed request with `codec`, under the caller's current span.
pub async fn typed_request<Resp, Req>(
    client: &crate::Client,
    subject: &str,
    codec: Codec,
    request: &Req,
) -> Result<Resp, RequestError>
where
    Resp: DeserializeOwned,
    Req: Serialize + ?Sized,
{
    let origin = crate::origin::Origin::client(client, codec);
    origin
        .request(subject, origin.encode(subject, request)?)
        .await
}

/// A payload or reply type with a JSON Schema.
#[doc(hidden)]
pub trait SchemaByType {
    fn schema(&self) -> Option<crate::asyncapi::SchemaOf>;
}

#[cfg(feature = "service")]
impl<T: schemars::JsonSchema> SchemaByType for &Probe<T> {
    fn schema(&self) -> Option<crate::asyncapi::SchemaOf> {
        Some(crate::asyncapi::schema_of::<T>)
    }
}

/// Any other type: no schema.
#[doc(hidden)]
pub trait NoSchema {
    fn schema(&self) -> Option<crate::asyncapi::SchemaOf>;
}

impl<T: ?Sized> NoSchema for Probe<T> {
    fn schema(&self) -> Option<crate::asyncapi::SchemaOf> {
        None
    }
}
