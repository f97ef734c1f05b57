//! What `otlp_down.rs` and `otlp_stalled.rs` share (one process each, since telemetry is
//! installed process-wide): with the collector in trouble, handlers answer as usual and shutdown
//! does not hang.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{server, start};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("trouble.echo")]
    async fn echo(&self, n: u32) -> u32 {
        n
    }
}

/// Exports every span over gRPC to `endpoint` with a 500 ms export timeout, runs 50 requests
/// (each must be answered within 5 s), and checks that shutdown, the flush of the spans
/// included, takes less than `bound`.
pub async fn handling_and_shutdown_go_on(endpoint: String, bound: Duration) {
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "500");
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    let guard = nats_actors::telemetry::init("collector-in-trouble").expect("telemetry");

    let server = server();
    let runtime = start(&server, Echo).await;
    for n in 0..50u32 {
        let back: u32 = tokio::time::timeout(
            Duration::from_secs(5),
            runtime.client().request("trouble.echo", &n),
        )
        .await
        .expect("handling does not wait for the collector")
        .unwrap();
        assert_eq!(back, n);
    }
    // Let a few exports fail or stall while the runtime runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    runtime.shutdown().await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();
    assert!(
        t.elapsed() < bound,
        "shutdown with the collector in trouble took {:?}",
        t.elapsed()
    );
}
