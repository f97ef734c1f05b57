//! [`Sender`]: the typed send methods, written once for [`Client`] (each send starts a trace)
//! and [`Context`] (each send continues the handled message's trace).

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::context::Context;
use crate::error::{PublishError, RequestError};
#[cfg(feature = "jetstream")]
use crate::jetstream::{BatchPublished, JsPublish, Published};
use crate::origin::Origin;

/// Typed publish, request and JetStream publish, for a [`Client`] and a handler's [`Context`].
///
/// Values are encoded with the sender's codec (the client's, or the handler's) and carry a
/// `Content-Type` header. Through a `Context`, what is sent carries the incoming trace context
/// (`traceparent`, `tracestate`, `baggage`), so the trace continues across the hop. The
/// prelude brings the trait into scope; write `impl Sender` for code that sends from both:
///
/// ```no_run
/// use nats_actors::prelude::*;
/// use nats_actors::Sender;
///
/// async fn notify(to: &impl Sender, order: &str) -> Result<(), nats_actors::PublishError> {
///     to.publish("orders.notified", &order).await
/// }
///
/// #[derive(Actor)]
/// struct Orders;
///
/// #[handlers]
/// impl Orders {
///     #[subscribe("orders.created")]
///     async fn created(&self, order: String, ctx: &Context) -> Result<(), HandlerError> {
///         notify(ctx, &order).await?; // continues this message's trace
///         Ok(())
///     }
/// }
///
/// # async fn outside(client: Client) -> Result<(), nats_actors::PublishError> {
/// notify(&client, "o-1").await // a trace of its own
/// # }
/// ```
pub trait Sender: HasOrigin + Sync {
    /// Publishes `value`.
    ///
    /// Fails with [`PublishError::MaxPayload`] before sending anything when the message is over
    /// the server's `max_payload`.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) -> Result<(), nats_actors::PublishError> {
    /// client.publish("orders.created", &("o-1", 250)).await?;
    /// # Ok(()) }
    /// ```
    fn publish<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        value: &T,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let origin = self.origin();
        let payload = origin.encode(subject, value);
        async move { origin.publish(subject, payload?).await }
    }

    /// Publishes many messages, then flushes the connection once, and returns each one's
    /// result in order. A value that does not encode (or is over `max_payload`) fails alone;
    /// when the flush fails, so does every message it held. Core NATS is at most once: a
    /// flushed message reached the socket, not necessarily a subscriber.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) {
    /// let readings = (0..100).map(|i| (format!("sensors.{}", i % 4), i as f64 / 10.0));
    /// let results = client.publish_batch(readings).await;
    /// assert!(results.iter().all(|r| r.is_ok()));
    /// # }
    /// ```
    fn publish_batch<S, T, I>(
        &self,
        messages: I,
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send
    where
        I: IntoIterator<Item = (S, T)>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
        T: Serialize + Send,
    {
        self.origin().publish_batch(messages.into_iter())
    }

    /// The same sender, compressing what it sends with `compression` (for this send, or
    /// the ones made through the value returned), whatever the runtime's, the actor's or the
    /// handler's `compress`.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(ctx: &Context) -> Result<(), nats_actors::PublishError> {
    /// use nats_actors::Compression;
    /// let report = vec![0u64; 50_000];
    /// ctx.compressed(Compression::zstd()).publish("reports.daily", &report).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "compression")]
    fn compressed(&self, compression: crate::compression::Compression) -> Compressed<'_> {
        Compressed::new(self.origin(), crate::compression::Packing::On(compression))
    }

    /// The same sender, sending without compression, e.g. for a consumer that cannot
    /// decompress.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(ctx: &Context) -> Result<(), nats_actors::PublishError> {
    /// ctx.uncompressed().publish("legacy.feed", &"as it is").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "compression")]
    fn uncompressed(&self) -> Compressed<'_> {
        Compressed::new(self.origin(), crate::compression::Packing::Off)
    }

    /// Sends a request and decodes the reply (by its `Content-Type`, else with the sender's
    /// codec), waiting at most the client's timeout.
    ///
    /// Errors are distinct: [`RequestError::NoResponders`], [`RequestError::Timeout`],
    /// [`RequestError::Service`] (the responder's error code and description) and
    /// [`RequestError::Decode`].
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) -> Result<(), nats_actors::RequestError> {
    /// let total: u64 = client.request("orders.total", &"o-1").await?;
    /// # Ok(()) }
    /// ```
    fn request<Resp, Req>(
        &self,
        subject: &str,
        request: &Req,
    ) -> impl Future<Output = Result<Resp, RequestError>> + Send
    where
        Resp: DeserializeOwned,
        Req: Serialize + ?Sized,
    {
        let origin = self.origin();
        let payload = origin.encode(subject, request);
        async move { origin.request(subject, payload?).await }
    }

    /// Publishes `value` to a JetStream stream and waits for the server's ack.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) -> Result<(), nats_actors::PublishError> {
    /// let ack = client.js_publish("orders.created", &("o-1", 250)).await?;
    /// println!("stored as {}#{}", ack.stream, ack.sequence);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    fn js_publish<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        value: &T,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send {
        let origin = self.origin();
        let payload = origin.encode(subject, value);
        async move {
            origin
                .js_publish(subject, payload?, &JsPublish::new())
                .await
        }
    }

    /// Like [`Sender::js_publish`], with a message id, expectations and retries.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) -> Result<(), nats_actors::PublishError> {
    /// use nats_actors::jetstream::JsPublish;
    /// let opts = JsPublish::new().msg_id("o-1").attempts(10);
    /// client.js_publish_with("orders.created", &"o-1", &opts).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    fn js_publish_with<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        value: &T,
        options: &JsPublish,
    ) -> impl Future<Output = Result<Published, PublishError>> + Send {
        let origin = self.origin();
        let payload = origin.encode(subject, value);
        async move { origin.js_publish(subject, payload?, options).await }
    }

    /// Publishes many messages to JetStream with up to `window` (at most 65,536) acks
    /// outstanding at once, and returns each one's result in order. A failure does not stop
    /// the others. Messages are sent in order; one sent again after a failed ack (only when safe: see [`JsPublish`]) may
    /// land after later ones. An ack that does not come within the client's timeout
    /// ([`Client::with_timeout`](crate::Client::with_timeout), 5 s by default) is a timeout.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) {
    /// use nats_actors::jetstream::JsPublish;
    /// let tasks = (0..1000).map(|i| (format!("tasks.{}", i % 4), i));
    /// let results = client.js_publish_pipelined(tasks, 256, &JsPublish::new().msg_id("batch-7")).await;
    /// let stored = results.iter().filter(|r| r.is_ok()).count();
    /// println!("{stored} of 1000 stored");
    /// # }
    /// ```
    #[cfg(feature = "jetstream")]
    fn js_publish_pipelined<S, T, I>(
        &self,
        messages: I,
        window: usize,
        options: &JsPublish,
    ) -> impl Future<Output = Vec<Result<Published, PublishError>>> + Send
    where
        I: IntoIterator<Item = (S, T)>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
        T: Serialize + Send,
    {
        self.origin()
            .js_publish_pipelined(messages.into_iter(), window, options)
    }

    /// Publishes up to [`MAX_ATOMIC_BATCH`](crate::jetstream::MAX_ATOMIC_BATCH) messages as
    /// one atomic batch (nats-server 2.12+): the stream stores all of them, in order and
    /// without others in between, or none. The stream needs `allow_atomic_publish: true`;
    /// otherwise, and whenever the server refuses the batch, the error is
    /// [`PublishError::AtomicBatch`] with the server's code (10174: not allowed on the
    /// stream), and nothing is stored.
    ///
    /// `options` apply to the batch: its expectations (last sequence, last subject sequence)
    /// are checked once, before the first message; a message id `id` gives message `i` the id
    /// `<id>-<i>`, and a batch holding an id the stream already has is refused whole.
    /// `expected_last_msg_id` is refused (ADR-50).
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn demo(client: Client) -> Result<(), nats_actors::PublishError> {
    /// use nats_actors::jetstream::JsPublish;
    /// let transfer = [("ledger.alice", -25i64), ("ledger.bob", 25)];
    /// let stored = client.js_publish_atomic(transfer, &JsPublish::new().msg_id("transfer-9")).await?;
    /// println!("stored as {}#{}-{}", stored.stream, stored.first_sequence, stored.last_sequence);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    fn js_publish_atomic<S, T, I>(
        &self,
        messages: I,
        options: &JsPublish,
    ) -> impl Future<Output = Result<BatchPublished, PublishError>> + Send
    where
        I: IntoIterator<Item = (S, T)>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
        T: Serialize + Send,
    {
        self.origin()
            .js_publish_atomic(messages.into_iter(), options)
    }
}

/// A [`Sender`] compressing otherwise than the one it came from (see [`Sender::compressed`]
/// and [`Sender::uncompressed`]); it continues the same trace.
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::PublishError> {
/// use nats_actors::{Compressed, Compression, Sender};
/// let archive: Compressed<'_> = client.compressed(Compression::zstd().min_size(256));
/// for day in ["2026-12-01", "2026-12-02"] {
///     archive.publish("reports.archive", &day).await?;
/// }
/// # Ok(()) }
/// ```
#[cfg(feature = "compression")]
pub struct Compressed<'a> {
    client: Client,
    origin: Origin<'a>,
}

#[cfg(feature = "compression")]
impl<'a> Compressed<'a> {
    fn new(origin: Origin<'a>, packing: crate::compression::Packing) -> Self {
        Self {
            client: origin.client.with_packing(packing),
            origin,
        }
    }
}

#[cfg(feature = "compression")]
impl HasOrigin for Compressed<'_> {
    fn origin(&self) -> Origin<'_> {
        Origin {
            client: &self.client,
            ..self.origin
        }
    }
}

#[cfg(feature = "compression")]
impl Sender for Compressed<'_> {}

/// Where a [`Sender`] sends from (sealed: implemented by [`Client`] and [`Context`] only).
#[doc(hidden)]
pub trait HasOrigin {
    /// The client, codec and trace of what this sender sends.
    fn origin(&self) -> Origin<'_>;
}

impl HasOrigin for Client {
    fn origin(&self) -> Origin<'_> {
        Origin::client(self, self.codec())
    }
}

impl HasOrigin for Context {
    fn origin(&self) -> Origin<'_> {
        Origin {
            client: self.client(),
            codec: self.handler_codec(),
            parent: Some(self.frame()),
            incoming: self.headers(),
            turn: self.turn_ids(),
        }
    }
}

impl Sender for Client {}
impl Sender for Context {}
