//! Taking over a partition. The process pinned before may have been handed messages it never
//! acked (it died, or lost its pin); the server gives them out again only after `ack_wait`,
//! and after newer messages of the same keys. So the new owner first reads, from the stream,
//! every message of the partition past the consumer's ack floor up to the last delivered one,
//! and runs those before anything newer: a command already applied is recognised by the
//! sequence its key's state carries and acked without running, and later deliveries of these
//! messages are acked without running again. (The stream is a work queue: what was acked is
//! gone, so what is read is what nobody settled; and a message deleted from it counts as acked
//! by its consumer, which is how the new owner settles what it ran.)

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream::Stream;
use async_nats::{HeaderMap, StatusCode, Subject};
use bytes::Bytes;
use futures::StreamExt;

/// One message read from the stream.
pub(super) struct Stored {
    pub(super) subject: Subject,
    pub(super) sequence: u64,
    pub(super) headers: HeaderMap,
    pub(super) payload: Bytes,
}

/// What a partition's new owner must run first, and the last sequence it covers.
pub(super) struct Takeover {
    /// Messages past the ack floor delivered to another process, in stream order.
    pub(super) replay: Vec<Stored>,
}

/// How long reading the partition's unsettled messages may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads what partition consumer `consumer` of `stream` (filtered to `filter`) delivered to
/// another process and nobody acked yet. `first` is the first delivery to this process (its
/// stream sequence and delivery count): a first delivery means everything before it went out
/// before, so the window ends there; a redelivery does not tell, and the window ends at the
/// last message delivered.
pub(super) async fn take_over(
    client: &async_nats::Client,
    stream: &Stream,
    stream_name: &str,
    consumer: &str,
    filter: &str,
    first: (u64, u64),
) -> Result<Takeover, String> {
    let mut c = stream
        .get_consumer::<pull::Config>(consumer)
        .await
        .map_err(|e| e.to_string())?;
    let info = c.info().await.map_err(|e| e.to_string())?;
    let floor = info.ack_floor.stream_sequence;
    let upto = match first {
        (seq, 1) => seq.saturating_sub(1),
        _ => info.delivered.stream_sequence,
    };
    let mut replay = Vec::new();
    let from = floor + 1;
    // A replica that lags could answer a direct get short, and what the takeover does not read
    // it would settle unrun: a replicated stream is read from its leader, one message at a time.
    let replicated = stream.cached_info().config.num_replicas > 1;
    let read = async {
        match replicated {
            true => read_from_leader(stream, filter, from, upto, &mut replay).await,
            false => read_window(client, stream_name, filter, from, upto, &mut replay).await,
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| format!("reading the unsettled messages took over {READ_TIMEOUT:?}"))??;
    Ok(Takeover { replay })
}

/// Messages a batch direct get asks for.
const BATCH: usize = 256;

/// Reads the messages on `filter` from sequence `from` up to `upto` into `out`, with batched
/// direct gets (one request per 256 messages; nats-server 2.11+).
async fn read_window(
    client: &async_nats::Client,
    stream: &str,
    filter: &str,
    mut from: u64,
    upto: u64,
    out: &mut Vec<Stored>,
) -> Result<(), String> {
    let subject = format!("$JS.API.DIRECT.GET.{stream}");
    while from <= upto {
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        let body = serde_json::json!({
            "seq": from,
            "next_by_subj": filter,
            "batch": BATCH,
            "up_to_seq": upto,
        });
        client
            .publish_with_reply(subject.clone(), inbox, Bytes::from(body.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let mut read = 0;
        while let Some(m) = replies.next().await {
            match m.status {
                // 204: the end of the batch; 404: nothing (left) to read.
                Some(status) if status.as_u16() == 204 || status == StatusCode::NOT_FOUND => break,
                Some(status) => {
                    return Err(format!(
                        "direct get: {status} {}",
                        m.description.unwrap_or_default()
                    ))
                }
                None => {}
            }
            let headers = m.headers.unwrap_or_default();
            let sequence = crate::headers::get(&headers, "Nats-Sequence")
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("a direct get answer without Nats-Sequence")?;
            let subject = crate::headers::get(&headers, "Nats-Subject")
                .ok_or("a direct get answer without Nats-Subject")?;
            let subject = Subject::from(subject);
            read += 1;
            from = sequence + 1;
            // The server does not stop a batch at `up_to_seq` for a filtered read: the first
            // message past it ends the window (the rest of the batch is dropped unread).
            if sequence > upto {
                return Ok(());
            }
            out.push(Stored {
                subject,
                sequence,
                headers,
                payload: m.payload,
            });
        }
        if read < BATCH {
            break;
        }
    }
    Ok(())
}

/// [`read_window`] from the stream's leader (`STREAM.MSG.GET`, next message on `filter`).
async fn read_from_leader(
    stream: &Stream,
    filter: &str,
    mut from: u64,
    upto: u64,
    out: &mut Vec<Stored>,
) -> Result<(), String> {
    use async_nats::jetstream::stream::RawMessageErrorKind;
    while from <= upto {
        let got = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(filter)
            .send()
            .await;
        let m = match got {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(e.to_string()),
        };
        if m.sequence > upto {
            break;
        }
        from = m.sequence + 1;
        out.push(Stored {
            subject: m.subject,
            sequence: m.sequence,
            headers: m.headers,
            payload: m.payload,
        });
    }
    Ok(())
}
