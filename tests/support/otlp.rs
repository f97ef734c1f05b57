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
    malformed: std::sync::atomic::AtomicUsize,
    /// Count spans by walking the protobuf instead of decoding it.
    counting: bool,
    metric_exports: Mutex<usize>,
    /// The `x-tenant` header of the last trace export (set through `OTEL_EXPORTER_OTLP_HEADERS`).
    tenant: Mutex<Option<String>>,
}

impl Store {
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
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.0.metric_exports.lock().unwrap() += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Counts the spans of an encoded `ExportTraceServiceRequest` by walking its protobuf, without
/// decoding them: (spans with a 16-byte trace id and an 8-byte span id, other spans). `None`
/// when the bytes are not well-formed protobuf.
pub fn count_spans(request: &[u8]) -> Option<(usize, usize)> {
    let (mut good, mut bad) = (0, 0);
    for field in Fields(request) {
        let Some((1, Some(resource_spans))) = field? else {
            continue;
        };
        for field in Fields(resource_spans) {
            let Some((2, Some(scope_spans))) = field? else {
                continue;
            };
            for field in Fields(scope_spans) {
                let Some((2, Some(span))) = field? else {
                    continue;
                };
                let (mut trace_id, mut span_id) = (0, 0);
                for field in Fields(span) {
                    match field? {
                        Some((1, Some(v))) => trace_id = v.len(),
                        Some((2, Some(v))) => span_id = v.len(),
                        _ => {}
                    }
                    if trace_id > 0 && span_id > 0 {
                        break;
                    }
                }
                if (trace_id, span_id) == (16, 8) {
                    good += 1;
                } else {
                    bad += 1;
                }
            }
        }
    }
    Some((good, bad))
}

/// The fields of a protobuf message: `Some(Some((number, bytes of a length-delimited field)))`,
/// `None` for malformed bytes (then the iteration ends).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<Option<(u64, Option<&'a [u8]>)>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            self.0 = &[];
        }
        Some(field.map(Some))
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(u64, Option<&'a [u8]>)> {
        let buf = &mut self.0;
        let key = prost::encoding::decode_varint(buf).ok()?;
        let value = match key & 7 {
            0 => {
                prost::encoding::decode_varint(buf).ok()?;
                None
            }
            1 => {
                *buf = buf.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(buf).ok()?).ok()?;
                let v = buf.get(..len)?;
                *buf = buf.get(len..)?;
                Some(v)
            }
            5 => {
                *buf = buf.get(4..)?;
                None
            }
            _ => return None,
        };
        Some((key >> 3, value))
    }
}

/// A gRPC trace service that counts spans without decoding them (see [`count_spans`]).
#[derive(Clone)]
struct CountingTraces(Arc<Store>);

impl tonic::server::NamedService for CountingTraces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for CountingTraces
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(64 << 20), None);
            Ok(grpc.unary(Count(store), req).await)
        })
    }
}

struct Count(Arc<Store>);

impl tonic::server::UnaryService<bytes::Bytes> for Count {
    type Response = bytes::Bytes;
    type Future = tonic::codegen::BoxFuture<tonic::Response<bytes::Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<bytes::Bytes>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            if !store.count_request(&request.into_inner()) {
                return Err(tonic::Status::invalid_argument("malformed protobuf"));
            }
            // An empty message is a valid ExportTraceServiceResponse.
            Ok(tonic::Response::new(bytes::Bytes::new()))
        })
    }
}

/// Passes protobuf bytes through undecoded.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
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

impl OtlpReceiver {
    /// A gRPC receiver that counts the spans it is sent without decoding them (a collector
    /// would run in another process: a benchmark should not pay for its decoding), and records
    /// metric exports.
    pub async fn grpc_counting() -> Self {
        let store = Arc::new(Store::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Grpc(store.clone());
        let traces = CountingTraces(store.clone());
        let task = tokio::spawn(async move {
            // Configured as a collector's gRPC server (grpc-go) runs: large HTTP/2 flow-control
            // windows (grpc-go grows them with its BDP estimator; hyper's fixed 1 MiB default
            // stalls a sender every MiB until a window update comes back) and Nagle off.
            let _ = tonic::transport::Server::builder()
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(traces)
                .add_service(MetricsServiceServer::new(metrics))
                .serve_with_incoming(nodelay(listener))
                .await;
        });
        Self { store, addr, task }
    }

    /// Spans received without a valid trace id and span id (counting receiver only).
    pub fn malformed_spans(&self) -> usize {
        self.store
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

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
        Self::serve_http(Store::default()).await
    }

    /// An HTTP/protobuf receiver that counts spans without decoding them, like
    /// [`OtlpReceiver::grpc_counting`].
    pub async fn http_counting() -> Self {
        Self::serve_http(Store {
            counting: true,
            ..Store::default()
        })
        .await
    }

    async fn serve_http(store: Store) -> Self {
        let store = Arc::new(store);
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
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if path == "/v1/traces" {
            *store.tenant.lock().unwrap() = header("x-tenant");
        }
        buf.reserve((head_end + length).saturating_sub(buf.len()));
        while buf.len() < head_end + length {
            match conn.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body = &buf[head_end..head_end + length];
        let status = match path.as_str() {
            "/v1/traces" if store.counting => {
                if store.count_request(body) {
                    "200 OK"
                } else {
                    "400 Bad Request"
                }
            }
            "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
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
        buf.drain(..head_end + length);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

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
