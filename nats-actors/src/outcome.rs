//! What a handler's return value comes to ([`Outcome`]), through the traits that accept it:
//! [`IntoOutcome`] for handlers that do not reply, [`IntoReply`] for requests and endpoints.

use bytes::Bytes;
use serde::Serialize;

use crate::codec::Codec;
use crate::context::Context;
use crate::error::HandlerError;

/// What a handler invocation came to.
#[doc(hidden)]
pub enum Outcome {
    /// Handled (subscription, consumer).
    Done,
    /// The handler returned an error.
    Failed(HandlerError),
    /// The message was rejected before the handler ran (an extractor or the payload refused it).
    Rejected(HandlerError),
    /// The encoded reply and its codec.
    Reply(Bytes, Codec),
}

/// What a `#[subscribe]` or `#[consumer]` handler may return: `()` or `Result<(), E>` with
/// `E: Into<HandlerError>` (any `std::error::Error` converts), under any alias.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a #[subscribe] or #[consumer] handler returns `()` or `Result<(), E>`, not `{Self}`",
    note = "E converts into HandlerError: any std::error::Error does"
)]
pub trait IntoOutcome {
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    #[inline]
    fn into_outcome(self) -> Outcome {
        Outcome::Done
    }
}

impl<E: Into<HandlerError>> IntoOutcome for Result<(), E> {
    #[inline]
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e.into()),
        }
    }
}

/// A reply value: any `serde::Serialize` type, encoded with the message's codec.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a reply",
    label = "a #[request] or #[endpoint] handler returns a serde::Serialize value or Result<T: Serialize, E: Into<HandlerError>>",
    note = "add #[derive(Serialize)] to the reply type"
)]
pub trait IntoReply {
    fn into_reply(self, ctx: &Context) -> Outcome;
}

impl<T: Serialize> IntoReply for T {
    #[inline]
    fn into_reply(self, ctx: &Context) -> Outcome {
        let codec = ctx.codec();
        match codec.encode(&self) {
            Ok(bytes) => Outcome::Reply(bytes, codec),
            Err(e) => Outcome::Failed(HandlerError::new(format!("cannot encode the reply: {e}"))),
        }
    }
}

/// `Ok` replies with the value, `Err` with an error reply (any alias of `Result`).
#[inline]
pub(crate) fn reply_result<T: IntoReply, E: Into<HandlerError>>(
    ret: Result<T, E>,
    ctx: &Context,
) -> Outcome {
    match ret {
        Ok(v) => v.into_reply(ctx),
        Err(e) => Outcome::Failed(e.into()),
    }
}
