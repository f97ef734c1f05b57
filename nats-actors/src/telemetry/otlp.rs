//! The built-in OTLP span exporter: the spans nats-actors records are encoded straight from their
//! records to OTLP protobuf and sent in batches over gRPC or HTTP/protobuf, from a thread of its
//! own. No `SpanData`, no intermediate protobuf structs: a recorded span costs two small
//! allocations on the message path (its record and its OpenTelemetry context) and a few hundred bytes of encoding on the export thread.
//!
//! Configured from the standard environment (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `_PROTOCOL`, `_HEADERS`, `_TIMEOUT`, and the `OTEL_BSP_*` batch settings).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use opentelemetry_sdk::Resource;

use super::metrics::unix_nanos;
use super::record::{Attrs, Ev, EvValue, Rec};

/// Where and how to export.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// gRPC: the endpoint; HTTP: the full URL of the traces path.
    pub url: String,
    pub grpc: bool,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
    pub delay: Duration,
    /// Requests in flight at once (`OTEL_BSP_MAX_CONCURRENT_EXPORTS`, default 2): while one
    /// waits for the collector's answer, the next is encoded and sent.
    pub concurrency: usize,
}

impl Config {
    /// The exporter the environment asks for, when this exporter can serve it: a plain `http://`
    /// endpoint without compression. `None` otherwise (the SDK's OTLP exporter is used then).
    pub(crate) fn from_env(grpc: bool) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(u) => u.trim().to_string(),
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")?;
                let base = base.trim().trim_end_matches('/');
                if grpc {
                    base.to_string()
                } else {
                    format!("{base}/v1/traces")
                }
            }
        };
        let compressed = var("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
            .or_else(|| var("OTEL_EXPORTER_OTLP_COMPRESSION"))
            .is_some_and(|c| c.trim() != "none");
        if !url.starts_with("http://") || compressed {
            return None;
        }
        let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        let ms = |k: &str, default: u64| {
            var(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let timeout = Duration::from_millis(ms(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            ms("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000),
        ));
        let max_queue = ms("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize;
        let max_batch = (ms("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize).min(max_queue);
        Some(Self {
            url,
            grpc,
            headers,
            timeout,
            max_queue,
            max_batch,
            delay: Duration::from_millis(ms("OTEL_BSP_SCHEDULE_DELAY", 5000)),
            concurrency: ms("OTEL_BSP_MAX_CONCURRENT_EXPORTS", 2).clamp(1, 16) as usize,
        })
    }
}

/// `k1=v1,k2=v2`, values percent-decoded.
fn parse_headers(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), percent_decode(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest request sent (the default limit of OTLP receivers is 4 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Default)]
struct FlushState {
    requested: u64,
    done: u64,
}

struct Shared {
    queue: Mutex<Vec<Rec>>,
    wake: tokio::sync::Notify,
    flush: Mutex<FlushState>,
    flushed: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

/// The exporter: a bounded queue the message path pushes to, and the thread that sends it.
pub(crate) struct Exporter {
    shared: Arc<Shared>,
    max_queue: usize,
    max_batch: usize,
}

impl Exporter {
    /// Starts the export thread.
    pub(crate) fn start(config: Config, resource: &Resource) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(config.max_batch)),
            wake: tokio::sync::Notify::new(),
            flush: Mutex::new(FlushState::default()),
            flushed: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let (max_queue, max_batch) = (config.max_queue, config.max_batch);
        let head = Head::new(resource);
        let s = shared.clone();
        std::thread::Builder::new()
            .name("nats-actors-otlp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the OTLP export thread; spans are dropped");
                        s.flush.lock().unwrap_or_else(|p| p.into_inner()).done = u64::MAX;
                        s.flushed.notify_all();
                        return;
                    }
                };
                rt.block_on(run(s.clone(), config, head));
                // Gone (stopped, or could not start): flushes return at once from now on.
                s.flush.lock().unwrap_or_else(|p| p.into_inner()).done = u64::MAX;
                s.flushed.notify_all();
            })?;
        Ok(Self {
            shared,
            max_queue,
            max_batch,
        })
    }

    /// Queues a finished span; when the queue is full it is dropped and counted. The record is
    /// moved out of its box here, so the box is freed by the thread that made it.
    pub(crate) fn push(&self, rec: Rec) {
        let len = {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= self.max_queue {
                drop(q);
                if self.shared.dropped.fetch_add(1, Relaxed) == 0 {
                    tracing::warn!(
                        max_queue = self.max_queue,
                        "OTLP span queue full: spans are dropped (OTEL_BSP_MAX_QUEUE_SIZE)"
                    );
                }
                return;
            }
            q.push(rec);
            q.len()
        };
        if len == self.max_batch {
            self.shared.wake.notify_one();
        }
    }

    /// Sends everything queued so far; waits up to `timeout`. Blocks.
    pub(crate) fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut f = self.shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        f.requested += 1;
        let target = f.requested;
        self.shared.wake.notify_one();
        while f.done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("OTLP span export did not finish in {timeout:?}");
                return;
            }
            f = self
                .shared
                .flushed
                .wait_timeout(f, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Flushes, then stops the export thread; says what was lost, if anything.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        self.shared.stop.store(true, Relaxed);
        self.flush(timeout);
        let s = &self.shared;
        let (exported, dropped, failed) = (
            s.exported.load(Relaxed),
            s.dropped.load(Relaxed),
            s.failed.load(Relaxed),
        );
        if dropped + failed > 0 {
            tracing::warn!(
                exported,
                dropped,
                failed,
                "OTLP spans lost: dropped with the queue full, or in failed exports"
            );
        }
    }
}

async fn run(shared: Arc<Shared>, config: Config, head: Head) {
    let transport = Transport::new(&config);
    let mut enc = Encoder::default();
    let mut spare: Vec<Rec> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.delay) => {}
            _ = shared.wake.notified() => {}
        }
        let requested = shared
            .flush
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requested;
        loop {
            let batch = {
                let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.is_empty() {
                    break;
                }
                std::mem::replace(&mut *q, std::mem::take(&mut spare))
            };
            let mut chunks: Vec<&[Rec]> = batch.chunks(config.max_batch).rev().collect();
            let mut sending = futures::stream::FuturesUnordered::new();
            while let Some(chunk) = chunks.pop() {
                let body = enc.request(&head, chunk, config.grpc);
                // Collectors refuse requests over 4 MiB by default: split until they fit.
                if body.len() > MAX_REQUEST_BYTES && chunk.len() > 1 {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    chunks.extend([b, a]);
                    continue;
                }
                if sending.len() >= config.concurrency {
                    if let Some(sent) = sending.next().await {
                        count(&shared, &config, sent);
                    }
                }
                let spans = chunk.len() as u64;
                let send = transport.send(body);
                sending.push(async move { (spans, send.await) });
            }
            while let Some(sent) = sending.next().await {
                count(&shared, &config, sent);
            }
            spare = batch;
            spare.clear();
        }
        {
            let mut f = shared.flush.lock().unwrap_or_else(|p| p.into_inner());
            f.done = f.done.max(requested);
        }
        shared.flushed.notify_all();
        if shared.stop.load(Relaxed) {
            return;
        }
    }
}

/// Counts a finished request's spans as exported or failed (the first failure is logged).
fn count(shared: &Shared, config: &Config, (spans, sent): (u64, Result<(), String>)) {
    match sent {
        Ok(()) => {
            shared.exported.fetch_add(spans, Relaxed);
        }
        Err(e) => {
            if shared.failed.fetch_add(spans, Relaxed) == 0 {
                tracing::warn!(url = %config.url, error = %e, "OTLP span export failed");
            }
        }
    }
}

enum Transport {
    Grpc {
        channel: tonic::transport::Channel,
        /// `OTEL_EXPORTER_OTLP_HEADERS`, with the gRPC headers.
        headers: http::HeaderMap,
        /// For the whole call, the answer's body and trailers included.
        timeout: Duration,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
    },
    Broken(String),
}

impl Transport {
    fn new(config: &Config) -> Self {
        if config.grpc {
            let endpoint = match tonic::transport::Endpoint::from_shared(config.url.clone()) {
                Ok(e) => e.timeout(config.timeout).connect_timeout(config.timeout),
                Err(e) => return Self::Broken(format!("bad endpoint {}: {e}", config.url)),
            };
            let mut headers = http::HeaderMap::new();
            for (k, v) in &config.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            let timeout = format!("{}m", config.timeout.as_millis().clamp(1, 99_999_999));
            for (k, v) in [
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", timeout.as_str()),
            ] {
                if let Ok(v) = http::HeaderValue::from_str(v) {
                    headers.insert(k, v);
                }
            }
            Self::Grpc {
                channel: endpoint.connect_lazy(),
                headers,
                timeout: config.timeout,
            }
        } else {
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in &config.headers {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                    reqwest::header::HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            match reqwest::Client::builder().timeout(config.timeout).build() {
                Ok(client) => Self::Http {
                    client,
                    url: config.url.clone(),
                    headers,
                },
                Err(e) => Self::Broken(format!("cannot build the HTTP client: {e}")),
            }
        }
    }

    /// One export request; the future owns what it needs, so that several can be in flight.
    fn send(&self, body: Bytes) -> impl std::future::Future<Output = Result<(), String>> + use<> {
        let this = match self {
            Self::Broken(why) => Self::Broken(why.clone()),
            Self::Grpc {
                channel,
                headers,
                timeout,
            } => Self::Grpc {
                channel: channel.clone(),
                headers: headers.clone(),
                timeout: *timeout,
            },
            Self::Http {
                client,
                url,
                headers,
            } => Self::Http {
                client: client.clone(),
                url: url.clone(),
                headers: headers.clone(),
            },
        };
        async move {
            match this {
                Self::Broken(why) => Err(why),
                Self::Grpc {
                    channel,
                    headers,
                    timeout,
                } => tokio::time::timeout(timeout, grpc_export(channel, headers, body))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer in {timeout:?}"))),
                Self::Http {
                    client,
                    url,
                    headers,
                } => {
                    let resp = client
                        .post(url.as_str())
                        .headers(headers)
                        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if resp.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("HTTP {}", resp.status()))
                    }
                }
            }
        }
    }
}

/// One gRPC `TraceService/Export` call with `body` (a framed request) as it is: written here
/// rather than through a codec, which would copy the request into a buffer of its own.
async fn grpc_export(
    mut channel: tonic::transport::Channel,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(), String> {
    use http_body_util::BodyExt as _;
    use tonic::codegen::Service as _;

    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| e.to_string())?;
    let mut req = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(body)));
    *req.method_mut() = http::Method::POST;
    *req.version_mut() = http::Version::HTTP_2;
    *req.uri_mut() =
        http::Uri::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    *req.headers_mut() = headers;
    let resp = channel.call(req).await.map_err(|e| e.to_string())?;
    let failed = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    // A trailers-only response (how servers answer errors) has its status in the headers.
    if let Some(status) = tonic::Status::from_header_map(resp.headers()) {
        return match status.code() {
            tonic::Code::Ok => Ok(()),
            _ => Err(failed(status)),
        };
    }
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = resp.into_body().collect().await.map_err(failed)?;
    match body.trailers().and_then(tonic::Status::from_header_map) {
        Some(s) if s.code() == tonic::Code::Ok => Ok(()),
        Some(s) => Err(failed(s)),
        None => Err("the response has no grpc-status".to_string()),
    }
}

// ---- protobuf encoding -------------------------------------------------------------------

const LEN: u32 = 2;
const VARINT: u32 = 0;
const I64: u32 = 1;
const I32: u32 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// The encoded length of a length-delimited field with a one-byte key.
fn field_len(content: usize) -> usize {
    1 + varint_len(content as u64) + content
}

enum AnyRef<'a> {
    Str(&'a str),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A `KeyValue` as field `field` of the enclosing message.
fn kv(out: &mut Vec<u8>, field: u32, k: &str, v: AnyRef<'_>) {
    let any_len = match v {
        AnyRef::Str(s) => field_len(s.len()),
        AnyRef::I64(n) => 1 + varint_len(n as u64),
        AnyRef::F64(_) => 9,
        AnyRef::Bool(_) => 2,
    };
    let kv_len = field_len(k.len()) + field_len(any_len);
    out.reserve(field_len(kv_len) + 1);
    key(out, field, LEN);
    varint(out, kv_len as u64);
    bytes_field(out, 1, k.as_bytes());
    key(out, 2, LEN);
    varint(out, any_len as u64);
    match v {
        AnyRef::Str(s) => bytes_field(out, 1, s.as_bytes()),
        AnyRef::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(b));
        }
        AnyRef::I64(n) => {
            key(out, 3, VARINT);
            varint(out, n as u64);
        }
        AnyRef::F64(f) => {
            fixed64(out, 4, f.to_bits());
        }
    }
}

/// The start of a `KeyValue` whose key is known: the key field and the value field's key.
/// `messaging.destination.name` and `messaging.message.body.size`, on every span.
const DESTINATION_NAME: &[u8] = b"\x0a\x1amessaging.destination.name\x12";
const BODY_SIZE: &[u8] = b"\x0a\x1bmessaging.message.body.size\x12";

/// A span attribute (field 9) with a string value, its key's part written as it is.
fn span_attr_str(out: &mut Vec<u8>, key_part: &[u8], s: &[u8]) {
    let any_len = field_len(s.len());
    let kv_len = key_part.len() + varint_len(any_len as u64) + any_len;
    out.reserve(1 + varint_len(kv_len as u64) + kv_len);
    out.push(9 << 3 | LEN as u8);
    varint(out, kv_len as u64);
    out.extend_from_slice(key_part);
    varint(out, any_len as u64);
    out.push(1 << 3 | LEN as u8);
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A span attribute (field 9) with an integer value, its key's part written as it is.
fn span_attr_int(out: &mut Vec<u8>, key_part: &[u8], n: u64) {
    let any_len = 1 + varint_len(n);
    let kv_len = key_part.len() + 1 + any_len;
    out.reserve(1 + varint_len(kv_len as u64) + kv_len);
    out.push(9 << 3 | LEN as u8);
    varint(out, kv_len as u64);
    out.extend_from_slice(key_part);
    out.push(any_len as u8);
    out.push(3 << 3 | VARINT as u8);
    varint(out, n);
}

/// The resource and scope, encoded once.
struct Head {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Head {
    fn new(resource: &Resource) -> Self {
        let mut r = Vec::new();
        for (k, v) in resource.iter() {
            let text;
            let v = match v {
                Value::Bool(b) => AnyRef::Bool(*b),
                Value::I64(n) => AnyRef::I64(*n),
                Value::F64(f) => AnyRef::F64(*f),
                Value::String(s) => AnyRef::Str(s.as_str()),
                other => {
                    text = other.to_string();
                    AnyRef::Str(&text)
                }
            };
            kv(&mut r, 1, k.as_str(), v);
        }
        let mut scope = Vec::new();
        bytes_field(&mut scope, 1, b"nats-actors");
        bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
        Self { resource: r, scope }
    }
}

/// The gRPC message frame's prefix: a compression flag and the length.
const GRPC_PREFIX: usize = 5;

/// Writes a length-delimited field whose content `write` appends, encoding it once: two bytes
/// are left for its length (enough below 16 KiB, which a span is unless it carries many
/// events) and fixed up once the length is known.
fn nested(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    write(out);
    let len = out.len() - at - 2;
    if len < 0x80 {
        out[at] = len as u8;
        out.remove(at + 1);
    } else if len < 0x4000 {
        out[at] = (len as u8) | 0x80;
        out[at + 1] = (len >> 7) as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        out.splice(at..at + 2, prefix);
    }
}

#[derive(Default)]
struct Encoder {
    envelope: Vec<u8>,
    event: Vec<u8>,
    /// Bytes per span in the last request, to size the next one.
    per_span: usize,
}

impl Encoder {
    /// An `ExportTraceServiceRequest` with one resource and one scope holding `recs`, in a gRPC
    /// message frame if `grpc`. The spans are written once, behind a gap that the envelope
    /// (whose lengths depend on them) fills afterwards; the request is that buffer from where
    /// its envelope starts, sent as it is.
    fn request(&mut self, head: &Head, recs: &[Rec], grpc: bool) -> Bytes {
        let gap = GRPC_PREFIX
            + 2 * (1 + 10)
            + field_len(head.resource.len())
            + field_len(head.scope.len());
        let mut out = Vec::with_capacity(gap + recs.len() * (self.per_span.max(64) + 16));
        out.resize(gap, 0);
        for rec in recs {
            nested(&mut out, 2, |out| encode_span(out, &mut self.event, rec));
        }
        let spans_len = out.len() - gap;
        self.per_span = spans_len / recs.len().max(1);
        let scope_spans_len = field_len(head.scope.len()) + spans_len;
        let resource_spans_len = field_len(head.resource.len()) + field_len(scope_spans_len);
        let env = &mut self.envelope;
        env.clear();
        key(env, 1, LEN);
        varint(env, resource_spans_len as u64);
        bytes_field(env, 1, &head.resource);
        key(env, 2, LEN);
        varint(env, scope_spans_len as u64);
        bytes_field(env, 1, &head.scope);
        let mut from = gap - env.len();
        out[from..gap].copy_from_slice(env);
        if grpc {
            // Length-Prefixed-Message: not compressed, then the length (big-endian u32).
            let len = u32::try_from(out.len() - from).unwrap_or(u32::MAX);
            from -= GRPC_PREFIX;
            out[from] = 0;
            out[from + 1..from + GRPC_PREFIX].copy_from_slice(&len.to_be_bytes());
        }
        Bytes::from(out).slice(from..)
    }
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn encode_span(out: &mut Vec<u8>, scratch: &mut Vec<u8>, rec: &Rec) {
    bytes_field(out, 1, &rec.trace_id.to_bytes());
    bytes_field(out, 2, &rec.span_id.to_bytes());
    if let Some(state) = &rec.trace_state {
        bytes_field(out, 3, state.as_bytes());
    }
    if let Some(p) = &rec.parent {
        bytes_field(out, 4, &p.to_bytes());
    }
    bytes_field(out, 5, rec.name.as_str().as_bytes());
    key(out, 6, VARINT);
    varint(out, kind(&rec.kind));
    fixed64(out, 7, rec.start);
    fixed64(out, 8, rec.end);
    match &rec.attrs {
        Attrs::Process {
            meta,
            subject,
            message_id,
            body_size,
        } => {
            out.extend_from_slice(meta.encoded.get_or_init(|| {
                let mut a = Vec::new();
                kv(&mut a, 9, "messaging.system", AnyRef::Str("nats"));
                kv(
                    &mut a,
                    9,
                    "messaging.operation.name",
                    AnyRef::Str("process"),
                );
                kv(
                    &mut a,
                    9,
                    "messaging.operation.type",
                    AnyRef::Str("process"),
                );
                kv(
                    &mut a,
                    9,
                    "messaging.destination.template",
                    AnyRef::Str(meta.template),
                );
                if let Some(q) = meta.queue {
                    kv(&mut a, 9, "messaging.consumer.group.name", AnyRef::Str(q));
                }
                kv(
                    &mut a,
                    9,
                    "server.address",
                    AnyRef::Str(&meta.server.address),
                );
                kv(
                    &mut a,
                    9,
                    "server.port",
                    AnyRef::I64(i64::from(meta.server.port)),
                );
                a
            }));
            span_attr_str(out, DESTINATION_NAME, subject.as_bytes());
            if let Some(id) = message_id {
                kv(out, 9, "messaging.message.id", AnyRef::Str(id));
            }
            span_attr_int(out, BODY_SIZE, *body_size as u64);
        }
        Attrs::Send {
            operation,
            subject,
            body_size,
            server,
        } => {
            let i = usize::from(*operation == "request");
            out.extend_from_slice(server.encoded[i].get_or_init(|| {
                let mut a = Vec::new();
                kv(&mut a, 9, "messaging.system", AnyRef::Str("nats"));
                kv(
                    &mut a,
                    9,
                    "messaging.operation.name",
                    AnyRef::Str(operation),
                );
                kv(&mut a, 9, "messaging.operation.type", AnyRef::Str("send"));
                kv(&mut a, 9, "server.address", AnyRef::Str(&server.address));
                kv(
                    &mut a,
                    9,
                    "server.port",
                    AnyRef::I64(i64::from(server.port)),
                );
                a
            }));
            if let Some(s) = subject {
                span_attr_str(out, DESTINATION_NAME, s.as_bytes());
            }
            span_attr_int(out, BODY_SIZE, *body_size as u64);
        }
    }
    let (failure, events) = match rec.extra.as_deref() {
        Some(extra) => (extra.failure.as_ref(), extra.events.as_slice()),
        None => (None, &[][..]),
    };
    if let Some(f) = failure {
        kv(out, 9, "error.type", AnyRef::Str(f.error_type));
    }
    for ev in events {
        scratch.clear();
        encode_event(scratch, ev);
        bytes_field(out, 11, scratch);
    }
    if let Some(f) = failure {
        scratch.clear();
        fixed64(scratch, 1, unix_nanos(f.at));
        bytes_field(scratch, 2, b"exception");
        kv(scratch, 3, "exception.type", AnyRef::Str(f.error_type));
        kv(scratch, 3, "exception.message", AnyRef::Str(&f.description));
        bytes_field(out, 11, scratch);
        // Status { message = 2, code = 3 (ERROR = 2) }
        let status_len = field_len(f.description.len()) + 2;
        key(out, 15, LEN);
        varint(out, status_len as u64);
        bytes_field(out, 2, f.description.as_bytes());
        key(out, 3, VARINT);
        out.push(2);
    }
    // flags: the W3C trace flags, and whether the parent is remote (HAS_IS_REMOTE | IS_REMOTE).
    let mut flags = u32::from(rec.flags.to_u8()) | 0x100;
    if rec.parent.is_some() && rec.parent_remote {
        flags |= 0x200;
    }
    key(out, 16, I32);
    out.extend_from_slice(&flags.to_le_bytes());
}

fn encode_event(out: &mut Vec<u8>, ev: &Ev) {
    fixed64(out, 1, unix_nanos(ev.at));
    bytes_field(out, 2, ev.name.as_bytes());
    for (k, v) in &ev.attrs {
        let v = match v {
            EvValue::Str(s) => AnyRef::Str(s),
            EvValue::I64(n) => AnyRef::I64(*n),
            EvValue::F64(f) => AnyRef::F64(*f),
            EvValue::Bool(b) => AnyRef::Bool(*b),
        };
        kv(out, 3, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn known_keys_are_encoded_as_any_key_is() {
        for (part, key) in [
            (DESTINATION_NAME, "messaging.destination.name"),
            (BODY_SIZE, "messaging.message.body.size"),
        ] {
            for s in ["", "orders.eu.created", &"x".repeat(300)] {
                let (mut fast, mut slow) = (vec![], vec![]);
                span_attr_str(&mut fast, part, s.as_bytes());
                kv(&mut slow, 9, key, AnyRef::Str(s));
                assert_eq!(fast, slow, "{key} = {s:?}");
            }
            for n in [0, 1, 127, 128, 4096, u64::from(u32::MAX)] {
                let (mut fast, mut slow) = (vec![], vec![]);
                span_attr_int(&mut fast, part, n);
                kv(&mut slow, 9, key, AnyRef::I64(n as i64));
                assert_eq!(fast, slow, "{key} = {n}");
            }
        }
    }

    #[test]
    fn nested_fields_are_encoded_as_bytes_fields_are() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 40_000] {
            let content: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut expected = vec![7];
            bytes_field(&mut expected, 2, &content);
            let mut out = vec![7];
            nested(&mut out, 2, |out| out.extend_from_slice(&content));
            assert_eq!(out, expected, "{n} bytes");
        }
    }

    #[test]
    fn headers_are_parsed_and_percent_decoded() {
        assert_eq!(
            parse_headers("api-key=a%20b, x=1,bad"),
            vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
        );
    }
}
