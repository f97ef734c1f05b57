//! [`Origin`]: the one send path under [`Sender`](crate::Sender): the client that sends, the
//! codec it encodes with, and the trace it continues.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::codec::{self, Codec};
use crate::error::{PublishError, RequestError};
use crate::headers;
use crate::telemetry::spans::{Frame, SendKind};

/// Trace headers larger than this are not passed on (W3C allows 8192 bytes of baggage).
const MAX_TRACE_HEADER: usize = 8192;

/// The one send path: the client that sends, the codec it encodes with, the span it continues
/// and the incoming headers whose trace context goes on.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub(crate) client: &'a Client,
    pub(crate) codec: Codec,
    pub(crate) parent: Option<&'a Frame>,
    pub(crate) incoming: Option<&'a HeaderMap>,
    /// In a keyed actor's turn: the ids its JetStream publishes get.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) turn: Option<&'a crate::context::TurnIds>,
}

impl<'a> Origin<'a> {
    /// A client's: a new trace, encoding with `codec`.
    pub(crate) fn client(client: &'a Client, codec: Codec) -> Self {
        Self {
            client,
            codec,
            parent: None,
            incoming: None,
            turn: None,
        }
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        value: &T,
    ) -> Result<Bytes, PublishError> {
        self.codec
            .encode(value)
            .map_err(|source| PublishError::Encode {
                subject: subject.into(),
                source,
            })
    }

    /// `Content-Type`, and the incoming trace context passed on whole or not at all (a cut
    /// baggage or tracestate is a corrupt one).
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut out = self.codec.headers();
        let Some(incoming) = self.incoming else {
            return out;
        };
        for name in headers::TRACE_HEADERS {
            match headers::get(incoming, name) {
                Some(v) if v.len() <= MAX_TRACE_HEADER && !v.contains(['\r', '\n']) => {
                    out.insert(name, v);
                }
                Some(v) => tracing::warn!(
                    header = name,
                    bytes = v.len(),
                    "trace header not passed on: over the size bound"
                ),
                None => {}
            }
        }
        out
    }

    pub(crate) async fn publish(self, subject: &str, payload: Bytes) -> Result<(), PublishError> {
        let headers = self.headers();
        self.client
            .send(
                self.parent,
                SendKind::Publish,
                subject.into(),
                headers,
                payload,
            )
            .await
    }

    /// See [`Sender::publish_batch`](crate::Sender::publish_batch).
    pub(crate) async fn publish_batch<S, T, I>(self, messages: I) -> Vec<Result<(), PublishError>>
    where
        I: Iterator<Item = (S, T)>,
        S: AsRef<str>,
        T: Serialize,
    {
        let mut results = Vec::with_capacity(messages.size_hint().0);
        for (subject, value) in messages {
            let sent = match self.encode(subject.as_ref(), &value) {
                Ok(payload) => self.publish(subject.as_ref(), payload).await,
                Err(e) => Err(e),
            };
            results.push((subject, sent));
        }
        let flushed = self.client.flush_all().await;
        results
            .into_iter()
            .map(|(subject, sent)| match (sent, &flushed) {
                (Ok(()), Err(e)) => Err(PublishError::Nats {
                    subject: subject.as_ref().to_owned(),
                    source: async_nats::PublishError::with_source(
                        async_nats::client::PublishErrorKind::Send,
                        format!("the batch's flush failed: {e}"),
                    ),
                }),
                (sent, _) => sent,
            })
            .collect()
    }

    pub(crate) async fn request<Resp: DeserializeOwned>(
        self,
        subject: &str,
        payload: Bytes,
    ) -> Result<Resp, RequestError> {
        let headers = self.headers();
        let reply = self
            .client
            .request_message(self.parent, subject, headers, payload)
            .await?;
        let reply_codec = codec::of_headers(reply.headers.as_ref())?.unwrap_or(self.codec);
        let payload = crate::compression::payload(reply.headers.as_ref(), &reply.payload, || {
            crate::compression::inflate_limit(self.client.nats().server_info().max_payload)
        })?;
        Ok(reply_codec.decode(&payload)?)
    }
}
