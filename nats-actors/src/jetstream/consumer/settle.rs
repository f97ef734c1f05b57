//! What a `#[consumer]` handler's result comes to: an ack, a nak with a delay, or a dead letter
//! and a term; redeliveries already processed (idempotent consumers) acked without running.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::Message as JsMessage;
use async_nats::Subject;

use super::super::dead_letter::Letter;
use super::super::delivery::{Delivery, LazyDelivery};
use super::super::idempotency::Processed;
use super::{keepalive, Consumer, Progress};
use crate::error::HandlerError;
use crate::handler::Invoke;
use crate::outcome::Outcome;
use crate::telemetry::spans::Frame;

/// How long recording a processed id is retried before the message is acked without it.
const MARK_WITHIN: Duration = Duration::from_secs(60);

impl<A: Send + Sync + 'static> Consumer<A> {
    pub(super) async fn process_js<const I: usize>(&self, msg: JsMessage)
    where
        A: Invoke<I>,
    {
        let js = &self.js;
        let JsMessage { message, .. } = msg;
        let Some(ack) = message.reply.clone() else {
            tracing::warn!(consumer = %js.what, subject = %message.subject, "not a JetStream delivery; ignored");
            return;
        };
        let delivery = LazyDelivery::new(js.stream_name.clone(), js.durable_name.clone());
        if js.config.is_none() {
            // Ordered consumers do not ack: the outcome is only counted, and the message's
            // sequence is where a new consumer would start after it.
            let sequence = delivery.get(Some(&ack)).map(|d| d.stream_sequence);
            let (ctx, started) = self.w.prepare(message, Some(delivery));
            let outcome = self.w.call::<I>(&ctx).await;
            if let Some(sequence) = sequence {
                js.handled.store(sequence, Relaxed);
            }
            let (error, error_type) = classify(outcome);
            self.w
                .record(ctx.frame(), started, error_type, error.as_ref());
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
                    self.w.counters.js.retried.fetch_add(1, Relaxed);
                    self.nak(&ack, keepalive(js.spec.ack_wait())).await;
                    return;
                }
            },
            _ => None,
        };
        if let (Some(processed), Some(key)) = (&js.processed, &key) {
            match self.again_on_reconnect(|| processed.seen(key)).await {
                Ok(false) => {}
                Ok(true) => {
                    self.w.tally.received();
                    self.w.counters.js.duplicates.fetch_add(1, Relaxed);
                    tracing::debug!(consumer = %js.what, key, "already processed; acked without calling the handler");
                    self.ack(&ack).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(consumer = %js.what, error = %e, "cannot read the processed ids; the message waits");
                    self.w.counters.js.retried.fetch_add(1, Relaxed);
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
            start: crate::clock::now(),
            last: &last,
        };
        let (ctx, started) = self.w.prepare(message, Some(delivery));
        let outcome = self.with_progress(self.w.call::<I>(&ctx), progress).await;
        let (error, error_type) = classify(outcome);
        self.w
            .record(ctx.frame(), started, error_type, error.as_ref());
        let Some(error) = error else {
            if let (Some(processed), Some(key)) = (&js.processed, &key) {
                // Kept alive while it is recorded (through a server restart, if need be). Acked
                // even if this fails: the work is done; only a later duplicate would run again.
                let mark = self.again_on_reconnect(|| processed.mark(key, MARK_WITHIN));
                let marked = self.with_progress(mark, progress);
                if let Err(e) = marked.await {
                    tracing::warn!(consumer = %js.what, key, error = %e, "processed, but the id could not be recorded");
                }
            }
            let quiet = crate::clock::elapsed(progress.start)
                .saturating_sub(Duration::from_nanos(last.load(Relaxed)));
            if quiet > ack_wait {
                // The server may already have given the message to someone else.
                self.w.counters.js.late_acks.fetch_add(1, Relaxed);
                let seq = ctx.delivery().map(|d| d.stream_sequence);
                tracing::warn!(consumer = %js.what, stream_sequence = ?seq, ?quiet, ?ack_wait, "ack sent after ack_wait: the message may be redelivered");
            }
            self.ack(&ack).await;
            return;
        };
        let Some(delivery) = ctx.delivery().cloned() else {
            tracing::warn!(consumer = %js.what, ack = %ack, "unreadable ack subject; the message is left to redelivery");
            return;
        };
        self.settle_failure(
            ctx.message(),
            ctx.frame(),
            &ack,
            &delivery,
            &error,
            error_type,
        )
        .await;
    }

    /// A failed message: nak'ed with its delay while it may be tried again, else stored as a
    /// dead letter and terminated.
    pub(super) async fn settle_failure(
        &self,
        message: &async_nats::Message,
        frame: &Frame,
        ack: &Subject,
        delivery: &Delivery,
        error: &HandlerError,
        error_type: Option<&'static str>,
    ) {
        let js = &self.js;
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
            self.w.counters.js.retried.fetch_add(1, Relaxed);
            self.nak(ack, delay).await;
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
        self.dead_letter(message, frame, delivery, ack, &reason)
            .await;
    }

    /// Stores the message in the dead-letter stream, then terminates it with `reason`. If it
    /// cannot be stored, it is nak'ed instead: tried again, or (out of deliveries) copied by the
    /// exhausted-message watcher.
    pub(super) async fn dead_letter(
        &self,
        message: &async_nats::Message,
        frame: &Frame,
        delivery: &Delivery,
        ack: &Subject,
        reason: &str,
    ) {
        let js = &self.js;
        if let Some(dl) = &js.dead_letters {
            let letter = Letter {
                subject: message.subject.as_str(),
                headers: message.headers.as_ref(),
                payload: message.payload.clone(),
                stream_sequence: delivery.stream_sequence,
                deliveries: delivery.delivered,
                error: reason,
            };
            if let Err(e) = dl.store(&self.w.client, Some(frame), letter).await {
                tracing::error!(consumer = %js.what, error = %e, "cannot store a dead letter; the message is nak'ed instead");
                self.w.counters.js.retried.fetch_add(1, Relaxed);
                self.nak(ack, js.spec.backoff(delivery.delivered)).await;
                return;
            }
            self.w.counters.js.dead_lettered.fetch_add(1, Relaxed);
            tracing::warn!(consumer = %js.what, stream_sequence = delivery.stream_sequence, dead_letter = %dl.name, reason, "message dead-lettered");
        } else {
            tracing::error!(consumer = %js.what, stream_sequence = delivery.stream_sequence, reason, "message terminated (no dead-letter stream)");
        }
        self.term(ack, reason).await;
    }

    /// Terminates the message: `+TERM` with `reason` (control characters blanked, cut at 512).
    pub(super) async fn term(&self, ack: &Subject, reason: &str) {
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(512)
            .collect();
        self.send_ack(ack, format!("+TERM {reason}").into()).await;
    }

    pub(super) async fn ack(&self, ack: &Subject) {
        if !self.js.spec.double_ack {
            return self.send_ack(ack, "+ACK".into()).await;
        }
        let request = async_nats::Request::new()
            .payload("+ACK".into())
            .timeout(Some(Duration::from_secs(5)));
        if let Err(e) = self
            .w
            .client
            .nats()
            .send_request(ack.clone(), request)
            .await
        {
            self.w.counters.js.ack_failures.fetch_add(1, Relaxed);
            tracing::warn!(handler = %self.w.name(), error = %e, "the server did not confirm an ack; the message may be redelivered");
        }
    }

    pub(super) async fn nak(&self, ack: &Subject, delay: Duration) {
        let body = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
        self.send_ack(ack, body.into()).await;
    }

    /// Runs `op` (a read or write of the processed ids), and again at once when a reconnect is
    /// confirmed while it waits: its reply went with the old connection, and would otherwise
    /// be waited for until the request times out (5 s), holding the message up.
    async fn again_on_reconnect<F, Fut, T>(&self, mut op: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        for _ in 0..3 {
            let mut reconnects = self.w.link.reconnects();
            tokio::select! {
                out = op() => return out,
                Ok(()) = reconnects.changed() => {}
            }
        }
        op().await
    }

    pub(super) async fn send_ack(&self, ack: &Subject, body: bytes::Bytes) {
        if let Err(e) = self.w.client.nats().publish(ack.clone(), body).await {
            self.w.counters.js.ack_failures.fetch_add(1, Relaxed);
            tracing::warn!(handler = %self.w.name(), error = %e, "cannot send an ack; the message will be redelivered");
        }
    }
}

/// The error and its type for an outcome of a handler that does not reply.
pub(super) fn classify(
    outcome: Result<Outcome, HandlerError>,
) -> (Option<HandlerError>, Option<&'static str>) {
    match outcome {
        Ok(Outcome::Done | Outcome::Reply(..)) => (None, None),
        Ok(Outcome::Failed(e)) => (Some(e), Some("handler")),
        Ok(Outcome::Rejected(e)) => (Some(e), Some("decode")),
        Err(panic) => (Some(panic), Some("panic")),
    }
}
