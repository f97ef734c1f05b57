//! Compression, side by side with raw async-nats doing the same work in the same run, against
//! one real nats-server: 16 KiB JSON reports published and decoded by a subscriber in the same
//! process. Raw encodes each report, (for zstd) compresses it and marks it with
//! `Content-Encoding`, and its subscriber decompresses and decodes it; nats-actors publishes
//! through `client.publish` (with `RuntimeBuilder::compression` for gzip and zstd) to a typed
//! `#[subscribe]` handler. Each case prints msgs/s, bytes on the wire per message (what the
//! subscribing connection read from its socket, protocol lines included: async-nats'
//! `out_bytes` counts a publish twice), the process's CPU per message and what it received.
//!
//! Both sides keep their publisher at most 1,000 messages ahead of their subscriber (without
//! that window, raw's separate subscriber connection lost messages in some rounds here).
//!
//! Run: `cargo bench --bench compression`. Rounds alternate the cases after a warm-up round;
//! figures are medians over rounds, ratios the median of nats-actors over raw in each round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::testing::NatsServer;
use nats_actors::{Compression, HeaderMap};

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;
use common::{cpu_time, env_or, median};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    id: u64,
    sku: String,
    qty: u32,
    warehouse: String,
    note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    day: String,
    rows: Vec<Row>,
}

/// About 16 KiB of JSON, as repetitive as a real report.
fn report() -> Report {
    let rows = (0..226)
        .map(|i| Row {
            id: 100_000 + i,
            sku: format!("SKU-{:05}", (i * 37) % 1000),
            qty: (i % 17) as u32,
            warehouse: ["ams-1", "fra-2", "par-1"][i as usize % 3].into(),
            note: if i % 5 == 0 {
                "restocked".into()
            } else {
                String::new()
            },
        })
        .collect();
    Report {
        day: "2026-12-02".into(),
        rows,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    Raw,
    RawZstd,
    Plain,
    Gzip,
    Zstd,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Raw => "raw, uncompressed",
            Case::RawZstd => "raw, zstd by hand",
            Case::Plain => "nats-actors, uncompressed",
            Case::Gzip => "nats-actors, gzip",
            Case::Zstd => "nats-actors, zstd",
        }
    }
}

struct Run {
    rate: f64,
    wire: f64,
    cpu_us: f64,
    received: u64,
}

#[derive(Actor, Clone, Default)]
struct Reader {
    got: Arc<AtomicU64>,
}

#[handlers]
impl Reader {
    #[subscribe("bench.cz.fw")]
    async fn read(&self, report: Report) {
        std::hint::black_box(&report);
        self.got.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publishers keep at most this many messages ahead of their subscriber (about 16 MiB
/// uncompressed), so that the server never holds enough for a slow-consumer cut-off.
const WINDOW: u64 = 1_000;

/// Waits (at most 10 s) until the subscriber is within [`WINDOW`] of the `sent`-th message.
async fn pace(got: &AtomicU64, sent: u64) {
    if sent.is_multiple_of(100) && sent > WINDOW {
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.load(Ordering::Relaxed) + WINDOW < sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

async fn wait_for(got: &AtomicU64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn raw(url: &str, n: u64, zstd: bool) -> Run {
    let sub_client = async_nats::connect(url).await.unwrap();
    let publisher = async_nats::connect(url).await.unwrap();
    let mut sub = sub_client.subscribe("bench.cz.raw").await.unwrap();
    sub_client.flush().await.unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let counter = got.clone();
    let consumer = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let payload = match m.headers.as_ref().and_then(|h| h.get("Content-Encoding")) {
                Some(_) => Bytes::from(zstd::bulk::decompress(&m.payload, 1 << 24).unwrap()),
                None => m.payload,
            };
            let r: Report = serde_json::from_slice(&payload).unwrap();
            std::hint::black_box(&r);
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == n {
                break;
            }
        }
    });
    let value = report();
    let stats = sub_client.statistics();
    let (bytes0, cpu0, t0) = (
        stats.in_bytes.load(Ordering::Relaxed),
        cpu_time(),
        Instant::now(),
    );
    for sent in 1..=n {
        pace(&got, sent).await;
        let json = serde_json::to_vec(&value).unwrap();
        if zstd {
            let packed = zstd::bulk::compress(&json, 3).unwrap();
            let mut h = HeaderMap::new();
            h.insert("Content-Type", "application/json");
            h.insert("Content-Encoding", "zstd");
            publisher
                .publish_with_headers("bench.cz.raw", h, packed.into())
                .await
                .unwrap();
        } else {
            let mut h = HeaderMap::new();
            h.insert("Content-Type", "application/json");
            publisher
                .publish_with_headers("bench.cz.raw", h, json.into())
                .await
                .unwrap();
        }
    }
    publisher.flush().await.unwrap();
    wait_for(&got, n).await;
    let run = finish(&got, &stats, bytes0, cpu0, t0);
    consumer.abort();
    run
}

async fn framework(url: &str, n: u64, compression: Option<Compression>) -> Run {
    let reader = Reader::default();
    let mut builder = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new([url]))
        .actor(reader.clone());
    if let Some(c) = compression {
        builder = builder.compression(c);
    }
    let runtime = builder.start().await.unwrap();
    let client = runtime.client().clone();
    let value = report();
    let stats = client.nats().statistics();
    let (bytes0, cpu0, t0) = (
        stats.in_bytes.load(Ordering::Relaxed),
        cpu_time(),
        Instant::now(),
    );
    for sent in 1..=n {
        pace(&reader.got, sent).await;
        client.publish("bench.cz.fw", &value).await.unwrap();
    }
    client.nats().flush().await.unwrap();
    wait_for(&reader.got, n).await;
    let run = finish(&reader.got, &stats, bytes0, cpu0, t0);
    runtime.shutdown().await;
    run
}

fn finish(
    got: &AtomicU64,
    stats: &async_nats::Statistics,
    bytes0: u64,
    cpu0: Duration,
    t0: Instant,
) -> Run {
    let (elapsed, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    let received = got.load(Ordering::Relaxed);
    let sent = stats.in_bytes.load(Ordering::Relaxed) - bytes0;
    Run {
        rate: received as f64 / elapsed.as_secs_f64(),
        wire: sent as f64 / received.max(1) as f64,
        cpu_us: cpu.as_secs_f64() * 1e6 / received.max(1) as f64,
        received,
    }
}

async fn run(case: Case, url: &str, n: u64) -> Run {
    match case {
        Case::Raw => raw(url, n, false).await,
        Case::RawZstd => raw(url, n, true).await,
        Case::Plain => framework(url, n, None).await,
        Case::Gzip => framework(url, n, Some(Compression::gzip())).await,
        Case::Zstd => framework(url, n, Some(Compression::zstd())).await,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = env_or("BENCH_COMPRESSION_MESSAGES", 5_000);
    let rounds = env_or("BENCH_COMPRESSION_ROUNDS", 7) as usize;
    let server = NatsServer::start().expect("start nats-server");
    let url = server.url();
    let json = serde_json::to_vec(&report()).unwrap().len();
    println!("compression: {messages} JSON reports of {json} bytes per round, {rounds} rounds");
    let cases = [
        Case::Raw,
        Case::Plain,
        Case::RawZstd,
        Case::Zstd,
        Case::Gzip,
    ];
    for case in cases {
        run(case, &url, messages / 4).await; // warm-up
    }
    let mut runs: Vec<Vec<Run>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            runs[i].push(run(*case, &url, messages).await);
        }
    }
    println!(
        "{:<28} {:>10} {:>14} {:>12} {:>16}",
        "case", "msgs/s", "wire B/msg", "CPU us/msg", "received"
    );
    for (case, r) in cases.iter().zip(&runs) {
        let received: Vec<String> = r.iter().map(|r| r.received.to_string()).collect();
        println!(
            "{:<28} {:>10.0} {:>14.0} {:>12.1} {:>16}",
            case.name(),
            median(r.iter().map(|r| r.rate).collect()),
            median(r.iter().map(|r| r.wire).collect()),
            median(r.iter().map(|r| r.cpu_us).collect()),
            if received.iter().all(|v| *v == messages.to_string()) {
                format!("all {messages}")
            } else {
                received.join(",")
            }
        );
    }
    let ratio = |a: usize, b: usize| {
        median(
            runs[a]
                .iter()
                .zip(&runs[b])
                .map(|(x, y)| x.rate / y.rate)
                .collect(),
        )
    };
    println!(
        "ratios (median per round): nats-actors/raw uncompressed {:.3}, zstd {:.3}",
        ratio(1, 0),
        ratio(3, 2)
    );
}
