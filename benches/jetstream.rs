//! JetStream, side by side with raw async-nats in the same run, against one real nats-server
//! (file storage in a temp dir):
//!
//! 1. consume + explicit ack: a typed `#[consumer]` handler (MessagePack decode, ack from the
//!    result) vs a raw async-nats pull consumer that decodes the same way and acks;
//! 2. pipelined publish with 256 acks outstanding: `Client::js_publish_pipelined` (typed,
//!    encoded) vs raw `jetstream.publish` of the same encoded bytes with an ack window.
//!
//! Run: `cargo bench --bench jetstream` (or `make bench`). Rounds alternate raw and framework
//! (the publish rounds in turn forwards and backwards); a ratio is the median over rounds of
//! the two sides' rates in the same round; compare only within one run. Each round prints how many messages were
//! acked or stored: a fast round that lost messages is a failed one.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use nats_actors::jetstream::{JsPublish, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;
use tokio::sync::Notify;

mod common;
use common::{cpu_time, env_or, event, jetstream_server, measure, median, Event, Run};

/// Messages per round (`BENCH_JS_MESSAGES`, default 50,000) and rounds (`BENCH_JS_ROUNDS`, 9):
/// fewer for a run under callgrind, with `BENCH_JS_CASES=publish` to skip the consume case and
/// `BENCH_JS_PUBLISHERS` (of `raw,raw_ct,fw`, default all) to run one publisher at a time and
/// compare the instructions of the whole process per message.
static MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_JS_MESSAGES", 50_000));
static ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_JS_ROUNDS", 9));

const WINDOW: usize = 256;

#[derive(Actor, Clone)]
#[actor(codec = "msgpack")]
struct Sink {
    got: Arc<AtomicU64>,
    done: Arc<Notify>,
}

#[handlers]
impl Sink {
    #[consumer(stream = "BENCH", durable = "fw", filter = "bench.events")]
    async fn on_event(&self, event: Event) {
        std::hint::black_box(&event);
        if self.got.fetch_add(1, Ordering::Relaxed) + 1 == *MESSAGES {
            self.done.notify_one();
        }
    }
}

async fn raw_consume(js: &async_nats::jetstream::Context) -> Run {
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
    let mut messages = consumer.messages().await.unwrap();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < *MESSAGES && Instant::now() < deadline {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
        else {
            continue;
        };
        let event: Event = rmp_serde::from_slice(&msg.payload).unwrap();
        std::hint::black_box(&event);
        msg.ack().await.unwrap();
        count += 1;
    }
    let run = measure(started, cpu, count);
    drop(messages);
    stream.delete_consumer("raw").await.unwrap();
    run
}

async fn framework_consume(url: &str, js: &async_nats::jetstream::Context) -> Run {
    let sink = Sink {
        got: Arc::default(),
        done: Arc::default(),
    };
    let done = sink.done.notified();
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(sink.clone())
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
        .delete_consumer("fw")
        .await
        .unwrap();
    run
}

/// Raw publishes; with `content_type`, each carries the same `Content-Type` header as the
/// framework's (the same message on the wire).
async fn raw_publish(js: &async_nats::jetstream::Context, content_type: bool) -> Run {
    let (started, cpu) = (Instant::now(), cpu_time());
    let mut acks = FuturesOrdered::new();
    let mut stored = 0;
    for seq in 0..*MESSAGES {
        let payload = Bytes::from(rmp_serde::to_vec_named(&event(seq)).unwrap());
        let ack = if content_type {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/msgpack");
            js.publish_with_headers("bench.pub", headers, payload).await
        } else {
            js.publish("bench.pub", payload).await
        };
        acks.push_back(ack.unwrap().into_future());
        while acks.len() >= WINDOW {
            stored += u64::from(acks.next().await.unwrap().is_ok());
        }
    }
    while let Some(ack) = acks.next().await {
        stored += u64::from(ack.is_ok());
    }
    measure(started, cpu, stored)
}

async fn framework_publish(client: &Client) -> Run {
    let (started, cpu) = (Instant::now(), cpu_time());
    let events = (0..*MESSAGES).map(|seq| ("bench.pub", event(seq)));
    let results = client
        .js_publish_pipelined(events, WINDOW, &JsPublish::new())
        .await;
    let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
    measure(started, cpu, stored)
}

/// Runs `publish` when `on` (then empties the subject again), else an empty run.
async fn publisher(
    on: bool,
    publish: impl std::future::Future<Output = Run>,
    stream: &async_nats::jetstream::stream::Stream,
) -> Run {
    if !on {
        return Run::default();
    }
    let run = publish.await;
    stream.purge().filter("bench.pub").await.unwrap();
    run
}

/// Prints the medians of both sides and returns the median over rounds of nats-actors' rate
/// over raw's in the same round (rounds next to each other share the machine's state, which
/// drifts).
fn report(label: &str, raw: &[Run], fw: &[Run]) -> f64 {
    let r = median(raw.iter().map(|x| x.rate).collect());
    let f = median(fw.iter().map(|x| x.rate).collect());
    let rc = median(raw.iter().map(|x| x.cpu_us).collect());
    let fc = median(fw.iter().map(|x| x.cpu_us).collect());
    let ratio = median(raw.iter().zip(fw).map(|(r, f)| f.rate / r.rate).collect());
    println!(
        "{label}: raw {r:.0}/s ({rc:.2} us CPU/msg), nats-actors {f:.0}/s ({fc:.2} us CPU/msg): {ratio:.2} x raw (median of the rounds' ratios)"
    );
    ratio
}

#[tokio::main]
async fn main() {
    let (_server, url, nats, js) = jetstream_server().await;
    let client = Client::new(nats.clone()).with_codec(Codec::MsgPack);
    js.create_stream(StreamConfig {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    println!(
        "nats-actors JetStream bench: {} x 128 B per round, {} rounds, median\n",
        *MESSAGES, *ROUNDS
    );

    // The messages both consumers read, stored once.
    let loaded = raw_publish(&js, false).await;
    let stream = js.get_stream("BENCH").await.unwrap();
    let events = stream.get_info().await.unwrap().state.messages;
    assert_eq!(
        events, *MESSAGES,
        "preload stored {} messages",
        loaded.count
    );
    // Moved to bench.events so that the publish rounds below do not mix with it.
    let mut acks = FuturesOrdered::new();
    for seq in 0..*MESSAGES {
        let payload = Bytes::from(rmp_serde::to_vec_named(&event(seq)).unwrap());
        acks.push_back(
            js.publish("bench.events", payload)
                .await
                .unwrap()
                .into_future(),
        );
        while acks.len() >= WINDOW {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
    stream.purge().filter("bench.pub").await.unwrap();

    let cases = std::env::var("BENCH_JS_CASES").unwrap_or_default();
    let consume = !cases.contains("publish") || cases.contains("consume");
    let (mut raw, mut fw) = (Vec::new(), Vec::new());
    for round in 0..*ROUNDS {
        if !consume {
            break;
        }
        let a = raw_consume(&js).await;
        let b = framework_consume(&url, &js).await;
        println!(
            "consume round {round}: raw {:.0}/s (acked {}), nats-actors {:.0}/s (acked {})",
            a.rate, a.count, b.rate, b.count
        );
        raw.push(a);
        fw.push(b);
    }
    let consume = match consume {
        true => report("consume + ack", &raw, &fw),
        false => f64::NAN,
    };

    let publishers = std::env::var("BENCH_JS_PUBLISHERS").unwrap_or("raw,raw_ct,fw".into());
    let publishers: Vec<&str> = publishers.split(',').collect();
    let (mut raw, mut raw_ct, mut fw) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..*ROUNDS {
        let on = |name| publishers.contains(&name);
        // Every other round the other way round, so that no side always goes first.
        let (a, b, c) = if round % 2 == 0 {
            let a = publisher(on("raw"), raw_publish(&js, false), &stream).await;
            let b = publisher(on("raw_ct"), raw_publish(&js, true), &stream).await;
            let c = publisher(on("fw"), framework_publish(&client), &stream).await;
            (a, b, c)
        } else {
            let c = publisher(on("fw"), framework_publish(&client), &stream).await;
            let b = publisher(on("raw_ct"), raw_publish(&js, true), &stream).await;
            let a = publisher(on("raw"), raw_publish(&js, false), &stream).await;
            (a, b, c)
        };
        println!(
            "publish round {round}: raw {:.0}/s (stored {}), raw + Content-Type {:.0}/s (stored {}), nats-actors {:.0}/s (stored {})",
            a.rate, a.count, b.rate, b.count, c.rate, c.count
        );
        raw.push(a);
        raw_ct.push(b);
        fw.push(c);
    }
    let publish = report("pipelined publish", &raw, &fw);
    let same_wire = report("pipelined publish, same message", &raw_ct, &fw);
    println!("\nratios to raw async-nats: consume+ack {consume:.2}, pipelined publish {publish:.2} ({same_wire:.2} against raw with the same Content-Type header)");
}
