//! Core NATS, side by side with raw async-nats in the same run, against one real nats-server:
//!
//! 1. pub/sub, 128-byte MessagePack messages: a typed `#[subscribe]` handler vs a raw
//!    async-nats subscriber that does the same work (decodes into the same type, counts with
//!    an atomic add), and vs one that does not decode;
//! 2. drain: the same messages wait in the subscription's buffer (published while the first one
//!    is held), then each side drains them: the handler path alone, without the publisher and
//!    the server competing for the machine;
//! 3. sequential request/reply p50 (the sides taking turns every 50 requests), and throughput
//!    with 64 requests in flight: a typed `#[request]` handler vs a raw async-nats responder
//!    that does the same work (decodes, encodes, replies with a `Content-Type` header), and vs
//!    one that echoes the bytes; with the process's CPU per request (requester and responder);
//! 4. pub/sub and drain again with telemetry: (b) tracing installed, nothing sampled; (b+) the
//!    same with metrics exported; (c) every message sampled and exported over OTLP/gRPC, then
//!    OTLP/HTTP, then both over TLS (https, the receiver's CA from
//!    `OTEL_EXPORTER_OTLP_CERTIFICATE`), to an in-process receiver that counts the spans by walking the protobuf (a
//!    collector runs elsewhere: its decoding is not the framework's cost). The receiver runs on
//!    a thread of its own, and a sampled round ends when its spans are exported. Each runs in a
//!    child process configured by the `OTEL_*` environment, since telemetry is process-wide;
//! 5. loss: a burst of 1,000,000 messages at default settings (typed handler and raw
//!    async-nats), and a flood at a 1 ms handler with a small buffer; each run prints received,
//!    counted as dropped, and lost.
//!
//! Run: `make bench` (or `cargo bench --bench core`; `cargo bench --bench core -- pubsub` runs
//! one of `pubsub`, `drain`, `request`, `telemetry`, `loss`; the telemetry children run the pub/sub
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

use bytes::Bytes;
use nats_actors::prelude::*;
use nats_actors::testing::NatsServer;
use tokio::sync::Notify;

mod burst;
#[path = "../common/mod.rs"]
mod common;
use common::env_or;
mod drain;
mod pubsub;
mod request_reply;
mod telemetry;

use drain::drain_rounds;
use pubsub::pubsub_rounds;
use request_reply::request_reply;
use telemetry::{telemetry_child, telemetry_children, MODE_VAR};

/// Messages per pub/sub round (`BENCH_PUBSUB_MESSAGES`; fewer, with `BENCH_PUBSUB_ROUNDS`, for
/// a run under callgrind). Small enough that nats-server's 64 MB per-client pending limit is not
/// reached when the subscriber lags the publisher (the server would cut it off as a slow
/// consumer).
static PUBSUB_MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_PUBSUB_MESSAGES", 200_000));
/// Pub/sub rounds are short (a fifth of a second): enough of them for a stable median on a
/// machine whose speed drifts from round to round (with 15, the median of one run still moved
/// by +-3% between runs on the 2-core development machine); `BENCH_PUBSUB_ROUNDS`.
static PUBSUB_ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_PUBSUB_ROUNDS", 25));
const ROUNDS: usize = 11;
/// Messages drained from the subscription's buffer per drain round, after the one held
/// (`BENCH_DRAIN_MESSAGES`, default 200,000), and drain rounds (`BENCH_DRAIN_ROUNDS`, 9): fewer
/// for a run under callgrind, which counts the instructions per message.
static DRAIN_MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_DRAIN_MESSAGES", 200_000));
static DRAIN_ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_DRAIN_ROUNDS", 9));

/// Request/reply: sequential requests per round (`BENCH_SEQUENTIAL`, default 5,000), requests
/// with 64 in flight per round (`BENCH_REQUESTS`, 51,200), rounds (`BENCH_REQUEST_ROUNDS`, 11),
/// and the responders measured (`BENCH_RESPONDERS`: of `echo,same,fw`, default all). Under
/// callgrind, run one responder at a time with few requests and compare the instructions of
/// the whole process per request.
static SEQUENTIAL_REQUESTS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_SEQUENTIAL", 5_000));
static PARALLEL_REQUESTS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_REQUESTS", 51_200));
static REQUEST_ROUNDS: LazyLock<u64> =
    LazyLock::new(|| env_or("BENCH_REQUEST_ROUNDS", ROUNDS as u64));
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

async fn publish_all(publisher: &async_nats::Client, subject: &str, payload: &Bytes, n: u64) {
    for _ in 0..n {
        publisher
            .publish(subject.to_string(), payload.clone())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
}

/// nats-actors' pub/sub msgs/s over raw async-nats', with and without the same decode.
#[derive(Clone, Copy)]
struct Ratios {
    same_decode: f64,
    no_decode: f64,
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
    println!("nats-actors core bench: {} x 128 B per pub/sub round, {} pub/sub rounds, {ROUNDS} request/reply rounds, medians\n", *PUBSUB_MESSAGES, *PUBSUB_ROUNDS);
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
    if selected("loss") {
        burst::loss_rounds(&url, &payload).await;
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
/// those two; no names run them all (pubsub, drain, request, telemetry, loss).
fn selected(case: &str) -> bool {
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    names.is_empty() || names.iter().any(|n| n == case)
}
