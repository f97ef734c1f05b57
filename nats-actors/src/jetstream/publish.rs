//! Publishing to JetStream: wait for the ack, deduplicate with `Nats-Msg-Id`, retry only what is
//! safe to retry, and pipeline many messages with a bounded window.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError as AckError, PublishErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;

use crate::client::{self, Client};
use crate::error::PublishError;
use crate::origin::Origin;
use crate::telemetry::metrics::Operation;
use crate::telemetry::spans::{Frame, SendKind};

/// Default attempts of a JetStream publish (see [`JsPublish::attempts`]).
pub const DEFAULT_ATTEMPTS: u32 = 5;

/// What the server said about a stored message.
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::PublishError> {
/// use nats_actors::{jetstream::JsPublish, Sender};
/// let first = client.js_publish_with("orders.created", &"o-1", &JsPublish::new().msg_id("o-1")).await?;
/// let again = client.js_publish_with("orders.created", &"o-1", &JsPublish::new().msg_id("o-1")).await?;
/// assert!(!first.duplicate && again.duplicate);
/// assert_eq!(first.sequence, again.sequence);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in the stream (the earlier copy's, for a duplicate).
    pub sequence: u64,
    /// The server had already stored a message with the same `Nats-Msg-Id` within the stream's
    /// duplicate window; this one was not stored again.
    pub duplicate: bool,
}

#[derive(Clone, Debug, Default)]
enum MsgId {
    #[default]
    None,
    Explicit(String),
    Derived,
}

/// Options of a JetStream publish: message id (deduplication), expectations, retries.
///
/// A publish that timed out may have been stored. It is retried only when it carries a message
/// id, so that the server drops a second copy; a publish with no stream listening (`no
/// responders`, e.g. during a leader election) stored nothing and is always retried.
///
/// ```
/// use nats_actors::jetstream::JsPublish;
/// let opts = JsPublish::new().msg_id("order-7").expected_last_sequence(41).attempts(10);
/// # let _ = opts;
/// let derived = JsPublish::new().derive_msg_id(); // id = hash of subject and payload
/// # let _ = derived;
/// ```
#[derive(Clone, Debug)]
pub struct JsPublish {
    msg_id: MsgId,
    expected_last_sequence: Option<u64>,
    expected_last_subject_sequence: Option<u64>,
    expected_last_msg_id: Option<String>,
    expected_stream: Option<String>,
    attempts: u32,
}

impl Default for JsPublish {
    fn default() -> Self {
        Self::new()
    }
}

impl JsPublish {
    /// No message id, no expectations, 5 attempts.
    pub fn new() -> Self {
        Self {
            msg_id: MsgId::None,
            expected_last_sequence: None,
            expected_last_subject_sequence: None,
            expected_last_msg_id: None,
            expected_stream: None,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Sets `Nats-Msg-Id`: the stream stores one message per id within its duplicate window.
    /// In [`Sender::js_publish_pipelined`](crate::Sender::js_publish_pipelined) the id of message `i` is `<id>-<i>`.
    pub fn msg_id(mut self, id: impl Into<String>) -> Self {
        self.msg_id = MsgId::Explicit(id.into());
        self
    }

    /// Derives `Nats-Msg-Id` from the subject and the encoded payload (a 128-bit hash), so that
    /// publishing the same content twice within the duplicate window stores it once, e.g. when
    /// a redelivered message makes a handler publish again.
    pub fn derive_msg_id(mut self) -> Self {
        self.msg_id = MsgId::Derived;
        self
    }

    /// Stored only if the stream's last sequence is `sequence` (optimistic concurrency).
    pub fn expected_last_sequence(mut self, sequence: u64) -> Self {
        self.expected_last_sequence = Some(sequence);
        self
    }

    /// Stored only if the last message on this subject has `sequence`.
    pub fn expected_last_subject_sequence(mut self, sequence: u64) -> Self {
        self.expected_last_subject_sequence = Some(sequence);
        self
    }

    /// Stored only if the stream's last message id is `id`.
    pub fn expected_last_msg_id(mut self, id: impl Into<String>) -> Self {
        self.expected_last_msg_id = Some(id.into());
        self
    }

    /// Stored only if the subject belongs to `stream`.
    pub fn expected_stream(mut self, stream: impl Into<String>) -> Self {
        self.expected_stream = Some(stream.into());
        self
    }

    /// How many times to send it in all (at least 1), with exponential backoff from 100 ms up to
    /// 2 s between attempts.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The same options for headers that already carry the message id and expectations.
    pub(super) fn without_id(&self) -> Self {
        Self {
            msg_id: MsgId::None,
            expected_last_sequence: None,
            expected_last_subject_sequence: None,
            expected_last_msg_id: None,
            expected_stream: None,
            attempts: self.attempts,
        }
    }

    /// The options of an atomic batch's later messages: the message id and the expected
    /// stream; the other expectations hold for the batch and go on its first message only.
    pub(super) fn batch_member(&self) -> Self {
        Self {
            msg_id: self.msg_id.clone(),
            expected_stream: self.expected_stream.clone(),
            ..Self::new()
        }
    }

    /// Whether `Nats-Expected-Last-Msg-Id` is asked for (atomic batches refuse it).
    pub(super) fn expects_last_msg_id(&self) -> bool {
        self.expected_last_msg_id.is_some()
    }

    /// Adds the headers these options set; returns whether one is `Nats-Msg-Id`.
    pub(super) fn headers(
        &self,
        headers: &mut HeaderMap,
        subject: &str,
        payload: &[u8],
        index: usize,
    ) -> bool {
        let id = match &self.msg_id {
            MsgId::None => None,
            MsgId::Explicit(id) if index == usize::MAX => Some(id.clone()),
            MsgId::Explicit(id) => Some(format!("{id}-{index}")),
            MsgId::Derived => Some(derive_id(subject, payload)),
        };
        let mut set = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                headers.insert(name, v.as_str());
            }
        };
        let has_id = id.is_some();
        set("Nats-Msg-Id", id);
        set(
            "Nats-Expected-Last-Sequence",
            self.expected_last_sequence.map(|s| s.to_string()),
        );
        set(
            "Nats-Expected-Last-Subject-Sequence",
            self.expected_last_subject_sequence.map(|s| s.to_string()),
        );
        set(
            "Nats-Expected-Last-Msg-Id",
            self.expected_last_msg_id.clone(),
        );
        set("Nats-Expected-Stream", self.expected_stream.clone());
        has_id
    }
}

/// 128 bits of FNV-1a over the subject, a separator and the payload, as hex.
fn derive_id(subject: &str, payload: &[u8]) -> String {
    let fnv = |basis: u64| {
        let mut h = basis;
        for b in subject.bytes().chain([0u8]).chain(payload.iter().copied()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x8422_2325_cbf2_9ce4)
    )
}

pub(super) fn retryable(kind: PublishErrorKind, has_id: bool) -> bool {
    match kind {
        // No stream answered: nothing was stored.
        PublishErrorKind::StreamNotFound => true,
        // It may have been stored: only a message id makes a second send safe.
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => has_id,
        _ => false,
    }
}

impl Origin<'_> {
    /// A single JetStream publish of an encoded payload.
    pub(crate) async fn js_publish(
        self,
        subject: &str,
        payload: Bytes,
        options: &JsPublish,
    ) -> Result<Published, PublishError> {
        let options = self.in_turn(options);
        self.client
            .js_send(
                self.parent,
                subject,
                self.headers(),
                payload,
                &options,
                usize::MAX,
            )
            .await
    }

    /// `options`, with the turn's next message id in a keyed actor's turn when they set none.
    pub(super) fn in_turn<'o>(&self, options: &'o JsPublish) -> std::borrow::Cow<'o, JsPublish> {
        match (self.turn, &options.msg_id) {
            (Some(turn), MsgId::None) => {
                std::borrow::Cow::Owned(options.clone().msg_id(turn.next()))
            }
            _ => std::borrow::Cow::Borrowed(options),
        }
    }
}

impl Client {
    /// Sends under a `send` span and waits for the ack, retrying what is safe to retry.
    /// `index` numbers the messages of a pipelined batch (`usize::MAX` for a single one).
    pub(crate) async fn js_send(
        &self,
        parent: Option<&Frame>,
        subject: &str,
        mut headers: HeaderMap,
        payload: Bytes,
        options: &JsPublish,
        index: usize,
    ) -> Result<Published, PublishError> {
        let has_id = options.headers(&mut headers, subject, &payload, index);
        let payload = self.pack(&mut headers, payload);
        let (span, started) = self.begin(
            parent,
            SendKind::Publish,
            subject,
            payload.len(),
            &mut headers,
        );
        let result = async {
            let js = self.jetstream_for(subject);
            let mut attempt = 1;
            loop {
                let sent = match js
                    .publish_with_headers(subject.to_owned(), headers.clone(), payload.clone())
                    .await
                {
                    // async-nats waits 5 s at most; a shorter client timeout applies too.
                    Ok(ack) => tokio::time::timeout(self.timeout(), ack.into_future())
                        .await
                        .unwrap_or_else(|_| Err(AckError::new(PublishErrorKind::TimedOut))),
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(ack) => {
                        return Ok(Published {
                            stream: ack.stream,
                            sequence: ack.sequence,
                            duplicate: ack.duplicate,
                        })
                    }
                    Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                        return Err(self.oversize(subject, &e))
                    }
                    Err(e) if attempt < options.attempts && retryable(e.kind(), has_id) => {
                        let delay = Duration::from_millis(100 << (attempt - 1).min(4))
                            .min(Duration::from_secs(2));
                        tracing::debug!(subject, attempt, error = %e, ?delay, "JetStream publish failed; retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    Err(source) => {
                        return Err(PublishError::JetStream {
                            subject: subject.into(),
                            attempts: attempt,
                            source,
                        })
                    }
                }
            }
        }
        .await;
        let error_type = result.as_ref().err().map(|e| match e {
            PublishError::MaxPayload { .. } => "max_payload",
            _ => "jetstream_publish",
        });
        client::finish(&span, started, Operation::Send, &result, error_type);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_depend_on_subject_and_payload() {
        let a = derive_id("a", b"x");
        assert_eq!(a.len(), 32);
        assert_eq!(a, derive_id("a", b"x"));
        assert_ne!(a, derive_id("a", b"y"));
        assert_ne!(a, derive_id("ax", b""));
    }

    #[test]
    fn only_safe_failures_are_retried() {
        assert!(retryable(PublishErrorKind::StreamNotFound, false));
        assert!(!retryable(PublishErrorKind::TimedOut, false));
        assert!(retryable(PublishErrorKind::TimedOut, true));
        assert!(!retryable(PublishErrorKind::WrongLastSequence, true));
    }
}
