//! Keyed virtual actors, side by side with a plain `#[consumer]` and raw async-nats doing the
//! same work in the same run, against one real nats-server (file storage in a temp dir): each
//! message adds to its key's count, and the count is written to a KV bucket before the message
//! is acked.
//!
//! 1. commands/s with 1, 100 and 10,000 keys: a keyed actor (`#[command]`, state saved with
//!    compare-and-set per turn, one turn at a time per key) vs a `#[consumer]` with 64 handlers
//!    at once (counts in memory, a KV put per message, no order per key) vs raw async-nats (a
//!    pull consumer, 64 messages at once, a KV put and an ack each);
//! 2. activation latency: an ask to a key never seen (its state read from the bucket first) and
//!    to a key in memory, p50 and p99;
//! 3. memory per actor in memory: the process's resident memory before and after 10,000 keys
//!    are activated.
//!
//! Run: `cargo bench --bench keyed`. Each round prints how many messages were processed (the
//! work-queue streams are empty at the end of a round, or the round says what was left): a fast
//! round that lost messages is a failed one.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use nats_actors::jetstream::{RetentionPolicy, StreamConfig};
use nats_actors::kv::Kv;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;

mod common;
use common::{buckets, cpu_time, env_or, jetstream_server, median};

/// Messages per round (`BENCH_KEYED_MESSAGES`, default 20,000) and rounds (`BENCH_KEYED_ROUNDS`, 3).
static MESSAGES: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_KEYED_MESSAGES", 20_000));
static ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_KEYED_ROUNDS", 3));
/// Messages one key can take in a round: one key is one turn at a time.
const ONE_KEY_MESSAGES: u64 = 3_000;
const CONCURRENCY: usize = 64;
const WINDOW: usize = 256;

/// The keyed actor: a count per key.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "bk.{id}", max_active = 20000)]
struct Tally {
    count: u64,
}

#[handlers]
impl Tally {
    #[command("bk.{id}.add")]
    async fn add(&mut self, n: u64) {
        self.count += n;
    }

    #[ask("bk.{id}.count")]
    async fn count(&self) -> u64 {
        self.count
    }
}

/// The plain consumer: counts in memory, each written to the bucket.
#[derive(Actor, Clone)]
struct Plain {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    bucket: Kv<u64>,
}

#[handlers]
impl Plain {
    #[consumer(stream = "PLAIN", durable = "plain", concurrency = 64)]
    async fn add(&self, n: u64, ctx: &Context) -> Result<(), HandlerError> {
        let key = ctx
            .subject()
            .split('.')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let count = {
            let mut counts = self.counts.lock().unwrap();
            let c = counts.entry(key.clone()).or_default();
            *c += n;
            *c
        };
        self.bucket
            .put(&key, &count)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
        Ok(())
    }
}

struct Run {
    rate: f64,
    count: u64,
    cpu_us: f64,
}

/// Publishes `messages` to `prefix.<key>.add` over `keys` keys, an ack window outstanding.
async fn feed(js: &async_nats::jetstream::Context, prefix: &str, keys: u64, messages: u64) {
    let mut acks = FuturesOrdered::new();
    for i in 0..messages {
        let payload = Bytes::from(serde_json::to_vec(&1u64).unwrap());
        let subject = format!("{prefix}.{}.add", i % keys);
        acks.push_back(js.publish(subject, payload).await.unwrap().into_future());
        while acks.len() >= WINDOW {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
}

/// Waits until stream `name` holds no message (every one acked), at most 120 s; returns how
/// many were left.
async fn drained(js: &async_nats::jetstream::Context, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = js
            .get_stream(name)
            .await
            .map(|s| s.cached_info().state.messages)
            .unwrap_or(u64::MAX);
        if left == 0 || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Feeds `messages` and measures until they are all acked (`work` does the acking).
async fn timed(
    js: &async_nats::jetstream::Context,
    stream: &str,
    prefix: &str,
    keys: u64,
    messages: u64,
) -> Run {
    let (started, cpu) = (Instant::now(), cpu_time());
    feed(js, prefix, keys, messages).await;
    let left = drained(js, stream).await;
    let count = messages - left.min(messages);
    Run {
        rate: count as f64 / started.elapsed().as_secs_f64(),
        count,
        cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / count.max(1) as f64,
    }
}

async fn keyed_round(url: &str, js: &async_nats::jetstream::Context, keys: u64, n: u64) -> Run {
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(Tally::default())
        .start()
        .await
        .unwrap();
    let run = timed(js, "ACTORS_Tally", "bk", keys, n).await;
    runtime.shutdown().await;
    run
}

async fn plain_round(url: &str, js: &async_nats::jetstream::Context, keys: u64, n: u64) -> Run {
    let client = Client::new(async_nats::connect(url).await.unwrap());
    let plain = Plain {
        counts: Arc::default(),
        bucket: client.kv("PLAIN_STATE").await.unwrap(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(plain)
        .start()
        .await
        .unwrap();
    let run = timed(js, "PLAIN", "plain", keys, n).await;
    runtime.shutdown().await;
    run
}

async fn raw_round(js: &async_nats::jetstream::Context, keys: u64, n: u64) -> Run {
    let stream = js.get_stream("RAW").await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "raw",
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bucket = js.get_key_value("RAW_STATE").await.unwrap();
    let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
    let work = {
        let (done, counts) = (done.clone(), counts.clone());
        tokio::spawn(async move {
            let messages = consumer.messages().await.unwrap();
            messages
                .take_while(|_| std::future::ready(done.load(Ordering::Relaxed) < n))
                .for_each_concurrent(CONCURRENCY, |m| {
                    let (bucket, counts, done) = (bucket.clone(), counts.clone(), done.clone());
                    async move {
                        let Ok(m) = m else { return };
                        let added: u64 = serde_json::from_slice(&m.payload).unwrap();
                        let key = m.subject.split('.').nth(1).unwrap_or_default().to_string();
                        let count = {
                            let mut counts = counts.lock().unwrap();
                            let c = counts.entry(key.clone()).or_default();
                            *c += added;
                            *c
                        };
                        let value = Bytes::from(serde_json::to_vec(&count).unwrap());
                        bucket.put(&key, value).await.unwrap();
                        m.ack().await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .await;
        })
    };
    let run = timed(js, "RAW", "raw", keys, n).await;
    work.abort();
    // Its pull requests go with it: the next round's messages are not sent to this one's.
    stream.delete_consumer("raw").await.unwrap();
    run
}

fn report(label: &str, keyed: &[Run], plain: &[Run], raw: &[Run]) {
    let rate = |v: &[Run]| median(v.iter().map(|x| x.rate).collect());
    let cpu = |v: &[Run]| median(v.iter().map(|x| x.cpu_us).collect());
    let (k, p, r) = (rate(keyed), rate(plain), rate(raw));
    println!(
        "{label}: keyed actor {k:.0}/s ({:.1} us CPU/msg), #[consumer] {p:.0}/s ({:.1} us), raw {r:.0}/s ({:.1} us): keyed {:.2} x raw, {:.2} x #[consumer]",
        cpu(keyed),
        cpu(plain),
        cpu(raw),
        k / r,
        k / p
    );
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::main]
async fn main() {
    let (_server, url, _nats, js) = jetstream_server().await;
    for (name, subjects) in [("PLAIN", "plain.*.add"), ("RAW", "raw.*.add")] {
        js.create_stream(StreamConfig {
            name: name.into(),
            subjects: vec![subjects.into()],
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    buckets(&js, &["PLAIN_STATE", "RAW_STATE"]).await;
    println!(
        "nats-actors keyed bench: {} messages per round ({ONE_KEY_MESSAGES} with one key), {} rounds, median\n",
        *MESSAGES, *ROUNDS
    );
    // First, while the process is fresh (memory freed later would be used again): activation,
    // asks to keys never seen and then to the same keys in memory; and memory per actor.
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url.as_str()]))
        .actor(Tally::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for k in 0..300 {
        let tally = TallyRef::new(&client, format!("fresh{k}")).unwrap();
        let t = Instant::now();
        tally.count().await.unwrap();
        cold.push(t.elapsed());
        let t = Instant::now();
        tally.count().await.unwrap();
        warm.push(t.elapsed());
    }
    println!(
        "activation (an ask to a key never seen): p50 {:?}, p99 {:?}; the next ask to it, in memory: p50 {:?}, p99 {:?}",
        percentile(cold.clone(), 0.5),
        percentile(cold, 0.99),
        percentile(warm.clone(), 0.5),
        percentile(warm, 0.99)
    );

    // Memory: 10,000 actors made by one command each.
    const ACTORS: u64 = 10_000;
    let active = || runtime.stats().keyed.first().map_or(0, |k| k.active);
    let before = (rss(), active());
    feed(&js, "bk", ACTORS, ACTORS).await;
    let _ = drained(&js, "ACTORS_Tally").await;
    let after = (rss(), active());
    let made = after.1.saturating_sub(before.1);
    println!(
        "memory: {made} more actors in memory, resident memory {:.1} MiB -> {:.1} MiB: {:.0} bytes per actor",
        before.0 as f64 / 1048576.0,
        after.0 as f64 / 1048576.0,
        after.0.saturating_sub(before.0) as f64 / made.max(1) as f64
    );
    runtime.shutdown().await;

    for keys in [1u64, 100, 10_000] {
        let n = if keys == 1 {
            ONE_KEY_MESSAGES
        } else {
            *MESSAGES
        };
        let (mut keyed, mut plain, mut raw) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..*ROUNDS {
            let a = raw_round(&js, keys, n).await;
            let b = plain_round(&url, &js, keys, n).await;
            let c = keyed_round(&url, &js, keys, n).await;
            println!(
                "{keys} keys, round {round}: raw {:.0}/s (acked {}), #[consumer] {:.0}/s (acked {}), keyed actor {:.0}/s (acked {})",
                a.rate, a.count, b.rate, b.count, c.rate, c.count
            );
            raw.push(a);
            plain.push(b);
            keyed.push(c);
        }
        report(&format!("{keys} keys"), &keyed, &plain, &raw);
    }
}
