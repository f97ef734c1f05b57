//! What a host knows of its partitions' pins, taking a partition over (reading what the
//! previous owner left, and settling it once run), and giving one up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::fence::{self, Takeover};
use super::pull;
use super::shared::Shared;

/// What a partition's owner knows of its pin.
pub(super) enum Pinned {
    /// Not pinned here yet.
    None,
    /// Pinned here as `id`; the takeover is being read, its deliveries wait in `held`.
    Taking {
        id: String,
        held: Vec<async_nats::jetstream::Message>,
    },
    /// Pinned here as `id`; deliveries of the messages in `ran` were run in the takeover.
    Owned { id: String, ran: Arc<HashSet<u64>> },
    /// Given away; what was delivered under pin `id` still runs here, but does not pin it here
    /// again.
    Released { id: String, ran: Arc<HashSet<u64>> },
}

/// A partition, its pin, the first delivery under it, and what was read for the takeover.
pub(super) type TakeoverDone = (u16, String, (u64, u64), Result<Takeover, String>);

/// The messages of a partition read for its takeover that have not run yet (their stream
/// sequences), the sequence below which the partition holds only those, and when the last
/// settled ones were removed.
#[derive(Default)]
pub(super) struct Replay {
    pub(super) left: std::collections::BTreeSet<u64>,
    pub(super) below: u64,
    pub(super) purged: Option<tokio::time::Instant>,
}

/// Counts message `seq` of a takeover of partition `p` as done, and every 200 ms (and after
/// the last) removes the ones done from the work-queue stream: a purge of the partition below
/// the first one still to run, which their consumer counts as acked. The partition need not
/// wait out the ack wait of what the previous owner held, and new messages flow again while
/// the rest still runs.
pub(super) fn settle_replayed<A: Send + Sync + 'static>(
    sh: &Arc<Shared<A>>,
    replay: &mut Replay,
    p: u16,
    seq: u64,
) {
    replay.left.remove(&seq);
    if replay.below == 0 {
        return;
    }
    let below = match replay.left.first() {
        Some(first) => *first,
        None => std::mem::take(&mut replay.below),
    };
    let recent = replay
        .purged
        .is_some_and(|t| t.elapsed() < Duration::from_millis(200));
    if recent && !replay.left.is_empty() {
        return;
    }
    replay.purged = Some(tokio::time::Instant::now());
    let sh = sh.clone();
    tokio::spawn(async move {
        let filter = sh.layout.partition_filter(p);
        match sh.stream.purge().filter(filter).sequence(below).await {
            Ok(r) => tracing::debug!(
                actor = sh.layout.actor,
                partition = p,
                purged = r.purged,
                "settled what the takeover ran"
            ),
            Err(e) => {
                tracing::warn!(actor = sh.layout.actor, partition = p, error = %e, "cannot settle what the takeover ran; it comes out again after the ack wait and is acked then")
            }
        }
    });
}

/// Unpins partition `p` after `after`, if it is still pinned as `id` then (past the pin
/// timeout the server may have pinned another process, whose pin must stay).
pub(super) async fn unpin<A: Send + Sync + 'static>(
    sh: Arc<Shared<A>>,
    p: usize,
    id: String,
    after: Duration,
) {
    tokio::time::sleep(after).await;
    let consumer = &sh.consumers[p];
    let Ok(info) = sh.stream.consumer_info(consumer).await else {
        return;
    };
    let pinned = info
        .priority_groups
        .iter()
        .any(|g| g.group == pull::GROUP && g.pinned_client_id.as_deref() == Some(id.as_str()));
    if pinned {
        let _ = sh.stream.unpin_consumer(consumer, pull::GROUP).await;
    }
}

/// Whether a partition is pinned here.
pub(super) fn here(pin: &Pinned) -> bool {
    matches!(pin, Pinned::Owned { .. } | Pinned::Taking { .. })
}

/// The partitions pinned here that brought a message in the last 30 s.
pub(super) fn busy(pins: &[Pinned], last: &[Option<tokio::time::Instant>]) -> Vec<usize> {
    (0..pins.len())
        .filter(|&p| here(&pins[p]))
        .filter(|&p| last[p].is_some_and(|t| t.elapsed() < Duration::from_secs(30)))
        .collect()
}

/// Reads partition `p`'s unsettled messages in a task of its own (the host's loop, busy with
/// turns, must not be what paces the reads).
pub(super) fn takeover<A: Send + Sync + 'static>(
    sh: &Arc<Shared<A>>,
    p: u16,
    id: String,
    first: (u64, u64),
) -> BoxFuture<'static, TakeoverDone> {
    let sh = sh.clone();
    let pin = id.clone();
    let read = tokio::spawn(async move {
        let filter = sh.layout.partition_filter(p);
        let consumer = &sh.consumers[usize::from(p)];
        let began = tokio::time::Instant::now();
        let result = fence::take_over(
            sh.client.nats(),
            &sh.stream,
            &sh.stream_name,
            consumer,
            &filter,
            first,
        )
        .await;
        tracing::debug!(actor = sh.layout.actor, partition = p, took = ?began.elapsed(), "read the partition's unsettled messages");
        (p, id, first, result)
    });
    Box::pin(async move {
        read.await
            .unwrap_or_else(|e| (p, pin, first, Err(format!("the read failed: {e}"))))
    })
}
