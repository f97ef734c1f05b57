//! Spans (the built-in exporter) and metrics (the SDK's) reach an OTLP/HTTP receiver over TLS
//! whose certificate is signed by the CA of `OTEL_EXPORTER_OTLP_CERTIFICATE`.

#[path = "common/otlp_export.rs"]
mod common;
#[path = "common/otlp_tls.rs"]
mod tls;

use nats_actors_suite::otlp::OtlpReceiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_http_receiver_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::pki(dir.path(), "otlp test CA");
    let receiver = OtlpReceiver::http_with(Some(pki.server.clone())).await;
    assert!(receiver.endpoint().starts_with("https://"));
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.ca);
    common::export_to(&receiver, "http/protobuf").await;
    assert_eq!(receiver.tls_failures(), 0);
}
