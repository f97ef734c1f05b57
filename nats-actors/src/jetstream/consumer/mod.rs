//! A `#[consumer]` handler's task: pull messages, run the handler, and turn its result into an
//! ack, a nak with a delay, or a dead letter and a term. Keeps long handlers alive with
//! in-progress acks, survives reconnects and missing heartbeats, recreates a deleted consumer,
//! and naks what it holds at shutdown so that another instance takes it at once.

mod batch;
mod pending;
mod settle;
mod source;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::Message as JsMessage;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::handler::{HandlerKind, Invoke, Worker};
use source::{JsSource, Messages, Problem};

/// Sets up the consumer of handler `I` of `A` (and its dead-letter stream, idempotency bucket
/// and exhausted-message watcher) and spawns its task (the `Start` of `#[consumer]` handlers).
pub fn start<A: Invoke<I>, const I: usize>(
    worker: Worker<A>,
    stop: watch::Receiver<bool>,
) -> futures::future::BoxFuture<'static, Result<Vec<JoinHandle<()>>, Error>> {
    Box::pin(async move {
        let Some(spec) = worker.spec.consumer else {
            return Err(Error::JetStream {
                what: worker.name(),
                reason: "a #[consumer] handler without its consumer options".into(),
            });
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
        if let Some(durable) = spec.durable {
            tasks.push(tokio::spawn(pending::watch(
                source.stream.clone(),
                durable,
                worker.counters.clone(),
                stop.clone(),
            )));
        }
        let consumer = Consumer {
            w: worker,
            js: source,
        };
        tasks.push(tokio::spawn(consumer.consume::<I>(stop)));
        Ok(tasks)
    })
}

/// `#[consumer]`: the result decides the ack.
pub static CONSUME: HandlerKind = HandlerKind {
    attribute: "consumer",
    replies: false,
    at_most_once: false,
};

/// A `#[consumer]` handler's task: its worker (the shared per-message path) and its consumer.
struct Consumer<A> {
    w: Worker<A>,
    js: JsSource,
}

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

impl<A: Send + Sync + 'static> Consumer<A> {
    /// Runs a consumer handler until shutdown.
    ///
    /// Messages pulled but not started yet wait in `waiting`; every third of `ack_wait` they get
    /// an in-progress ack, so that a slow handler does not let the rest of its batch expire and
    /// come back as duplicates. A durable consumer pulls again on a new stream, at once, after a
    /// reconnect and after missed heartbeats (async-nats would wait for the pull to expire, or
    /// retry its consumer lookup at 0.5 s, 1 s, 1.5 s...): what was pulled before is still
    /// handled first.
    async fn consume<const I: usize>(self, mut shutdown: watch::Receiver<bool>)
    where
        A: Invoke<I>,
    {
        let mut in_flight = FuturesUnordered::new();
        let mut waiting: VecDeque<JsMessage> = VecDeque::new();
        let js = &self.js;
        let period = keepalive(js.spec.ack_wait());
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let durable = js.config.is_some();
        let again = |why| match durable {
            true => End::Repull(why),
            false => End::Restart(why),
        };
        let mut reconnects = self.w.link.reconnects();
        // A batch handler's batch: what is waiting, sent once it is full or `batch_wait` after
        // its first message came.
        let batched = js.spec.batched;
        let batch_wait =
            Duration::from_millis(js.spec.batch_wait_ms.unwrap_or(DEFAULT_BATCH_WAIT_MS));
        let mut filling_since: Option<tokio::time::Instant> = None;
        // One timer, moved only when a new batch starts filling.
        let batch_timer = tokio::time::sleep(Duration::ZERO);
        let mut batch_timer = std::pin::pin!(batch_timer);
        let mut recreate = false;
        let mut attempt = 0usize;
        while !self.w.stop.load(Relaxed) {
            reconnects.borrow_and_update();
            let messages = match js.messages(recreate, self.pull_batch()).await {
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
                    if attempt == 1 || attempt.is_multiple_of(20) {
                        tracing::warn!(consumer = %js.what, attempt, error = %e, "cannot pull messages; trying again");
                    }
                    let pause = crate::runtime::connect::backoff(attempt, retry_cap(attempt));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => self.w.stop.store(true, Relaxed),
                    }
                    continue;
                }
            };
            recreate = false;
            // Taken (and the pull stopped) when what was pulled goes back.
            let mut messages = Some(messages);
            let ended = loop {
                let Some(pulled) = messages.as_mut() else {
                    break End::Over("shutdown");
                };
                while in_flight.len() < self.w.limit {
                    if batched {
                        match self.take_batch(&mut waiting, &mut filling_since, batch_wait) {
                            Some(b) => in_flight.push(Either::Right(self.process_batch::<I>(b))),
                            None => break,
                        }
                        continue;
                    }
                    match waiting.pop_front() {
                        Some(m) => in_flight.push(Either::Left(self.process_js::<I>(m))),
                        None => break,
                    }
                }
                let batch_due = filling_since.map(|t| t + batch_wait);
                if let Some(due) = batch_due {
                    if batch_timer.deadline() != due {
                        batch_timer.as_mut().reset(due);
                    }
                }
                tokio::select! {
                    biased;
                    // First: under a steady flow the other arms are always ready.
                    _ = keepalive.tick() => self.keep_alive(pulled, &mut waiting).await,
                    Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                    () = &mut batch_timer, if batch_due.is_some() && in_flight.len() < self.w.limit => {}
                    next = pulled.next(), if in_flight.len() < self.w.limit => match next {
                        Some(Ok(m)) if batched => waiting.push_back(m),
                        // One at a time: run it here (no task node per message), still keeping
                        // the waiting messages alive, and giving them back at the signal.
                        Some(Ok(m)) if self.w.limit == 1 => {
                            let mut one = std::pin::pin!(self.process_js::<I>(m));
                            loop {
                                tokio::select! {
                                    biased;
                                    () = &mut one => break,
                                    _ = shutdown.changed(), if messages.is_some() => {
                                        self.w.stop.store(true, Relaxed);
                                        self.give_back(&mut messages, &mut waiting, "shutdown").await;
                                    }
                                    _ = keepalive.tick(), if messages.is_some() => {
                                        if let Some(pulled) = messages.as_mut() {
                                            self.keep_alive(pulled, &mut waiting).await;
                                        }
                                    }
                                }
                            }
                        }
                        Some(Ok(m)) => in_flight.push(Either::Left(self.process_js::<I>(m))),
                        Some(Err(Problem::Transient(e))) => {
                            tracing::debug!(consumer = %js.what, error = %e, "pull stream problem; going on");
                        }
                        Some(Err(Problem::Stalled)) => break again("the pull stream stalled"),
                        Some(Err(Problem::Recreate(e))) => {
                            tracing::warn!(consumer = %js.what, error = %e, "pull stream ended");
                            recreate = true;
                            break End::Over("the pull stream ended");
                        }
                        None => break End::Over("the pull stream ended"),
                    },
                    Ok(()) = reconnects.changed() => break again("reconnected"),
                    _ = shutdown.changed() => self.w.stop.store(true, Relaxed),
                }
                if self.w.stop.load(Relaxed) {
                    break End::Over("shutdown");
                }
            };
            match ended {
                // What the old stream holds is kept, to be handled first; what runs goes on.
                // An ordered consumer starts again after the last message handled: what it
                // holds comes again, so it is let go.
                End::Restart(why) => {
                    drop(messages.take());
                    waiting.clear();
                    while in_flight.next().await.is_some() {}
                    tracing::debug!(consumer = %js.what, why, "starting the ordered consumer again");
                }
                End::Repull(why) => {
                    if let Some(mut pulled) = messages.take() {
                        take_held(&mut pulled, &mut waiting);
                    }
                    tracing::debug!(consumer = %js.what, why, held = waiting.len(), "pulling again");
                }
                // Before the stream is made again (or at shutdown): what was pulled but not
                // started goes back at once, not after ack_wait, and what runs finishes here,
                // with its in-progress acks, rather than freezing while a new stream is set up.
                End::Over(why) => {
                    self.give_back(&mut messages, &mut waiting, why).await;
                    while in_flight.next().await.is_some() {}
                }
            }
        }
        // What was kept for a new stream goes back too.
        let mut none = None;
        self.give_back(&mut none, &mut waiting, "shutdown").await;
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
                    match self.w.client.nats().publish(ack.clone(), wpi).await {
                        Ok(()) => {
                            let ns = crate::clock::elapsed(start).as_nanos();
                            last.store(u64::try_from(ns).unwrap_or(u64::MAX), Relaxed);
                        }
                        Err(e) => tracing::warn!(handler = %self.w.name(), error = %e, "cannot send an in-progress ack"),
                    }
                }
            }
        }
    }

    /// Stops pulling (the stream is dropped first, so that the server does not hand the
    /// messages straight back to it) and naks what was pulled and not started, in stream order,
    /// so that this or another instance takes them at once, in order.
    async fn give_back(
        &self,
        messages: &mut Option<Messages>,
        waiting: &mut VecDeque<JsMessage>,
        why: &str,
    ) {
        if let Some(mut pulled) = messages.take() {
            take_held(&mut pulled, waiting);
        }
        let returned = waiting.len();
        // The server may still hold the dropped stream's pull request, and a message it sends
        // there comes back at the end of its redelivery queue: the first one goes back alone,
        // so that if it does, it is still first; the request is gone after that.
        let mut first = true;
        for m in waiting.drain(..) {
            if let Some(reply) = m.message.reply.as_ref() {
                self.send_ack(reply, "-NAK".into()).await;
                if std::mem::take(&mut first) && returned > 1 {
                    let _ = self.w.client.nats().flush().await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        if returned > 0 {
            tracing::info!(consumer = %self.js.what, returned, why, "returned pulled messages that had not started");
        }
    }

    /// Moves what the pull stream already holds into `waiting` and sends each waiting message
    /// an in-progress ack.
    ///
    /// At most two pulls' worth are held: async-nats pulls again while half a pull is still to
    /// come, so up to one and a half arrive before it stops; taking more would make it pull
    /// more, and a slow instance would hoard what idle instances could handle.
    async fn keep_alive(&self, messages: &mut Messages, waiting: &mut VecDeque<JsMessage>) {
        let cap = self.pull_batch() * 2;
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
}

/// Why a pull stream was left.
enum End {
    /// For good, or to make the consumer again: what was pulled goes back.
    Over(&'static str),
    /// To pull again on a new stream, keeping what was pulled (a durable consumer).
    Repull(&'static str),
    /// To start an ordered consumer again after the last message handled.
    Restart(&'static str),
}

/// Moves what a pull stream already received into `waiting`.
fn take_held(pulled: &mut Messages, waiting: &mut VecDeque<JsMessage>) {
    for _ in 0..10_000 {
        match pulled.next().now_or_never() {
            Some(Some(Ok(m))) => waiting.push_back(m),
            Some(Some(Err(_))) => {}
            _ => break,
        }
    }
}

/// The longest pause between attempts to pull again: short for the first ten seconds or so
/// (JetStream comes back soon after a restart or an election), then 5 s.
fn retry_cap(attempt: usize) -> Duration {
    match attempt {
        0..=40 => Duration::from_millis(250),
        _ => Duration::from_secs(5),
    }
}

impl<A> Consumer<A> {
    /// The next batch of a batch handler, once `waiting` holds a full one or its first message
    /// has waited `batch_wait`; the clock of the next starts with what is left.
    fn take_batch(
        &self,
        waiting: &mut VecDeque<JsMessage>,
        filling_since: &mut Option<tokio::time::Instant>,
        batch_wait: Duration,
    ) -> Option<Vec<JsMessage>> {
        if waiting.is_empty() {
            *filling_since = None;
            return None;
        }
        let size = self.pull_batch();
        if waiting.len() < size {
            let now = tokio::time::Instant::now();
            let since = *filling_since.get_or_insert(now);
            if now < since + batch_wait {
                return None;
            }
        }
        let batch: Vec<JsMessage> = waiting.drain(..waiting.len().min(size)).collect();
        // What is left starts the next batch's clock.
        *filling_since = (!waiting.is_empty()).then(tokio::time::Instant::now);
        Some(batch)
    }

    /// How many messages one pull asks for: `batch`, by default [`PULL_BATCH`] (async-nats'
    /// own default), and never fewer than the handler runs at once.
    fn pull_batch(&self) -> usize {
        self.js.spec.batch.unwrap_or(PULL_BATCH).max(self.w.limit)
    }
}

/// Messages one pull asks for, by default (and the most a batch handler gets at once).
const PULL_BATCH: usize = 200;

/// How long a batch handler waits for its batch to fill, by default (`batch_wait`).
const DEFAULT_BATCH_WAIT_MS: u64 = 50;

/// How often a message that is not done gets an in-progress ack: a third of `ack_wait`.
fn keepalive(ack_wait: Duration) -> Duration {
    (ack_wait / 3).max(Duration::from_millis(10))
}
