//! Pipelined JetStream publishing: messages sent one after the other (so the stream stores them
//! in order), their acks awaited with at most `window` outstanding (see [`Acks`]), each result
//! put in its message's place.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use async_nats::client::PublishErrorKind as SendErrorKind;
use async_nats::jetstream::context::PublishError as AckError;
use async_nats::Subject;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;

use super::acks::{Acks, MAX_OUTSTANDING};
use super::publish::{retryable, JsPublish, Published};
use crate::client::{self, Started};
use crate::error::PublishError;
use crate::origin::Origin;
use crate::telemetry::metrics::Operation;
use crate::telemetry::spans::{Frame, SendKind};

/// A message sent and not yet settled: what settling it, or sending it again, needs.
struct Sent {
    index: usize,
    subject: Subject,
    /// As it was before compression: a second send starts again from it.
    payload: Bytes,
    has_id: bool,
    span: Frame,
    started: Started,
}

/// How an outstanding message ended.
enum Done {
    /// The server's answer to the first send (or its timeout).
    Acked(Sent, Result<Published, AckError>),
    /// The result of sending it again (after a failure that made that safe), or of a first
    /// send that could not be made.
    Resent(Sent, Result<Published, PublishError>),
}

/// Messages sent again, each awaiting its own ack.
type Resends<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Done> + Send + 'a>>>;

impl<'a> Origin<'a> {
    /// See [`Sender::js_publish_pipelined`](crate::Sender::js_publish_pipelined).
    pub(crate) async fn js_publish_pipelined<S, T, I>(
        self,
        messages: I,
        window: usize,
        options: &JsPublish,
    ) -> Vec<Result<Published, PublishError>>
    where
        I: Iterator<Item = (S, T)>,
        S: AsRef<str>,
        T: Serialize,
    {
        let options = &*self.in_turn(options);
        let client = self.client;
        let window = window.clamp(1, MAX_OUTSTANDING);
        let mut results = Vec::with_capacity(messages.size_hint().0);
        let mut acks = Acks::new(client.timeout());
        let mut resends = Resends::new();
        for (index, (subject, value)) in messages.enumerate() {
            // Shared, not copied, by the send and what settles it.
            let subject = Subject::from(subject.as_ref());
            let encoded = self.encode(&subject, &value);
            drop(value);
            let payload = match encoded {
                Ok(p) => p,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            results.push(None);
            let mut headers = self.headers();
            let has_id = options.headers(&mut headers, &subject, &payload, index);
            let packed = client.pack(&mut headers, payload.clone());
            let (span, started) = client.begin(
                self.parent,
                SendKind::Publish,
                &subject,
                packed.len(),
                &mut headers,
            );
            let sent = Sent {
                index,
                subject,
                payload,
                has_id,
                span,
                started,
            };
            let (slot, nats) = client.route_slot(&sent.subject);
            let first = match acks.reply_to(slot, nats, index).await {
                Ok(reply) => nats
                    .publish_with_reply_and_headers(sent.subject.clone(), reply, headers, packed)
                    .await
                    .map_err(|e| (e.kind() == SendErrorKind::MaxPayloadExceeded).then_some(e)),
                Err(_) => Err(None),
            };
            match first {
                Ok(()) => acks.sent(index, sent),
                // async-nats checks the size before it sends.
                Err(Some(oversize)) => {
                    let failed = Err(client.oversize(&sent.subject, &oversize));
                    self.settle(
                        Done::Resent(sent, failed),
                        options,
                        &mut resends,
                        &mut results,
                    );
                }
                // Not sent at all: sending it again is safe.
                Err(None) => resends.push(self.resend(sent, options)),
            }
            while acks.len() + resends.len() >= window {
                let Some(done) = next(&mut acks, &mut resends).await else {
                    break;
                };
                self.settle(done, options, &mut resends, &mut results);
            }
        }
        while let Some(done) = next(&mut acks, &mut resends).await {
            self.settle(done, options, &mut resends, &mut results);
        }
        results
            .into_iter()
            .map(|r| r.expect("every message is settled before the pipeline returns"))
            .collect()
    }

    /// Puts a message's result in its place, or sends it again when its failure makes that
    /// safe (see `retryable`); sent again, it may land after later ones.
    fn settle<'o>(
        self,
        done: Done,
        options: &'o JsPublish,
        resends: &mut Resends<'o>,
        results: &mut [Option<Result<Published, PublishError>>],
    ) where
        'a: 'o,
    {
        let (sent, result) = match done {
            Done::Acked(sent, Ok(published)) => (sent, Ok(published)),
            Done::Acked(sent, Err(e)) if retryable(e.kind(), sent.has_id) => {
                resends.push(self.resend(sent, options));
                return;
            }
            Done::Acked(sent, Err(source)) => {
                let subject = sent.subject.to_string();
                let failed = PublishError::JetStream {
                    subject,
                    attempts: 1,
                    source,
                };
                (sent, Err(failed))
            }
            Done::Resent(sent, result) => (sent, result),
        };
        let error_type = result.as_ref().err().map(|e| match e {
            PublishError::MaxPayload { .. } => "max_payload",
            _ => "jetstream_publish",
        });
        client::finish(
            &sent.span,
            sent.started,
            Operation::Send,
            &result,
            error_type,
        );
        results[sent.index] = Some(result);
    }

    /// Sends `sent` again under its span, with its own message id and the remaining attempts
    /// of `options`.
    fn resend<'o>(
        self,
        sent: Sent,
        options: &'o JsPublish,
    ) -> Pin<Box<dyn Future<Output = Done> + Send + 'o>>
    where
        'a: 'o,
    {
        let mut headers = self.headers();
        let _ = options.headers(&mut headers, &sent.subject, &sent.payload, sent.index);
        Box::pin(async move {
            let again = options.without_id();
            let result = self
                .client
                .js_send(
                    Some(&sent.span),
                    &sent.subject,
                    headers,
                    sent.payload.clone(),
                    &again,
                    usize::MAX,
                )
                .await;
            Done::Resent(sent, result)
        })
    }
}

/// The next message settled: an ack (or its timeout), or a second send; `None` when nothing
/// is outstanding.
async fn next(acks: &mut Acks<Sent>, resends: &mut Resends<'_>) -> Option<Done> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(Some((sent, ack))) = acks.poll_next(cx) {
            return Poll::Ready(Some(Done::Acked(sent, ack)));
        }
        match resends.poll_next_unpin(cx) {
            Poll::Ready(None) if acks.len() > 0 => Poll::Pending,
            other => other,
        }
    })
    .await
}
