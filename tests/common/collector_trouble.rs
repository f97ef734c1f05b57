//! What the collector-trouble tests share (one process each, since telemetry is installed
//! process-wide): with the collector in trouble, handlers answer as usual and shutdown, the
//! runtime's and the telemetry guard's, ends in bounded time.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{connect, server};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("trouble.echo")]
    async fn echo(&self, n: u32) -> u32 {
        n
    }
}

/// A collector in trouble, and what to expect of shutdown.
pub struct Trouble {
    /// The collector's endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// `grpc` or `http/protobuf`.
    pub protocol: &'static str,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in ms; `None`: not set (the default).
    pub export_timeout_ms: Option<u64>,
    /// The runtime's shutdown timeout; `None`: the default.
    pub shutdown_timeout: Option<Duration>,
    /// The runtime's shutdown and the guard's together take less than this.
    pub bound: Duration,
}

/// Exports every span to the collector (a batch every 50 ms), runs 50 requests (each must be
/// answered within 5 s), then checks that shutdown, the runtime's and the guard's, the flush
/// of spans and metrics included, takes less than `t.bound`.
pub async fn handling_and_shutdown_go_on(t: Trouble) {
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &t.endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", t.protocol);
    match t.export_timeout_ms {
        Some(ms) => std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", ms.to_string()),
        None => std::env::remove_var("OTEL_EXPORTER_OTLP_TIMEOUT"),
    }
    for v in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    ] {
        std::env::remove_var(v);
    }
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    let guard = nats_actors::telemetry::init("collector-in-trouble").expect("telemetry");

    let server = server();
    let mut builder = nats_actors::Runtime::builder()
        .connect(connect(&server))
        .actor(Echo);
    if let Some(timeout) = t.shutdown_timeout {
        builder = builder.shutdown_timeout(timeout);
    }
    let runtime = builder.start().await.expect("start the runtime");
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
    let t0 = Instant::now();
    runtime.shutdown().await;
    let runtime_took = t0.elapsed();
    let t1 = Instant::now();
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();
    let guard_took = t1.elapsed();
    eprintln!(
        "shutdown with the collector in trouble ({}): runtime {runtime_took:?}, guard {guard_took:?}, \
         together {:?}",
        t.protocol,
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < t.bound,
        "shutdown with the collector in trouble took {:?} (runtime {runtime_took:?}, guard \
         {guard_took:?}); the bound is {:?}",
        t0.elapsed(),
        t.bound
    );
}
