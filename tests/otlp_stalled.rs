//! A collector that takes exports and never answers them: handlers answer as usual, and each
//! export gives up after `OTEL_EXPORTER_OTLP_TIMEOUT`, so shutdown does not wait out its own
//! 10-second flush bound.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{connect, server};
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

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("stalled.echo")]
    async fn echo(&self, n: u32) -> u32 {
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_stops_neither_handling_nor_shutdown() {
    // A gRPC server whose trace export never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Stalled))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_EXPORTER_OTLP_TIMEOUT", "500");
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    let guard = nats_actors::telemetry::init("collector-stalled").expect("telemetry");

    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Echo)
        .start()
        .await
        .unwrap();
    for n in 0..50u32 {
        let back: u32 = tokio::time::timeout(
            Duration::from_secs(5),
            runtime.client().request("stalled.echo", &n),
        )
        .await
        .expect("handling does not wait for the collector")
        .unwrap();
        assert_eq!(back, n);
    }
    // Let exports start and stall while the runtime runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    runtime.shutdown().await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown with a stalled collector took {:?}",
        t.elapsed()
    );
    holder.abort();
}
