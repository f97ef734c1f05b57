//! Case 1, pub/sub: a typed `#[subscribe]` handler vs raw async-nats subscribers with and
//! without the same decode, rounds alternating the sides (also run by the telemetry children).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;

use crate::common::{cpu_time, median};
use crate::telemetry::TELEMETRY;
use crate::{publish_all, Counter, Event, Ratios, CAPACITY, PUBSUB_MESSAGES, PUBSUB_ROUNDS};

struct Run {
    rate: f64,
    received: u64,
    cpu_per_msg_us: f64,
}

async fn raw_pubsub(url: &str, payload: &Bytes, decode: bool) -> Run {
    let sub_client = async_nats::ConnectOptions::new()
        .subscription_capacity(CAPACITY)
        .connect(url)
        .await
        .unwrap();
    let publisher = async_nats::connect(url).await.unwrap();
    let mut sub = sub_client.subscribe("bench.raw").await.unwrap();
    sub_client.flush().await.unwrap();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    // Counted as the typed handler counts: with an atomic add.
    let got = Arc::new(AtomicU64::new(0));
    let counted = got.clone();
    let consumer = tokio::spawn(async move {
        // One timer around the whole loop (not a select! per message, which would slow raw).
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while counted.load(Ordering::Relaxed) < *PUBSUB_MESSAGES {
                let Some(m) = sub.next().await else { break };
                if decode {
                    let e: Event = rmp_serde::from_slice(&m.payload).unwrap();
                    std::hint::black_box(&e);
                }
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
    });
    publish_all(&publisher, "bench.raw", payload, *PUBSUB_MESSAGES).await;
    let received = until_done_or_stalled(consumer, &got).await;
    let (elapsed, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    Run {
        rate: received as f64 / elapsed.as_secs_f64(),
        received,
        cpu_per_msg_us: cpu.as_secs_f64() * 1e6 / received.max(1) as f64,
    }
}

/// Waits for `consumer` to count every message; one that has counted nothing new for a second
/// lost the rest (raw async-nats, cut off by the server as a slow consumer): it is stopped
/// there, not at its 60 s timeout. Returns the count.
async fn until_done_or_stalled(mut consumer: tokio::task::JoinHandle<()>, got: &AtomicU64) -> u64 {
    let (mut last, mut still) = (0, 0);
    while still < 10 {
        tokio::select! {
            _ = &mut consumer => return got.load(Ordering::Relaxed),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let now = got.load(Ordering::Relaxed);
                still = if now == last { still + 1 } else { 0 };
                last = now;
            }
        }
    }
    consumer.abort();
    let _ = consumer.await;
    got.load(Ordering::Relaxed)
}

async fn framework_pubsub(url: &str, payload: &Bytes) -> (Run, u64) {
    let counter = Counter {
        got: Arc::default(),
        expect: Arc::new(AtomicU64::new(*PUBSUB_MESSAGES)),
        done: Arc::default(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .buffer(nats_actors::Buffer::messages(CAPACITY))
        .actor(counter.clone())
        .start()
        .await
        .unwrap();
    let publisher = async_nats::connect(url).await.unwrap();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let done = counter.done.clone();
    let waiter = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(60), done.notified())
            .await
            .is_ok()
    });
    publish_all(&publisher, "bench.fw", payload, *PUBSUB_MESSAGES).await;
    let _ = waiter.await;
    // With every message sampled, the round ends when its spans (and the metrics) are exported,
    // not before: their export is the cost measured.
    if let Some(guard) = TELEMETRY.get() {
        tokio::task::spawn_blocking(|| guard.flush()).await.unwrap();
    }
    let (elapsed, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    let received = counter.got.load(Ordering::Relaxed);
    // Client-side drops (full subscription buffer) and server-side ones (the server cut a slow
    // consumer off: a disconnect) are both reported.
    let dropped = runtime.stats().dropped + runtime.stats().disconnects;
    runtime.shutdown().await;
    let run = Run {
        rate: received as f64 / elapsed.as_secs_f64(),
        received,
        cpu_per_msg_us: cpu.as_secs_f64() * 1e6 / received.max(1) as f64,
    };
    (run, dropped)
}

/// Alternates raw, raw+decode and nats-actors rounds and prints them. Returns the median over
/// rounds of nats-actors' msgs/s over raw's in the same round: against raw async-nats with the
/// same MessagePack decode (the same work as the typed handler), and against raw without it.
pub async fn pubsub_rounds(url: &str, payload: &Bytes, label: &str) -> Ratios {
    let (mut raw, mut raw_dec, mut fw) = (Vec::new(), Vec::new(), Vec::new());
    // One unmeasured round of each first: connections, buffers and the span queue warm up.
    raw_pubsub(url, payload, false).await;
    raw_pubsub(url, payload, true).await;
    framework_pubsub(url, payload).await;
    for round in 0..*PUBSUB_ROUNDS {
        // Each side goes first, second and third in turn: no side always follows the same one.
        let (mut r, mut d, mut f) = (None, None, None);
        for side in (0..3).map(|k| (round + k) % 3) {
            match side {
                0 => r = Some(raw_pubsub(url, payload, false).await),
                1 => d = Some(raw_pubsub(url, payload, true).await),
                _ => f = Some(framework_pubsub(url, payload).await),
            }
        }
        let (Some(r), Some(d), Some((f, dropped))) = (r, d, f) else {
            unreachable!("every side ran")
        };
        println!(
            "{label} round {round}: raw {:>8.0}/s (recv {}, {:.2} us cpu/msg) | raw+decode {:>8.0}/s (recv {}, {:.2} us) | nats-actors {:>8.0}/s (recv {}, dropped/disconnects {dropped}, {:.2} us)",
            r.rate, r.received, r.cpu_per_msg_us, d.rate, d.received, d.cpu_per_msg_us, f.rate, f.received, f.cpu_per_msg_us
        );
        raw.push(r);
        raw_dec.push(d);
        fw.push(f);
    }
    let m = |v: &Vec<Run>, f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let paired =
        |base: &Vec<Run>| median(fw.iter().zip(base).map(|(f, b)| f.rate / b.rate).collect());
    let ratios = Ratios {
        same_decode: paired(&raw_dec),
        no_decode: paired(&raw),
    };
    // Rounds next to each other share the machine's state: the CPU difference of each round,
    // then their median, drifts less than the difference of the two medians.
    let cpu_over = |base: &Vec<Run>| {
        median(
            fw.iter()
                .zip(base)
                .map(|(f, b)| f.cpu_per_msg_us - b.cpu_per_msg_us)
                .collect(),
        )
    };
    let missed = |side: &[Run]| -> u64 { side.iter().map(|r| *PUBSUB_MESSAGES - r.received).sum() };
    let lost = format!(
        "raw {}, raw+decode {}, nats-actors {}",
        missed(&raw),
        missed(&raw_dec),
        missed(&fw)
    );
    println!(
        "{label}: pub/sub 128 B msgpack, medians: raw {:.0}/s, raw+decode {:.0}/s, nats-actors typed handler {:.0}/s\n  ratio (median of per-round ratios) vs raw+decode {:.3}, vs raw {:.3}; cpu/msg raw {:.2} us, raw+decode {:.2} us, nats-actors {:.2} us; nats-actors' cpu/msg over raw+decode's (median of per-round differences) {:+.3} us; messages not received, all rounds: {lost}\n",
        m(&raw, |r| r.rate),
        m(&raw_dec, |r| r.rate),
        m(&fw, |r| r.rate),
        ratios.same_decode,
        ratios.no_decode,
        m(&raw, |r| r.cpu_per_msg_us),
        m(&raw_dec, |r| r.cpu_per_msg_us),
        m(&fw, |r| r.cpu_per_msg_us),
        cpu_over(&raw_dec),
    );
    ratios
}
