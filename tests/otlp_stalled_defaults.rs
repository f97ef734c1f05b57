//! At default export settings (no `OTEL_EXPORTER_OTLP_TIMEOUT`), a gRPC collector that takes
//! exports and never answers them holds shutdown, the runtime's and the telemetry guard's
//! together, to at most the runtime's shutdown timeout plus 5 s.

#[path = "common/collector_trouble.rs"]
mod common;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
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

#[tonic::async_trait]
impl MetricsService for Stalled {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_holds_shutdown_to_its_timeout_plus_five_seconds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Stalled))
            .add_service(MetricsServiceServer::new(Stalled))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let shutdown_timeout = Duration::from_secs(2);
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint: format!("http://127.0.0.1:{port}"),
        protocol: "grpc",
        export_timeout_ms: None,
        shutdown_timeout: Some(shutdown_timeout),
        bound: shutdown_timeout + Duration::from_secs(5),
    })
    .await;
    collector.abort();
}
