//! Atomic batch publish (nats-server 2.12+, ADR-50): the stream stores every message of the
//! batch or none of them.
//!
//! The batch travels as ordinary publishes with `Nats-Batch-Id` and `Nats-Batch-Sequence`; the
//! first is a request (so a stream that does not allow batches says so before the rest is
//! sent), the last carries `Nats-Batch-Commit: 1` and gets the ack of the whole batch.

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::PublishError;
use crate::origin::Origin;
use crate::telemetry::metrics::Operation;
use crate::telemetry::spans::SendKind;

use super::JsPublish;

/// The most messages nats-server takes in one atomic batch (its default limit); a larger
/// batch is refused before anything is sent.
///
/// ```
/// let rows: Vec<u32> = (0..2500).collect();
/// let batches = rows.chunks(nats_actors::jetstream::MAX_ATOMIC_BATCH).count();
/// assert_eq!(batches, 3); // each chunk all or nothing, not the whole
/// ```
pub const MAX_ATOMIC_BATCH: usize = 1000;

const BATCH_ID: &str = "Nats-Batch-Id";
const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
const BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// What the server said about a stored atomic batch.
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::PublishError> {
/// use nats_actors::{jetstream::JsPublish, Sender};
/// let lines = [("orders.7.lines", "2 x tea"), ("orders.7.total", "9.80")];
/// let stored = client.js_publish_atomic(lines, &JsPublish::new()).await?;
/// assert_eq!(stored.count, 2);
/// assert_eq!(stored.last_sequence - stored.first_sequence, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchPublished {
    /// The stream that stored it.
    pub stream: String,
    /// The sequence of the batch's first message; the others follow it without a gap.
    pub first_sequence: u64,
    /// The sequence of its last message.
    pub last_sequence: u64,
    /// How many messages it stored.
    pub count: usize,
    /// The batch's `Nats-Batch-Id`.
    pub batch: String,
}

/// A JetStream API reply to a batch message: empty (taken), an ack, or an error.
#[derive(Deserialize)]
struct Reply {
    stream: Option<String>,
    seq: Option<u64>,
    count: Option<u64>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    err_code: Option<u64>,
    description: Option<String>,
}

impl Origin<'_> {
    /// See [`Sender::js_publish_atomic`](crate::Sender::js_publish_atomic).
    pub(crate) async fn js_publish_atomic<S, T, I>(
        self,
        messages: I,
        options: &JsPublish,
    ) -> Result<BatchPublished, PublishError>
    where
        I: Iterator<Item = (S, T)>,
        S: AsRef<str>,
        T: Serialize,
    {
        let options = &*self.in_turn(options);
        let member = options.batch_member();
        let batch = nuid::next().to_string();
        // Everything is encoded before anything is sent: a value that does not encode fails
        // the batch with nothing on the wire.
        let mut encoded = Vec::new();
        for (i, (subject, value)) in messages.enumerate() {
            let subject = Subject::from(subject.as_ref());
            let payload = self.encode(&subject, &value)?;
            let mut headers = self.headers();
            let opts = if i == 0 { options } else { &member };
            opts.headers(&mut headers, &subject, &payload, i);
            let payload = self.client.pack(&mut headers, payload);
            headers.insert(BATCH_ID, batch.as_str());
            headers.insert(BATCH_SEQUENCE, (i + 1).to_string().as_str());
            encoded.push((subject, headers, payload));
        }
        let refuse = |reason: &str| PublishError::AtomicBatch {
            subject: encoded
                .first()
                .map(|(s, _, _)| s.to_string())
                .unwrap_or_default(),
            count: encoded.len(),
            code: None,
            reason: reason.into(),
        };
        if encoded.is_empty() {
            return Err(refuse("the batch is empty"));
        }
        if encoded.len() > MAX_ATOMIC_BATCH {
            return Err(refuse(&format!(
                "{} messages, over nats-server's limit of {MAX_ATOMIC_BATCH} per batch",
                encoded.len()
            )));
        }
        if options.expects_last_msg_id() {
            return Err(refuse(
                "atomic batches do not take Nats-Expected-Last-Msg-Id (ADR-50)",
            ));
        }
        if let Some((_, headers, _)) = encoded.last_mut() {
            headers.insert(BATCH_COMMIT, "1");
        }
        let spans: Vec<_> = encoded
            .iter_mut()
            .map(|(subject, headers, payload)| {
                self.client.begin(
                    self.parent,
                    SendKind::Publish,
                    subject,
                    payload.len(),
                    headers,
                )
            })
            .collect();
        let count = encoded.len();
        let result = self.send_batch(encoded, &batch).await;
        let error_type = result.as_ref().err().map(|_| "jetstream_publish");
        for (span, started) in &spans {
            crate::client::finish(span, *started, Operation::Send, &result, error_type);
        }
        let reply = result?;
        let last = reply.seq.unwrap_or_default();
        Ok(BatchPublished {
            stream: reply.stream.unwrap_or_default(),
            first_sequence: (last + 1).saturating_sub(count as u64),
            last_sequence: last,
            count: reply.count.map_or(count, |c| c as usize),
            batch,
        })
    }

    /// Sends the first message and waits for its answer, then the rest, the last one as the
    /// commit whose ack it returns.
    async fn send_batch(
        &self,
        encoded: Vec<(Subject, HeaderMap, Bytes)>,
        batch: &str,
    ) -> Result<Reply, PublishError> {
        let count = encoded.len();
        let first_subject = encoded[0].0.to_string();
        let failed = |code: Option<u64>, reason: String| PublishError::AtomicBatch {
            subject: first_subject.clone(),
            count,
            code,
            reason,
        };
        let mut rest = encoded.into_iter();
        let Some((subject, headers, payload)) = rest.next_back() else {
            return Err(failed(None, "the batch is empty".into()));
        };
        let commit = (subject, headers, payload);
        if let Some((subject, headers, payload)) = rest.next() {
            self.ask(&first_subject, &subject, headers, payload, &failed)
                .await?;
        }
        for (subject, headers, payload) in rest {
            self.client
                .route(&first_subject)
                .publish_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(|e| self.sent_error(&subject, e))?;
        }
        let (subject, headers, payload) = commit;
        let reply = self
            .ask(&first_subject, &subject, headers, payload, &failed)
            .await?;
        if reply.seq.is_none() {
            return Err(failed(
                None,
                format!("the commit of batch {batch} got no ack"),
            ));
        }
        Ok(reply)
    }

    /// A request for one batch message, its reply decoded; an empty reply is an empty ack.
    async fn ask(
        &self,
        first: &str,
        subject: &Subject,
        headers: HeaderMap,
        payload: Bytes,
        failed: &impl Fn(Option<u64>, String) -> PublishError,
    ) -> Result<Reply, PublishError> {
        let timeout = self.client.timeout();
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(timeout));
        // Every message of a batch on one connection, in order: the first one's.
        let message = self
            .client
            .route(first)
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    failed(None, format!("no stream takes `{subject}`"))
                }
                async_nats::RequestErrorKind::TimedOut => failed(
                    None,
                    format!(
                        "no answer within {timeout:?}; if this was the commit, the batch may \
                         have been stored"
                    ),
                ),
                async_nats::RequestErrorKind::MaxPayloadExceeded => {
                    self.client.oversize(subject, &e)
                }
                _ => failed(None, e.to_string()),
            })?;
        if message.payload.is_empty() {
            return Ok(Reply {
                stream: None,
                seq: None,
                count: None,
                error: None,
            });
        }
        let reply: Reply = serde_json::from_slice(&message.payload)
            .map_err(|e| failed(None, format!("unreadable JetStream reply: {e}")))?;
        match reply.error {
            Some(error) => Err(failed(
                error.err_code,
                error
                    .description
                    .unwrap_or_else(|| "refused by the server".into()),
            )),
            None => Ok(reply),
        }
    }

    fn sent_error(&self, subject: &Subject, source: async_nats::PublishError) -> PublishError {
        match source.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                self.client.oversize(subject, &source)
            }
            _ => PublishError::Nats {
                subject: subject.to_string(),
                source,
            },
        }
    }
}
