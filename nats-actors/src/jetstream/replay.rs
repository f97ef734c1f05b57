//! Reading a dead-letter stream and replaying its letters to their original subjects.

use async_nats::HeaderMap;
use bytes::Bytes;

use super::dead_letter::{
    DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_ERROR, DLQ_HEADERS, DLQ_MSG_ID, DLQ_ORIGINAL, DLQ_SEQUENCE,
    DLQ_STREAM, DLQ_SUBJECT, DLQ_TIME,
};
use super::publish::JsPublish;
use crate::client::Client;
use crate::error::PublishError;
use crate::headers;

/// Reading or replaying a dead-letter stream failed.
///
/// ```
/// use nats_actors::jetstream::DeadLetterError;
/// let err = DeadLetterError::Replay {
///     sequence: 7,
///     source: nats_actors::PublishError::MaxPayload { subject: "a".into(), size: 2, max: 1 },
/// };
/// assert!(err.to_string().starts_with("cannot replay dead letter 7"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The dead-letter stream could not be read or changed (it does not exist, the server did
    /// not answer).
    #[error("dead-letter stream {stream}: {source}")]
    Stream {
        /// The dead-letter stream.
        stream: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A letter could not be published back to its subject; it stays in the dead-letter
    /// stream, and the letters before it were replayed and removed.
    #[error("cannot replay dead letter {sequence}: {source}")]
    Replay {
        /// The letter's sequence in the dead-letter stream.
        sequence: u64,
        /// The cause.
        #[source]
        source: PublishError,
    },
}

/// One message of a dead-letter stream, as [`dead_letters`] reads it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// The subject it was first published to.
    pub subject: String,
    /// The stream it came from.
    pub stream: String,
    /// Its sequence in that stream.
    pub stream_sequence: u64,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The last error (handler error, decode failure, panic, or the delivery limit).
    pub error: String,
    /// When it was dead-lettered (RFC 3339, UTC).
    pub failed_at: String,
    /// The original headers (trace context included), without the `Nats-Actors-Dlq-*` ones.
    pub headers: HeaderMap,
    /// The original payload.
    pub payload: Bytes,
}

/// Reads up to `limit` dead letters of stream `dead_letter_stream`, oldest first.
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::jetstream::DeadLetterError> {
/// for letter in nats_actors::jetstream::dead_letters(&client, "ORDERS_DLQ", 100).await? {
///     println!("{}#{} after {} deliveries: {}", letter.stream, letter.stream_sequence, letter.deliveries, letter.error);
/// }
/// # Ok(()) }
/// ```
pub async fn dead_letters(
    client: &Client,
    dead_letter_stream: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut out = Vec::new();
    scan(client, dead_letter_stream, |letter| {
        out.push(letter);
        out.len() < limit
    })
    .await?;
    Ok(out)
}

/// Publishes every dead letter of `dead_letter_stream` back to its original subject (original
/// payload and headers, a new message id) and removes it from the dead-letter stream once the
/// publish is acknowledged. Returns how many were replayed.
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::jetstream::DeadLetterError> {
/// let replayed = nats_actors::jetstream::replay_dead_letters(&client, "ORDERS_DLQ").await?;
/// println!("{replayed} messages back in their streams");
/// # Ok(()) }
/// ```
pub async fn replay_dead_letters(
    client: &Client,
    dead_letter_stream: &str,
) -> Result<usize, DeadLetterError> {
    let letters = dead_letters(client, dead_letter_stream, usize::MAX).await?;
    let stream = client
        .jetstream()
        .get_stream(dead_letter_stream)
        .await
        .map_err(|e| stream_error(dead_letter_stream, e))?;
    for letter in &letters {
        let options =
            JsPublish::new().msg_id(format!("replay-{dead_letter_stream}-{}", letter.sequence));
        client
            .js_send(
                None,
                &letter.subject,
                letter.headers.clone(),
                letter.payload.clone(),
                &options,
                usize::MAX,
            )
            .await
            .map_err(|source| DeadLetterError::Replay {
                sequence: letter.sequence,
                source,
            })?;
        stream
            .delete_message(letter.sequence)
            .await
            .map_err(|e| stream_error(dead_letter_stream, e))?;
    }
    Ok(letters.len())
}

/// Calls `each` with the stream's dead letters in order until it returns false.
async fn scan(
    client: &Client,
    name: &str,
    mut each: impl FnMut(DeadLetter) -> bool,
) -> Result<(), DeadLetterError> {
    let stream = client
        .jetstream()
        .get_stream(name)
        .await
        .map_err(|e| stream_error(name, e))?;
    let state = stream
        .get_info()
        .await
        .map_err(|e| stream_error(name, e))?
        .state;
    if state.messages == 0 {
        return Ok(());
    }
    for seq in state.first_sequence..=state.last_sequence {
        // Deleted sequences (replayed letters) are gaps.
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        if !each(letter_of(seq, m.headers, m.payload)) {
            break;
        }
    }
    Ok(())
}

fn letter_of(sequence: u64, all: HeaderMap, payload: Bytes) -> DeadLetter {
    let get = |name: &str| headers::get(&all, name).unwrap_or_default().to_string();
    let number = |name: &str| get(name).parse().unwrap_or(0);
    let mut letter = DeadLetter {
        sequence,
        subject: get(DLQ_SUBJECT),
        stream: get(DLQ_STREAM),
        stream_sequence: number(DLQ_SEQUENCE),
        consumer: get(DLQ_CONSUMER),
        deliveries: number(DLQ_DELIVERIES),
        error: get(DLQ_ERROR),
        failed_at: get(DLQ_TIME),
        headers: HeaderMap::new(),
        payload,
    };
    // The original headers: without the dead letter's own (its message id is not the
    // message's), but with the original message id kept for reference.
    for (name, values) in all.iter() {
        let n: &str = name.as_ref();
        let drop = n.eq_ignore_ascii_case("Nats-Msg-Id")
            || (n != DLQ_MSG_ID && DLQ_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(n)));
        if drop {
            continue;
        }
        let restored = match n.get(..DLQ_ORIGINAL.len()) {
            Some(p) if p.eq_ignore_ascii_case(DLQ_ORIGINAL) => {
                match async_nats::header::HeaderName::try_from(&n[DLQ_ORIGINAL.len()..]) {
                    Ok(h) => h,
                    Err(_) => continue,
                }
            }
            _ => name.clone(),
        };
        for v in values {
            letter.headers.append(restored.clone(), v.clone());
        }
    }
    letter
}

fn stream_error(
    stream: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DeadLetterError {
    DeadLetterError::Stream {
        stream: stream.into(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_gives_back_the_original_headers() {
        let mut h = HeaderMap::new();
        h.insert(DLQ_SUBJECT, "orders.created");
        h.insert(DLQ_SEQUENCE, "7");
        h.insert(DLQ_DELIVERIES, "5");
        h.insert(DLQ_MSG_ID, "o-1");
        h.insert("Nats-Msg-Id", "dlq-ORDERS-7");
        h.insert("Nats-Actors-Dlq-Orig-Nats-TTL", "1h");
        h.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        let letter = letter_of(3, h, Bytes::from_static(b"{}"));
        assert_eq!(
            (
                letter.subject.as_str(),
                letter.stream_sequence,
                letter.deliveries
            ),
            ("orders.created", 7, 5)
        );
        assert!(letter.headers.get("traceparent").is_some());
        assert!(letter.headers.get(DLQ_SUBJECT).is_none());
        assert!(letter.headers.get("Nats-Msg-Id").is_none());
        assert_eq!(
            letter.headers.get("Nats-TTL").map(|v| v.as_str()),
            Some("1h")
        );
    }
}
