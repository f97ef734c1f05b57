//! Spans reach a real OTLP/HTTP receiver, configured only through the OTEL_* environment.

#[path = "common/otlp_export.rs"]
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_http_receiver() {
    common::export_over("http/protobuf").await;
}
