//! No silent loss: every message the client receives for a handler is handed to it or counted
//! as dropped, exactly, when a flood overruns the handler's buffer.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors::{Buffer, Runtime};
use nats_actors_suite::{connect, logs, nats, server};

#[derive(Actor)]
struct Sluggish;

#[handlers]
impl Sluggish {
    #[subscribe("flood.sub", buffer = 1000)]
    async fn take(&self, _n: u32) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[request("flood.req", buffer = 1000)]
    async fn answer(&self, n: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        n
    }

    /// Busy without ever waiting: its buffer is filled (and bounded) between messages.
    #[subscribe("flood.busy", buffer = 1000)]
    async fn crunch(&self, _n: u32) {
        std::thread::sleep(Duration::from_micros(100));
    }

    #[subscribe("flood.bytes", buffer = "256KiB")]
    async fn take_bytes(&self, _body: nats_actors::Bytes) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `(received, dropped)` of one handler.
fn counts(runtime: &Runtime, handler: &str) -> (u64, u64) {
    let h = runtime.stats().handler(handler).expect("the handler runs");
    (h.received, h.dropped)
}

/// Floods `subject` with `n` messages of `payload` from a raw client (with a reply subject
/// nobody reads when `request`), then waits until the handler has received or dropped every
/// one; returns `(received, dropped)` for the round. Fails the test past 60 s.
async fn flood(
    runtime: &Runtime,
    raw: &async_nats::Client,
    handler: &str,
    subject: &'static str,
    payload: bytes::Bytes,
    n: u64,
    request: bool,
) -> (u64, u64) {
    let (r0, d0) = counts(runtime, handler);
    for _ in 0..n {
        if request {
            raw.publish_with_reply(subject, "flood.nobody", payload.clone())
                .await
                .unwrap();
        } else {
            raw.publish(subject, payload.clone()).await.unwrap();
        }
    }
    raw.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (r, d) = counts(runtime, handler);
        let (received, dropped) = (r - r0, d - d0);
        if received + dropped >= n || Instant::now() > deadline {
            return (received, dropped);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn five_floods(
    handler: &str,
    subject: &'static str,
    payload: &'static [u8],
    n: u64,
    request: bool,
) {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Sluggish)
        .start()
        .await
        .unwrap();
    let raw = nats(&server).await;
    let mut dropped_in_all = 0;
    for round in 1..=5 {
        let (received, dropped) = flood(
            &runtime,
            &raw,
            handler,
            subject,
            bytes::Bytes::from_static(payload),
            n,
            request,
        )
        .await;
        assert_eq!(
            received + dropped,
            n,
            "round {round}: received {received} + dropped {dropped} != published {n}"
        );
        assert!(
            dropped > 0 && received > 0,
            "round {round}: the flood should overrun the buffer ({received} received, {dropped} dropped)"
        );
        eprintln!("{handler} round {round}: {received} received + {dropped} dropped = {n}");
        dropped_in_all += dropped;
    }
    // The runtime's total counts them too.
    assert!(runtime.stats().dropped >= dropped_in_all);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_subscription_accounts_for_every_message_five_times_out_of_five() {
    five_floods("Sluggish::take", "flood.sub", b"7", 200_000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_request_handler_accounts_for_every_request_five_times_out_of_five() {
    five_floods("Sluggish::answer", "flood.req", b"7", 200_000, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_waits_holds_its_buffer_and_accounts_the_same() {
    five_floods("Sluggish::crunch", "flood.busy", b"7", 20_000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_in_bytes_bounds_and_accounts_the_same() {
    static KIB: [u8; 1024] = [b'x'; 1024];
    five_floods("Sluggish::take_bytes", "flood.bytes", &KIB, 20_000, false).await;
}

#[derive(Actor)]
#[actor(buffer = 3)]
struct Gated {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

#[handlers]
impl Gated {
    #[subscribe("gated")]
    async fn take(&self, _n: u32) {
        let _ = self.gate.acquire().await.map(|p| p.forget());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_buffer_holds_exactly_its_size_while_the_handler_waits() {
    logs();
    let server = server();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let runtime = Runtime::builder()
        .connect(connect(&server))
        // The actor's `buffer = 3` wins over the runtime's.
        .buffer(Buffer::messages(1_000))
        .actor(Gated { gate: gate.clone() })
        .start()
        .await
        .unwrap();
    let raw = nats(&server).await;
    for n in 0..10u32 {
        raw.publish("gated", n.to_string().into()).await.unwrap();
    }
    raw.flush().await.unwrap();
    // One in the handler (waiting at the gate), three held, six dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts(&runtime, "Gated::take") != (1, 6) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts(&runtime, "Gated::take"), (1, 6));
    gate.add_permits(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts(&runtime, "Gated::take") != (4, 6) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts(&runtime, "Gated::take"), (4, 6));
    runtime.shutdown().await;
}
