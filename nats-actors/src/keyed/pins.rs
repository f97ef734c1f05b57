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
    if pinned_as(&sh, p, &id).await == Some(true) {
        let _ = sh
            .stream
            .unpin_consumer(&sh.consumers[p], pull::GROUP)
            .await;
    }
}

/// Whether the server has partition `p` pinned as `id` (`None`: it did not answer).
async fn pinned_as<A: Send + Sync + 'static>(sh: &Shared<A>, p: usize, id: &str) -> Option<bool> {
    let info = sh.stream.consumer_info(&sh.consumers[p]).await.ok()?;
    Some(
        info.priority_groups
            .iter()
            .any(|g| g.group == pull::GROUP && g.pinned_client_id.as_deref() == Some(id)),
    )
}

/// Which of the partitions `owned` (with their pins) the server has pinned elsewhere now: a
/// host hears of a new pin with its first message, but not of one it lost while it stalled.
pub(super) async fn lost<A: Send + Sync + 'static>(
    sh: Arc<Shared<A>>,
    owned: Vec<(usize, String)>,
) -> Vec<(usize, String)> {
    let mut lost = Vec::new();
    for (p, id) in owned {
        if pinned_as(&sh, p, &id).await == Some(false) {
            lost.push((p, id));
        }
    }
    lost
}

/// The partitions pinned here and their pins, of those a takeover is done for.
pub(super) fn owned(pins: &[Pinned]) -> Vec<(usize, String)> {
    let owned = pins.iter().enumerate().filter_map(|(p, pin)| match pin {
        Pinned::Owned { id, .. } => Some((p, id.clone())),
        _ => None,
    });
    owned.collect()
}

/// Gives partition `p` up here, if it is pinned here as `id`: what was delivered under that
/// pin still runs, but does not pin it here again. Returns whether it was.
pub(super) fn release(pins: &mut [Pinned], p: usize, id: &str) -> bool {
    if !matches!(&pins[p], Pinned::Owned { id: owned, .. } if owned == id) {
        return false;
    }
    if let Pinned::Owned { id, ran } = std::mem::replace(&mut pins[p], Pinned::None) {
        pins[p] = Pinned::Released { id, ran };
    }
    true
}

/// Shows the partitions pinned here in the runtime's stats.
pub(super) fn show<A: Send + Sync + 'static>(sh: &Shared<A>, pins: &[Pinned]) {
    let here: Vec<u16> = (0..pins.len())
        .filter(|&p| here(&pins[p]))
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    *sh.counters
        .partitions
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = here;
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
