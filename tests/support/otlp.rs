//! An in-process OTLP receiver over gRPC (opentelemetry-proto's `TraceServiceServer`) or
//! HTTP/protobuf (`POST /v1/traces`, `/v1/metrics`), recording what it is sent.

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
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    metric_exports: Mutex<usize>,
}

impl Store {
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
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.0.metric_exports.lock().unwrap() += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl OtlpReceiver {
    /// A gRPC receiver on a free loopback port.
    pub async fn grpc() -> Self {
        let store = Arc::new(Store::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Grpc(store.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service.clone()))
                .add_service(MetricsServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Self { store, addr, task }
    }

    /// An HTTP/protobuf receiver on a free loopback port.
    pub async fn http() -> Self {
        let store = Arc::new(Store::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = store.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_http(conn, s.clone()));
            }
        });
        Self { store, addr, task }
    }

    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first 10,000 spans received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().unwrap().clone()
    }

    /// How many spans were received.
    pub fn span_count(&self) -> usize {
        self.store.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many metric exports were received.
    pub fn metric_exports(&self) -> usize {
        *self.store.metric_exports.lock().unwrap()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves keep-alive HTTP/1.1 requests with a `Content-Length` body on one connection.
async fn serve_http(mut conn: tokio::net::TcpStream, store: Arc<Store>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
        let status = match path.as_str() {
            "/v1/traces" => match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(req) => {
                    store.traces(req);
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            },
            "/v1/metrics" => {
                *store.metric_exports.lock().unwrap() += 1;
                "200 OK"
            }
            _ => "404 Not Found",
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
