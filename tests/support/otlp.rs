//! An in-process OTLP receiver over gRPC (opentelemetry-proto's `TraceServiceServer`) or
//! HTTP/protobuf (`POST /v1/traces`, `/v1/metrics`), recording what it is sent; plain or TLS
//! (with mutual TLS when asked), accepting gzipped requests.

mod counting;
mod http;
mod tls;

pub use counting::count_spans;
use counting::CountingTraces;

pub use tls::ReceiverTls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::task::JoinHandle;

/// One received span, as decoded from the wire.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The span name.
    pub name: String,
    /// The OTLP span kind (3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// Trace id, span id and parent span id (empty for a root).
    pub trace_id: Vec<u8>,
    /// The span id.
    pub span_id: Vec<u8>,
    /// The parent's span id (empty for a root).
    pub parent_span_id: Vec<u8>,
    /// `(key, value)` of the span's attributes, values as text.
    pub attributes: Vec<(String, String)>,
    /// The names of the span's events.
    pub events: Vec<String>,
    /// The status code (0 unset, 2 error).
    pub status: i32,
    /// `(key, value)` of the resource's string attributes.
    pub resource: Vec<(String, String)>,
}

impl ReceivedSpan {
    /// The value of attribute `key`, as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text(v: Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value) {
        Some(Value::StringValue(s)) => s,
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(f)) => f.to_string(),
        other => format!("{other:?}"),
    }
}

/// Details are kept for the first spans only; the rest are counted, so that a benchmark's
/// millions of spans cost the receiver little.
const KEEP: usize = 10_000;

#[derive(Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    count: std::sync::atomic::AtomicUsize,
    malformed: std::sync::atomic::AtomicUsize,
    /// Count spans by walking the protobuf instead of decoding it.
    counting: bool,
    metric_exports: Mutex<usize>,
    /// The `x-tenant` header of the last trace export (set through `OTEL_EXPORTER_OTLP_HEADERS`).
    tenant: Mutex<Option<String>>,
    /// Trace and metric requests that came gzipped.
    gzipped_traces: std::sync::atomic::AtomicUsize,
    gzipped_metrics: std::sync::atomic::AtomicUsize,
    /// Connections whose TLS handshake failed.
    tls_failures: Arc<std::sync::atomic::AtomicUsize>,
}

impl Store {
    /// Counts a gzipped request to `path` (`/v1/traces`, `/v1/metrics`).
    fn compressed(&self, path: &str) {
        let n = if path.contains("trace") {
            &self.gzipped_traces
        } else {
            &self.gzipped_metrics
        };
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a gRPC request that came gzipped (`grpc-encoding: gzip`).
    fn grpc_encoding(&self, path: &str, metadata: &tonic::metadata::MetadataMap) {
        if metadata
            .get("grpc-encoding")
            .is_some_and(|e| e.as_bytes().eq_ignore_ascii_case(b"gzip"))
        {
            self.compressed(path);
        }
    }

    /// Counts the spans of an encoded request; false when it is malformed.
    fn count_request(&self, request: &[u8]) -> bool {
        let Some((good, bad)) = count_spans(request) else {
            return false;
        };
        self.count
            .fetch_add(good, std::sync::atomic::Ordering::Relaxed);
        self.malformed
            .fetch_add(bad, std::sync::atomic::Ordering::Relaxed);
        true
    }

    fn traces(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let n: usize = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
            self.count
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            if spans.len() >= KEEP {
                continue;
            }
            let resource: Vec<(String, String)> = rs
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|kv| match kv.value.and_then(|v| v.value) {
                    Some(Value::StringValue(s)) => Some((kv.key, s)),
                    _ => None,
                })
                .collect();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(ReceivedSpan {
                        name: span.name,
                        kind: span.kind,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: span
                            .attributes
                            .into_iter()
                            .map(|kv| (kv.key, text(kv.value)))
                            .collect(),
                        events: span.events.into_iter().map(|e| e.name).collect(),
                        status: span.status.map_or(0, |s| s.code),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
}

/// A running receiver; stopped when dropped.
pub struct OtlpReceiver {
    store: Arc<Store>,
    addr: SocketAddr,
    secure: bool,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.grpc_encoding("traces", request.metadata());
        let tenant = request.metadata().get("x-tenant");
        *self.0.tenant.lock().unwrap() = tenant.and_then(|t| t.to_str().ok()).map(String::from);
        self.0.traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.grpc_encoding("metrics", request.metadata());
        *self.0.metric_exports.lock().unwrap() += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Accepted connections with Nagle's algorithm off, as Go (so a collector) sets them: else the
/// server's small frames (window updates, responses) wait for the peer's delayed ACK.
fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok(s)
    })
}

/// A stream of TLS connections accepted on `listener` (see [`tls::accept`]), for tonic's
/// `serve_with_incoming`.
/// Serves `router` on `listener` (over TLS when `tls` is given, Nagle off either way); returns
/// the tasks to abort when the receiver is dropped.
fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    tls: Option<&ReceiverTls>,
    store: &Store,
) -> Vec<JoinHandle<()>> {
    match tls {
        Some(t) => {
            let (accept, incoming) = tls_incoming(listener, t, store);
            let serve = tokio::spawn(async move {
                let _ = router.serve_with_incoming(incoming).await;
            });
            vec![accept, serve]
        }
        None => vec![tokio::spawn(async move {
            let _ = router.serve_with_incoming(nodelay(listener)).await;
        })],
    }
}

fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: &ReceiverTls,
    store: &Store,
) -> (
    JoinHandle<()>,
    impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>,
) {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tls::accept(
        listener,
        tls.acceptor(b"h2"),
        store.tls_failures.clone(),
        move |conn| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(conn).await;
            }
        },
    );
    (
        task,
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok),
    )
}

impl OtlpReceiver {
    /// A gRPC receiver that counts the spans it is sent without decoding them (a collector
    /// would run in another process: a benchmark should not pay for its decoding), and records
    /// metric exports.
    pub async fn grpc_counting() -> Self {
        Self::grpc_counting_with(None).await
    }

    /// [`OtlpReceiver::grpc_counting`], over TLS when `tls` is given.
    pub async fn grpc_counting_with(tls: Option<ReceiverTls>) -> Self {
        let store = Arc::new(Store::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Grpc(store.clone());
        let traces = CountingTraces(store.clone());
        // Configured as a collector's gRPC server (grpc-go) runs: large HTTP/2 flow-control
        // windows (grpc-go grows them with its BDP estimator; hyper's fixed 1 MiB default
        // stalls a sender every MiB until a window update comes back) and Nagle off.
        let router = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .add_service(traces)
            .add_service(MetricsServiceServer::new(metrics));
        let tasks = serve_grpc(router, listener, tls.as_ref(), &store);
        Self {
            store,
            addr,
            secure: tls.is_some(),
            tasks,
        }
    }

    /// Spans received without a valid trace id and span id (counting receiver only).
    pub fn malformed_spans(&self) -> usize {
        self.store
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A gRPC receiver on a free loopback port.
    pub async fn grpc() -> Self {
        Self::grpc_with(None).await
    }

    /// A gRPC receiver, over TLS when `tls` is given; it accepts gzipped requests.
    pub async fn grpc_with(tls: Option<ReceiverTls>) -> Self {
        use tonic::codec::CompressionEncoding::Gzip;
        let store = Arc::new(Store::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Grpc(store.clone());
        let router = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service.clone()).accept_compressed(Gzip))
            .add_service(MetricsServiceServer::new(service).accept_compressed(Gzip));
        let tasks = serve_grpc(router, listener, tls.as_ref(), &store);
        Self {
            store,
            addr,
            secure: tls.is_some(),
            tasks,
        }
    }

    /// An HTTP/protobuf receiver on a free loopback port.
    pub async fn http() -> Self {
        Self::serve_http(Store::default(), None).await
    }

    /// An HTTP/protobuf receiver, over TLS when `tls` is given; it accepts gzipped requests.
    pub async fn http_with(tls: Option<ReceiverTls>) -> Self {
        Self::serve_http(Store::default(), tls).await
    }

    /// An HTTP/protobuf receiver that counts spans without decoding them, like
    /// [`OtlpReceiver::grpc_counting`], over TLS when `tls` is given.
    pub async fn http_counting_with(tls: Option<ReceiverTls>) -> Self {
        Self::serve_http(
            Store {
                counting: true,
                ..Store::default()
            },
            tls,
        )
        .await
    }

    /// [`OtlpReceiver::http_counting_with`] without TLS.
    pub async fn http_counting() -> Self {
        Self::http_counting_with(None).await
    }

    async fn serve_http(store: Store, tls: Option<ReceiverTls>) -> Self {
        let store = Arc::new(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = store.clone();
        let task = match &tls {
            Some(t) => tls::accept(
                listener,
                t.acceptor(b"http/1.1"),
                store.tls_failures.clone(),
                move |conn| http::serve_http(conn, s.clone()),
            ),
            None => tokio::spawn(async move {
                // Dropped with the task: the connections end with the receiver.
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((conn, _)) = listener.accept().await {
                    connections.spawn(http::serve_http(conn, s.clone()));
                    while connections.try_join_next().is_some() {}
                }
            }),
        };
        Self {
            store,
            addr,
            secure: tls.is_some(),
            tasks: vec![task],
        }
    }

    /// `http://127.0.0.1:<port>` (`https://` over TLS), for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Trace requests and metric requests that came gzipped.
    pub fn gzipped(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.store.gzipped_traces.load(Relaxed),
            self.store.gzipped_metrics.load(Relaxed),
        )
    }

    /// Connections whose TLS handshake failed.
    pub fn tls_failures(&self) -> usize {
        self.store
            .tls_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The first 10,000 spans received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().unwrap().clone()
    }

    /// How many spans were received.
    pub fn span_count(&self) -> usize {
        self.store.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `x-tenant` header of the last trace export, if it had one.
    pub fn tenant(&self) -> Option<String> {
        self.store.tenant.lock().unwrap().clone()
    }

    /// How many metric exports were received.
    pub fn metric_exports(&self) -> usize {
        *self.store.metric_exports.lock().unwrap()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;

    #[test]
    fn counting_agrees_with_decoding() {
        let span = |trace: usize, id: usize| Span {
            trace_id: vec![1; trace],
            span_id: vec![2; id],
            name: "process x".into(),
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![span(16, 8), span(16, 8)],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![span(16, 8), span(3, 8)],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        assert_eq!(count_spans(&bytes), Some((3, 1)));
        assert_eq!(count_spans(&bytes[..bytes.len() - 1]), None, "truncated");
    }
}
