//! Core NATS only: the build `default-features = false` gives (no JetStream, no Service API).
//! A subscription and a request handler on a throwaway local nats-server; exits non-zero if a
//! message goes missing.
//!
//! `cargo run -p nats-actors --no-default-features --features testing --example slim`

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::prelude::*;

#[derive(Actor, Clone, Default)]
struct Counter {
    seen: Arc<AtomicU64>,
}

#[handlers]
impl Counter {
    #[subscribe("slim.events")]
    async fn on_event(&self, n: u64) {
        self.seen.fetch_add(n, SeqCst);
    }

    #[request("slim.double")]
    async fn double(&self, n: u64) -> u64 {
        n * 2
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = nats_actors::testing::NatsServer::builder()
        .jetstream(false)
        .start()?;
    let counter = Counter::default();
    let runtime = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new([server.url()]))
        .actor(counter.clone())
        .start()
        .await?;
    let client = runtime.client();
    let doubled: u64 = client.request("slim.double", &21u64).await?;
    for n in 1..=100u64 {
        client.publish("slim.events", &n).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.seen.load(SeqCst) < 5050 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runtime.shutdown().await;
    let seen = counter.seen.load(SeqCst);
    println!("request: 21 -> {doubled}; events summed to {seen} (expected 5050)");
    if doubled != 42 || seen != 5050 {
        return Err("a message went missing".into());
    }
    Ok(())
}
