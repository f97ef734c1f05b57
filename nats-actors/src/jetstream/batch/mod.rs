//! [`Batch`]: a `#[consumer]` handler that takes many messages at once, and settles each one
//! as it says.

pub(crate) mod members;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use members::{Members, Verdict};

use async_nats::{HeaderMap, Subject};
use serde::de::DeserializeOwned;

use super::delivery::Delivery;
use crate::codec::{self, Codec};
use crate::context::Context;
use crate::error::HandlerError;
use crate::extract::FromContext;

/// Up to `batch` messages of a `#[consumer]`, decoded, for a handler that takes them together
/// (a bulk insert, a batched call to another system).
///
/// The consumer gathers messages until it has `batch` of them (default 200) or `batch_wait`
/// (default 50 ms) has passed since the first, then calls the handler once. A message that
/// does not decode never reaches the batch: it is dead-lettered on its own with the reason.
/// While the handler runs, every message of the batch gets in-progress acks, so a slow batch
/// is not redelivered. The call's span is a child of the first message's producer and links
/// the producers of the others, with `messaging.batch.message_count`.
///
/// Each message is settled as the handler said through its [`Item`] ([`Item::ack`],
/// [`Item::nak`], [`Item::fail`], [`Item::term`], [`Item::dead_letter`]); the others follow
/// the handler's result, as for a one-message consumer: `Ok` acks them, a retryable error naks
/// them with the backoff, a fatal one dead-letters them, a panic naks them.
///
/// ```no_run
/// use std::time::Duration;
/// use nats_actors::prelude::*;
/// use nats_actors::jetstream::Batch;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Reading { sensor: String, value: f64 }
///
/// #[derive(Actor)]
/// struct Loader;
///
/// #[handlers]
/// impl Loader {
///     #[consumer(stream = "READINGS", durable = "loader", batch = 100, batch_wait = "50ms")]
///     async fn load(&self, readings: Batch<Reading>) -> Result<(), HandlerError> {
///         for reading in &readings {
///             if reading.value.is_nan() {
///                 reading.dead_letter("not a number"); // this one alone
///             } else if reading.sensor.is_empty() {
///                 reading.nak(Duration::from_secs(5)); // again in 5 s
///             }
///         }
///         Ok(()) // every other reading is acked
///     }
/// }
/// ```
pub struct Batch<T> {
    items: Vec<Item<T>>,
}

/// One message of a [`Batch`]: its value (through `Deref`), what it came with, and how it is
/// settled. What is not settled here follows the handler's result.
///
/// ```no_run
/// use std::time::Duration;
/// use nats_actors::prelude::*;
/// use nats_actors::jetstream::Batch;
///
/// #[derive(Actor)]
/// struct Mailer;
///
/// #[handlers]
/// impl Mailer {
///     #[consumer(stream = "MAIL", durable = "mailer", batch = 50)]
///     async fn send(&self, mails: Batch<String>) {
///         for mail in mails {
///             let first_try = mail.delivery().is_some_and(|d| d.delivered == 1);
///             match mail.as_str() {
///                 "" => mail.term("an empty address is never deliverable"),
///                 to if to.ends_with(".invalid") => mail.dead_letter(format!("{to}: no such domain")),
///                 _ if first_try => mail.nak(Duration::from_secs(30)), // greylisted: later
///                 _ => mail.ack(),
///             }
///         }
///     }
/// }
/// ```
pub struct Item<T> {
    value: T,
    index: usize,
    members: Arc<Members>,
}

impl<T> Batch<T> {
    /// How many messages it holds (those that decoded).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether every message failed to decode.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Its items, in stream order.
    pub fn iter(&self) -> std::slice::Iter<'_, Item<T>> {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a Item<T>;
    type IntoIter = std::slice::Iter<'a, Item<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T> IntoIterator for Batch<T> {
    type Item = Item<T>;
    type IntoIter = std::vec::IntoIter<Item<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<T> Item<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The subject it was published to.
    pub fn subject(&self) -> &Subject {
        &self.members.messages[self.index].message.subject
    }

    /// Its headers, if it had any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.members.messages[self.index].message.headers.as_ref()
    }

    /// Its stream sequence, delivery count and the rest of what the server says about it.
    pub fn delivery(&self) -> Option<&Delivery> {
        self.members.delivery(self.index)
    }

    /// Acks it, whatever the handler returns.
    pub fn ack(&self) {
        self.members.set(self.index, Verdict::Ack);
    }

    /// Naks it, to be delivered again after `delay`.
    pub fn nak(&self, delay: Duration) {
        self.members.set(self.index, Verdict::Nak(delay));
    }

    /// Settles it as `error` would a one-message consumer's message: nak'ed with its delay
    /// (or the backoff) while it may be retried, else dead-lettered with its description.
    pub fn fail(&self, error: impl Into<HandlerError>) {
        self.members.set(self.index, Verdict::Fail(error.into()));
    }

    /// Terminates it: never delivered again, and not stored as a dead letter.
    pub fn term(&self, reason: impl Into<String>) {
        self.members.set(self.index, Verdict::Term(reason.into()));
    }

    /// Stores it in the dead-letter stream with `reason`, then terminates it.
    pub fn dead_letter(&self, reason: impl Into<String>) {
        self.members
            .set(self.index, Verdict::DeadLetter(reason.into()));
    }
}

impl<T> std::ops::Deref for Item<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Item<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("subject", self.subject())
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> FromContext<'_> for Batch<T> {
    type Rejection = HandlerError;

    /// Decodes each message of the batch with its `Content-Type` (else the handler's codec);
    /// one that does not decode is left out, to be dead-lettered with the reason.
    fn from_context(ctx: &Context) -> Result<Self, HandlerError> {
        let Some(members) = ctx.batch() else {
            return Err(HandlerError::new(
                "`Batch<T>` is only available in #[consumer] handlers",
            ));
        };
        let limit =
            crate::compression::inflate_limit(ctx.client().nats().server_info().max_payload);
        let mut items = Vec::with_capacity(members.messages.len());
        for (index, m) in members.messages.iter().enumerate() {
            match decode::<T>(&m.message, ctx.handler_codec(), limit) {
                Ok(value) => items.push(Item {
                    value,
                    index,
                    members: members.clone(),
                }),
                Err(e) => members.set(index, Verdict::Rejected(e)),
            }
        }
        Ok(Batch { items })
    }
}

/// One message's value, as a one-message handler's payload is decoded.
fn decode<T: DeserializeOwned>(
    message: &async_nats::Message,
    default: Codec,
    limit: usize,
) -> Result<T, HandlerError> {
    let headers = message.headers.as_ref();
    let rejected = |e: crate::error::DecodeError| crate::extract::rejected(e);
    let codec = codec::of_headers(headers)
        .map_err(rejected)?
        .unwrap_or(default);
    let payload =
        crate::compression::payload(headers, &message.payload, || limit).map_err(rejected)?;
    codec.decode(&payload).map_err(rejected)
}
