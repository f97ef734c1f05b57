//! Core NATS, side by side with raw async-nats in the same run, against one real nats-server:
//!
//! 1. pub/sub, 128-byte MessagePack messages: a typed `#[subscribe]` handler vs a raw
//!    async-nats subscriber that does the same work (decodes into the same type, counts with
//!    an atomic add), and vs one that does not decode;
//! 2. drain: the same messages wait in the subscription's buffer (published while the first one
//!    is held), then each side drains them: the handler path alone, without the publisher and
//!    the server competing for the machine;
//! 3. sequential request/reply p50, and throughput with 64 requests in flight: a typed
//!    `#[request]` handler vs a raw async-nats responder that does the same work (decodes,
//!    encodes, replies with a `Content-Type` header), and vs one that echoes the bytes;
//! 4. pub/sub and drain again with telemetry: (b) tracing installed, nothing sampled; (b+) the
//!    same with metrics exported; (c) every message sampled and exported over OTLP/gRPC, then
//!    OTLP/HTTP, to an in-process receiver that counts the spans by walking the protobuf (a
//!    collector runs elsewhere: its decoding is not the framework's cost). The receiver runs on
//!    a thread of its own, and a sampled round ends when its spans are exported. Each runs in a
//!    child process configured by the `OTEL_*` environment, since telemetry is process-wide.
//!
//! Run: `make bench` (or `cargo bench --bench core`; `cargo bench --bench core -- pubsub` runs
//! one of `pubsub`, `drain`, `request`, `telemetry`; the telemetry children run the pub/sub
//! case, and the drain case too when `drain` is named). After one unmeasured warm-up round of
//! each, rounds alternate raw and framework. A ratio is the median over rounds of nats-actors'
//! rate over raw's in the same round (rounds next to each other share the machine's state,
//! which drifts); compare only within one run. Every case prints what it received: a fast run
//! that lost messages is a failed run.
//!
//! Instructions per message, which do not drift: run the drain case under callgrind with
//! `BENCH_DRAIN_MESSAGES=20000 BENCH_DRAIN_ROUNDS=2 valgrind --tool=callgrind
//! --trace-children=yes --trace-children-skip='*/sh,*/cat,*nats-server*' <bench binary> --bench
//! drain telemetry`, then divide the inclusive count of `Worker<A>::run` by the messages handled
//! (3 x 20,001 per process).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::testing::NatsServer;
use nats_actors::ConnectOptions;
use tokio::sync::Notify;

mod common;
use common::{cpu_time, median};

// Small enough that nats-server's 64 MB per-client pending limit is not reached when the
// subscriber lags the publisher (the server would cut it off as a slow consumer).
const PUBSUB_MESSAGES: u64 = 200_000;
/// Pub/sub rounds are short (a fifth of a second): enough of them for a stable median on a
/// machine whose speed drifts from round to round (with 15, the median of one run still moved
/// by +-3% between runs on the 2-core development machine).
const PUBSUB_ROUNDS: usize = 25;
const ROUNDS: usize = 11;
/// Messages drained from the subscription's buffer per drain round, after the one held
/// (`BENCH_DRAIN_MESSAGES`, default 200,000), and drain rounds (`BENCH_DRAIN_ROUNDS`, 9): fewer
/// for a run under callgrind, which counts the instructions per message.
static DRAIN_MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_DRAIN_MESSAGES", 200_000));
static DRAIN_ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_DRAIN_ROUNDS", 9));

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}
const SEQUENTIAL_REQUESTS: usize = 5_000;
const PARALLEL_REQUESTS: usize = 51_200; // 800 per in-flight slot
const IN_FLIGHT: usize = 64;
const CAPACITY: usize = 1 << 19;

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    seq: u64,
    kind: String,
    body: String,
}

fn event_128() -> Bytes {
    let bytes = (0..128)
        .map(|n| Event {
            seq: 1,
            kind: "order.created".into(),
            body: "x".repeat(n),
        })
        .map(|e| rmp_serde::to_vec_named(&e).unwrap())
        .find(|b| b.len() == 128)
        .expect("a body length that gives 128 bytes");
    Bytes::from(bytes)
}

/// Counts typed messages; notifies when the expected number arrived.
#[derive(Actor, Clone)]
#[actor(codec = "msgpack")]
struct Counter {
    got: Arc<AtomicU64>,
    expect: Arc<AtomicU64>,
    done: Arc<Notify>,
}

#[handlers]
impl Counter {
    #[subscribe("bench.fw")]
    async fn on_event(&self, event: Event) {
        std::hint::black_box(&event);
        if self.got.fetch_add(1, Ordering::Relaxed) + 1 == self.expect.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }

    #[request("bench.fw.echo")]
    async fn echo(&self, event: Event) -> Event {
        event
    }
}

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

struct Run {
    rate: f64,
    received: u64,
    cpu_per_msg_us: f64,
}

async fn publish_all(publisher: &async_nats::Client, subject: &str, payload: &Bytes, n: u64) {
    for _ in 0..n {
        publisher
            .publish(subject.to_string(), payload.clone())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
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
    let consumer = tokio::spawn(async move {
        // Counted as the typed handler counts: with an atomic add.
        let got = AtomicU64::new(0);
        // One timer around the whole loop (not a select! per message, which would slow raw).
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while got.load(Ordering::Relaxed) < PUBSUB_MESSAGES {
                let Some(m) = sub.next().await else { break };
                if decode {
                    let e: Event = rmp_serde::from_slice(&m.payload).unwrap();
                    std::hint::black_box(&e);
                }
                got.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        got.into_inner()
    });
    publish_all(&publisher, "bench.raw", payload, PUBSUB_MESSAGES).await;
    let received = consumer.await.unwrap();
    let (elapsed, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    Run {
        rate: received as f64 / elapsed.as_secs_f64(),
        received,
        cpu_per_msg_us: cpu.as_secs_f64() * 1e6 / received.max(1) as f64,
    }
}

async fn framework_pubsub(url: &str, payload: &Bytes) -> (Run, u64) {
    let counter = Counter {
        got: Arc::default(),
        expect: Arc::new(AtomicU64::new(PUBSUB_MESSAGES)),
        done: Arc::default(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]).subscription_capacity(CAPACITY))
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
    publish_all(&publisher, "bench.fw", payload, PUBSUB_MESSAGES).await;
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
        .connect(ConnectOptions::new([url]).subscription_capacity(CAPACITY))
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
async fn drain_rounds(url: &str, payload: &Bytes, label: &str) -> Ratios {
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

async fn sequential_p50(
    requester: &async_nats::Client,
    subject: &str,
    payload: &Bytes,
) -> Duration {
    let mut lat = Vec::with_capacity(SEQUENTIAL_REQUESTS);
    for _ in 0..SEQUENTIAL_REQUESTS {
        let t = Instant::now();
        let reply = requester
            .request(subject.to_string(), payload.clone())
            .await
            .unwrap();
        lat.push(t.elapsed());
        assert!(!reply.payload.is_empty());
    }
    lat.sort();
    lat[lat.len() / 2]
}

async fn parallel_rate(
    requester: &async_nats::Client,
    subject: &str,
    payload: &Bytes,
) -> (f64, usize) {
    let t0 = Instant::now();
    let per_task = PARALLEL_REQUESTS / IN_FLIGHT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (c, s, p) = (requester.clone(), subject.to_string(), payload.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..per_task {
                    if c.request(s.clone(), p.clone()).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    (ok as f64 / t0.elapsed().as_secs_f64(), ok)
}

/// A raw async-nats responder on `subject`. With `same_work`, it does what the typed handler
/// does: decodes the request into `Event`, encodes the reply and sends it with its
/// `Content-Type` header; without, it echoes the bytes.
async fn raw_responder(url: &str, subject: &str, same_work: bool) -> tokio::task::JoinHandle<()> {
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let Some(reply) = m.reply else { continue };
            if !same_work {
                let _ = client.publish(reply, m.payload).await;
                continue;
            }
            let event: Event = rmp_serde::from_slice(&m.payload).unwrap();
            let body = Bytes::from(rmp_serde::to_vec_named(&event).unwrap());
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/msgpack");
            let _ = client.publish_with_headers(reply, headers, body).await;
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(mode) = std::env::var(MODE_VAR) {
        return telemetry_child(&mode).await;
    }
    let server = NatsServer::builder()
        .jetstream(false)
        .start()
        .expect("start nats-server");
    let url = server.url();
    let payload = event_128();
    println!("nats-actors core bench: {PUBSUB_MESSAGES} x 128 B per pub/sub round, {PUBSUB_ROUNDS} pub/sub rounds, {ROUNDS} request/reply rounds, medians\n");
    let mut summary = vec![];
    if selected("pubsub") {
        let ratio = pubsub_rounds(&url, &payload, "(a) no telemetry").await;
        summary.push(("(a) no telemetry".to_string(), ratio));
    }
    if selected("drain") {
        let ratio = drain_rounds(&url, &payload, "(a) no telemetry").await;
        summary.push(("(a) no telemetry, drain".to_string(), ratio));
    }
    if selected("request") {
        request_reply(&url, &payload).await;
    }
    if selected("telemetry") {
        telemetry_children(&url, &mut summary);
    }
    if !summary.is_empty() {
        println!("\nsummary, pub/sub typed handler msgs/s over raw async-nats' in the same process and round (median):");
        println!(
            "  {:<46} {:>14} {:>14}",
            "", "raw + decode", "raw, no decode"
        );
        for (label, r) in summary {
            println!(
                "  {label:<46} {:>14.3} {:>14.3}",
                r.same_decode, r.no_decode
            );
        }
    }
    drop(server);
}

/// Whether the command line selects `case`: `cargo bench --bench core -- pubsub telemetry` runs
/// those two; no names run them all (pubsub, drain, request, telemetry).
fn selected(case: &str) -> bool {
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    names.is_empty() || names.iter().any(|n| n == case)
}

async fn request_reply(url: &str, payload: &Bytes) {
    let echo = raw_responder(url, "bench.raw.echo", false).await;
    let typed = raw_responder(url, "bench.raw.typed", true).await;
    let counter = Counter {
        got: Arc::default(),
        expect: Arc::default(),
        done: Arc::default(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(counter)
        .start()
        .await
        .unwrap();
    let requester = async_nats::connect(url).await.unwrap();
    // Sequential p50 and in-flight rate of: raw echo, raw doing the same work, nats-actors.
    let subjects = ["bench.raw.echo", "bench.raw.typed", "bench.fw.echo"];
    let (mut p50, mut par) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    for round in 0..ROUNDS {
        let mut line = format!("round {round}:");
        // Each side goes first, second and third in turn: no side always follows the same one.
        for i in (0..3).map(|k| (round + k) % 3) {
            let subject = subjects[i];
            let lat = sequential_p50(&requester, subject, payload).await;
            let (rate, ok) = parallel_rate(&requester, subject, payload).await;
            line += &format!(
                " {subject}: p50 {:.1} us, {IN_FLIGHT} in flight {rate:.0}/s (ok {ok}) |",
                lat.as_secs_f64() * 1e6
            );
            p50[i].push(lat.as_secs_f64() * 1e6);
            par[i].push(rate);
        }
        println!("{line}");
    }
    let per_round = |v: &[Vec<f64>; 3], base: usize| {
        median(v[2].iter().zip(&v[base]).map(|(f, b)| f / b).collect())
    };
    println!(
        "request/reply 128 B msgpack, medians: sequential p50 raw echo {:.1} us, raw same work {:.1} us, nats-actors {:.1} us; {IN_FLIGHT} in flight raw echo {:.0}/s, raw same work {:.0}/s, nats-actors {:.0}/s",
        median(p50[0].clone()),
        median(p50[1].clone()),
        median(p50[2].clone()),
        median(par[0].clone()),
        median(par[1].clone()),
        median(par[2].clone()),
    );
    println!(
        "  ratios (median of per-round ratios): p50 latency vs raw same work {:.3}, vs raw echo {:.3}; {IN_FLIGHT} in flight vs raw same work {:.3}, vs raw echo {:.3}",
        per_round(&p50, 1),
        per_round(&p50, 0),
        per_round(&par, 1),
        per_round(&par, 0),
    );
    runtime.shutdown().await;
    echo.abort();
    typed.abort();
}

/// Telemetry installs process-wide: (b) and (c) each run in a child process of this bench, raw
/// async-nats measured in the same child, against the same server.
fn telemetry_children(url: &str, summary: &mut Vec<(String, Ratios)>) {
    println!();
    for mode in [
        "unsampled-tracing-only",
        "unsampled",
        "sampled",
        "sampled-http",
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            // The child runs the cases named on this command line (pub/sub when none is).
            .args(std::env::args().skip(1))
            .env(MODE_VAR, mode)
            .env("BENCH_NATS_URL", url)
            // A queue that holds a round's spans, so that the export is measured, not dropped;
            // exports start within a round. Batches of the default 512 spans.
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "262144")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run the telemetry bench child");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        for line in text.lines().filter_map(|l| l.strip_prefix("RATIO ")) {
            let (label, values) = line.split_once('=').unwrap_or((mode, ""));
            let mut v = values.split(',').map(|v| v.parse::<f64>().unwrap_or(0.0));
            let same_decode = v.next().unwrap_or(0.0);
            let no_decode = v.next().unwrap_or(0.0);
            summary.push((
                label.to_string(),
                Ratios {
                    same_decode,
                    no_decode,
                },
            ));
        }
    }
}

const MODE_VAR: &str = "NATS_ACTORS_BENCH_MODE";

/// The telemetry of a (b) or (c) child, flushed at the end of each nats-actors round.
static TELEMETRY: std::sync::OnceLock<nats_actors::telemetry::TelemetryGuard> =
    std::sync::OnceLock::new();

/// Alternates raw, raw+decode and nats-actors rounds and prints them. Returns the median over
/// rounds of nats-actors' msgs/s over raw's in the same round: against raw async-nats with the
/// same MessagePack decode (the same work as the typed handler), and against raw without it.
async fn pubsub_rounds(url: &str, payload: &Bytes, label: &str) -> Ratios {
    let (mut raw, mut raw_dec, mut fw) = (Vec::new(), Vec::new(), Vec::new());
    // One unmeasured round of each first: connections, buffers and the span queue warm up.
    raw_pubsub(url, payload, false).await;
    raw_pubsub(url, payload, true).await;
    framework_pubsub(url, payload).await;
    for round in 0..PUBSUB_ROUNDS {
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
    let lost: u64 = raw
        .iter()
        .chain(&raw_dec)
        .chain(&fw)
        .map(|r| PUBSUB_MESSAGES - r.received)
        .sum();
    println!(
        "{label}: pub/sub 128 B msgpack, medians: raw {:.0}/s, raw+decode {:.0}/s, nats-actors typed handler {:.0}/s\n  ratio (median of per-round ratios) vs raw+decode {:.3}, vs raw {:.3}; cpu/msg raw {:.2} us, raw+decode {:.2} us, nats-actors {:.2} us; messages not received: {lost}\n",
        m(&raw, |r| r.rate),
        m(&raw_dec, |r| r.rate),
        m(&fw, |r| r.rate),
        ratios.same_decode,
        ratios.no_decode,
        m(&raw, |r| r.cpu_per_msg_us),
        m(&raw_dec, |r| r.cpu_per_msg_us),
        m(&fw, |r| r.cpu_per_msg_us),
    );
    ratios
}

/// nats-actors' pub/sub msgs/s over raw async-nats', with and without the same decode.
#[derive(Clone, Copy)]
struct Ratios {
    same_decode: f64,
    no_decode: f64,
}

/// (b) telemetry installed, nothing sampled; (c) every message sampled and exported in batches
/// over OTLP/gRPC to an in-process receiver. Metrics are exported to the same receiver in both.
async fn telemetry_child(mode: &str) {
    use nats_actors::telemetry::{Sampling, TelemetryBuilder};
    let url = std::env::var("BENCH_NATS_URL").expect("BENCH_NATS_URL");
    let payload = event_128();
    let protocol = if mode == "sampled-http" {
        "http/protobuf"
    } else {
        "grpc"
    };
    // The receiver stands in for a collector, which runs in a process of its own: it gets a
    // thread and a runtime of its own here, so that it does not queue behind the handler and
    // the publisher on this runtime's two workers (its CPU is still this process's).
    let (tx, rx) = std::sync::mpsc::channel();
    let grpc = protocol == "grpc";
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let receiver = match grpc {
                true => nats_actors_suite::otlp::OtlpReceiver::grpc_counting().await,
                false => nats_actors_suite::otlp::OtlpReceiver::http_counting().await,
            };
            let _ = tx.send(receiver);
            // Serves until the process exits.
            std::future::pending::<()>().await
        })
    });
    let receiver = rx.recv().expect("the OTLP receiver thread started");
    let (label, sampling) = match mode {
        "sampled" => (
            "(c) every message sampled, OTLP/gRPC export",
            Sampling::always_on(),
        ),
        "sampled-http" => (
            "(c) every message sampled, OTLP/HTTP export",
            Sampling::always_on(),
        ),
        "unsampled-tracing-only" => (
            "(b) tracing installed, not sampled",
            Sampling::ratio(0.0).parent_based(),
        ),
        _ => (
            "(b+) same, with metrics exported",
            Sampling::ratio(0.0).parent_based(),
        ),
    };
    // Configured as a deployment would: the standard environment, OTLP over gRPC.
    let endpoint = if mode == "unsampled-tracing-only" {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    } else {
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    };
    std::env::set_var(endpoint, receiver.endpoint());
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "1000");
    let builder = TelemetryBuilder::new("nats-actors-bench")
        .from_env()
        .unwrap()
        .sampling(sampling)
        .logs(false);
    let guard = builder.install().unwrap();
    // Sampled rounds flush the spans they made (see `framework_pubsub`).
    let owned = match mode.starts_with("sampled") {
        true => {
            let _ = TELEMETRY.set(guard);
            None
        }
        false => Some(guard),
    };
    let drain = selected("drain").then_some(());
    let mut ratios = vec![];
    if drain.is_some() {
        let ratio = drain_rounds(&url, &payload, label).await;
        ratios.push((format!("{label}, drain"), ratio));
    }
    if drain.is_none() || selected("pubsub") {
        ratios.push((
            label.to_string(),
            pubsub_rounds(&url, &payload, label).await,
        ));
    }
    tokio::task::spawn_blocking(move || match owned {
        Some(guard) => guard.shutdown(),
        None => TELEMETRY.get().map_or((), |guard| guard.flush()),
    })
    .await
    .unwrap();
    let expected = match mode.starts_with("sampled") {
        false => 0,
        true => {
            let pubsub = ratios.iter().any(|(l, _)| l == label) as u64;
            let drain = drain.is_some() as u64;
            // Each round and each warm-up round: every message, and in a drain the held one.
            pubsub * PUBSUB_MESSAGES * (PUBSUB_ROUNDS as u64 + 1)
                + drain * (*DRAIN_MESSAGES + 1) * (*DRAIN_ROUNDS + 1)
        }
    };
    println!(
        "{label}: spans received by the OTLP receiver {} (expected {expected}, malformed {}), metric exports {}",
        receiver.span_count(),
        receiver.malformed_spans(),
        receiver.metric_exports()
    );
    for (label, ratio) in ratios {
        println!("RATIO {label}={},{}", ratio.same_decode, ratio.no_decode);
    }
}
