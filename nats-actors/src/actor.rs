//! The [`Actor`] trait the macros implement, and the hidden items their expansion calls.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::context::{self, Context, Param};
use crate::error::HandlerError;

/// A type whose handlers the runtime runs; implemented by `#[derive(Actor)]` together with
/// `#[handlers]` on its `impl` block.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Ping { n: u32 }
///
/// #[derive(Actor)]
/// #[actor(queue = "pingers", codec = "msgpack")]
/// struct Pinger;
///
/// #[handlers]
/// impl Pinger {
///     #[request("ping")]
///     async fn ping(&self, ping: Ping) -> Result<Ping, HandlerError> {
///         Ok(Ping { n: ping.n + 1 })
///     }
/// }
///
/// # async fn run() -> Result<(), nats_actors::Error> {
/// Runtime::builder().connect_from_env().actor(Pinger).run_until_shutdown_signal().await
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an actor",
    label = "add #[derive(Actor)] to its struct and #[handlers] to its impl block"
)]
pub trait Actor: Sized + Send + Sync + 'static {
    #[doc(hidden)]
    fn options() -> ActorOptions;
    #[doc(hidden)]
    fn handlers() -> Vec<HandlerSpec<Self>>;
    #[doc(hidden)]
    fn instances(self) -> Vec<Self>;
}

/// The options of `#[actor(...)]`.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ActorOptions {
    pub name: &'static str,
    pub queue: Option<&'static str>,
    pub codec: Option<Codec>,
    pub instances: usize,
    pub concurrency: Option<usize>,
}

impl ActorOptions {
    /// Defaults for an actor named `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            queue: None,
            codec: None,
            instances: 1,
            concurrency: None,
        }
    }
}

/// Whether a handler replies.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    Subscribe,
    Request,
    /// A JetStream pull consumer (`#[consumer]`): the result decides the ack.
    Consume,
}

/// What a handler invocation came to.
#[doc(hidden)]
pub enum Outcome {
    /// Handled (subscription).
    Done,
    /// The handler returned an error.
    Failed(HandlerError),
    /// The message was rejected before the handler ran (bad payload or parameter).
    Rejected(HandlerError),
    /// The encoded reply and its codec.
    Reply(bytes::Bytes, Codec),
}

/// One handler, implemented by `#[handlers]` on the actor for the handler's index `I`: extracts the
/// arguments, calls the method, and turns its result into an [`Outcome`]. The future borrows the
/// instance and the context, so a message costs no allocation and no reference count here.
#[doc(hidden)]
pub trait Invoke<const I: usize>: Sized + Send + Sync + 'static {
    fn invoke<'a>(
        cell: &'a crate::cell::Cell<Self>,
        ctx: &'a Context,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'a;
}

/// Starts the subscription task of one handler (`private::spawn::<A, I>`).
#[doc(hidden)]
pub type Spawn<A> = fn(
    crate::runtime::Worker<A>,
    crate::runtime::Source,
    tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>;

/// One handler as the macros describe it.
#[doc(hidden)]
pub struct HandlerSpec<A> {
    pub method: &'static str,
    pub kind: HandlerKind,
    pub template: &'static str,
    pub subject: &'static str,
    pub queue: Option<&'static str>,
    pub codec: Option<Codec>,
    pub concurrency: Option<usize>,
    pub exclusive: bool,
    /// The consumer's options, for [`HandlerKind::Consume`].
    pub consumer: Option<&'static crate::jetstream::ConsumerSpec>,
    pub spawn: Spawn<A>,
}

impl<A> Clone for HandlerSpec<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for HandlerSpec<A> {}

/// Implemented by `#[handlers]` for the type of its impl block.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no handlers",
    label = "add #[handlers] to an impl block of `{Self}` with #[subscribe] or #[request] methods"
)]
pub trait Handlers {
    fn handlers() -> Vec<HandlerSpec<Self>>
    where
        Self: Sized;
}

/// A handler argument that is the message payload.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither an extractor nor a payload type",
    label = "nats-actors cannot provide this argument",
    note = "a payload type implements serde::Deserialize (#[derive(Deserialize)]); extractors are &Context, Param<T>, HeaderMap, Message, Bytes and Subject"
)]
pub trait Payload: Sized {
    fn decode(ctx: &Context) -> Result<Self, HandlerError>;
}

impl<T: DeserializeOwned> Payload for T {
    fn decode(ctx: &Context) -> Result<Self, HandlerError> {
        context::decode(ctx)
    }
}

/// A `Param<T>` argument.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed from a subject token",
    note = "the parameter type must implement std::str::FromStr"
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
        context::param(ctx, index, name)
    }
}

/// What a `#[subscribe]` handler may return.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a #[subscribe] or #[consumer] handler returns `()` or `Result<(), E>`, not `{Self}`",
    note = "E converts into HandlerError: any std::error::Error does"
)]
pub trait IntoOutcome {
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::Done
    }
}

impl<E: Into<HandlerError>> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e.into()),
        }
    }
}

/// Hidden items the macro expansion uses; not part of the API.
#[doc(hidden)]
pub mod private {
    pub use super::{ActorOptions, HandlerKind, HandlerSpec, Handlers, Invoke, Outcome};
    pub use crate::cell::Cell;
    pub use crate::jetstream::{ConsumerSpec, DeadLetterTarget, DeliverFrom};
    pub use crate::service::private::*;

    use super::*;

    /// Spawns the task of handler `I` of `A` on its subscription or JetStream consumer.
    pub fn spawn<A: Invoke<I>, const I: usize>(
        worker: crate::runtime::Worker<A>,
        source: crate::runtime::Source,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        match source {
            crate::runtime::Source::Core(sub) => tokio::spawn(worker.run::<I>(sub, stop)),
            crate::runtime::Source::JetStream(js) => tokio::spawn(worker.consume::<I>(*js, stop)),
        }
    }

    /// Puts parameter values into a subject template: `orders.{id}` with `[(1, "7")]` gives
    /// `orders.7`. A value that is not a valid subject token is an error, never a wrong subject.
    pub fn fill_subject(
        template: &str,
        values: &[(usize, String)],
    ) -> Result<String, crate::RequestError> {
        let mut tokens: Vec<&str> = template.split('.').collect();
        for (index, value) in values {
            let bad = value.is_empty()
                || value.chars().any(|c| {
                    c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control()
                });
            if bad {
                return Err(crate::RequestError::InvalidSubject {
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
    ) -> Result<Resp, crate::RequestError>
    where
        Resp: DeserializeOwned,
        Req: Serialize + ?Sized,
    {
        client.request_with_codec(subject, codec, request).await
    }

    pub fn decode<T: Payload>(ctx: &Context) -> Result<T, HandlerError> {
        T::decode(ctx)
    }

    pub fn param<P: FromParam>(ctx: &Context, index: usize, name: &str) -> Result<P, HandlerError> {
        P::from_param(ctx, index, name)
    }

    pub fn outcome<R: IntoOutcome>(ret: R) -> Outcome {
        ret.into_outcome()
    }

    pub fn reply_result<T: Serialize, E: Into<HandlerError>>(
        ret: Result<T, E>,
        ctx: &Context,
    ) -> Outcome {
        match ret {
            Ok(v) => reply_value(v, ctx),
            Err(e) => Outcome::Failed(e.into()),
        }
    }

    pub fn reply_value<T: Serialize>(value: T, ctx: &Context) -> Outcome {
        let codec = ctx.codec();
        match codec.encode(&value) {
            Ok(bytes) => Outcome::Reply(bytes, codec),
            Err(e) => Outcome::Failed(HandlerError::new(format!("cannot encode the reply: {e}"))),
        }
    }
}
