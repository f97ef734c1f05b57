//! The core handler kinds, `#[subscribe]` and `#[request]` (service endpoints are requests): one
//! subscription per handler and instance, messages taken in arrival order, up to `concurrency`
//! at once, the reply or error reply sent, drained at shutdown, subscribed again if it ends.

use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

use async_nats::{Message, Subscriber};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::inbox::Inbox;
use super::{HandlerKind, Invoke, Worker};

/// `#[subscribe]`: no reply.
pub static SUBSCRIBE: HandlerKind = HandlerKind {
    attribute: "subscribe",
    replies: false,
    at_most_once: true,
};

/// `#[request]` and `#[endpoint]`: the return value is the reply.
pub static REQUEST: HandlerKind = HandlerKind {
    attribute: "request",
    replies: true,
    at_most_once: true,
};
use crate::context::Context;
use crate::error::{Error, HandlerError};
use crate::headers;
use crate::outcome::Outcome;
use crate::telemetry::spans::{Frame, SendKind};

/// Subscribes handler `I` of `A` and spawns its task (the `Start` of core handlers).
pub fn start<A: Invoke<I>, const I: usize>(
    worker: Worker<A>,
    stop: watch::Receiver<bool>,
) -> BoxFuture<'static, Result<Vec<JoinHandle<()>>, Error>> {
    Box::pin(async move {
        let sub = worker
            .subscribe()
            .await
            .map_err(|source| Error::Subscribe {
                handler: worker.name(),
                subject: worker.spec.subject.to_string(),
                source,
            })?;
        Ok(vec![tokio::spawn(worker.run::<I>(sub, stop))])
    })
}

impl<A: Send + Sync + 'static> Worker<A> {
    pub(crate) async fn subscribe(&self) -> Result<Subscriber, async_nats::SubscribeError> {
        let nats = self.client.nats();
        match self.queue {
            Some(q) => nats.queue_subscribe(self.spec.subject, q.to_string()).await,
            None => nats.subscribe(self.spec.subject).await,
        }
    }

    /// Runs until shutdown: then drains the subscription and finishes what is in flight.
    ///
    /// The hot path polls the inbox first and reads the stop flag with one atomic load; the
    /// watch channel is only polled when no message is waiting. Whenever the handler waits (or
    /// `concurrency` handlers are in flight), the inbox takes in what arrives, up to the
    /// handler's buffer, counting what it drops.
    pub(crate) async fn run<const I: usize>(
        self,
        sub: Subscriber,
        mut shutdown: watch::Receiver<bool>,
    ) where
        A: Invoke<I>,
    {
        let mut inbox = Inbox::new(sub, self.buffer, self.name());
        let tally = &self.tally;
        let mut in_flight = FuturesUnordered::new();
        let mut draining = false;
        // One future for the whole loop: a worker that waits for messages stays registered with
        // the shutdown signal instead of registering and unregistering every time it idles.
        let mut signal = shutdown.clone();
        let mut stopped = std::pin::pin!(async move {
            // Also fires when the runtime is dropped without a shutdown.
            let _ = signal.changed().await;
        });
        // A serial handler reuses one context while messages keep arriving, so that a message
        // costs no clone of the client and no new context. It is released (with its last
        // message) whenever nothing is waiting.
        let mut reused: Option<Context> = None;
        loop {
            if !draining && self.stop.load(Relaxed) {
                draining = true;
                if let Err(e) = inbox.subscription().drain().await {
                    // The connection is gone: what is already buffered is still handled below,
                    // then the stream ends.
                    tracing::warn!(handler = %self.name(), error = %e, "cannot drain subscription");
                }
            }
            // One at a time, with a message already waiting: handled right here, without the
            // select below and without a future of its own (the common, busy case).
            if self.limit == 1 {
                let next = {
                    let mut noop = std::task::Context::from_waker(futures::task::noop_waker_ref());
                    match reused.as_mut() {
                        Some(ctx) => inbox.poll_into(&mut noop, tally, ctx.message_slot()),
                        None => match inbox.poll_next(&mut noop, tally) {
                            Poll::Ready(Some(msg)) => {
                                let idle = (tracing::Span::none(), Frame::none());
                                reused = Some(self.context(idle, msg, None));
                                Poll::Ready(true)
                            }
                            Poll::Ready(None) => Poll::Ready(false),
                            Poll::Pending => Poll::Pending,
                        },
                    }
                };
                if let (Poll::Ready(true), Some(ctx)) = (next, reused.as_mut()) {
                    let started = self.prepare_in(ctx);
                    let outcome = inbox.while_running(self.call::<I>(ctx), tally).await;
                    if let Some(outcome) = self.settle(ctx, started, outcome) {
                        let concluded = self.conclude(ctx, started, outcome);
                        inbox.while_running(concluded, tally).await;
                    }
                    ctx.end();
                    continue;
                }
                reused = None;
            }
            let room = in_flight.len() < self.limit;
            let next = std::future::poll_fn(|cx| match room {
                true => inbox.poll_next(cx, tally),
                false => {
                    inbox.fill(cx, tally);
                    Poll::Pending
                }
            });
            tokio::select! {
                biased;
                next = next => match next {
                    Some(msg) if self.limit == 1 => {
                        inbox.while_running(self.process::<I>(msg), tally).await
                    }
                    Some(msg) => in_flight.push(self.process::<I>(msg)),
                    None if draining => break,
                    // Held messages are still handled before the stream ends for good.
                    None => match self.resubscribe(&mut shutdown).await {
                        Some(s) => inbox.resubscribed(s),
                        None => draining = true,
                    },
                },
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                // Polled until it fires once: then `draining` is set on the next turn.
                () = &mut stopped, if !draining => self.stop.store(true, Relaxed),
            }
        }
        while in_flight.next().await.is_some() {}
    }

    /// The subscription ended without a shutdown (the connection was closed under it): make it
    /// again with backoff, up to 10 attempts. The time without a subscription, to the new one
    /// confirmed by a round trip, is an outage of this handler.
    async fn resubscribe(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Subscriber> {
        let since = std::time::Instant::now();
        for attempt in 1..=10usize {
            if self.stop.load(Relaxed) || *shutdown.borrow() {
                return None;
            }
            tokio::time::sleep(crate::runtime::connect::backoff(
                attempt,
                Duration::from_secs(2),
            ))
            .await;
            match self.subscribe().await {
                Ok(sub) => {
                    let flushed = self.client.nats().flush();
                    let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
                    self.counters.outage(since.elapsed());
                    self.runtime.subscription_restarts.fetch_add(1, Relaxed);
                    tracing::warn!(handler = %self.name(), subject = self.spec.subject, "subscription ended; subscribed again");
                    return Some(sub);
                }
                Err(e) => {
                    tracing::warn!(handler = %self.name(), attempt, error = %e, "cannot subscribe again")
                }
            }
        }
        tracing::error!(handler = %self.name(), subject = self.spec.subject, "subscription ended and could not be made again; handler stopped");
        None
    }

    /// Handles one message with the handler's whole policy: reply, error reply, counts, span.
    async fn process<const I: usize>(&self, msg: Message)
    where
        A: Invoke<I>,
    {
        let (ctx, started) = self.prepare(msg, None);
        let outcome = self.call::<I>(&ctx).await;
        if let Some(outcome) = self.settle(&ctx, started, outcome) {
            self.conclude(&ctx, started, outcome).await;
        }
    }

    /// Records the common outcome (done, nothing to reply) and returns `None`; any other outcome
    /// is given back for [`Worker::conclude`]. Spares the common case a future of its own.
    fn settle(
        &self,
        ctx: &Context,
        started: Option<quanta::Instant>,
        outcome: Result<Outcome, HandlerError>,
    ) -> Option<Result<Outcome, HandlerError>> {
        match outcome {
            Ok(Outcome::Done) if !self.spec.kind.replies => {
                self.record(ctx.frame(), started, None, None);
                None
            }
            outcome => Some(outcome),
        }
    }

    /// Acts on the outcome of a handler: sends its reply or error reply, counts it, records it
    /// on the span.
    async fn conclude(
        &self,
        ctx: &Context,
        started: Option<quanta::Instant>,
        outcome: Result<Outcome, HandlerError>,
    ) {
        let span = ctx.frame();
        let reply_to = match self.spec.kind.replies {
            true => ctx.message().reply.as_ref(),
            false => None,
        };
        let (error, error_type) = match outcome {
            Ok(Outcome::Done) => (None, None),
            Ok(Outcome::Reply(payload, codec)) => match reply_to {
                None => {
                    self.no_reply_subject();
                    (None, None)
                }
                Some(reply) => {
                    let h = codec.headers();
                    match self
                        .client
                        .send(Some(span), SendKind::Reply, reply.clone(), h, payload)
                        .await
                    {
                        Ok(()) => (None, None),
                        Err(e) => {
                            tracing::warn!(handler = %self.name(), error = %e, "cannot send the reply");
                            let err = HandlerError::new(format!("cannot send the reply: {e}"));
                            (Some(err), Some("reply"))
                        }
                    }
                }
            },
            Ok(Outcome::Failed(err)) => (Some(err), Some("handler")),
            Ok(Outcome::Rejected(err)) => (Some(err), Some("decode")),
            Err(panic) => (Some(panic), Some("panic")),
        };
        self.record(span, started, error_type, error.as_ref());
        let Some(error) = error else { return };
        if self.spec.kind.replies {
            match reply_to {
                // Rare: boxed, so that its future does not grow every message's.
                Some(reply) => Box::pin(self.error_reply(span, reply.clone(), &error)).await,
                None => self.no_reply_subject(),
            }
        }
    }

    async fn error_reply(&self, span: &Frame, reply: async_nats::Subject, err: &HandlerError) {
        let h = headers::error_headers(err);
        let sent = self
            .client
            .send(Some(span), SendKind::Reply, reply, h, bytes::Bytes::new())
            .await;
        if let Err(e) = sent {
            tracing::warn!(handler = %self.name(), error = %e, "cannot send the error reply");
        }
    }

    fn no_reply_subject(&self) {
        tracing::warn!(handler = %self.name(), "request arrived without a reply subject; nothing to reply to");
    }
}
