//! With `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`, spans (the built-in exporter) and metrics (the
//! SDK's) reach an OTLP receiver (http/protobuf) gzipped.

#[path = "common/otlp_export.rs"]
mod common;

use nats_actors_suite::otlp::OtlpReceiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_http_receiver_gzipped() {
    let receiver = OtlpReceiver::http_with(None).await;
    std::env::set_var("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
    common::export_to(&receiver, "http/protobuf").await;
    let (traces, metrics) = receiver.gzipped();
    assert!(traces >= 1, "trace requests gzipped: {traces}");
    assert!(metrics >= 1, "metric requests gzipped: {metrics}");
}
