//! A `#[consumer]` handler's task: pull messages, run the handler, and turn its result into an
//! ack, a nak with a delay, or a dead letter and a term. Keeps long handlers alive with
//! in-progress acks, survives reconnects and missing heartbeats, recreates a deleted consumer,
//! and naks what it holds at shutdown so that another instance takes it at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::Message as JsMessage;
use async_nats::Subject;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dead_letter::{self, DeadLetters, Letter};
use super::delivery::{Delivery, LazyDelivery};
use super::idempotency::{self, Processed};
use super::{ConsumerSpec, DeliverFrom};
use crate::client::Client;
use crate::context::Context;
use crate::error::{Error, HandlerError};
use crate::handler::{Invoke, Worker};
use crate::outcome::Outcome;
use crate::stats::HandlerCounters;
use crate::telemetry::metrics;

/// What a consumer handler's task owns besides its [`Worker`].
pub(crate) struct JsSource {
    stream: async_nats::jetstream::stream::Stream,
    /// `None` for an ordered consumer (made again from `ordered` each time).
    config: Option<pull::Config>,
    ordered: pull::OrderedConfig,
    spec: &'static ConsumerSpec,
    what: String,
    dead_letters: Option<Arc<DeadLetters>>,
    processed: Option<Processed>,
    /// The stream's and the durable consumer's names, shared by every delivery.
    stream_name: Arc<str>,
    durable_name: Option<Arc<str>>,
}

/// Why a message stream stopped yielding.
enum Problem {
    /// Logged; the stream goes on (a missed heartbeat, a failed pull).
    Transient(String),
    /// The stream is over: make the consumer (and the stream) again.
    Recreate(String),
}

type Messages = BoxStream<'static, Result<JsMessage, Problem>>;

/// In-progress acks for a JetStream message: its ack subject, how often, and when the server
/// last heard about it (updated with each `+WPI`).
#[derive(Clone, Copy)]
struct Progress<'a> {
    ack: &'a async_nats::Subject,
    period: Duration,
    /// When the message was taken.
    start: quanta::Instant,
    /// Nanoseconds after `start` of the last `+WPI`.
    last: &'a std::sync::atomic::AtomicU64,
}

/// Sets up the consumer of handler `I` of `A` (and its dead-letter stream, idempotency bucket
/// and exhausted-message watcher) and spawns its task (the `Start` of `#[consumer]` handlers).
pub fn start<A: Invoke<I>, const I: usize>(
    worker: Worker<A>,
    stop: watch::Receiver<bool>,
) -> futures::future::BoxFuture<'static, Result<Vec<JoinHandle<()>>, Error>> {
    Box::pin(async move {
        let Some(spec) = worker.spec.consumer else {
            return Err(Error::Config(format!(
                "{} is not a #[consumer] handler",
                worker.name()
            )));
        };
        let (source, watcher) = JsSource::setup(
            &worker.client,
            spec,
            &worker.name(),
            worker.counters.clone(),
            stop.clone(),
        )
        .await?;
        let mut tasks: Vec<JoinHandle<()>> = watcher.into_iter().collect();
        tasks.push(tokio::spawn(worker.consume::<I>(source, stop)));
        Ok(tasks)
    })
}

impl JsSource {
    /// Creates or updates the consumer of `spec` (and its dead-letter stream, idempotency
    /// bucket and exhausted-message watcher).
    pub(crate) async fn setup(
        client: &Client,
        spec: &'static ConsumerSpec,
        handler: &str,
        counters: Arc<HandlerCounters>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Self, Option<JoinHandle<()>>), Error> {
        let what = match spec.durable {
            Some(d) => format!("consumer {}/{d} of {handler}", spec.stream),
            None => format!("ordered consumer on {} of {handler}", spec.stream),
        };
        let stream = client
            .jetstream()
            .get_stream(spec.stream)
            .await
            .map_err(|e| Error::JetStream {
                what: what.clone(),
                reason: format!(
                    "stream {} is not there ({e}); declare it with RuntimeBuilder::stream",
                    spec.stream
                ),
            })?;
        // What the consumer keeps beside the stream (dead letters, processed ids) is replicated
        // like the stream.
        let replicas = stream.cached_info().config.num_replicas.max(1);
        let (filter_subject, filter_subjects) = match spec.filters {
            [one] => (one.to_string(), Vec::new()),
            many => (String::new(), many.iter().map(|s| s.to_string()).collect()),
        };
        let deliver_policy = match spec.deliver {
            DeliverFrom::All => DeliverPolicy::All,
            DeliverFrom::New => DeliverPolicy::New,
            DeliverFrom::Last => DeliverPolicy::Last,
            DeliverFrom::LastPerSubject => DeliverPolicy::LastPerSubject,
        };
        let ordered = pull::OrderedConfig {
            filter_subject: filter_subject.clone(),
            filter_subjects: filter_subjects.clone(),
            deliver_policy,
            ..Default::default()
        };
        let Some(durable) = spec.durable else {
            let source = Self {
                stream,
                config: None,
                ordered,
                spec,
                what,
                dead_letters: None,
                processed: None,
                stream_name: Arc::from(spec.stream),
                durable_name: None,
            };
            return Ok((source, None));
        };
        let config = pull::Config {
            durable_name: Some(durable.to_string()),
            description: Some(format!("{handler} (nats-actors)")),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait(),
            max_deliver: i64::from(spec.max_deliver()),
            filter_subject,
            filter_subjects,
            deliver_policy,
            max_ack_pending: spec.max_ack_pending.unwrap_or(0),
            ..Default::default()
        };
        stream
            .create_consumer(config.clone())
            .await
            .map_err(|e| Error::JetStream {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let processed = match spec.idempotent {
            true => {
                let ttl = spec
                    .idempotency_ttl_ms
                    .map(Duration::from_millis)
                    .unwrap_or(idempotency::DEFAULT_TTL);
                Some(Processed::open(client, spec.stream, durable, ttl, replicas).await?)
            }
            false => None,
        };
        let (dead_letters, watcher) = match spec.dead_letter_stream() {
            None => (None, None),
            Some(name) => {
                let dl = DeadLetters::ensure(client, name, spec.stream, durable, replicas).await?;
                let dl = Arc::new(dl);
                let subject = format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{durable}",
                    spec.stream
                );
                let sub = client
                    .nats()
                    .queue_subscribe(subject.clone(), "nats-actors-dead-letter".into())
                    .await
                    .map_err(|e| Error::JetStream {
                        what: what.clone(),
                        reason: format!("cannot subscribe to {subject}: {e}"),
                    })?;
                let task = tokio::spawn(dead_letter::watch_exhausted(
                    client.clone(),
                    stream.clone(),
                    dl.clone(),
                    counters,
                    sub,
                    stop,
                ));
                (Some(dl), Some(task))
            }
        };
        let source = Self {
            stream,
            config: Some(config),
            ordered,
            spec,
            what,
            dead_letters,
            processed,
            stream_name: Arc::from(spec.stream),
            durable_name: Some(Arc::from(durable)),
        };
        Ok((source, watcher))
    }

    /// A new message stream; for a durable consumer that was deleted, the consumer again.
    async fn messages(&self, recreate: bool) -> Result<Messages, String> {
        let Some(config) = &self.config else {
            let consumer = self
                .stream
                .create_consumer(self.ordered.clone())
                .await
                .map_err(|e| e.to_string())?;
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            return Ok(messages
                .map(|m| m.map_err(|e| Problem::Transient(e.to_string())))
                .boxed());
        };
        let consumer = if recreate {
            self.stream
                .create_consumer(config.clone())
                .await
                .map_err(|e| e.to_string())?
        } else {
            self.stream
                .get_consumer::<pull::Config>(config.durable_name.as_deref().unwrap_or_default())
                .await
                .map_err(|e| e.to_string())?
        };
        let messages = match self.spec.batch {
            Some(batch) => {
                consumer
                    .stream()
                    .max_messages_per_batch(batch)
                    .heartbeat(Duration::from_secs(5))
                    .messages()
                    .await
            }
            None => consumer.messages().await,
        }
        .map_err(|e| e.to_string())?;
        Ok(messages
            .map(|m| {
                m.map_err(|e| match e.kind() {
                    MessagesErrorKind::ConsumerDeleted
                    | MessagesErrorKind::PushBasedConsumer
                    | MessagesErrorKind::RequestLimitExceeded => Problem::Recreate(e.to_string()),
                    _ => Problem::Transient(e.to_string()),
                })
            })
            .boxed())
    }
}

impl<A: Send + Sync + 'static> Worker<A> {
    /// Runs a consumer handler until shutdown.
    ///
    /// Messages pulled but not started yet wait in `waiting`; every third of `ack_wait` they get
    /// an in-progress ack, so that a slow handler does not let the rest of its batch expire and
    /// come back as duplicates.
    pub(crate) async fn consume<const I: usize>(
        self,
        js: JsSource,
        mut shutdown: watch::Receiver<bool>,
    ) where
        A: Invoke<I>,
    {
        let mut in_flight = FuturesUnordered::new();
        let mut waiting: VecDeque<JsMessage> = VecDeque::new();
        let period = keepalive(js.spec.ack_wait());
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recreate = false;
        let mut attempt = 0usize;
        while !self.stop.load(Relaxed) {
            let mut messages = match js.messages(recreate).await {
                Ok(m) => {
                    if recreate {
                        tracing::warn!(consumer = %js.what, "consumer was gone; made it again");
                    }
                    attempt = 0;
                    m
                }
                Err(e) => {
                    attempt += 1;
                    recreate = true;
                    tracing::warn!(consumer = %js.what, attempt, error = %e, "cannot pull messages; trying again");
                    let pause = crate::runtime::connect::backoff(attempt, Duration::from_secs(5));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => self.stop.store(true, Relaxed),
                    }
                    continue;
                }
            };
            recreate = false;
            let ended = loop {
                while in_flight.len() < self.limit {
                    match waiting.pop_front() {
                        Some(m) => in_flight.push(self.process_js::<I>(&js, m)),
                        None => break,
                    }
                }
                tokio::select! {
                    biased;
                    Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                    next = messages.next(), if in_flight.len() < self.limit => match next {
                        // One at a time: run it here (no task node per message), still keeping
                        // the waiting messages alive.
                        Some(Ok(m)) if self.limit == 1 => {
                            let mut one = std::pin::pin!(self.process_js::<I>(&js, m));
                            loop {
                                tokio::select! {
                                    biased;
                                    () = &mut one => break,
                                    _ = keepalive.tick() => self.keep_alive(&mut messages, &mut waiting).await,
                                }
                            }
                        }
                        Some(Ok(m)) => in_flight.push(self.process_js::<I>(&js, m)),
                        Some(Err(Problem::Transient(e))) => {
                            tracing::debug!(consumer = %js.what, error = %e, "pull stream problem; going on");
                        }
                        Some(Err(Problem::Recreate(e))) => {
                            tracing::warn!(consumer = %js.what, error = %e, "pull stream ended");
                            recreate = true;
                            break "the pull stream ended";
                        }
                        None => break "the pull stream ended",
                    },
                    _ = keepalive.tick() => self.keep_alive(&mut messages, &mut waiting).await,
                    _ = shutdown.changed() => self.stop.store(true, Relaxed),
                }
                if self.stop.load(Relaxed) {
                    break "shutdown";
                }
            };
            // Before the stream is made again (or at shutdown): what was pulled but not started
            // goes back at once, not after ack_wait, and what runs finishes here, with its
            // in-progress acks, rather than freezing while a new stream is set up.
            for _ in 0..10_000 {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => waiting.push_back(m),
                    Some(Some(Err(_))) => {}
                    _ => break,
                }
            }
            drop(messages);
            let returned = waiting.len();
            for m in waiting.drain(..) {
                if let Some(reply) = m.message.reply.as_ref() {
                    self.send_ack(reply, "-NAK".into()).await;
                }
            }
            if returned > 0 {
                tracing::info!(consumer = %js.what, returned, why = ended, "returned pulled messages that had not started");
            }
            while in_flight.next().await.is_some() {}
        }
        while in_flight.next().await.is_some() {}
    }

    /// Runs `fut`, sending `+WPI` to the JetStream ack subject every period until it is done, so
    /// that the server does not redeliver the message meanwhile.
    async fn with_progress<F: std::future::Future>(
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

    /// Moves what the pull stream already holds into `waiting` and sends each waiting message
    /// an in-progress ack.
    ///
    /// At most [`MAX_WAITING`] (or `batch`) are held: taking more from the stream would make it
    /// pull more, and a slow instance would hoard what idle instances could handle.
    async fn keep_alive(&self, messages: &mut Messages, waiting: &mut VecDeque<JsMessage>) {
        let cap = self
            .spec
            .consumer
            .and_then(|c| c.batch)
            .unwrap_or(MAX_WAITING)
            .max(self.limit);
        for _ in 0..cap * 2 {
            if waiting.len() >= cap {
                break;
            }
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => waiting.push_back(m),
                Some(Some(Err(_))) => {}
                _ => break,
            }
        }
        for m in waiting.iter() {
            if let Some(reply) = m.message.reply.as_ref() {
                self.send_ack(reply, "+WPI".into()).await;
            }
        }
    }

    async fn process_js<const I: usize>(&self, js: &JsSource, msg: JsMessage)
    where
        A: Invoke<I>,
    {
        let JsMessage { message, .. } = msg;
        let Some(ack) = message.reply.clone() else {
            tracing::warn!(consumer = %js.what, subject = %message.subject, "not a JetStream delivery; ignored");
            return;
        };
        let delivery = LazyDelivery::new(js.stream_name.clone(), js.durable_name.clone());
        if js.config.is_none() {
            // Ordered consumers do not ack: the outcome is only counted.
            let (ctx, started) = self.prepare(message, Some(delivery));
            let outcome = self.call::<I>(&ctx).await;
            let (error, error_type) = classify(outcome);
            self.record(ctx.frame(), started, error_type, error.as_ref());
            return;
        }
        let key = match &js.processed {
            Some(_) => match delivery.get(Some(&ack)) {
                Some(d) => Some(Processed::key(message.headers.as_ref(), d)),
                None => {
                    tracing::warn!(consumer = %js.what, ack = %ack, "unreadable ack subject; ignored");
                    return;
                }
            },
            None => None,
        };
        // A redelivery that arrives while the first delivery is still being handled here (its
        // id not recorded yet) waits for it, instead of running the handler a second time.
        let _claim = match (&js.processed, &key) {
            (Some(processed), Some(key)) => match processed.claim(key) {
                Some(claim) => Some(claim),
                None => {
                    self.counters.js.retried.fetch_add(1, Relaxed);
                    self.nak(&ack, keepalive(js.spec.ack_wait())).await;
                    return;
                }
            },
            _ => None,
        };
        if let (Some(processed), Some(key)) = (&js.processed, &key) {
            match processed.seen(key).await {
                Ok(false) => {}
                Ok(true) => {
                    self.tally.received();
                    self.counters.js.duplicates.fetch_add(1, Relaxed);
                    tracing::debug!(consumer = %js.what, key, "already processed; acked without calling the handler");
                    self.ack(js, &ack).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(consumer = %js.what, error = %e, "cannot read the processed ids; the message waits");
                    self.counters.js.retried.fetch_add(1, Relaxed);
                    self.nak(&ack, Duration::from_secs(1)).await;
                    return;
                }
            }
        }
        let ack_wait = js.spec.ack_wait();
        let last = AtomicU64::new(0);
        let progress = Progress {
            ack: &ack,
            period: keepalive(ack_wait),
            start: metrics::now(),
            last: &last,
        };
        let (ctx, started) = self.prepare(message, Some(delivery));
        let outcome = self.with_progress(self.call::<I>(&ctx), progress).await;
        let (error, error_type) = classify(outcome);
        self.record(ctx.frame(), started, error_type, error.as_ref());
        let Some(error) = error else {
            if let (Some(processed), Some(key)) = (&js.processed, &key) {
                // Kept alive while it is recorded (through a server restart, if need be). Acked
                // even if this fails: the work is done; only a later duplicate would run again.
                let marked = self.with_progress(processed.mark(key, MARK_WITHIN), progress);
                if let Err(e) = marked.await {
                    tracing::warn!(consumer = %js.what, key, error = %e, "processed, but the id could not be recorded");
                }
            }
            let quiet = metrics::elapsed(progress.start)
                .saturating_sub(Duration::from_nanos(last.load(Relaxed)));
            if quiet > ack_wait {
                // The server may already have given the message to someone else.
                self.counters.js.late_acks.fetch_add(1, Relaxed);
                let seq = ctx.delivery().map(|d| d.stream_sequence);
                tracing::warn!(consumer = %js.what, stream_sequence = ?seq, ?quiet, ?ack_wait, "ack sent after ack_wait: the message may be redelivered");
            }
            self.ack(js, &ack).await;
            return;
        };
        let Some(delivery) = ctx.delivery().cloned() else {
            tracing::warn!(consumer = %js.what, ack = %ack, "unreadable ack subject; the message is left to redelivery");
            return;
        };
        let retry = match error_type {
            Some("decode") => false,
            Some("panic") => true,
            _ => error.is_retryable(),
        };
        let last = delivery.delivered >= u64::from(js.spec.max_deliver());
        if retry && !last {
            let delay = error
                .retry_delay()
                .unwrap_or_else(|| js.spec.backoff(delivery.delivered));
            self.counters.js.retried.fetch_add(1, Relaxed);
            self.nak(&ack, delay).await;
            return;
        }
        let reason = if retry {
            format!(
                "gave up after {} deliveries: {}",
                delivery.delivered,
                error.description()
            )
        } else {
            error.description().to_string()
        };
        self.dead_letter(js, &ctx, &delivery, &ack, &reason).await;
    }

    /// Stores the message in the dead-letter stream, then terminates it with `reason`. If it
    /// cannot be stored, it is nak'ed instead: tried again, or (out of deliveries) copied by the
    /// exhausted-message watcher.
    async fn dead_letter(
        &self,
        js: &JsSource,
        ctx: &Context,
        delivery: &Delivery,
        ack: &Subject,
        reason: &str,
    ) {
        if let Some(dl) = &js.dead_letters {
            let letter = Letter {
                subject: ctx.subject(),
                headers: ctx.headers(),
                payload: ctx.payload().clone(),
                stream_sequence: delivery.stream_sequence,
                deliveries: delivery.delivered,
                error: reason,
            };
            if let Err(e) = dl.store(&self.client, Some(ctx.frame()), letter).await {
                tracing::error!(consumer = %js.what, error = %e, "cannot store a dead letter; the message is nak'ed instead");
                self.counters.js.retried.fetch_add(1, Relaxed);
                self.nak(ack, js.spec.backoff(delivery.delivered)).await;
                return;
            }
            self.counters.js.dead_lettered.fetch_add(1, Relaxed);
            tracing::warn!(consumer = %js.what, stream_sequence = delivery.stream_sequence, dead_letter = %dl.name, reason, "message dead-lettered");
        } else {
            tracing::error!(consumer = %js.what, stream_sequence = delivery.stream_sequence, reason, "message terminated (no dead-letter stream)");
        }
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(512)
            .collect();
        self.send_ack(ack, format!("+TERM {reason}").into()).await;
    }

    async fn ack(&self, js: &JsSource, ack: &Subject) {
        if !js.spec.double_ack {
            return self.send_ack(ack, "+ACK".into()).await;
        }
        let request = async_nats::Request::new()
            .payload("+ACK".into())
            .timeout(Some(Duration::from_secs(5)));
        if let Err(e) = self.client.nats().send_request(ack.clone(), request).await {
            self.counters.js.ack_failures.fetch_add(1, Relaxed);
            tracing::warn!(handler = %self.name(), error = %e, "the server did not confirm an ack; the message may be redelivered");
        }
    }

    async fn nak(&self, ack: &Subject, delay: Duration) {
        let body = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
        self.send_ack(ack, body.into()).await;
    }

    async fn send_ack(&self, ack: &Subject, body: bytes::Bytes) {
        if let Err(e) = self.client.nats().publish(ack.clone(), body).await {
            self.counters.js.ack_failures.fetch_add(1, Relaxed);
            tracing::warn!(handler = %self.name(), error = %e, "cannot send an ack; the message will be redelivered");
        }
    }
}

/// Messages pulled and waiting for a busy handler that get in-progress acks, by default.
const MAX_WAITING: usize = 64;

/// How long recording a processed id is retried before the message is acked without it.
const MARK_WITHIN: Duration = Duration::from_secs(60);

/// How often a message that is not done gets an in-progress ack: a third of `ack_wait`.
fn keepalive(ack_wait: Duration) -> Duration {
    (ack_wait / 3).max(Duration::from_millis(10))
}

/// The error and its type for an outcome of a handler that does not reply.
fn classify(
    outcome: Result<Outcome, HandlerError>,
) -> (Option<HandlerError>, Option<&'static str>) {
    match outcome {
        Ok(Outcome::Done | Outcome::Reply(..)) => (None, None),
        Ok(Outcome::Failed(e)) => (Some(e), Some("handler")),
        Ok(Outcome::Rejected(e)) => (Some(e), Some("decode")),
        Err(panic) => (Some(panic), Some("panic")),
    }
}
