//! Case 5, loss: (1) a burst of 1,000,000 128-byte messages from a raw publisher at default
//! settings, to a typed `#[subscribe]` handler and to a raw async-nats subscriber doing the
//! same work; (2) a flood of 200,000 at a handler that takes 1 ms per message, with
//! `buffer = 1000`. Each run prints what was published, received, counted as dropped, and lost
//! (neither received nor counted): a run is complete when nothing is lost and nothing dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;

use crate::{publish_all, Event};

const BURST: u64 = 1_000_000;
const FLOOD: u64 = 200_000;
const RUNS: usize = 5;

/// Counts typed messages (the same work as the raw side: decode, count).
#[derive(Actor, Clone, Default)]
#[actor(codec = "msgpack")]
struct Burst {
    got: Arc<AtomicU64>,
}

#[handlers]
impl Burst {
    #[subscribe("bench.burst.fw")]
    async fn on_event(&self, event: Event) {
        std::hint::black_box(&event);
        self.got.fetch_add(1, Ordering::Relaxed);
    }

    #[subscribe("bench.flood.fw", buffer = 1000)]
    async fn slow(&self, event: Event) {
        std::hint::black_box(&event);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `done()` holds or nothing changed for 3 s (what is still coming has stopped).
async fn settle(mut progress: impl FnMut() -> u64, done: impl Fn(u64) -> bool) -> u64 {
    let (mut last, mut since) = (u64::MAX, Instant::now());
    loop {
        let now = progress();
        if done(now) {
            return now;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(3) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(side: &str, run: usize, published: u64, received: u64, dropped: Option<u64>) -> bool {
    let counted = dropped.unwrap_or(0);
    let lost = published.saturating_sub(received + counted);
    let dropped = dropped.map_or("-".to_string(), |d| d.to_string());
    println!(
        "  {side:<34} run {run}: published {published}, received {received}, dropped (counted) {dropped}, lost {lost}"
    );
    lost == 0 && counted == 0 && received == published
}

async fn framework_burst(url: &str, payload: &Bytes, run: usize) -> bool {
    let actor = Burst::default();
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let publisher = async_nats::connect(url).await.unwrap();
    publish_all(&publisher, "bench.burst.fw", payload, BURST).await;
    let stats = || runtime.stats().handler("Burst::on_event").unwrap();
    settle(
        || {
            let s = stats();
            s.received + s.dropped
        },
        |n| n >= BURST,
    )
    .await;
    // The handler counts what it finished; received counts what it was given.
    settle(
        || actor.got.load(Ordering::Relaxed),
        |n| n >= stats().received,
    )
    .await;
    let s = stats();
    let complete = report(
        "nats-actors, defaults",
        run,
        BURST,
        actor.got.load(Ordering::Relaxed),
        Some(s.dropped),
    );
    runtime.shutdown().await;
    complete
}

async fn raw_burst(url: &str, payload: &Bytes, run: usize) -> bool {
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client.subscribe("bench.burst.raw").await.unwrap();
    client.flush().await.unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let counter = got.clone();
    let consumer = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(m) = sub.next().await {
                let e: Event = rmp_serde::from_slice(&m.payload).unwrap();
                std::hint::black_box(&e);
                if counter.fetch_add(1, Ordering::Relaxed) + 1 == BURST {
                    break;
                }
            }
        })
        .await;
    });
    let publisher = async_nats::connect(url).await.unwrap();
    publish_all(&publisher, "bench.burst.raw", payload, BURST).await;
    let received = settle(|| got.load(Ordering::Relaxed), |n| n >= BURST).await;
    consumer.abort();
    // async-nats reports its drops only as slow-consumer events (none subscribed here).
    report("raw async-nats, defaults", run, BURST, received, None)
}

async fn framework_flood(url: &str, payload: &Bytes, run: usize) {
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(Burst::default())
        .start()
        .await
        .unwrap();
    let publisher = async_nats::connect(url).await.unwrap();
    publish_all(&publisher, "bench.flood.fw", payload, FLOOD).await;
    let stats = || runtime.stats().handler("Burst::slow").unwrap();
    settle(
        || {
            let s = stats();
            s.received + s.dropped
        },
        |n| n >= FLOOD,
    )
    .await;
    let s = stats();
    report(
        "nats-actors, 1 ms handler, buffer 1000",
        run,
        FLOOD,
        s.received,
        Some(s.dropped),
    );
    runtime.shutdown().await;
}

/// Runs the burst (both sides, alternating) and the flood, printing each run.
pub async fn loss_rounds(url: &str, payload: &Bytes) {
    println!("loss: a burst of {BURST} x 128 B at default settings, {RUNS} runs per side (complete = all received, none dropped)");
    let (mut fw, mut raw) = (0, 0);
    for run in 1..=RUNS {
        fw += usize::from(framework_burst(url, payload, run).await);
        raw += usize::from(raw_burst(url, payload, run).await);
    }
    println!("  complete runs: nats-actors {fw}/{RUNS}, raw async-nats {raw}/{RUNS}");
    println!("loss: a flood of {FLOOD} x 128 B at a 1 ms handler with buffer = 1000 (received + dropped = published when nothing is lost)");
    for run in 1..=RUNS {
        framework_flood(url, payload, run).await;
    }
    println!();
}
