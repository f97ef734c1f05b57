//! With the collector unreachable, handlers answer as usual and shutdown does not hang.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{connect, server};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("down.echo")]
    async fn echo(&self, n: u32) -> u32 {
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_stops_neither_handling_nor_shutdown() {
    // A loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "500");
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    let guard = nats_actors::telemetry::init("collector-down").expect("telemetry");

    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Echo)
        .start()
        .await
        .unwrap();
    for n in 0..50u32 {
        let back: u32 = runtime.client().request("down.echo", &n).await.unwrap();
        assert_eq!(back, n);
    }
    // Let a few exports fail while the runtime runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    runtime.shutdown().await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "shutdown with the collector down took {:?}",
        t.elapsed()
    );
}
