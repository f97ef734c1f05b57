//! One subscription of one handler on one actor instance: take messages in arrival order, run up
//! to `concurrency` at once, act on the outcome, drain on shutdown, resubscribe if it ends.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::{HeaderMap, Message, Subscriber};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::actor::{HandlerKind, HandlerSpec, Invoke, Outcome};
use crate::cell::Cell;
use crate::client::Client;
use crate::codec::{self, Codec};
use crate::context::Context;
use crate::error::HandlerError;
use crate::headers;
use crate::stats::{Counters, HandlerCounters};
use crate::telemetry::events;
use crate::telemetry::metrics::{self, HandlerMetrics};
use crate::telemetry::spans::{self, Frame, ProcessMeta, SendKind};

/// In-progress acks for a JetStream message: its ack subject, how often, and when the server
/// last heard about it (updated with each `+WPI`).
#[derive(Clone, Copy)]
pub(crate) struct Progress<'a> {
    pub ack: &'a async_nats::Subject,
    pub period: Duration,
    /// When the message was taken.
    pub start: quanta::Instant,
    /// Nanoseconds after `start` of the last `+WPI`.
    pub last: &'a std::sync::atomic::AtomicU64,
}

/// Everything a subscription task needs.
#[doc(hidden)]
pub struct Worker<A> {
    pub(crate) spec: HandlerSpec<A>,
    pub(crate) cell: Arc<Cell<A>>,
    pub(crate) client: Client,
    pub(crate) codec: Codec,
    pub(crate) queue: Option<&'static str>,
    pub(crate) limit: usize,
    pub(crate) counters: Arc<HandlerCounters>,
    pub(crate) runtime: Arc<Counters>,
    /// Set when the runtime shuts down.
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) meta: &'static ProcessMeta,
    pub(crate) metrics: Option<HandlerMetrics>,
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
    /// The hot path polls the subscription first and reads the stop flag with one atomic load;
    /// the watch channel is only polled when no message is waiting.
    pub(crate) async fn run<const I: usize>(
        self,
        mut sub: Subscriber,
        mut shutdown: watch::Receiver<bool>,
    ) where
        A: Invoke<I>,
    {
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
                if let Err(e) = sub.drain().await {
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
                    sub.poll_next_unpin(&mut noop)
                };
                if let Poll::Ready(Some(msg)) = next {
                    let (ctx, started) = self.prepare_reused(&mut reused, msg);
                    let outcome = self.call::<I>(ctx).await;
                    if let Some(outcome) = self.settle(ctx, started, outcome) {
                        self.conclude(ctx, started, outcome).await;
                    }
                    ctx.end();
                    continue;
                }
                reused = None;
            }
            tokio::select! {
                biased;
                next = sub.next(), if in_flight.len() < self.limit => match next {
                    Some(msg) if self.limit == 1 => self.process::<I>(msg).await,
                    Some(msg) => in_flight.push(self.process::<I>(msg)),
                    None if draining => break,
                    None => match self.resubscribe(&mut shutdown).await {
                        Some(s) => sub = s,
                        None => break,
                    },
                },
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                // Polled until it fires once: then `draining` is set on the next turn.
                () = &mut stopped, if !draining => self.stop.store(true, Relaxed),
            }
        }
        while in_flight.next().await.is_some() {}
    }

    pub(crate) fn name(&self) -> String {
        format!("{}::{}", self.counters.actor, self.spec.method)
    }

    /// The subscription ended without a shutdown (the connection was closed under it): make it
    /// again with backoff, up to 10 attempts.
    async fn resubscribe(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Subscriber> {
        for attempt in 1..=10usize {
            if self.stop.load(Relaxed) || *shutdown.borrow() {
                return None;
            }
            tokio::time::sleep(super::connect::backoff(attempt, Duration::from_secs(2))).await;
            match self.subscribe().await {
                Ok(sub) => {
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
            Ok(Outcome::Done) if self.spec.kind != HandlerKind::Request => {
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
        let reply_to = match self.spec.kind {
            HandlerKind::Request => ctx.message().reply.as_ref(),
            _ => None,
        };
        let (error, error_type) = match outcome {
            Ok(Outcome::Done) => (None, None),
            Ok(Outcome::Reply(payload, codec)) => match reply_to {
                None => {
                    self.no_reply_subject();
                    (None, None)
                }
                Some(reply) => {
                    let mut h = HeaderMap::new();
                    h.insert(codec::CONTENT_TYPE, codec.content_type());
                    match self
                        .client
                        .send(Some(span), SendKind::Reply, reply.as_str(), h, payload)
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
        if self.spec.kind == HandlerKind::Request {
            match reply_to {
                // Rare: boxed, so that its future does not grow every message's.
                Some(reply) => Box::pin(self.error_reply(span, reply.clone(), &error)).await,
                None => self.no_reply_subject(),
            }
        }
    }

    /// Counts `msg`, opens its process span and builds the handler's context around it. Returns
    /// the context and, when processing is timed, when it started. Inlined, so that the message
    /// moves once, from the subscription into the context.
    #[inline(always)]
    pub(crate) fn prepare(
        &self,
        msg: Message,
        delivery: Option<crate::jetstream::LazyDelivery>,
    ) -> (Context, Option<quanta::Instant>) {
        let (span, started) = self.open(&msg);
        (self.context(span, msg, delivery), started)
    }

    /// [`Worker::prepare`] into the context a serial handler reuses (made on first use).
    #[inline(always)]
    fn prepare_reused<'c>(
        &self,
        slot: &'c mut Option<Context>,
        msg: Message,
    ) -> (&'c mut Context, Option<quanta::Instant>) {
        let (span, started) = self.open(&msg);
        let ctx = match slot {
            Some(ctx) => {
                ctx.renew(span, msg);
                ctx
            }
            None => slot.insert(self.context(span, msg, None)),
        };
        (ctx, started)
    }

    #[inline(always)]
    fn context(
        &self,
        span: (tracing::Span, Frame),
        msg: Message,
        delivery: Option<crate::jetstream::LazyDelivery>,
    ) -> Context {
        Context::new(
            span,
            msg,
            self.client.clone(),
            self.codec,
            self.spec.template,
            delivery,
        )
    }

    /// Counts `msg` and opens its process span; returns the span and, when processing is timed,
    /// when it started.
    #[inline(always)]
    fn open(&self, msg: &Message) -> ((tracing::Span, Frame), Option<quanta::Instant>) {
        crate::stats::bump(&self.counters.received);
        let span = spans::process(self.meta, msg);
        let started = (self.counters.timed || self.metrics.is_some()).then(metrics::now);
        (span, started)
    }

    /// Runs the handler on `ctx` inside its process span; a panic becomes an error with its
    /// message. One flat future around the handler's: awaiting it costs one poll call per
    /// message, not one per layer.
    #[inline(always)]
    pub(crate) fn call<'a, const I: usize>(
        &'a self,
        ctx: &'a Context,
    ) -> Call<'a, impl std::future::Future<Output = Outcome> + Send + 'a>
    where
        A: Invoke<I>,
    {
        Call {
            fut: AssertUnwindSafe(<A as Invoke<I>>::invoke(&self.cell, ctx)).catch_unwind(),
            // Nothing records this message: nothing to enter or attach on each poll.
            traced: ctx.frame().context().is_some() || !ctx.span().is_disabled(),
            ctx,
        }
    }

    /// Runs `fut`, sending `+WPI` to the JetStream ack subject every period until it is done, so
    /// that the server does not redeliver the message meanwhile.
    pub(crate) async fn with_progress<F: std::future::Future>(
        &self,
        fut: F,
        progress: Progress<'_>,
    ) -> F::Output {
        let Progress {
            ack,
            period,
            start,
            last,
        } = progress;
        let mut fut = std::pin::pin!(fut);
        // Most handlers finish on their first poll: the timer is made only for those that wait.
        if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
            return out;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return out,
                _ = tick.tick() => {
                    let wpi = bytes::Bytes::from_static(b"+WPI");
                    match self.client.nats().publish(ack.clone(), wpi).await {
                        Ok(()) => {
                            let ns = metrics::elapsed(start).as_nanos();
                            last.store(u64::try_from(ns).unwrap_or(u64::MAX), Relaxed);
                        }
                        Err(e) => tracing::warn!(handler = %self.name(), error = %e, "cannot send an in-progress ack"),
                    }
                }
            }
        }
    }

    /// Logs an error, counts the outcome, records the duration metric and fails the span.
    /// Inlined for the common case (handled, nothing timed), which is a counter bump.
    #[inline(always)]
    pub(crate) fn record(
        &self,
        span: &Frame,
        started: Option<quanta::Instant>,
        error_type: Option<&'static str>,
        error: Option<&HandlerError>,
    ) {
        if error_type.is_none() && started.is_none() {
            crate::stats::bump(&self.counters.handled);
            return;
        }
        self.record_slow(span, started, error_type, error);
    }

    #[inline(never)]
    fn record_slow(
        &self,
        span: &Frame,
        started: Option<quanta::Instant>,
        error_type: Option<&'static str>,
        error: Option<&HandlerError>,
    ) {
        match error_type {
            None => crate::stats::bump(&self.counters.handled),
            Some("decode") => crate::stats::bump(&self.counters.rejected),
            Some("panic") => crate::stats::bump(&self.counters.panics),
            Some(_) => crate::stats::bump(&self.counters.failed),
        }
        if let Some(t) = started {
            let took = metrics::elapsed(t);
            if let Some(m) = &self.metrics {
                m.record(took.as_secs_f64(), error_type);
            }
            if self.counters.timed {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                self.counters.processing_ns.fetch_add(ns, Relaxed);
                if let Some(e) = &error {
                    let last = format!("{}:{}", e.code(), e.description());
                    *self
                        .counters
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(last);
                }
            }
        }
        let (Some(err), Some(t)) = (error, error_type) else {
            return;
        };
        match t {
            "panic" => {
                tracing::error!(handler = %self.name(), panic = %err.description(), "handler panicked; the actor goes on")
            }
            "decode" => {
                tracing::warn!(handler = %self.name(), reason = %err.description(), "message rejected; handler not called")
            }
            _ if err.code() < 500 => {
                tracing::info!(handler = %self.name(), code = err.code(), error = %err.description(), "handler refused the message")
            }
            _ => {
                tracing::warn!(handler = %self.name(), code = err.code(), error = %err.description(), "handler failed")
            }
        }
        span.fail(t, err.description());
    }

    async fn error_reply(&self, span: &Frame, reply: async_nats::Subject, err: &HandlerError) {
        let mut h = HeaderMap::new();
        h.insert(
            headers::SERVICE_ERROR,
            headers::safe_value(err.description(), 1024).as_str(),
        );
        h.insert(headers::SERVICE_ERROR_CODE, err.code().to_string().as_str());
        let sent = self
            .client
            .send(
                Some(span),
                SendKind::Reply,
                reply.as_str(),
                h,
                bytes::Bytes::new(),
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(handler = %self.name(), error = %e, "cannot send the error reply");
        }
    }

    fn no_reply_subject(&self) {
        tracing::warn!(handler = %self.name(), "request arrived without a reply subject; nothing to reply to");
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Worker::call`]: the handler's future with panics caught, polled inside
    /// the message's span when something records it.
    pub(crate) struct Call<'a, F> {
        #[pin]
        fut: futures::future::CatchUnwind<AssertUnwindSafe<F>>,
        ctx: &'a Context,
        traced: bool,
    }
}

impl<F: std::future::Future> std::future::Future for Call<'_, F> {
    type Output = Result<F::Output, HandlerError>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = if *this.traced {
            poll_in_span(this.fut, this.ctx.span(), this.ctx.frame(), cx)
        } else {
            this.fut.poll(cx)
        };
        match out {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(out)) => Poll::Ready(Ok(out)),
            Poll::Ready(Err(panic)) => {
                let what = panic_message(&*panic);
                Poll::Ready(Err(HandlerError::new(format!("handler panicked: {what}"))))
            }
        }
    }
}

/// Polls `fut` inside `span` and, when the message is traced, inside its OpenTelemetry context,
/// with the `tracing` events of the poll added to `frame`: spans the handler opens (and
/// OpenTelemetry calls it makes) see the process span as the current context.
#[inline(never)]
fn poll_in_span<F: std::future::Future>(
    fut: std::pin::Pin<&mut F>,
    span: &tracing::Span,
    frame: &Frame,
    cx: &mut std::task::Context<'_>,
) -> Poll<F::Output> {
    let _entered = span.enter();
    let Some(otel) = frame.context() else {
        return fut.poll(cx);
    };
    let _attached = otel.clone().attach();
    let previous = events::enter();
    let out = fut.poll(cx);
    let events = events::exit(previous);
    if !events.is_empty() {
        frame.add_events(events);
    }
    out
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
