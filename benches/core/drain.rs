//! Case 2, drain: messages wait in the subscription's buffer while the first one is held, then
//! each side drains them: the handler path alone (also run by the telemetry children).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;
use tokio::sync::Notify;

use crate::common::median;
use crate::{publish_all, Event, Ratios, CAPACITY, DRAIN_MESSAGES, DRAIN_ROUNDS};

/// Like [`Counter`], but holds its first message until `gate` opens: the rest wait in the
/// subscription's buffer, and the drain that follows measures the handler path alone.
#[derive(Actor, Clone)]
#[actor(codec = "msgpack")]
struct Gated {
    got: Arc<AtomicU64>,
    gate: Arc<Notify>,
    done: Arc<Notify>,
}

#[handlers]
impl Gated {
    #[subscribe("bench.drain.fw")]
    async fn on_event(&self, event: Event) {
        std::hint::black_box(&event);
        let n = self.got.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            self.gate.notified().await;
        }
        if n == *DRAIN_MESSAGES + 1 {
            self.done.notify_one();
        }
    }
}

/// Publishes the held message and `DRAIN_MESSAGES` more, and waits until `stats` counted them
/// all in (then a little longer, for the last ones to reach the subscription's buffer).
async fn preload(url: &str, subject: &str, payload: &Bytes, stats: &async_nats::Statistics) {
    let publisher = async_nats::connect(url).await.unwrap();
    let before = stats.in_messages.load(Ordering::Relaxed);
    publish_all(&publisher, subject, payload, *DRAIN_MESSAGES + 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.in_messages.load(Ordering::Relaxed) - before < *DRAIN_MESSAGES + 1
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Raw async-nats draining `DRAIN_MESSAGES` from its subscription's buffer: ns per message.
async fn raw_drain(url: &str, payload: &Bytes, decode: bool) -> (f64, u64) {
    let client = async_nats::ConnectOptions::new()
        .subscription_capacity(CAPACITY)
        .connect(url)
        .await
        .unwrap();
    let mut sub = client.subscribe("bench.drain.raw").await.unwrap();
    client.flush().await.unwrap();
    let gate = Arc::new(Notify::new());
    let opened = gate.clone();
    let consumer = tokio::spawn(async move {
        let got = AtomicU64::new(0);
        let mut t0 = None;
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while got.load(Ordering::Relaxed) < *DRAIN_MESSAGES + 1 {
                let Some(m) = sub.next().await else { break };
                if decode {
                    let e: Event = rmp_serde::from_slice(&m.payload).unwrap();
                    std::hint::black_box(&e);
                }
                if got.fetch_add(1, Ordering::Relaxed) == 0 {
                    opened.notified().await;
                    t0 = Some(Instant::now());
                }
            }
        })
        .await;
        (t0.map(|t| t.elapsed()), got.into_inner())
    });
    preload(url, "bench.drain.raw", payload, &client.statistics()).await;
    gate.notify_one();
    let (elapsed, got) = consumer.await.unwrap();
    let ns = elapsed.map_or(f64::NAN, |e| e.as_secs_f64() * 1e9 / *DRAIN_MESSAGES as f64);
    (ns, got.saturating_sub(1))
}

/// The typed handler draining `DRAIN_MESSAGES` from its subscription's buffer: ns per message.
async fn framework_drain(url: &str, payload: &Bytes) -> (f64, u64) {
    let actor = Gated {
        got: Arc::default(),
        gate: Arc::default(),
        done: Arc::default(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .buffer(nats_actors::Buffer::messages(CAPACITY))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let stats = runtime.client().nats().statistics();
    preload(url, "bench.drain.fw", payload, &stats).await;
    let t0 = Instant::now();
    actor.gate.notify_one();
    let done = tokio::time::timeout(Duration::from_secs(60), actor.done.notified()).await;
    let elapsed = t0.elapsed();
    runtime.shutdown().await;
    let got = actor.got.load(Ordering::Relaxed).saturating_sub(1);
    let ns = match done {
        Ok(()) => elapsed.as_secs_f64() * 1e9 / *DRAIN_MESSAGES as f64,
        Err(_) => f64::NAN,
    };
    (ns, got)
}

/// The handler path alone: messages wait in the subscription's buffer, then each side drains
/// them. Returns nats-actors' rate over raw's (median of per-round ratios), with and without
/// raw decoding.
pub async fn drain_rounds(url: &str, payload: &Bytes, label: &str) -> Ratios {
    let (mut raw, mut dec, mut fw) = (vec![], vec![], vec![]);
    raw_drain(url, payload, false).await;
    framework_drain(url, payload).await;
    for round in 0..*DRAIN_ROUNDS {
        let (r, rn) = raw_drain(url, payload, false).await;
        let (d, dn) = raw_drain(url, payload, true).await;
        let (f, fnum) = framework_drain(url, payload).await;
        println!(
            "{label} drain round {round}: raw {r:.0} ns/msg (recv {rn}) | raw+decode {d:.0} ns/msg (recv {dn}) | nats-actors {f:.0} ns/msg (recv {fnum})"
        );
        raw.push(r);
        dec.push(d);
        fw.push(f);
    }
    // A rate ratio is the inverse of the time ratio.
    let paired = |base: &Vec<f64>| median(fw.iter().zip(base).map(|(f, b)| b / f).collect());
    let ratios = Ratios {
        same_decode: paired(&dec),
        no_decode: paired(&raw),
    };
    println!(
        "{label}: drain of {} buffered 128 B msgpack messages, medians: raw {:.0} ns/msg, raw+decode {:.0} ns/msg, nats-actors {:.0} ns/msg\n  rate ratio (median of per-round ratios) vs raw+decode {:.3}, vs raw {:.3}\n",
        *DRAIN_MESSAGES,
        median(raw),
        median(dec),
        median(fw),
        ratios.same_decode,
        ratios.no_decode,
    );
    ratios
}
