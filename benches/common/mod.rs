//! What the benches share: CPU time of the process, medians, and counts from the environment.

use std::time::Duration;

/// CPU time (user + sys) of this process, all its threads, to the nanosecond (`/proc`'s
/// figures count in 10 ms ticks: too coarse for a fraction of a microsecond per message).
pub fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The median of `v` (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The positive whole number in environment variable `name`, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A throwaway nats-server (JetStream in a temp dir, stopped when it is dropped), its URL, a
/// connection to it and the connection's JetStream context.
#[allow(dead_code)] // the core benches need no JetStream
pub async fn jetstream_server() -> (
    nats_actors::testing::NatsServer,
    String,
    async_nats::Client,
    async_nats::jetstream::Context,
) {
    let server = nats_actors::testing::NatsServer::start().expect("start nats-server");
    let url = server.url();
    let nats = async_nats::connect(&url)
        .await
        .expect("connect to nats-server");
    let js = async_nats::jetstream::new(nats.clone());
    (server, url, nats, js)
}

/// Creates KV buckets `names`, each keeping one value per key.
#[allow(dead_code)] // the core and JetStream benches use no bucket
pub async fn buckets(js: &async_nats::jetstream::Context, names: &[&str]) {
    for bucket in names {
        js.create_key_value(async_nats::jetstream::kv::Config {
            bucket: bucket.to_string(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("create a KV bucket");
    }
}

/// One measured round: its rate, what it counted (received, acked or stored), and the
/// process's CPU time per message.
#[allow(dead_code)] // not every bench counts this way
#[derive(Default)]
pub struct Run {
    pub rate: f64,
    pub count: u64,
    pub cpu_us: f64,
}

/// The round that started at `started` (CPU time then: `cpu`) and counted `count`.
#[allow(dead_code)]
pub fn measure(started: std::time::Instant, cpu: Duration, count: u64) -> Run {
    Run {
        rate: count as f64 / started.elapsed().as_secs_f64(),
        count,
        cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / count.max(1) as f64,
    }
}

/// The 128-byte event the JetStream and batch benches send (MessagePack).
#[allow(dead_code)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub seq: u64,
    pub kind: String,
    pub body: String,
}

/// Event number `seq`.
#[allow(dead_code)]
pub fn event(seq: u64) -> Event {
    Event {
        seq,
        kind: "order.created".into(),
        body: "x".repeat(90),
    }
}
