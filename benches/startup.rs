//! 10,000 subscriptions in one runtime: how long `start` takes and what the process holds
//! (DESIGN bar: start < 2 s, RSS < 200 MB). One actor with `instances = 10000` in a queue group,
//! so every instance has its own subscription and task.
//!
//! Run: `cargo bench --bench startup`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors::testing::NatsServer;
use nats_actors::ConnectOptions;

#[derive(Actor, Clone, Default)]
#[actor(instances = 10000, queue = "many")]
struct Many {
    handled: Arc<AtomicU64>,
}

#[handlers]
impl Many {
    #[subscribe("many.work")]
    async fn work(&self, _n: u32) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = NatsServer::builder()
        .jetstream(false)
        .start()
        .expect("start nats-server");
    let before = rss_mb();
    let actor = Many::default();
    let t0 = Instant::now();
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([server.url()]))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let started = t0.elapsed();
    let subscriptions = runtime.stats().handlers.len();
    let rss = rss_mb();
    const N: u64 = 20_000;
    for n in 0..N as u32 {
        runtime.client().publish("many.work", &n).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while actor.handled.load(Ordering::Relaxed) < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = runtime
        .stats()
        .handlers
        .iter()
        .filter(|h| h.handled > 0)
        .count();
    let t1 = Instant::now();
    let report = runtime.shutdown().await;
    println!(
        "{subscriptions} subscriptions: start {:.3} s, RSS {:.1} MB (+{:.1} MB over the process before start); \
         {} of {N} messages handled by {busy} instances; shutdown {:.3} s, {} aborted",
        started.as_secs_f64(),
        rss,
        rss - before,
        actor.handled.load(Ordering::Relaxed),
        t1.elapsed().as_secs_f64(),
        report.aborted
    );
}
