//! Handlers: what the macros describe ([`HandlerSpec`], [`Invoke`]) and the per-message path
//! every handler kind shares: count, open the span, build the context, call the handler with
//! panics caught, record the outcome. Each kind owns its loop and its settle step: core
//! subscriptions and requests in [`core`], JetStream consumers in `jetstream::consumer`.

pub(crate) mod core;
pub(crate) mod inbox;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;

use async_nats::Message;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::buffer::Buffer;
use crate::cell::Cell;
use crate::client::Client;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{Error, HandlerError};
use crate::outcome::Outcome;
use crate::runtime::link::Link;
use crate::stats::{Counters, HandlerCounters, Tally};
use crate::telemetry::metrics::HandlerMetrics;
use crate::telemetry::spans::{self, Frame, ProcessMeta};

/// What the runtime needs to know of a handler kind. Each kind's module defines its own (with
/// its [`Start`]), so a new kind adds a module and no variant here.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub struct HandlerKind {
    /// The attribute, e.g. `subscribe`.
    pub attribute: &'static str,
    /// Whether it answers requests: such handlers stop after the others at shutdown, so that a
    /// handler finishing its message can still call them.
    pub replies: bool,
    /// Whether it takes core NATS deliveries, lost while its subscription is down (its outages
    /// are recorded in its stats); JetStream consumers get theirs after an outage.
    pub at_most_once: bool,
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

/// Starts one handler: subscribes (or sets up its consumer) so that the server knows it when
/// this returns, then spawns its task; returns the tasks to stop at shutdown. Each handler kind
/// has its own (`core::start`, `jetstream::consumer::start`); the macro names the one of the
/// handler's kind, so only that kind's loop is compiled for it.
#[doc(hidden)]
pub type Start<A> =
    fn(Worker<A>, watch::Receiver<bool>) -> BoxFuture<'static, Result<Vec<JoinHandle<()>>, Error>>;

/// A keyed actor's handler `I` on one key's state (`#[command]`, `#[ask]`): the runtime picks
/// the handler by subject at run time, so it is called through this pointer.
#[doc(hidden)]
pub type Turn<A> = for<'a> fn(&'a Cell<A>, &'a Context) -> BoxFuture<'a, Outcome>;

/// The [`Turn`] of handler `I` of `A`.
#[doc(hidden)]
pub fn turn<'a, A: Invoke<I>, const I: usize>(
    cell: &'a Cell<A>,
    ctx: &'a Context,
) -> BoxFuture<'a, Outcome> {
    Box::pin(A::invoke(cell, ctx))
}

/// The options of a `#[consumer]` (none without the `jetstream` feature).
#[cfg(feature = "jetstream")]
#[doc(hidden)]
pub type ConsumerOptions = crate::jetstream::ConsumerSpec;
/// The options of a `#[consumer]` (none without the `jetstream` feature).
#[cfg(not(feature = "jetstream"))]
#[doc(hidden)]
pub enum ConsumerOptions {}

/// One handler as the macros describe it.
#[doc(hidden)]
pub struct HandlerSpec<A> {
    pub method: &'static str,
    pub kind: &'static HandlerKind,
    pub template: &'static str,
    pub subject: &'static str,
    pub queue: Option<&'static str>,
    pub codec: Option<Codec>,
    pub concurrency: Option<usize>,
    /// `buffer = ...` of a core handler.
    pub buffer: Option<Buffer>,
    /// `compress = ...`: how what it sends (publishes, requests, replies) is compressed.
    pub compress: Option<crate::compression::Packing>,
    pub exclusive: bool,
    /// The consumer's options, for a `#[consumer]`.
    pub consumer: Option<&'static ConsumerOptions>,
    pub start: Start<A>,
    /// The handler on a given state, for a keyed actor's `#[command]` and `#[ask]`.
    pub turn: Option<Turn<A>>,
    /// The JSON Schemas of its payload and reply, for the AsyncAPI document.
    pub payload: Option<crate::asyncapi::SchemaOf>,
    pub reply: Option<crate::asyncapi::SchemaOf>,
}

impl<A> HandlerSpec<A> {
    /// The durable name of a `#[consumer]`'s consumer.
    pub(crate) fn durable(&self) -> Option<&'static str> {
        #[cfg(feature = "jetstream")]
        return self.consumer.and_then(|c| c.durable);
        #[cfg(not(feature = "jetstream"))]
        return self.consumer.map(|c| match *c {});
    }
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

/// One handler on one actor instance, with what every message of it needs: the shared
/// per-message path (count, span, context, call, record) that each handler kind's loop uses.
#[doc(hidden)]
pub struct Worker<A> {
    pub(crate) spec: HandlerSpec<A>,
    pub(crate) cell: Arc<Cell<A>>,
    pub(crate) client: Client,
    pub(crate) codec: Codec,
    pub(crate) queue: Option<&'static str>,
    pub(crate) limit: usize,
    /// What a core handler's inbox holds at most.
    pub(crate) buffer: Buffer,
    pub(crate) counters: Arc<HandlerCounters>,
    /// The one writer of the per-message counters.
    pub(crate) tally: Tally,
    pub(crate) runtime: Arc<Counters>,
    /// The connection's reconnects, confirmed (JetStream consumers pull again after each).
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) link: Arc<Link>,
    /// Set when the runtime shuts down.
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) meta: &'static ProcessMeta,
    pub(crate) metrics: Option<HandlerMetrics>,
    /// Whether each message's processing is timed (for its stats or its metric).
    pub(crate) timed: bool,
    /// What a panic leads to beyond its count (`None`: nothing, the default).
    pub(crate) supervisor: Option<Arc<crate::supervision::Supervisor>>,
}

impl<A: Send + Sync + 'static> Worker<A> {
    pub(crate) fn name(&self) -> String {
        format!("{}::{}", self.counters.actor, self.spec.method)
    }

    /// Counts `msg`, opens its process span and builds the handler's context around it. Returns
    /// the context and, when processing is timed, when it started. Inlined, so that the message
    /// moves once, from the subscription into the context.
    #[inline(always)]
    pub(crate) fn prepare(
        &self,
        msg: Message,
        delivery: Option<crate::context::DeliveryInfo>,
    ) -> (Context, Option<quanta::Instant>) {
        let (span, started) = self.open(&msg);
        (self.context(span, msg, delivery), started)
    }

    /// Counts the message `ctx` now holds (a serial handler's reused context) and opens its
    /// span; returns when its processing started, when that is timed.
    #[inline(always)]
    fn prepare_in(&self, ctx: &mut Context) -> Option<quanta::Instant> {
        let (span, started) = self.open(ctx.message());
        ctx.begin(span);
        started
    }

    #[inline(always)]
    fn context(
        &self,
        span: (tracing::Span, Frame),
        msg: Message,
        delivery: Option<crate::context::DeliveryInfo>,
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
        self.tally.received();
        let span = spans::process(self.meta, msg);
        let started = self.timed.then(crate::clock::now);
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
        self.call_turn(<A as Invoke<I>>::invoke(&self.cell, ctx), ctx)
    }

    /// [`Worker::call`] of a handler's future made elsewhere (a keyed actor's turn).
    #[inline(always)]
    pub(crate) fn call_turn<'a, F: std::future::Future<Output = Outcome> + Send + 'a>(
        &'a self,
        fut: F,
        ctx: &'a Context,
    ) -> Call<'a, F> {
        Call {
            fut: Some(AssertUnwindSafe(fut).catch_unwind()),
            // Nothing records this message: nothing to enter or attach on each poll.
            traced: ctx.frame().context().is_some() || !ctx.span().is_disabled(),
            ctx,
            supervisor: self.supervisor.as_deref().map(|s| (s, &*self.counters)),
            recovering: None,
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
            self.tally.handled();
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
            None => self.tally.handled(),
            Some("decode") => self.tally.rejected(),
            Some("panic") => self.tally.panicked(),
            Some(_) => self.tally.failed(),
        }
        if let Some(t) = started {
            let took = crate::clock::elapsed(t);
            if let Some(m) = &self.metrics {
                m.record(took.as_secs_f64(), error_type);
            }
            if self.counters.timed {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                self.counters.processing_ns.fetch_add(ns, Relaxed);
            }
        }
        if let Some(e) = &error {
            let last = format!("{}:{}", e.code(), e.description());
            *self
                .counters
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(last);
        }
        let (Some(err), Some(t)) = (error, error_type) else {
            return;
        };
        match t {
            // Past its `max_restarts`, supervision has stopped the instance or the runtime.
            "panic"
                if self
                    .counters
                    .stopped_by
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some() =>
            {
                tracing::error!(handler = %self.name(), panic = %err.description(), "handler panicked past its restart limit; stopping")
            }
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
}

pin_project_lite::pin_project! {
    /// The future of [`Worker::call`]: the handler's future with panics caught, polled inside
    /// the message's span when something records it.
    pub(crate) struct Call<'a, F> {
        // `None` once it panicked under a supervisor: dropped, with the state it held.
        #[pin]
        fut: Option<futures::future::CatchUnwind<AssertUnwindSafe<F>>>,
        ctx: &'a Context,
        traced: bool,
        supervisor: Option<(&'a crate::supervision::Supervisor, &'a HandlerCounters)>,
        // After a panic under a supervisor: its recovery, then the panic's error.
        // (Boxed whole: the common path carries one pointer for it.)
        recovering: Option<Box<(futures::future::BoxFuture<'a, ()>, HandlerError)>>,
    }
}

impl<F: std::future::Future> std::future::Future for Call<'_, F> {
    type Output = Result<F::Output, HandlerError>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            let Some(recovering) = this.recovering.as_mut() else {
                return Poll::Pending;
            };
            return match recovering.0.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Err(this.recovering.take().expect("set").1)),
            };
        };
        let out = if *this.traced {
            poll_in_span(fut, this.ctx.span(), this.ctx.frame(), cx)
        } else {
            fut.poll(cx)
        };
        match out {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(out)) => Poll::Ready(Ok(out)),
            Poll::Ready(Err(panic)) => {
                let what = panic_message(&*panic);
                let error = HandlerError::new(format!("handler panicked: {what}"));
                let Some((supervisor, counters)) = *this.supervisor else {
                    return Poll::Ready(Err(error));
                };
                // The handler's future goes first, and the lock it held on the state with it;
                // the supervisor's pause then holds this handler's slot: its next message waits.
                this.fut.set(None);
                *this.recovering = Some(Box::new((Box::pin(supervisor.recover(counters)), error)));
                cx.waker().wake_by_ref();
                Poll::Pending
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
    #[cfg(feature = "telemetry")]
    if let Some(otel) = frame.context() {
        let _attached = otel.clone().attach();
        let previous = crate::telemetry::events::enter();
        let out = fut.poll(cx);
        let events = crate::telemetry::events::exit(previous);
        if !events.is_empty() {
            frame.add_events(events);
        }
        return out;
    }
    #[cfg(not(feature = "telemetry"))]
    let _ = frame;
    fut.poll(cx)
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
