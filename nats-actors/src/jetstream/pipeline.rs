//! Pipelined JetStream publishing: messages sent one after the other (so the stream stores them
//! in order), their acks awaited with at most `window` outstanding, each result put in its
//! message's place.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_nats::jetstream::context::{
    PublishAckFuture, PublishError as AckError, PublishErrorKind,
};
use async_nats::jetstream::publish::PublishAck;
use async_nats::Subject;
use bytes::Bytes;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;

use super::publish::{retryable, JsPublish, Published};
use crate::client::{self, Started};
use crate::error::PublishError;
use crate::origin::Origin;
use crate::telemetry::metrics::Operation;
use crate::telemetry::spans::{Frame, SendKind};

/// How long a send may wait before the outstanding acks are settled while it waits.
const STALL: std::time::Duration = std::time::Duration::from_millis(20);

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

/// What an outstanding message's future ends with.
enum Done {
    /// The server's answer to the first send.
    Acked(Sent, Result<PublishAck, AckError>),
    /// The result of sending it again (after a failure that made that safe).
    Resent(Sent, Result<Published, PublishError>),
}

/// An outstanding message: its ack awaited, or (rarely) a second send.
type Outstanding<'a> = Either<Acking, Pin<Box<dyn Future<Output = Done> + Send + 'a>>>;

/// The ack of a message sent once.
struct Acking {
    sent: Option<Sent>,
    ack: <PublishAckFuture as IntoFuture>::IntoFuture,
}

impl Future for Acking {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let result = ready!(self.ack.as_mut().poll(cx));
        match self.sent.take() {
            Some(sent) => Poll::Ready(Done::Acked(sent, result)),
            None => Poll::Pending, // polled again after it ended: never by FuturesUnordered
        }
    }
}

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
        let window = window.max(1);
        let mut results = Vec::with_capacity(messages.size_hint().0);
        let mut outstanding = FuturesUnordered::new();
        let mut stalled = false;
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
            let send = client.jetstream_for(&sent.subject).publish_with_headers(
                sent.subject.clone(),
                headers,
                packed,
            );
            let mut send = std::pin::pin!(send);
            // A send waits for room in the connection's queue, or for one of the context's
            // ack permits, which the outstanding acks hold: once one has waited `STALL`, every
            // wait settles acks, or a window over the permit count (or several pipelines at
            // once) could wait forever. Settling acks at every short wait from the start makes
            // the connection write smaller batches (measured: 45% more writes).
            let ack = match futures::poll!(send.as_mut()) {
                Poll::Ready(ack) => ack,
                Poll::Pending if !stalled => match tokio::time::timeout(STALL, &mut send).await {
                    Ok(ack) => ack,
                    Err(_) => {
                        stalled = true;
                        self.send_settling(send, options, &mut outstanding, &mut results)
                            .await
                    }
                },
                Poll::Pending => {
                    self.send_settling(send, options, &mut outstanding, &mut results)
                        .await
                }
            };
            let done = match ack {
                Ok(ack) => {
                    let ack = ack.into_future();
                    let sent = Some(sent);
                    outstanding.push(Either::Left(Acking { sent, ack }));
                    None
                }
                // async-nats checks the size before it sends.
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    let failed = Err(client.oversize(&sent.subject, &e));
                    Some(Done::Resent(sent, failed))
                }
                // Not sent at all: sending it again is safe.
                Err(_) => {
                    outstanding.push(self.resend(sent, options));
                    None
                }
            };
            if let Some(done) = done {
                self.settle(done, options, &mut outstanding, &mut results);
            }
            while outstanding.len() >= window {
                let Some(done) = outstanding.next().await else {
                    break;
                };
                self.settle(done, options, &mut outstanding, &mut results);
            }
        }
        while let Some(done) = outstanding.next().await {
            self.settle(done, options, &mut outstanding, &mut results);
        }
        results
            .into_iter()
            .map(|r| r.expect("every message is settled before the pipeline returns"))
            .collect()
    }

    /// Waits for `send` while settling the acks that come in meanwhile.
    async fn send_settling<'o, F: Future>(
        self,
        mut send: Pin<&mut F>,
        options: &'o JsPublish,
        outstanding: &mut FuturesUnordered<Outstanding<'o>>,
        results: &mut [Option<Result<Published, PublishError>>],
    ) -> F::Output
    where
        'a: 'o,
    {
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent,
                Some(done) = outstanding.next(), if !outstanding.is_empty() => {
                    self.settle(done, options, outstanding, results)
                }
            }
        }
    }

    /// Puts a message's result in its place, or sends it again when its failure makes that
    /// safe (see `retryable`); sent again, it may land after later ones.
    fn settle<'o>(
        self,
        done: Done,
        options: &'o JsPublish,
        outstanding: &mut FuturesUnordered<Outstanding<'o>>,
        results: &mut [Option<Result<Published, PublishError>>],
    ) where
        'a: 'o,
    {
        let (sent, result) = match done {
            Done::Acked(sent, Ok(ack)) => {
                let published = Published {
                    stream: ack.stream,
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                };
                (sent, Ok(published))
            }
            Done::Acked(sent, Err(e)) if retryable(e.kind(), sent.has_id) => {
                outstanding.push(self.resend(sent, options));
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
    fn resend<'o>(self, sent: Sent, options: &'o JsPublish) -> Outstanding<'o>
    where
        'a: 'o,
    {
        let mut headers = self.headers();
        let _ = options.headers(&mut headers, &sent.subject, &sent.payload, sent.index);
        Either::Right(Box::pin(async move {
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
        }))
    }
}
