//! At default export settings (no `OTEL_EXPORTER_OTLP_TIMEOUT`), a gRPC collector that takes
//! exports and never answers them holds shutdown, the runtime's and the telemetry guard's
//! together, to at most the runtime's shutdown timeout plus 5 s.

#[path = "common/collector_trouble.rs"]
mod common;
#[path = "common/stalled_collector.rs"]
mod stalled_collector;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_holds_shutdown_to_its_timeout_plus_five_seconds() {
    let (endpoint, collector) = stalled_collector::start().await;
    let shutdown_timeout = Duration::from_secs(2);
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint,
        protocol: "grpc",
        export_timeout_ms: None,
        shutdown_timeout: Some(shutdown_timeout),
        bound: shutdown_timeout + Duration::from_secs(5),
    })
    .await;
    collector.abort();
}
