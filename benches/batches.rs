//! Batches, side by side with raw async-nats in the same run, against one real nats-server
//! (JetStream in a temp dir):
//!
//! 1. consume + ack of a stored stream: a `Batch<T>` handler (`batch = 100`), a one-at-a-time
//!    `#[consumer]` handler, and a raw async-nats pull consumer fetching 100 at a time, each
//!    decoding every message (MessagePack) and acking it;
//! 2. core publish of 100-message batches: `publish_batch` (typed, one flush a batch) vs raw
//!    `publish` of the same encoded bytes and one `flush` a batch, received by a raw subscriber.
//!
//! Run: `cargo bench --bench batches`. Rounds alternate; medians are reported; every round
//! prints how many messages were acked or received: a fast round that lost messages failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::jetstream::{Batch, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::{ConnectOptions, Sender};
use tokio::sync::Notify;

mod common;
use common::{cpu_time, env_or, event, jetstream_server, measure, median, Event, Run};

/// Messages per round (`BENCH_BATCH_MESSAGES`, default 50,000) and rounds (`BENCH_BATCH_ROUNDS`, 5).
static MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_BATCH_MESSAGES", 50_000));
static ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_BATCH_ROUNDS", 5));

/// Messages per batch, in every case.
const BATCH: usize = 100;

#[derive(Actor, Clone, Default)]
#[actor(codec = "msgpack")]
struct Sink {
    got: Arc<AtomicU64>,
    done: Arc<Notify>,
}

impl Sink {
    fn count(&self, n: u64) {
        if self.got.fetch_add(n, Ordering::Relaxed) + n >= *MESSAGES {
            self.done.notify_one();
        }
    }
}

#[handlers]
impl Sink {
    #[consumer(stream = "BENCH", durable = "one", filter = "bench.events")]
    async fn one(&self, event: Event) {
        std::hint::black_box(&event);
        self.count(1);
    }
}

#[derive(Actor, Clone, Default)]
#[actor(codec = "msgpack")]
struct BatchSink(Sink);

#[handlers]
impl BatchSink {
    #[consumer(
        stream = "BENCH",
        durable = "batched",
        filter = "bench.events",
        batch = 100,
        batch_wait = "20ms"
    )]
    async fn batched(&self, events: Batch<Event>) {
        std::hint::black_box(&events);
        self.0.count(events.len() as u64);
    }
}

async fn raw_fetch(js: &async_nats::jetstream::Context) -> Run {
    let stream = js.get_stream("BENCH").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            filter_subject: "bench.events".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (started, cpu) = (Instant::now(), cpu_time());
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < *MESSAGES && Instant::now() < deadline {
        let Ok(mut batch) = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            continue;
        };
        let mut taken = Vec::with_capacity(BATCH);
        while let Some(Ok(msg)) = batch.next().await {
            let event: Event = rmp_serde::from_slice(&msg.payload).unwrap();
            taken.push((event, msg));
        }
        std::hint::black_box(&taken);
        for (_, msg) in &taken {
            msg.ack().await.unwrap();
        }
        count += taken.len() as u64;
    }
    let run = measure(started, cpu, count);
    stream.delete_consumer("raw").await.unwrap();
    run
}

async fn framework_consume<A: nats_actors::Actor>(
    url: &str,
    js: &async_nats::jetstream::Context,
    actor: A,
    sink: &Sink,
    durable: &str,
) -> Run {
    let done = sink.done.notified();
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(actor)
        .start()
        .await
        .unwrap();
    let (started, cpu) = (Instant::now(), cpu_time());
    let _ = tokio::time::timeout(Duration::from_secs(60), done).await;
    let run = measure(started, cpu, sink.got.load(Ordering::Relaxed));
    runtime.shutdown().await;
    js.get_stream("BENCH")
        .await
        .unwrap()
        .delete_consumer(durable)
        .await
        .unwrap();
    run
}

/// Counts what a raw subscriber on `bench.core` receives until `expected`, or 30 s.
async fn received(sub: &mut async_nats::Subscriber, expected: u64) -> u64 {
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got < expected {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    got
}

async fn raw_publish(nats: &async_nats::Client, sub: &mut async_nats::Subscriber) -> Run {
    let (started, cpu) = (Instant::now(), cpu_time());
    let receiving = received(sub, *MESSAGES);
    let sending = async {
        for first in (0..*MESSAGES).step_by(BATCH) {
            for seq in first..(first + BATCH as u64).min(*MESSAGES) {
                let payload = Bytes::from(rmp_serde::to_vec_named(&event(seq)).unwrap());
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Content-Type", "application/msgpack");
                nats.publish_with_headers("bench.core", headers, payload)
                    .await
                    .unwrap();
            }
            nats.flush().await.unwrap();
        }
    };
    let (got, ()) = tokio::join!(receiving, sending);
    measure(started, cpu, got)
}

async fn framework_publish(client: &Client, sub: &mut async_nats::Subscriber) -> Run {
    let (started, cpu) = (Instant::now(), cpu_time());
    let receiving = received(sub, *MESSAGES);
    let sending = async {
        for first in (0..*MESSAGES).step_by(BATCH) {
            let last = (first + BATCH as u64).min(*MESSAGES);
            let results = client
                .publish_batch((first..last).map(|seq| ("bench.core", event(seq))))
                .await;
            assert!(results.iter().all(|r| r.is_ok()));
        }
    };
    let (got, ()) = tokio::join!(receiving, sending);
    measure(started, cpu, got)
}

fn summary(label: &str, runs: &[Run]) -> (f64, f64) {
    let rate = median(runs.iter().map(|x| x.rate).collect());
    let cpu = median(runs.iter().map(|x| x.cpu_us).collect());
    println!("{label}: {rate:.0}/s, {cpu:.2} us CPU/msg");
    (rate, cpu)
}

#[tokio::main]
async fn main() {
    let (_server, url, nats, js) = jetstream_server().await;
    js.create_stream(StreamConfig {
        name: "BENCH".into(),
        subjects: vec!["bench.events".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    println!(
        "nats-actors batch bench: {} x 128 B per round, batches of {BATCH}, {} rounds, median\n",
        *MESSAGES, *ROUNDS
    );
    // The stream every consumer reads, stored once.
    let mut acks = futures::stream::FuturesOrdered::new();
    for seq in 0..*MESSAGES {
        let payload = Bytes::from(rmp_serde::to_vec_named(&event(seq)).unwrap());
        acks.push_back(std::future::IntoFuture::into_future(
            js.publish("bench.events", payload).await.unwrap(),
        ));
        while acks.len() >= 256 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }

    // `BENCH_BATCH_CASES=publish` (or `consume`) runs one case only, e.g. under a profiler.
    let cases = std::env::var("BENCH_BATCH_CASES").unwrap_or_default();
    let (consume, publish) = (!cases.contains("publish"), !cases.contains("consume"));
    let (mut raw, mut one, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..*ROUNDS * u64::from(consume) {
        let a = raw_fetch(&js).await;
        let sink = Sink::default();
        let b = framework_consume(&url, &js, sink.clone(), &sink, "one").await;
        let batch = BatchSink::default();
        let c = framework_consume(&url, &js, batch.clone(), &batch.0, "batched").await;
        println!(
            "consume round {round}: raw fetch {:.0}/s (acked {}), one at a time {:.0}/s (acked {}), Batch<T> {:.0}/s (acked {})",
            a.rate, a.count, b.rate, b.count, c.rate, c.count
        );
        raw.push(a);
        one.push(b);
        batched.push(c);
    }
    let (r, o, b) = match consume {
        true => (
            summary("raw fetch of 100 + ack", &raw).0,
            summary("#[consumer], one at a time", &one).0,
            summary("#[consumer] taking Batch<T> of 100", &batched).0,
        ),
        false => (f64::NAN, f64::NAN, f64::NAN),
    };

    let client = Client::new(nats.clone()).with_codec(Codec::MsgPack);
    let listener = async_nats::connect(&url).await.unwrap();
    let mut sub = listener.subscribe("bench.core").await.unwrap();
    listener.flush().await.unwrap();
    let (mut raw_pub, mut fw_pub) = (Vec::new(), Vec::new());
    for round in 0..*ROUNDS * u64::from(publish) {
        let a = raw_publish(&nats, &mut sub).await;
        let c = framework_publish(&client, &mut sub).await;
        println!(
            "publish round {round}: raw {:.0}/s (received {}), publish_batch {:.0}/s (received {})",
            a.rate, a.count, c.rate, c.count
        );
        raw_pub.push(a);
        fw_pub.push(c);
    }
    let (rp, fp) = match publish {
        true => (
            summary("raw publish x100 + flush", &raw_pub).0,
            summary("publish_batch of 100", &fw_pub).0,
        ),
        false => (f64::NAN, f64::NAN),
    };
    println!(
        "\nratios: Batch<T> / raw fetch {:.2}, one at a time / raw fetch {:.2}, Batch<T> / one at a time {:.2}; publish_batch / raw {:.2}",
        b / r,
        o / r,
        b / o,
        fp / rp
    );
}
