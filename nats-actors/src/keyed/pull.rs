//! One partition's pull: a pinned pull on the partition's consumer, in the actor's priority
//! group, that hands every message to the host. The server pins one process per consumer;
//! the others' pulls wait as standbys and one of them is pinned when the pinned one stops
//! pulling for the pin timeout (or unpins at shutdown). A pull expires well within that
//! timeout, so a live process keeps its partitions.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Message as JsMessage;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::runtime::link::Link;

/// The priority group every process of a keyed actor pulls in.
pub(super) const GROUP: &str = "actors";
/// How long a pinned process may stop pulling before another takes its partition.
pub(super) const PIN_TIMEOUT: Duration = Duration::from_secs(4);
/// A pull's lifetime: under half the pin timeout, so two pulls fit in it.
const EXPIRES: Duration = Duration::from_millis(1500);
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Messages one pull asks for.
const BATCH: usize = 128;

/// One message of partition `.0`.
pub(super) type Delivery = (u16, JsMessage);

/// How long a pull that was stopped stays away: the request it had out has expired by then.
pub(super) const UNPIN_AFTER: Duration = Duration::from_secs(2);

/// Pulls partition `p` of `stream` into `tx` until `stop`, pulling again on a new stream after
/// a reconnect, a missed heartbeat or a failure; while `pause` holds an instant still to come,
/// it does not pull (the host gave the partition to another process).
pub(super) async fn partition(
    stream: Stream,
    consumer: String,
    p: u16,
    tx: mpsc::UnboundedSender<Delivery>,
    link: Arc<Link>,
    mut pause: watch::Receiver<Option<tokio::time::Instant>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut reconnects = link.reconnects();
    let mut attempt = 0usize;
    // The consumer, looked up once: pulling again needs no API call (it is looked up again
    // after a failure, or when the server says it is gone).
    let mut handle: Option<PullConsumer> = None;
    while !*stop.borrow() {
        reconnects.borrow_and_update();
        let until = *pause.borrow_and_update();
        if let Some(until) = until.filter(|u| *u > tokio::time::Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let opened = match handle.take() {
            Some(c) => open(c).await,
            None => match stream.get_consumer::<pull::Config>(&consumer).await {
                Ok(c) => open(c).await,
                Err(e) => Err(e.to_string()),
            },
        };
        let messages = match opened {
            Ok((c, m)) => {
                attempt = 0;
                handle = Some(c);
                m
            }
            Err(e) => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(20) {
                    tracing::warn!(consumer = %consumer, attempt, error = %e, "cannot pull a partition; trying again");
                }
                let pause = crate::runtime::connect::backoff(attempt, Duration::from_millis(500));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        let mut messages = std::pin::pin!(messages);
        let mut failures = 0usize;
        loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(m)) => {
                        failures = 0;
                        if tx.send((p, m)).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => match e.kind() {
                        MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::PushBasedConsumer => {
                            tracing::debug!(consumer = %consumer, error = %e, "looking the partition's consumer up again");
                            handle = None;
                            break;
                        }
                        MessagesErrorKind::MissingHeartbeat | MessagesErrorKind::RequestLimitExceeded => {
                            tracing::debug!(consumer = %consumer, error = %e, "pulling the partition again");
                            break;
                        }
                        _ => {
                            // A pull that fails at once (no responders while the consumer has no
                            // leader) is not sent again at once: every partition of every
                            // process doing so would flood a cluster that is electing leaders.
                            failures += 1;
                            if failures == 1 || failures.is_multiple_of(50) {
                                tracing::debug!(consumer = %consumer, failures, error = %e, "partition pull problem; going on after a pause");
                            }
                            let pause = crate::runtime::connect::backoff(failures, Duration::from_secs(2));
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = stop.changed() => return,
                            }
                        }
                    },
                    None => break,
                },
                Ok(()) = reconnects.changed() => break,
                Ok(()) = pause.changed() => break,
                _ = stop.changed() => return,
            }
        }
    }
}

async fn open(consumer: PullConsumer) -> Result<(PullConsumer, pull::Stream), String> {
    let messages = consumer
        .stream()
        .group(GROUP)
        .expires(EXPIRES)
        .heartbeat(HEARTBEAT)
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    Ok((consumer, messages))
}
