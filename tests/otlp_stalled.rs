//! A collector that takes exports and never answers them: handlers answer as usual, and each
//! export gives up after `OTEL_EXPORTER_OTLP_TIMEOUT` (500 ms here), so shutdown ends well before
//! its bounds (`otlp_stalled_defaults.rs`: a collector stalled the same way, that variable unset).

#[path = "common/collector_trouble.rs"]
mod common;
#[path = "common/stalled_collector.rs"]
mod stalled_collector;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_stops_neither_handling_nor_shutdown() {
    let (endpoint, collector) = stalled_collector::start().await;
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint,
        protocol: "grpc",
        export_timeout_ms: Some(500),
        shutdown_timeout: None,
        bound: Duration::from_secs(5),
    })
    .await;
    collector.abort();
}
