//! The dead-letter stream: messages that ran out of deliveries, failed fatally or could not be
//! decoded are stored there with why, then terminated; [`replay_dead_letters`] puts them back.
//!
//! A dead letter keeps the original payload and headers (trace context included) and adds
//! `Nats-Actors-Dlq-*` headers: the original subject, stream, stream sequence, consumer,
//! delivery count, last error and time. It is published to `dlq.<DLQ>.<stream>.<consumer>` with
//! the message id `dlq-<stream>-<consumer>-<sequence>`, so the same message is never stored
//! twice for one consumer (each consumer that gives up on it records its own failure).

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::spans::Frame;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;

use super::publish::JsPublish;
use crate::client::Client;
use crate::error::{Error, PublishError};
use crate::headers;
use crate::stats::HandlerCounters;

/// The original subject of a dead letter.
pub const DLQ_SUBJECT: &str = "Nats-Actors-Dlq-Subject";
/// The stream it came from.
pub const DLQ_STREAM: &str = "Nats-Actors-Dlq-Stream";
/// Its sequence in that stream.
pub const DLQ_SEQUENCE: &str = "Nats-Actors-Dlq-Sequence";
/// The consumer that gave up on it.
pub const DLQ_CONSUMER: &str = "Nats-Actors-Dlq-Consumer";
/// How many times it was delivered.
pub const DLQ_DELIVERIES: &str = "Nats-Actors-Dlq-Deliveries";
/// The last error.
pub const DLQ_ERROR: &str = "Nats-Actors-Dlq-Error";
/// When it was dead-lettered (RFC 3339, UTC).
pub const DLQ_TIME: &str = "Nats-Actors-Dlq-Time";
/// Its original `Nats-Msg-Id`, if it had one.
pub const DLQ_MSG_ID: &str = "Nats-Actors-Dlq-Msg-Id";
/// Prefix of the server control headers it carried (`Nats-TTL`, `Nats-Rollup`, ...), kept
/// under this prefix in the dead letter and restored by replay.
pub(super) const DLQ_ORIGINAL: &str = "Nats-Actors-Dlq-Orig-";

pub(super) const DLQ_HEADERS: [&str; 8] = [
    DLQ_SUBJECT,
    DLQ_STREAM,
    DLQ_SEQUENCE,
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_ERROR,
    DLQ_TIME,
    DLQ_MSG_ID,
];

/// What is stored about one failed message.
pub(crate) struct Letter<'a> {
    pub subject: &'a str,
    pub headers: Option<&'a HeaderMap>,
    pub payload: Bytes,
    pub stream_sequence: u64,
    pub deliveries: u64,
    pub error: &'a str,
}

/// The dead-letter stream of one consumer.
pub(crate) struct DeadLetters {
    pub name: String,
    source: String,
    consumer: String,
    subject: String,
}

impl DeadLetters {
    /// Makes sure stream `name` exists and takes `dlq.<name>.<source>.<consumer>`.
    /// A new dead-letter stream gets `replicas` (the source stream's).
    pub(crate) async fn ensure(
        client: &Client,
        name: String,
        source: &str,
        consumer: &str,
        replicas: usize,
    ) -> Result<Self, Error> {
        let js = client.jetstream();
        let subject = format!("dlq.{name}.{source}.{consumer}");
        let what = || format!("dead-letter stream {name}");
        match js.get_stream(&name).await {
            Ok(stream) => {
                let subjects = &stream.cached_info().config.subjects;
                if !subjects.iter().any(|s| matches(s, &subject)) {
                    return Err(Error::JetStream {
                        what: what(),
                        reason: format!(
                            "its subjects {subjects:?} do not take `{subject}`; add `dlq.{name}.>`"
                        ),
                    });
                }
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                let config = Config {
                    name: name.clone(),
                    subjects: vec![format!("dlq.{name}.>")],
                    storage: StorageType::File,
                    duplicate_window: Duration::from_secs(120),
                    num_replicas: replicas,
                    description: Some(format!("dead letters of {source} (nats-actors)")),
                    ..Default::default()
                };
                // Another instance may create it at the same time: the second create is a no-op.
                js.get_or_create_stream(config)
                    .await
                    .map_err(|e| Error::JetStream {
                        what: what(),
                        reason: e.to_string(),
                    })?;
                tracing::info!(stream = %name, "dead-letter stream created");
            }
            Err(e) => {
                return Err(Error::JetStream {
                    what: what(),
                    reason: e.to_string(),
                })
            }
        }
        Ok(Self {
            name,
            source: source.to_string(),
            consumer: consumer.to_string(),
            subject,
        })
    }

    /// Stores `letter`; the ack says it is durable.
    pub(crate) async fn store(
        &self,
        client: &Client,
        parent: Option<&Frame>,
        letter: Letter<'_>,
    ) -> Result<(), PublishError> {
        let mut out = HeaderMap::new();
        if let Some(original) = letter.headers {
            for (name, values) in original.iter() {
                let n: &str = name.as_ref();
                if n.eq_ignore_ascii_case("Nats-Msg-Id") {
                    if let Some(v) = values.first() {
                        out.insert(DLQ_MSG_ID, v.as_str());
                    }
                    continue;
                }
                let server = n.len() > 5 && n[..5].eq_ignore_ascii_case("Nats-");
                let ours = n.len() > 11 && n[..11].eq_ignore_ascii_case("Nats-Actors");
                // Expectations of the original publish would fail here; they are not kept.
                if server && n.len() >= 13 && n[..13].eq_ignore_ascii_case("Nats-Expected") {
                    continue;
                }
                // Other server control headers (TTL, rollup, batch, schedule) would act on the
                // dead-letter stream or be refused by it: kept under another name, restored on
                // replay.
                let kept = if server && !ours {
                    let renamed = format!("{DLQ_ORIGINAL}{n}");
                    match async_nats::header::HeaderName::try_from(renamed.as_str()) {
                        Ok(h) => h,
                        Err(_) => continue,
                    }
                } else {
                    name.clone()
                };
                for v in values {
                    out.append(kept.clone(), v.clone());
                }
            }
        }
        out.insert(DLQ_SUBJECT, letter.subject);
        out.insert(DLQ_STREAM, self.source.as_str());
        out.insert(DLQ_SEQUENCE, letter.stream_sequence.to_string().as_str());
        out.insert(DLQ_CONSUMER, self.consumer.as_str());
        out.insert(DLQ_DELIVERIES, letter.deliveries.to_string().as_str());
        out.insert(DLQ_ERROR, headers::safe_value(letter.error, 1024).as_str());
        out.insert(DLQ_TIME, now_rfc3339().as_str());
        let id = format!(
            "dlq-{}-{}-{}",
            self.source, self.consumer, letter.stream_sequence
        );
        let options = JsPublish::new().msg_id(id).attempts(3);
        client
            .js_send(
                parent,
                &self.subject,
                out,
                letter.payload,
                &options,
                usize::MAX,
            )
            .await
            .map(|_| ())
    }
}

/// The server's `MAX_DELIVERIES` advisory (the fields used here).
#[derive(Deserialize)]
struct Exhausted {
    stream_seq: u64,
    deliveries: u64,
}

/// Copies every message the server gives up on without a handler result (the handler hung past
/// `ack_wait`, or the process died on the last delivery) into the dead-letter stream.
pub(crate) async fn watch_exhausted(
    client: Client,
    stream: async_nats::jetstream::stream::Stream,
    dead_letters: Arc<DeadLetters>,
    counters: Arc<HandlerCounters>,
    mut sub: async_nats::Subscriber,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            msg = sub.next() => match msg {
                Some(m) => m,
                None => break,
            },
            _ = stop.changed() => break,
        };
        let Ok(advisory) = serde_json::from_slice::<Exhausted>(&msg.payload) else {
            tracing::warn!(subject = %msg.subject, "unreadable MAX_DELIVERIES advisory");
            continue;
        };
        let seq = advisory.stream_seq;
        let stored = match stream.get_raw_message(seq).await {
            Ok(m) => {
                let letter = Letter {
                    subject: m.subject.as_str(),
                    headers: Some(&m.headers),
                    payload: m.payload.clone(),
                    stream_sequence: seq,
                    deliveries: advisory.deliveries,
                    error: "delivery limit reached without a handler result (the handler ran past ack_wait, or the process stopped)",
                };
                dead_letters
                    .store(&client, None, letter)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(()) => {
                counters
                    .js
                    .dead_lettered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(stream_sequence = seq, dead_letter = %dead_letters.name, "message ran out of deliveries; dead-lettered");
            }
            Err(e) => {
                tracing::error!(stream_sequence = seq, error = %e, "message ran out of deliveries and could not be dead-lettered")
            }
        }
    }
}

/// Whether subject filter `filter` (with `*` and `>`) takes `subject`.
fn matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_filters() {
        assert!(matches("dlq.X.>", "dlq.X.S.c"));
        assert!(matches("dlq.*.S.c", "dlq.X.S.c"));
        assert!(!matches("dlq.Y.>", "dlq.X.S.c"));
        assert!(!matches("dlq.X", "dlq.X.S"));
        assert!(!matches("dlq.X.>", "dlq.X"));
    }
}
