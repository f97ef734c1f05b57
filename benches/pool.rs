//! The connection pool, side by side with raw async-nats using the same number of clients, in
//! the same run, against one real nats-server, with 1, 2 and 4 connections:
//!
//! 1. pub/sub: 4 handler instances in a queue group take MessagePack messages published over
//!    10 subjects (`publish_batch` of 100); raw: the same 4 queue subscriptions dealt over the
//!    clients, publishes through the client the subject picks, one flush per 100;
//! 2. request/reply, 64 in flight over 10 subjects, 4 responder instances; raw: the same.
//!
//! Run: `cargo bench --bench pool`. Rounds alternate; medians; every round prints what was
//! received or answered. On a 2-core machine more connections mostly add work: read the
//! figures as what the pool costs here, not what it gives on a larger host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::{ConnectOptions, Sender};
use tokio::sync::Notify;

mod common;
use common::{cpu_time, env_or, measure, median, Run};

/// Messages per pub/sub round (`BENCH_POOL_MESSAGES`, default 200,000), requests per round
/// (`BENCH_POOL_REQUESTS`, 50,000) and rounds (`BENCH_POOL_ROUNDS`, 5).
static MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_POOL_MESSAGES", 200_000));
static REQUESTS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_POOL_REQUESTS", 50_000));
static ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_POOL_ROUNDS", 5));

const SUBJECTS: u64 = 10;
const IN_FLIGHT: u64 = 64;
const INSTANCES: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    seq: u64,
    sensor: String,
    value: f64,
}

fn reading(seq: u64) -> Reading {
    Reading {
        seq,
        sensor: "sensor-0042".into(),
        value: seq as f64 * 0.5,
    }
}

#[derive(Actor, Clone, Default)]
#[actor(codec = "msgpack", instances = 4, queue = "pool")]
struct Sink {
    got: Arc<AtomicU64>,
    done: Arc<Notify>,
}

#[handlers]
impl Sink {
    #[subscribe("pool.*", buffer = 1_000_000)]
    async fn on(&self, r: Reading) {
        std::hint::black_box(&r);
        if self.got.fetch_add(1, Ordering::Relaxed) + 1 == *MESSAGES {
            self.done.notify_one();
        }
    }

    #[request("rr.*")]
    async fn echo(&self, r: Reading) -> Reading {
        r
    }
}

fn encoded(seq: u64) -> Bytes {
    Bytes::from(rmp_serde::to_vec_named(&reading(seq)).unwrap())
}

fn msgpack() -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/msgpack");
    h
}

async fn clients(url: &str, n: usize) -> Vec<async_nats::Client> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(async_nats::connect(url).await.unwrap());
    }
    all
}

async fn raw_pubsub(url: &str, n: usize) -> Run {
    let nats = clients(url, n).await;
    let got = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..INSTANCES {
        let mut sub = nats[i % n]
            .queue_subscribe("pool.*", "pool".into())
            .await
            .unwrap();
        let (got, done) = (got.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let r: Reading = rmp_serde::from_slice(&m.payload).unwrap();
                std::hint::black_box(&r);
                if got.fetch_add(1, Ordering::Relaxed) + 1 == *MESSAGES {
                    done.notify_one();
                }
            }
        }));
    }
    for c in &nats {
        c.flush().await.unwrap();
    }
    let finished = done.notified();
    let (started, cpu) = (Instant::now(), cpu_time());
    for first in (0..*MESSAGES).step_by(100) {
        for seq in first..(first + 100).min(*MESSAGES) {
            let subject = format!("pool.s{}", seq % SUBJECTS);
            let c = &nats[(seq % SUBJECTS) as usize % n];
            c.publish_with_headers(subject, msgpack(), encoded(seq))
                .await
                .unwrap();
        }
        for c in &nats {
            c.flush().await.unwrap();
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), finished).await;
    let run = measure(started, cpu, got.load(Ordering::Relaxed));
    for t in tasks {
        t.abort();
    }
    run
}

async fn framework_pubsub(url: &str, n: usize) -> Run {
    let sink = Sink::default();
    let finished = sink.done.notified();
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .connections(n)
        .actor(sink.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client().with_codec(Codec::MsgPack);
    let (started, cpu) = (Instant::now(), cpu_time());
    for first in (0..*MESSAGES).step_by(100) {
        let batch = (first..(first + 100).min(*MESSAGES))
            .map(|seq| (format!("pool.s{}", seq % SUBJECTS), reading(seq)));
        let results = client.publish_batch(batch).await;
        assert!(results.iter().all(|r| r.is_ok()));
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), finished).await;
    let run = measure(started, cpu, sink.got.load(Ordering::Relaxed));
    runtime.shutdown().await;
    run
}

async fn raw_requests(url: &str, n: usize) -> Run {
    let nats = clients(url, n).await;
    let mut responders = Vec::new();
    for i in 0..INSTANCES {
        let c = nats[i % n].clone();
        let mut sub = c.queue_subscribe("rr.*", "pool".into()).await.unwrap();
        responders.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let r: Reading = rmp_serde::from_slice(&m.payload).unwrap();
                let body = Bytes::from(rmp_serde::to_vec_named(&r).unwrap());
                if let Some(reply) = m.reply {
                    let _ = c.publish_with_headers(reply, msgpack(), body).await;
                }
            }
        }));
    }
    for c in &nats {
        c.flush().await.unwrap();
    }
    let answered = Arc::new(AtomicU64::new(0));
    let (started, cpu) = (Instant::now(), cpu_time());
    let per_task = *REQUESTS / IN_FLIGHT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|t| {
            let c = nats[(t % SUBJECTS) as usize % n].clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let subject = format!("rr.s{}", t % SUBJECTS);
                    let req = async_nats::Request::new()
                        .headers(msgpack())
                        .payload(encoded(i))
                        .timeout(Some(Duration::from_secs(5)));
                    if let Ok(reply) = c.send_request(subject, req).await {
                        let r: Reading = rmp_serde::from_slice(&reply.payload).unwrap();
                        std::hint::black_box(&r);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let run = measure(started, cpu, answered.load(Ordering::Relaxed));
    for r in responders {
        r.abort();
    }
    run
}

async fn framework_requests(url: &str, n: usize) -> Run {
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .connections(n)
        .actor(Sink::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client().with_codec(Codec::MsgPack);
    let answered = Arc::new(AtomicU64::new(0));
    let (started, cpu) = (Instant::now(), cpu_time());
    let per_task = *REQUESTS / IN_FLIGHT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|t| {
            let client = client.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let subject = format!("rr.s{}", t % SUBJECTS);
                    if let Ok(r) = client.request::<Reading, _>(&subject, &reading(i)).await {
                        std::hint::black_box(&r);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let run = measure(started, cpu, answered.load(Ordering::Relaxed));
    runtime.shutdown().await;
    run
}

fn report(label: &str, raw: &[Run], fw: &[Run]) {
    let r = median(raw.iter().map(|x| x.rate).collect());
    let f = median(fw.iter().map(|x| x.rate).collect());
    let rc = median(raw.iter().map(|x| x.cpu_us).collect());
    let fc = median(fw.iter().map(|x| x.cpu_us).collect());
    println!(
        "{label}: raw {r:.0}/s ({rc:.2} us CPU), nats-actors {f:.0}/s ({fc:.2} us CPU): {:.3} x raw",
        f / r
    );
}

#[tokio::main]
async fn main() {
    let server = nats_actors::testing::NatsServer::builder()
        .jetstream(false)
        .start()
        .expect("start nats-server");
    let url = server.url();
    println!(
        "nats-actors pool bench: pub/sub {} messages, request/reply {} requests ({IN_FLIGHT} in flight), {} rounds, median\n",
        *MESSAGES, *REQUESTS, *ROUNDS
    );
    for n in [1usize, 2, 4] {
        let (mut raw, mut fw) = (Vec::new(), Vec::new());
        for round in 0..*ROUNDS {
            let a = raw_pubsub(&url, n).await;
            let b = framework_pubsub(&url, n).await;
            println!(
                "{n} connection(s), pub/sub round {round}: raw {:.0}/s (received {}), nats-actors {:.0}/s (received {})",
                a.rate, a.count, b.rate, b.count
            );
            raw.push(a);
            fw.push(b);
        }
        report(&format!("{n} connection(s), pub/sub"), &raw, &fw);
        let (mut raw, mut fw) = (Vec::new(), Vec::new());
        for round in 0..*ROUNDS {
            let a = raw_requests(&url, n).await;
            let b = framework_requests(&url, n).await;
            println!(
                "{n} connection(s), request/reply round {round}: raw {:.0}/s (answered {}), nats-actors {:.0}/s (answered {})",
                a.rate, a.count, b.rate, b.count
            );
            raw.push(a);
            fw.push(b);
        }
        report(&format!("{n} connection(s), request/reply"), &raw, &fw);
    }
}
