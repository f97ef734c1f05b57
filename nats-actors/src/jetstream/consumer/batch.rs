//! A batch handler's call: one call for up to `batch` messages, in-progress acks for all of
//! them while it runs, then each message settled as its item (or the handler's result) says.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message as JsMessage;
use async_nats::Subject;

use super::super::batch::{Members, Verdict};
use super::super::delivery::LazyDelivery;
use super::settle::classify;
use super::{keepalive, Consumer};
use crate::handler::Invoke;

impl<A: Send + Sync + 'static> Consumer<A> {
    pub(super) async fn process_batch<const I: usize>(&self, batch: Vec<JsMessage>)
    where
        A: Invoke<I>,
    {
        let js = &self.js;
        let Some(first) = batch.first().map(|m| m.message.clone()) else {
            return;
        };
        let n = batch.len();
        let members = Arc::new(Members::new(batch, &js.stream_name, &js.durable_name));
        let delivery = LazyDelivery::new(js.stream_name.clone(), js.durable_name.clone());
        let (mut ctx, started) = self.w.prepare(first, Some(delivery));
        ctx.set_batch(members.clone());
        ctx.frame()
            .set("messaging.batch.message_count", n.to_string());
        let others = members.messages.iter().skip(1).map(|m| &m.message);
        ctx.frame().link_producers(others);
        for _ in 1..n {
            self.w.tally.received();
        }
        let acks: Vec<Subject> = members
            .messages
            .iter()
            .filter_map(|m| m.message.reply.clone())
            .collect();
        let call = self.w.call::<I>(&ctx);
        let outcome = self
            .with_batch_progress(call, &acks, keepalive(js.spec.ack_wait()))
            .await;
        let (error, error_type) = classify(outcome);
        let verdicts = members.take_verdicts();
        for (i, verdict) in verdicts.into_iter().enumerate() {
            let message = &members.messages[i].message;
            let Some(ack) = message.reply.as_ref() else {
                continue;
            };
            let (verdict, own_type) = match verdict {
                Verdict::Follow => match &error {
                    None => (Verdict::Ack, None),
                    Some(e) => (Verdict::Fail(e.copied()), error_type),
                },
                Verdict::Rejected(e) => (Verdict::Rejected(e), Some("decode")),
                Verdict::Ack => (Verdict::Ack, None),
                other => (other, Some("handler")),
            };
            let failure = match &verdict {
                Verdict::Fail(e) | Verdict::Rejected(e) => Some(e),
                _ => None,
            };
            self.w.record(ctx.frame(), started, own_type, failure);
            if matches!(verdict, Verdict::Ack | Verdict::Follow) {
                self.ack(ack).await;
                continue;
            }
            if let Verdict::Nak(delay) = verdict {
                self.w.counters.js.retried.fetch_add(1, Relaxed);
                self.nak(ack, delay).await;
                continue;
            }
            // Read from the ack subject only where it is needed.
            let Some(delivery) = members.delivery(i).cloned() else {
                tracing::warn!(consumer = %js.what, ack = %ack, "unreadable ack subject; the message is left to redelivery");
                continue;
            };
            match verdict {
                Verdict::Fail(e) => {
                    self.settle_failure(message, ctx.frame(), ack, &delivery, &e, own_type)
                        .await
                }
                Verdict::Rejected(e) => {
                    let reason = e.description().to_string();
                    self.dead_letter(message, ctx.frame(), &delivery, ack, &reason)
                        .await
                }
                Verdict::DeadLetter(reason) => {
                    self.dead_letter(message, ctx.frame(), &delivery, ack, &reason)
                        .await
                }
                Verdict::Term(reason) => {
                    tracing::warn!(consumer = %js.what, stream_sequence = delivery.stream_sequence, reason, "message terminated by its batch handler");
                    self.term(ack, &reason).await;
                }
                Verdict::Ack | Verdict::Follow | Verdict::Nak(_) => {}
            }
        }
    }

    /// Runs `fut`, sending `+WPI` for every message of the batch each period until it is done.
    async fn with_batch_progress<F: std::future::Future>(
        &self,
        fut: F,
        acks: &[Subject],
        period: Duration,
    ) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        // As for one message: a batch done on its first poll needs no timer.
        if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
            return out;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return out,
                _ = tick.tick() => {
                    for ack in acks {
                        self.send_ack(ack, bytes::Bytes::from_static(b"+WPI")).await;
                    }
                }
            }
        }
    }
}
