//! Spans (the built-in exporter) and metrics (the SDK's) reach an OTLP/gRPC receiver over TLS
//! that requires a client certificate: the CA from `OTEL_EXPORTER_OTLP_CERTIFICATE`, the
//! client's from `_CLIENT_CERTIFICATE` and `_CLIENT_KEY`.

#[path = "common/otlp_export.rs"]
mod common;
#[path = "common/otlp_tls.rs"]
mod tls;

use nats_actors_suite::otlp::{OtlpReceiver, ReceiverTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_a_grpc_receiver_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::pki(dir.path(), "otlp test CA");
    let receiver = OtlpReceiver::grpc_with(Some(ReceiverTls {
        client_ca_pem: Some(pki.ca_pem.clone()),
        ..pki.server.clone()
    }))
    .await;
    assert!(receiver.endpoint().starts_with("https://"));
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.ca);
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert);
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key);
    common::export_to(&receiver, "grpc").await;
    assert_eq!(receiver.tls_failures(), 0);
}
