//! The host of one keyed actor type in one process: sets up its stream, partition consumers,
//! state bucket and dead-letter stream, pulls every partition, and runs each key's messages
//! one at a time, keys side by side (`slots`), taking partitions over and giving them up
//! (`pins`, `balance`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::balance;
use super::layout::Layout;
use super::outage::Outage;
use super::pins::{
    self, busy, here, settle_replayed, takeover, unpin, Pinned, Replay, TakeoverDone,
};
use super::pull::{self, Delivery};
use super::shared::{Item, Route, Shared};
use super::slots::{admit, enqueue, forget, keep_alive, passivate, place, Slot, TurnDone};
use super::spec::Keyed;
use super::turn;
use crate::codec::Codec;
use crate::error::Error;
use crate::jetstream::dead_letter::DeadLetters;
use crate::runtime::env::StartEnv;

/// Runs the host until shutdown: the partitions' pulls feed it, turns run side by side.
pub(super) async fn run<A: Send + Sync + 'static>(
    sh: Arc<Shared<A>>,
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    pulls: Vec<JoinHandle<()>>,
    pauses: Vec<watch::Sender<Option<tokio::time::Instant>>>,
    mut pings: async_nats::Subscriber,
    mut stop: watch::Receiver<bool>,
) {
    let me = nuid::next().to_string();
    let mut sharing = balance::Sharing::new(pauses);
    // When each partition last brought a message here.
    let mut last: Vec<Option<tokio::time::Instant>> = vec![None; usize::from(sh.layout.partitions)];
    let mut censuses: FuturesUnordered<BoxFuture<'static, Result<Census, String>>> =
        FuturesUnordered::new();
    // The first census soon after the start (a process that starts later gets its share then),
    // spread out so that the hosts do not all count at once.
    let first = balance::FIRST + Duration::from_millis(u64::from(nuid::next().as_bytes()[0]) * 8);
    let mut census_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + first, balance::EVERY);
    let mut slots: HashMap<String, Slot<A>> = HashMap::new();
    let mut replays: Vec<Replay> = (0..sh.layout.partitions)
        .map(|_| Replay::default())
        .collect();
    let mut pins: Vec<Pinned> = (0..sh.layout.partitions).map(|_| Pinned::None).collect();
    let mut turns: FuturesUnordered<BoxFuture<'static, TurnDone<A>>> = FuturesUnordered::new();
    let mut takeovers: FuturesUnordered<BoxFuture<'static, TakeoverDone>> = FuturesUnordered::new();
    // Keys waiting for room under max_active.
    let mut parked: VecDeque<(String, Item)> = VecDeque::new();
    // In-progress acks for held messages (a third of the ack wait), and passivation.
    let period = sh
        .keyed
        .options
        .idle
        .clamp(Duration::from_millis(100), super::declare::ACK_WAIT / 3);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let options = sh.keyed.options;
    let shared = sh.clone();
    let for_turns = sh.clone();
    let sh = &*sh;
    let start =
        move |key: String,
              slot: &mut Slot<A>,
              turns: &mut FuturesUnordered<BoxFuture<'static, TurnDone<A>>>| {
            let Some(item) = slot.queue.pop_front() else {
                return;
            };
            slot.busy = true;
            slot.running = item.message.reply.clone();
            let actor = slot.actor.take();
            let sh = for_turns.clone();
            turns.push(Box::pin(async move {
                let actor = turn::run(&sh, &key, actor, &item).await;
                let replayed = item
                    .message
                    .reply
                    .is_none()
                    .then_some((item.partition, item.seq));
                (key, actor, replayed)
            }));
        };
    loop {
        tokio::select! {
            biased;
            // The rare events first: under load a turn ends at every poll, and a branch after
            // it would wait (in-progress acks, takeovers, the census).
            _ = stop.changed() => break,
            Some(heard) = pings.next() => {
                if heard.subject.ends_with(".give") {
                    let Ok(notice) = serde_json::from_slice::<balance::Notice>(&heard.payload) else { continue };
                    if notice.host != me {
                        sharing.heard(notice, busy(&pins, &last).len(), |p| !here(&pins[p]));
                    }
                } else if let Some(reply) = heard.reply {
                    let answer = balance::Answer { host: me.clone(), busy: busy(&pins, &last).len() };
                    let body = Bytes::from(serde_json::to_vec(&answer).unwrap_or_default());
                    let _ = sh.client.nats().publish(reply, body).await;
                }
            }
            _ = census_tick.tick(), if censuses.is_empty() => {
                let census = tokio::spawn(balance::census(sh.client.clone(), balance::ping(sh.layout.actor), me.clone()));
                let lost = tokio::spawn(pins::lost(shared.clone(), pins::owned(&pins)));
                censuses.push(Box::pin(async move {
                    let others = census.await.map_err(|e| e.to_string())??;
                    Ok((others, lost.await.unwrap_or_default()))
                }));
            }
            Some(census) = censuses.next(), if !censuses.is_empty() => {
                let Ok((others, lost)) = census else { continue };
                for (p, id) in lost {
                    if pins::release(&mut pins, p, &id) {
                        tracing::info!(actor = sh.layout.actor, partition = p, "the partition is pinned to another process now");
                        last[p] = None;
                        forget(&mut slots, p as u16);
                    }
                }
                let mine = busy(&pins, &last);
                let give = balance::to_give(mine.len(), &others);
                tracing::debug!(actor = sh.layout.actor, mine = mine.len(), ?others, give, "census");
                // What is being taken over stays.
                let given: Vec<usize> = mine.iter().rev().filter(|&&p| matches!(pins[p], Pinned::Owned { .. })).take(give).copied().collect();
                if !given.is_empty() {
                    let notice = balance::Notice { host: me.clone(), fair: balance::fair(mine.len(), &others), partitions: given.clone() };
                    let body = Bytes::from(serde_json::to_vec(&notice).unwrap_or_default());
                    let _ = sh.client.nats().publish(balance::give(sh.layout.actor), body).await;
                }
                // One unpin every 250 ms: a host that reaches its share steps aside for the rest.
                for (i, &p) in given.iter().enumerate() {
                    let Pinned::Owned { id, .. } = &pins[p] else { continue };
                    let id = id.clone();
                    pins::release(&mut pins, p, &id);
                    sharing.pause(p, balance::STAGGER * i as u32);
                    last[p] = None;
                    forget(&mut slots, p as u16);
                    tokio::spawn(unpin(shared.clone(), p, id, pull::UNPIN_AFTER + balance::STAGGER * i as u32));
                }
                pins::show(sh, &pins);
                if !given.is_empty() {
                    tracing::info!(actor = sh.layout.actor, gave = given.len(), kept = mine.len() - given.len(), hosts = others.len() + 1, "gave partitions to processes with fewer");
                }
            }
            _ = tick.tick() => {
                keep_alive(sh, &slots).await;
                passivate(sh, &mut slots, options.idle);
            }
            Some((p, id, first, result)) = takeovers.next(), if !takeovers.is_empty() => {
                let slot = &mut pins[usize::from(p)];
                let Pinned::Taking { id: taking, held } = slot else { continue };
                if *taking != id {
                    continue;
                }
                match result {
                    Ok(t) => {
                        let held = std::mem::take(held);
                        if !t.replay.is_empty() {
                            tracing::info!(actor = sh.layout.actor, partition = p, unsettled = t.replay.len(), "took over a partition; running its unsettled messages first");
                        }
                        let ran: Arc<HashSet<u64>> = Arc::new(t.replay.iter().map(|m| m.sequence).collect());
                        let below = t.replay.last().map_or(0, |m| m.sequence + 1);
                        let mut left = std::collections::BTreeSet::new();
                        for m in t.replay {
                            if let Some((key, item)) = sh.item_of(p, m.subject, None, Some(m.headers), m.payload, m.sequence) {
                                left.insert(item.seq);
                                admit(sh, &mut slots, &mut parked, key, item, &mut turns, &start);
                            }
                        }
                        replays[usize::from(p)] = Replay { left, below, purged: None };
                        for m in held {
                            place(sh, p, m, &ran, &mut slots, &mut parked, &mut turns, &start).await;
                        }
                        pins[usize::from(p)] = Pinned::Owned { id, ran };
                    }
                    Err(e) => {
                        tracing::warn!(actor = sh.layout.actor, partition = p, error = %e, "cannot read the partition's unsettled messages; trying again");
                        takeovers.push(takeover(&shared, p, id, first));
                    }
                }
            }
            Some((key, actor, replayed)) = turns.next(), if !turns.is_empty() => {
                if let Some((p, seq)) = replayed {
                    settle_replayed(&shared, &mut replays[usize::from(p)], p, seq);
                }
                if let Some(slot) = slots.get_mut(&key) {
                    slot.actor = if slot.stale { None } else { actor };
                    slot.stale = false;
                    slot.busy = false;
                    slot.running = None;
                    slot.used = tokio::time::Instant::now();
                    if *stop.borrow() {
                        slot.queue.clear();
                    }
                    start(key, slot, &mut turns);
                }
                while slots.len() < options.max_active {
                    let Some((key, item)) = parked.pop_front() else { break };
                    enqueue(&mut slots, key, item, &mut turns, &start);
                }
            }
            Some((p, m)) = deliveries.recv() => {
                last[usize::from(p)] = Some(tokio::time::Instant::now());
                let id = m.headers.as_ref().and_then(|h| crate::headers::get(h, "Nats-Pin-Id")).unwrap_or_default().to_string();
                match &mut pins[usize::from(p)] {
                    Pinned::Owned { id: owned, ran } | Pinned::Released { id: owned, ran } if *owned == id => {
                        let ran = ran.clone();
                        place(sh, p, m, &ran, &mut slots, &mut parked, &mut turns, &start).await;
                    }
                    Pinned::Taking { id: taking, held } if *taking == id => held.push(m),
                    slot => {
                        tracing::debug!(actor = sh.layout.actor, partition = p, "pinned to this process");
                        let first = sh.sequence(&m).unwrap_or((u64::MAX, 2));
                        forget(&mut slots, p);
                        *slot = Pinned::Taking { id: id.clone(), held: vec![m] };
                        takeovers.push(takeover(&shared, p, id, first));
                        sharing.step_aside(busy(&pins, &last).len(), |p| !here(&pins[p]));
                        pins::show(sh, &pins);
                    }
                }
            }
        }
        sh.counters.active.store(slots.len() as u64, Relaxed);
    }
    // Shutdown: no more pulls; what runs finishes; what waits goes back (unacked, it is
    // delivered again to whoever owns the partition next); the partitions are unpinned so that
    // a standby takes them at once.
    for p in &pulls {
        p.abort();
    }
    drop(deliveries);
    for slot in slots.values_mut() {
        slot.queue.clear();
    }
    while turns.next().await.is_some() {}
    for (p, pin) in pins.iter().enumerate() {
        if here(pin) {
            let consumer = &sh.consumers[p];
            if let Err(e) = sh.stream.unpin_consumer(consumer, pull::GROUP).await {
                tracing::debug!(actor = sh.layout.actor, partition = p, error = %e, "cannot unpin at shutdown; a standby takes it after the pin timeout");
            }
        }
    }
    sh.counters
        .partitions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    sh.counters.active.store(0, Relaxed);
}

/// What a census brings: the busy partitions of every other host, and the partitions this
/// host had that are pinned elsewhere now.
type Census = (Vec<usize>, Vec<(usize, String)>);

/// Sets up a keyed actor and spawns its host and partition pulls.
pub(crate) async fn setup<A: Send + Sync + 'static>(
    keyed: Keyed<A>,
    layout: Layout,
    routes: Vec<Route<A>>,
    codec: Codec,
    env: &StartEnv<'_>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let client = env.client.clone();
    let link = env.link.clone();
    let stop = env.phases[1].stop.subscribe();
    let counters = env.counters.register_keyed(layout.actor);
    let (stream, store) = super::declare::declare(&client, &layout, &keyed.options).await?;
    let consumers: Vec<Arc<str>> = (0..layout.partitions)
        .map(|p| Arc::from(layout.consumer(p)))
        .collect();
    let dead_letters = DeadLetters::ensure(
        &client,
        format!("{}_DLQ", layout.stream),
        &layout.stream,
        "actors",
        stream.cached_info().config.num_replicas.max(1),
    )
    .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let pings = client
        .nats()
        .subscribe(balance::subjects(layout.actor))
        .await
        .map_err(|e| Error::JetStream {
            what: format!("keyed actor {}", layout.actor),
            reason: format!("cannot subscribe to its census: {e}"),
        })?;
    let mut pauses = Vec::new();
    let pulls: Vec<JoinHandle<()>> = (0..layout.partitions)
        .map(|p| {
            let (pause, paused) = watch::channel(None);
            pauses.push(pause);
            tokio::spawn(pull::partition(
                stream.clone(),
                consumers[usize::from(p)].to_string(),
                p,
                tx.clone(),
                link.clone(),
                paused,
                stop.clone(),
            ))
        })
        .collect();
    let sh = Arc::new(Shared {
        stream_name: Arc::from(layout.stream.as_str()),
        keyed,
        layout,
        routes,
        client,
        codec,
        store,
        stream,
        dead_letters,
        counters,
        consumers,
        stopping: stop.clone(),
        outage: Outage::default(),
    });
    Ok(vec![tokio::spawn(run(sh, rx, pulls, pauses, pings, stop))])
}
