//! KV and object stores, side by side with raw async-nats in the same run, against one real
//! nats-server (file storage in a temp dir):
//!
//! 1. KV put: `Kv<u64>::put` (JSON, a send span, the ack) vs raw `Store::put` of the same
//!    bytes, one at a time;
//! 2. KV get: `Kv<u64>::get` (decode, a request span) vs raw `Store::get`, one at a time;
//! 3. watch: 20,000 keys, one revision each, handled by a `#[kv_watch(from = "all_history")]` handler vs
//!    read by raw `Store::watch_all_from_revision(1)`;
//! 4. a 64 MiB object put and got: `ObjectStore::put`/`get` vs raw async-nats' object store,
//!    MiB/s and the peak rise of resident memory (sampled every 5 ms) during each.
//!
//! Run: `cargo bench --bench kv_objects`. Rounds alternate raw and framework; medians are
//! reported; compare only within one run. Each round prints its count: a fast round that lost
//! something is a failed one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::kv::KvEntry;
use nats_actors::objects::ObjectStoreConfig;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{buckets, cpu_time, env_or, jetstream_server, median};

/// Operations per KV round (`BENCH_KV_OPS`, 5,000), revisions watched (`BENCH_KV_WATCH`,
/// 20,000), rounds (`BENCH_KV_ROUNDS`, 3), object size in MiB (`BENCH_OBJECT_MIB`, 64).
static OPS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_KV_OPS", 5_000));
static WATCHED: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_KV_WATCH", 20_000));
static ROUNDS: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_KV_ROUNDS", 3));
static OBJECT_MIB: LazyLock<u64> = LazyLock::new(|| env_or("BENCH_OBJECT_MIB", 64));

struct Run {
    rate: f64,
    cpu_us: f64,
    /// Peak rise of resident memory, MiB (object rounds only).
    rss_mib: f64,
}

fn measure(started: Instant, cpu: Duration, count: u64) -> Run {
    Run {
        rate: count as f64 / started.elapsed().as_secs_f64(),
        cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / count.max(1) as f64,
        rss_mib: 0.0,
    }
}

fn report(label: &str, unit: &str, raw: &[Run], fw: &[Run]) -> f64 {
    let m = |runs: &[Run], f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let (r, f) = (m(raw, |x| x.rate), m(fw, |x| x.rate));
    let (rc, fc) = (m(raw, |x| x.cpu_us), m(fw, |x| x.cpu_us));
    let rss = match m(fw, |x| x.rss_mib) > 0.0 {
        true => format!(
            "; peak RSS +{:.1} MiB raw, +{:.1} MiB nats-actors",
            m(raw, |x| x.rss_mib),
            m(fw, |x| x.rss_mib)
        ),
        false => String::new(),
    };
    println!(
        "{label}: raw {r:.1} {unit} ({rc:.1} us CPU/op), nats-actors {f:.1} {unit} ({fc:.1} us CPU/op): {:.2} x raw{rss}",
        f / r
    );
    f / r
}

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Runs `op`, sampling the resident set every 5 ms; returns its output and the peak rise, MiB.
async fn peak_rise<T>(op: impl std::future::Future<Output = T>) -> (T, f64) {
    let start = rss();
    let peak = Arc::new(AtomicU64::new(start));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let out = op.await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let rise = peak.load(Ordering::Relaxed).saturating_sub(start);
    (out, rise as f64 / (1 << 20) as f64)
}

#[derive(Actor, Clone, Default)]
struct Watcher {
    seen: Arc<AtomicU64>,
}

#[handlers]
impl Watcher {
    #[kv_watch(bucket = "watched", from = "all_history")]
    async fn changed(&self, _entry: KvEntry<u64>) {
        self.seen.fetch_add(1, Ordering::Relaxed);
    }
}

async fn kv_rounds(client: &Client, raw: &async_nats::jetstream::kv::Store) {
    let kv = client.kv::<u64>("bench").await.unwrap();
    let (mut raw_puts, mut fw_puts, mut raw_gets, mut fw_gets) = (vec![], vec![], vec![], vec![]);
    for round in 0..*ROUNDS {
        let (started, cpu) = (Instant::now(), cpu_time());
        for n in 0..*OPS {
            raw.put(format!("k{}", n % 100), Bytes::from(n.to_string()))
                .await
                .unwrap();
        }
        raw_puts.push(measure(started, cpu, *OPS));
        let (started, cpu) = (Instant::now(), cpu_time());
        for n in 0..*OPS {
            kv.put(&format!("k{}", n % 100), &n).await.unwrap();
        }
        fw_puts.push(measure(started, cpu, *OPS));
        let (started, cpu) = (Instant::now(), cpu_time());
        let mut found = 0;
        for n in 0..*OPS {
            found += raw.get(format!("k{}", n % 100)).await.unwrap().is_some() as u64;
        }
        raw_gets.push(measure(started, cpu, found));
        let (started, cpu) = (Instant::now(), cpu_time());
        let mut typed = 0;
        for n in 0..*OPS {
            typed += kv.get(&format!("k{}", n % 100)).await.unwrap().is_some() as u64;
        }
        fw_gets.push(measure(started, cpu, typed));
        println!(
            "kv round {round}: {} puts each, gets found raw {found}, nats-actors {typed}",
            *OPS
        );
    }
    report("KV put", "ops/s", &raw_puts, &fw_puts);
    report("KV get", "ops/s", &raw_gets, &fw_gets);
}

async fn watch_rounds(url: &str, raw: &async_nats::jetstream::kv::Store) {
    for n in 0..*WATCHED {
        // Stored before the rounds: the watch, not the writes, is measured.
        raw.put(format!("w{n}"), Bytes::from(n.to_string()))
            .await
            .unwrap();
    }
    let (mut raws, mut fws) = (vec![], vec![]);
    for round in 0..*ROUNDS {
        let (started, cpu) = (Instant::now(), cpu_time());
        let mut watch = raw.watch_all_from_revision(1).await.unwrap();
        let mut seen = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < *WATCHED && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
                Ok(Some(Ok(_))) => seen += 1,
                _ => break,
            }
        }
        raws.push(measure(started, cpu, seen));
        drop(watch);
        let watcher = Watcher::default();
        let (started, cpu) = (Instant::now(), cpu_time());
        let runtime = Runtime::builder()
            .connect(ConnectOptions::new([url]))
            .actor(watcher.clone())
            .start()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while watcher.seen.load(Ordering::Relaxed) < *WATCHED && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let handled = watcher.seen.load(Ordering::Relaxed);
        fws.push(measure(started, cpu, handled));
        runtime.shutdown().await;
        println!(
            "watch round {round}: raw saw {seen}, nats-actors handled {handled} of {}",
            *WATCHED
        );
    }
    report("KV watch", "revisions/s", &raws, &fws);
}

async fn object_rounds(client: &Client, js: &async_nats::jetstream::Context) {
    let size = (*OBJECT_MIB << 20) as usize;
    let raw = js.get_object_store("objects").await.unwrap();
    let store = client.objects("objects").await.unwrap();
    let mib = *OBJECT_MIB as f64;
    let (mut raw_puts, mut fw_puts, mut raw_gets, mut fw_gets) = (vec![], vec![], vec![], vec![]);
    let timed = |started: Instant, cpu: Duration, rss_mib: f64| {
        let secs = started.elapsed().as_secs_f64();
        Run {
            rate: mib / secs,
            cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / (size / (128 * 1024)) as f64,
            rss_mib,
        }
    };
    for round in 0..*ROUNDS {
        let (started, cpu) = (Instant::now(), cpu_time());
        let mut data = tokio::io::repeat(7).take(size as u64);
        let (info, rise) = peak_rise(raw.put("raw.bin", &mut data)).await;
        assert_eq!(info.unwrap().size, size);
        raw_puts.push(timed(started, cpu, rise));
        let (started, cpu) = (Instant::now(), cpu_time());
        let mut data = tokio::io::repeat(7).take(size as u64);
        let (info, rise) = peak_rise(store.put("fw.bin", &mut data)).await;
        assert_eq!(info.unwrap().size, size);
        fw_puts.push(timed(started, cpu, rise));

        let (started, cpu) = (Instant::now(), cpu_time());
        let (read, rise) = peak_rise(async {
            let mut object = raw.get("raw.bin").await.unwrap();
            tokio::io::copy(&mut object, &mut tokio::io::sink())
                .await
                .unwrap()
        })
        .await;
        raw_gets.push(timed(started, cpu, rise));
        let (started, cpu) = (Instant::now(), cpu_time());
        let (got, rise) = peak_rise(async {
            let mut object = store.get("fw.bin").await.unwrap().into_async_read();
            let mut sink = tokio::io::sink();
            let n = tokio::io::copy(&mut object, &mut sink).await.unwrap();
            sink.flush().await.unwrap();
            n
        })
        .await;
        fw_gets.push(timed(started, cpu, rise));
        println!("object round {round}: read raw {read} B, nats-actors {got} B of {size}");
        assert_eq!((read as usize, got as usize), (size, size), "a short read");
    }
    report("object put", "MiB/s", &raw_puts, &fw_puts);
    report("object get", "MiB/s", &raw_gets, &fw_gets);
}

#[tokio::main]
async fn main() {
    let (_server, url, nats, js) = jetstream_server().await;
    let client = Client::new(nats.clone());
    buckets(&js, &["bench", "watched"]).await;
    js.create_object_store(ObjectStoreConfig {
        bucket: "objects".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    println!(
        "nats-actors KV and object store bench: {} KV ops, {} revisions watched, a {} MiB object, {} rounds, median\n",
        *OPS, *WATCHED, *OBJECT_MIB, *ROUNDS
    );
    let raw = js.get_key_value("bench").await.unwrap();
    kv_rounds(&client, &raw).await;
    let watched = js.get_key_value("watched").await.unwrap();
    watch_rounds(&url, &watched).await;
    object_rounds(&client, &js).await;
}
