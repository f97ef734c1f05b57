//! The actors of one process and their queues: each key's messages wait in its slot and run one
//! turn at a time; an actor is made on its key's first message, kept while it gets messages,
//! and dropped (its state is saved already) after `idle` or when `max_active` needs the room,
//! least recently used first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::Subject;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;

use super::shared::{Item, Shared};
use super::state::Loaded;

/// The actors of one process.
pub(super) struct Slot<A> {
    /// `None` while a turn has it, or when it must be read again.
    pub(super) actor: Option<Box<Loaded<A>>>,
    pub(super) busy: bool,
    /// The ack subject of the delivery its turn runs.
    pub(super) running: Option<Subject>,
    pub(super) queue: VecDeque<Item>,
    pub(super) used: tokio::time::Instant,
    /// The partition of its key.
    pub(super) partition: u16,
    /// Its partition was pinned anew during the running turn: the actor is read again after it.
    pub(super) stale: bool,
}

/// A key, its actor after the turn, and the partition and sequence of the message if it was
/// one read for a takeover.
pub(super) type TurnDone<A> = (String, Option<Box<Loaded<A>>>, Option<(u16, u64)>);

/// Queues delivery `m` of partition `p` on its key's actor (`ran`: what the takeover ran
/// already), or terminates it when no handler of the actor takes its subject.
#[allow(clippy::too_many_arguments)]
pub(super) async fn place<A: Send + Sync + 'static, S>(
    sh: &Shared<A>,
    p: u16,
    m: async_nats::jetstream::Message,
    ran: &HashSet<u64>,
    slots: &mut HashMap<String, Slot<A>>,
    parked: &mut VecDeque<(String, Item)>,
    turns: &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>,
    start: &S,
) where
    S: Fn(String, &mut Slot<A>, &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>),
{
    let reply = m.message.reply.clone();
    let subject = m.message.subject.clone();
    match sh.item(p, m, ran) {
        Some((key, item)) => admit(sh, slots, parked, key, item, turns, start),
        None => {
            tracing::warn!(actor = sh.layout.actor, subject = %subject, "no #[command] or #[ask] of this actor takes this subject; terminated");
            if let Some(reply) = reply {
                let _ = sh
                    .client
                    .nats()
                    .publish(reply, Bytes::from_static(b"+TERM"))
                    .await;
            }
        }
    }
}

/// Queues `item` on its key's actor, making room under `max_active` first (the least recently
/// used idle actor goes), or parks it until a turn ends.
pub(super) fn admit<A: Send + Sync + 'static, S>(
    sh: &Shared<A>,
    slots: &mut HashMap<String, Slot<A>>,
    parked: &mut VecDeque<(String, Item)>,
    key: String,
    item: Item,
    turns: &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>,
    start: &S,
) where
    S: Fn(String, &mut Slot<A>, &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>),
{
    if !slots.contains_key(&key) && slots.len() >= sh.keyed.options.max_active {
        let idle = slots
            .iter()
            .filter(|(_, s)| !s.busy && s.queue.is_empty())
            .min_by_key(|(_, s)| s.used)
            .map(|(k, _)| k.clone());
        match idle {
            Some(k) => {
                slots.remove(&k);
                sh.counters.passivations.fetch_add(1, Relaxed);
            }
            None => {
                parked.push_back((key, item));
                return;
            }
        }
    }
    enqueue(slots, key, item, turns, start);
}

pub(super) fn enqueue<A, S>(
    slots: &mut HashMap<String, Slot<A>>,
    key: String,
    item: Item,
    turns: &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>,
    start: &S,
) where
    S: Fn(String, &mut Slot<A>, &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>),
{
    let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
        actor: None,
        busy: false,
        running: None,
        queue: VecDeque::new(),
        used: tokio::time::Instant::now(),
        partition: item.partition,
        stale: false,
    });
    slot.queue.push_back(item);
    if !slot.busy {
        start(key, slot, turns);
    }
}

/// Forgets the actors of partition `p`, whose pin changed: another process may have run their
/// keys meanwhile, so each is read again from its state before its next turn (an ask must not
/// be answered from what this process last saw).
pub(super) fn forget<A>(slots: &mut HashMap<String, Slot<A>>, p: u16) {
    for slot in slots.values_mut().filter(|s| s.partition == p) {
        match slot.busy {
            true => slot.stale = true,
            false => slot.actor = None,
        }
    }
}

/// In-progress acks for every message held here (running or waiting), so that the server does
/// not give them to another process meanwhile.
pub(super) async fn keep_alive<A: Send + Sync + 'static>(
    sh: &Shared<A>,
    slots: &HashMap<String, Slot<A>>,
) {
    let wpi = || Bytes::from_static(b"+WPI");
    for slot in slots.values() {
        let waiting = slot.queue.iter().filter_map(|i| i.message.reply.as_ref());
        for ack in slot.running.iter().chain(waiting) {
            if let Err(e) = sh.client.nats().publish(ack.clone(), wpi()).await {
                tracing::debug!(actor = sh.layout.actor, error = %e, "cannot send an in-progress ack");
            }
        }
    }
}

/// Drops the actors idle for longer than `idle` (their state is saved already).
pub(super) fn passivate<A: Send + Sync + 'static>(
    sh: &Shared<A>,
    slots: &mut HashMap<String, Slot<A>>,
    idle: Duration,
) {
    let before = slots.len();
    slots.retain(|_, s| s.busy || !s.queue.is_empty() || s.used.elapsed() < idle);
    let gone = before - slots.len();
    if gone > 0 {
        sh.counters.passivations.fetch_add(gone as u64, Relaxed);
        tracing::debug!(
            actor = sh.layout.actor,
            passivated = gone,
            active = slots.len(),
            "idle actors dropped"
        );
    }
}
