//! A collector that takes exports and never answers them: handlers answer as usual, and each
//! export gives up after `OTEL_EXPORTER_OTLP_TIMEOUT` (500 ms here), so shutdown ends well before
//! its bounds (`otlp_stalled_defaults.rs`: a collector stalled the same way, that variable unset).

#[path = "common/collector_trouble.rs"]
mod common;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

struct Stalled;

#[tonic::async_trait]
impl TraceService for Stalled {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_stops_neither_handling_nor_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Stalled))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint: format!("http://127.0.0.1:{port}"),
        protocol: "grpc",
        export_timeout_ms: Some(500),
        shutdown_timeout: None,
        bound: Duration::from_secs(5),
    })
    .await;
    collector.abort();
}
