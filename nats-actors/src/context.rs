//! The per-message [`Context`]: what a handler knows about its message, and how it sends more.

use std::fmt;

use async_nats::{HeaderMap, Message};
use bytes::Bytes;

use crate::client::Client;
use crate::codec::{self, Codec};
use crate::headers;
#[cfg(feature = "jetstream")]
use crate::jetstream::delivery::Delivery;

/// What a context knows of a JetStream delivery (nothing without the `jetstream` feature).
#[cfg(feature = "jetstream")]
pub(crate) type DeliveryInfo = crate::jetstream::delivery::LazyDelivery;
/// What a context knows of a JetStream delivery (nothing without the `jetstream` feature).
#[cfg(not(feature = "jetstream"))]
pub(crate) enum DeliveryInfo {}
use crate::telemetry::spans::Frame;

/// What a handler knows about the message it is handling, and how it sends more.
///
/// Take it as `ctx: &Context`. It is a [`Sender`](crate::Sender): publishes and requests made
/// through it carry the incoming trace context (`traceparent`, `tracestate`, `baggage`), so the
/// trace continues across the hop.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Actor)]
/// struct Audit;
///
/// #[handlers]
/// impl Audit {
///     #[subscribe("orders.{region}.updated")]
///     async fn on_updated(&self, region: Param<String>, ctx: &Context) -> Result<(), HandlerError> {
///         println!("{} via {}", ctx.subject(), ctx.template());
///         ctx.publish("audit.order", &format!("updated in {}", *region)).await?;
///         Ok(())
///     }
/// }
/// ```
pub struct Context {
    message: Message,
    span: tracing::Span,
    frame: Frame,
    client: Client,
    default_codec: Codec,
    template: &'static str,
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    delivery: Option<DeliveryInfo>,
    /// In a keyed actor's turn: the message ids of its JetStream publishes, and where its
    /// reminders go.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    turn: Option<Box<TurnIds>>,
    /// For a batch handler: every message of the batch (this context's message is the first).
    #[cfg(feature = "jetstream")]
    batch: Option<std::sync::Arc<crate::jetstream::batch::members::Members>>,
}

/// The message ids of one turn's JetStream publishes: `<actor>:<key>:<input sequence>:<n>`,
/// `n` counting the turn's publishes from 0. A turn run again on the same input publishes
/// under the same ids, so the target stream stores each publish once (within its duplicate
/// window).
#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
pub(crate) struct TurnIds {
    prefix: String,
    next: std::sync::atomic::AtomicU32,
    pub(crate) reminders: Reminders,
}

/// Where the reminders of a turn's key go: their schedules under `schedules.<name>` in
/// `stream`, each firing onto `target.<subject>` (the key's partition, as stored).
#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
pub(crate) struct Reminders {
    pub(crate) stream: std::sync::Arc<str>,
    pub(crate) schedules: String,
    pub(crate) target: String,
    /// The key's subject tokens (`account.42`).
    pub(crate) key_subject: String,
}

#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
impl TurnIds {
    /// The id of the turn's next publish.
    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{n}", self.prefix)
    }
}

impl Context {
    #[inline(always)]
    pub(crate) fn new(
        (span, frame): (tracing::Span, Frame),
        message: Message,
        client: Client,
        default_codec: Codec,
        template: &'static str,
        delivery: Option<DeliveryInfo>,
    ) -> Self {
        Self {
            message,
            span,
            frame,
            client,
            default_codec,
            template,
            delivery,
            turn: None,
            #[cfg(feature = "jetstream")]
            batch: None,
        }
    }

    /// Makes this the context of a batch handler's call on `members`.
    #[cfg(feature = "jetstream")]
    pub(crate) fn set_batch(
        &mut self,
        members: std::sync::Arc<crate::jetstream::batch::members::Members>,
    ) {
        self.batch = Some(members);
    }

    /// The batch a batch handler is called with.
    #[cfg(feature = "jetstream")]
    pub(crate) fn batch(
        &self,
    ) -> Option<&std::sync::Arc<crate::jetstream::batch::members::Members>> {
        self.batch.as_ref()
    }

    /// Makes this the context of a keyed actor's turn on input `prefix`
    /// (`<actor>:<key>:<sequence>`): its JetStream publishes get ids from it.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) fn in_turn(&mut self, prefix: String, reminders: Reminders) {
        self.turn = Some(Box::new(TurnIds {
            prefix,
            next: std::sync::atomic::AtomicU32::new(0),
            reminders,
        }));
    }

    /// The ids of this turn's JetStream publishes, in a keyed actor's turn.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) fn turn_ids(&self) -> Option<&TurnIds> {
        self.turn.as_deref()
    }

    /// Where the next message goes, for a serial handler that reuses one context from message
    /// to message (no client clone per message); its span then comes with
    /// [`Context::begin`]. The previous message is freed when it is overwritten; its span
    /// already ended in [`Context::end`].
    #[inline(always)]
    pub(crate) fn message_slot(&mut self) -> &mut Message {
        &mut self.message
    }

    /// Starts the span of the message now in the context.
    #[inline(always)]
    pub(crate) fn begin(&mut self, (span, frame): (tracing::Span, Frame)) {
        self.span = span;
        self.frame = frame;
    }

    /// Ends the message's span now (a reused context keeps its message until the next one).
    #[inline(always)]
    pub(crate) fn end(&mut self) {
        self.frame = Frame::none();
        self.span = tracing::Span::none();
    }

    /// The JetStream delivery (stream, sequences, delivery count), in a `#[consumer]` handler.
    #[cfg(feature = "jetstream")]
    pub fn delivery(&self) -> Option<&Delivery> {
        self.delivery.as_ref()?.get(self.message.reply.as_ref())
    }

    /// The `tracing` span the handler runs in, for log layers: `debug` level, target
    /// `nats_actors_span`, fields `handler` and `subject` (disabled unless a log filter enables
    /// it, e.g. `RUST_LOG=info,nats_actors_span=debug`).
    ///
    /// The OpenTelemetry `process` span is recorded by nats-actors, not through this span:
    /// `tracing` events in the handler become its events and spans the handler opens are its
    /// children; for its OpenTelemetry context (to propagate by hand), use
    /// `opentelemetry::Context::current()` inside the handler.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The recorded `process` span.
    pub(crate) fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The subject the message arrived on.
    pub fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    /// The subject template of the handler, e.g. `orders.{region}.updated`.
    pub fn template(&self) -> &'static str {
        self.template
    }

    /// The reply subject, for a request.
    pub fn reply(&self) -> Option<&str> {
        self.message.reply.as_ref().map(|s| s.as_str())
    }

    /// The message headers, if any.
    #[inline]
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }

    /// The value of one header (exact name first, then ignoring ASCII case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().and_then(|h| headers::get(h, name))
    }

    /// The raw payload.
    #[inline]
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The whole message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The codec that decodes this message: its `Content-Type`, else the handler's default; an
    /// unknown `Content-Type` is an error.
    #[inline]
    pub(crate) fn message_codec(&self) -> Result<Codec, crate::error::DecodeError> {
        match self.headers() {
            // The common case: no headers, the handler's codec.
            None => Ok(self.default_codec),
            Some(h) => Ok(codec::of_headers(Some(h))?.unwrap_or(self.default_codec)),
        }
    }

    /// The codec of this message: its `Content-Type` if known, else the handler's default.
    pub fn codec(&self) -> Codec {
        codec::of_headers(self.headers())
            .ok()
            .flatten()
            .unwrap_or(self.default_codec)
    }

    /// The runtime's client, for what a handler sends without continuing this trace.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A typed handle on KV bucket `bucket`, with the handler's codec; what it writes while
    /// the handler runs continues this message's trace. See [`Client::kv`].
    ///
    /// ```no_run
    /// use nats_actors::prelude::*;
    ///
    /// #[derive(Actor)]
    /// struct Seen;
    ///
    /// #[handlers]
    /// impl Seen {
    ///     #[subscribe("visits.{page}")]
    ///     async fn visit(&self, page: Param<String>, ctx: &Context) -> Result<(), HandlerError> {
    ///         let visits = ctx.kv::<u64>("visits").await?;
    ///         let n = visits.get(&page).await?.unwrap_or(0);
    ///         visits.put(&page, &(n + 1)).await?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn kv<T>(&self, bucket: &str) -> Result<crate::kv::Kv<T>, crate::kv::KvError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.client.with_codec(self.default_codec).kv(bucket).await
    }

    /// A handle on object store `bucket`; what it puts while the handler runs continues this
    /// message's trace. See [`Client::objects`].
    ///
    /// ```no_run
    /// use nats_actors::prelude::*;
    ///
    /// #[derive(Actor)]
    /// struct Archive;
    ///
    /// #[handlers]
    /// impl Archive {
    ///     #[subscribe("reports.{id}")]
    ///     async fn keep(&self, id: Param<String>, report: String, ctx: &Context) -> Result<(), HandlerError> {
    ///         let archive = ctx.objects("archive").await?;
    ///         archive.put(id.as_str(), &mut report.as_bytes()).await?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn objects(
        &self,
        bucket: &str,
    ) -> Result<crate::objects::ObjectStore, crate::objects::ObjectError> {
        self.client.objects(bucket).await
    }

    /// The handler's codec, which what it sends is encoded with.
    #[inline]
    pub(crate) fn handler_codec(&self) -> Codec {
        self.default_codec
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("subject", &self.subject())
            .field("template", &self.template)
            .field("reply", &self.reply())
            .finish_non_exhaustive()
    }
}
