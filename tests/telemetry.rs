//! Telemetry against a real server, recorded by in-memory exporters: one trace across actors,
//! queue groups, errors and panics, garbage trace headers, metrics, and traces shared with Python.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::telemetry::{Sampling, TelemetryBuilder, TelemetryGuard};
use nats_actors::HeaderMap;
use nats_actors_suite::{connect, eventually, nats, server};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

struct Recorded {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    guard: TelemetryGuard,
}

/// One telemetry installation for this test binary (it is process-global).
fn telemetry() -> &'static Recorded {
    static T: OnceLock<Recorded> = OnceLock::new();
    T.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let guard = TelemetryBuilder::new("telemetry-tests")
            .sampling(Sampling::always_on().parent_based())
            .span_exporter_unbatched(spans.clone())
            .metric_exporter(metrics.clone(), Duration::from_secs(3600))
            .logs(false)
            .install()
            .expect("install telemetry");
        Recorded {
            spans,
            metrics,
            guard,
        }
    })
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

/// Waits until a finished span named `name` exists, and returns it.
async fn span_named(name: &str) -> SpanData {
    let found = eventually(Duration::from_secs(10), || async {
        telemetry()
            .spans
            .get_finished_spans()
            .unwrap()
            .iter()
            .any(|s| s.name == name)
    })
    .await;
    assert!(found, "no span named {name:?}");
    telemetry()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

fn trace_spans(trace: TraceId) -> Vec<SpanData> {
    telemetry()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
}

#[derive(Actor)]
struct FlowA;

#[handlers]
impl FlowA {
    #[subscribe("flow.start")]
    async fn start(&self, order: Order, ctx: &Context) -> Result<(), HandlerError> {
        tracing::info!(order = order.id, "user event inside the handler");
        // A span the user opens is a child of the process span, and sees its OpenTelemetry
        // context as the current one.
        use tracing::Instrument as _;
        async {
            let cx = opentelemetry::Context::current();
            use opentelemetry::trace::TraceContextExt as _;
            assert!(
                cx.span().span_context().is_valid(),
                "current context in a user span"
            );
        }
        .instrument(tracing::info_span!("user work"))
        .await;
        let price: u32 = ctx.request("flow.price", &order).await?;
        ctx.publish("flow.priced", &price).await?;
        Ok(())
    }
}

#[derive(Actor)]
struct FlowB;

#[handlers]
impl FlowB {
    #[request("flow.price")]
    async fn price(&self, order: Order) -> u32 {
        order.id * 100
    }
}

#[derive(Actor)]
#[actor(queue = "billing")]
struct FlowC;

#[handlers]
impl FlowC {
    #[subscribe("flow.priced")]
    async fn priced(&self, _price: u32) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_publish_request_reply_and_publish() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(FlowA)
        .actor(FlowB)
        .actor(FlowC)
        .start()
        .await
        .unwrap();
    runtime
        .client()
        .publish("flow.start", &Order { id: 7 })
        .await
        .unwrap();
    let last = span_named("process flow.priced").await;
    let trace = last.span_context.trace_id();
    // Every span of the flow ends up in this one trace.
    assert!(
        eventually(Duration::from_secs(5), || async {
            trace_spans(trace).len() >= 8
        })
        .await
    );
    let spans = trace_spans(trace);
    let by_name: HashMap<&str, &SpanData> = spans.iter().map(|s| (s.name.as_ref(), s)).collect();
    let get = |n: &str| {
        *by_name
            .get(n)
            .unwrap_or_else(|| panic!("span {n:?} missing from {:?}", by_name.keys()))
    };
    let (send_start, process_start) = (get("send flow.start"), get("process flow.start"));
    let (request, process_price, reply) = (
        get("request flow.price"),
        get("process flow.price"),
        get("send"),
    );
    let (send_priced, process_priced) = (get("send flow.priced"), get("process flow.priced"));
    let id = |s: &SpanData| s.span_context.span_id();
    assert_eq!(
        get("user work").parent_span_id,
        id(process_start),
        "a span opened in the handler is a child of its process span"
    );
    assert_eq!(
        send_start.parent_span_id,
        SpanId::INVALID,
        "the first publish starts the trace"
    );
    assert_eq!(process_start.parent_span_id, id(send_start));
    assert_eq!(request.parent_span_id, id(process_start));
    assert_eq!(
        process_price.parent_span_id,
        id(request),
        "the responder's process span is a child of the request"
    );
    assert_eq!(reply.parent_span_id, id(process_price));
    assert_eq!(send_priced.parent_span_id, id(process_start));
    assert_eq!(process_priced.parent_span_id, id(send_priced));
    for (span, kind) in [
        (send_start, SpanKind::Producer),
        (process_start, SpanKind::Consumer),
        (request, SpanKind::Client),
        (process_price, SpanKind::Consumer),
        (reply, SpanKind::Producer),
    ] {
        assert_eq!(span.span_kind, kind, "{}", span.name);
        assert_eq!(attr_str(span, "messaging.system").as_deref(), Some("nats"));
        assert_eq!(
            attr(span, "server.port"),
            Some(&Value::I64(server.port() as i64)),
            "{}",
            span.name
        );
        assert!(attr_str(span, "server.address").is_some());
        assert!(attr(span, "messaging.message.body.size").is_some());
        assert_eq!(span.status, Status::Unset, "{}", span.name);
    }
    for (span, key, want) in [
        (process_start, "messaging.operation.name", Some("process")),
        (process_start, "messaging.operation.type", Some("process")),
        (
            process_start,
            "messaging.destination.name",
            Some("flow.start"),
        ),
        (
            process_start,
            "messaging.destination.template",
            Some("flow.start"),
        ),
        (send_start, "messaging.operation.type", Some("send")),
        (
            process_priced,
            "messaging.consumer.group.name",
            Some("billing"),
        ),
        // Reply subjects are inboxes: no destination.
        (reply, "messaging.destination.name", None),
    ] {
        assert_eq!(attr_str(span, key).as_deref(), want, "{} {key}", span.name);
    }
    assert!(
        process_start
            .events
            .iter()
            .any(|e| e.name == "user event inside the handler"),
        "tracing events in the handler attach to its process span"
    );
    runtime.shutdown().await;
}

#[derive(Actor)]
struct Faulty;

#[handlers]
impl Faulty {
    #[request("faulty.{mode}")]
    async fn run(&self, mode: Param<String>) -> Result<u32, HandlerError> {
        match mode.as_str() {
            "error" => Err(HandlerError::with_code(409, "conflict")),
            "panic" => panic!("boom"),
            _ => Ok(1),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_set_status_error_type_and_an_exception() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Faulty)
        .start()
        .await
        .unwrap();
    for (mode, error_type) in [("error", "handler"), ("panic", "panic")] {
        let err = runtime
            .client()
            .request::<u32, _>(&format!("faulty.{mode}"), &())
            .await
            .unwrap_err();
        assert!(err.code().is_some());
        let request = span_named(&format!("request faulty.{mode}")).await;
        assert_eq!(
            attr_str(&request, "error.type").as_deref(),
            Some("service_error")
        );
        let process = trace_spans(request.span_context.trace_id())
            .into_iter()
            .find(|s| s.name == "process faulty.{mode}")
            .expect("the process span");
        assert_eq!(process.parent_span_id, request.span_context.span_id());
        assert_eq!(
            attr_str(&process, "error.type").as_deref(),
            Some(error_type)
        );
        assert!(
            matches!(process.status, Status::Error { .. }),
            "{mode}: {:?}",
            process.status
        );
        let exception = process
            .events
            .iter()
            .find(|e| e.name == "exception")
            .expect("an exception event");
        let message = exception
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "exception.message")
            .unwrap();
        assert!(message
            .value
            .as_str()
            .contains(if mode == "error" { "conflict" } else { "boom" }));
    }
    runtime.shutdown().await;
}

#[derive(Actor, Default)]
struct Tolerant {
    seen: std::sync::atomic::AtomicU32,
}

#[handlers]
impl Tolerant {
    #[subscribe("tolerant")]
    async fn on(&self, n: u32) {
        self.seen.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_trace_headers_do_not_break_handling() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Tolerant::default())
        .start()
        .await
        .unwrap();
    let raw = nats(&server).await;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("traceparent", "garbage".into())],
        vec![("traceparent", "00-zzzz-yyyy-01".into())],
        vec![(
            "Traceparent",
            "00-00000000000000000000000000000000-0000000000000000-01".into(),
        )],
        vec![("baggage", format!("k={}", "v".repeat(20_000)))],
        vec![("tracestate", ",,,==;;".into())],
    ];
    let n = cases.len() as u32;
    for headers in cases {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(k, v.as_str());
        }
        raw.publish_with_headers("tolerant", h, "1".into())
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            runtime.stats().handler("Tolerant::on").handled == n as u64
        })
        .await,
        "{:?}",
        runtime.stats().handler("Tolerant::on")
    );
    // Each got a fresh root trace (spans end just after the counters move: wait for them).
    let all_ended = eventually(Duration::from_secs(5), || async {
        telemetry()
            .spans
            .get_finished_spans()
            .unwrap()
            .iter()
            .filter(|s| s.name == "process tolerant")
            .count()
            >= n as usize
    })
    .await;
    assert!(all_ended);
    let process: Vec<SpanData> = telemetry()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "process tolerant")
        .collect();
    assert_eq!(process.len(), n as usize);
    assert!(process
        .iter()
        .all(|s| s.parent_span_id == SpanId::INVALID
            && s.span_context.trace_id() != TraceId::INVALID));
    // A valid context with a W3C-capitalized header name is still continued.
    let mut h = HeaderMap::new();
    h.insert(
        "TRACEPARENT",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    raw.publish_with_headers("tolerant", h, "1".into())
        .await
        .unwrap();
    let continued = eventually(Duration::from_secs(5), || async {
        trace_spans(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap())
            .iter()
            .any(|s| s.parent_span_id == SpanId::from_hex("00f067aa0ba902b7").unwrap())
    })
    .await;
    assert!(continued, "header names are matched whatever their case");
    runtime.shutdown().await;
}

#[derive(Actor)]
struct Metered;

#[handlers]
impl Metered {
    #[subscribe("metered")]
    async fn on(&self, n: u32) -> Result<(), HandlerError> {
        if n.is_multiple_of(3) {
            return Err(HandlerError::new("every third fails"));
        }
        Ok(())
    }
}

fn sum_u64(name: &str, template: &str) -> u64 {
    let mut total = 0;
    for rm in telemetry().metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                    for p in sum.data_points() {
                        if p.attributes().any(|kv| kv.value.as_str() == template) {
                            total = total.max(p.value());
                        }
                    }
                }
            }
        }
    }
    total
}

fn histogram_count(name: &str, template: &str, error: Option<&str>) -> u64 {
    let mut total = 0;
    for rm in telemetry().metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                    for p in h.data_points() {
                        let of_template = p.attributes().any(|kv| kv.value.as_str() == template);
                        let e = p
                            .attributes()
                            .find(|kv| kv.key.as_str() == "error.type")
                            .map(|kv| kv.value.as_str().into_owned());
                        if of_template && e.as_deref() == error {
                            total = total.max(p.count());
                        }
                    }
                }
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_messages_and_failures() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Metered)
        .start()
        .await
        .unwrap();
    const N: u32 = 30;
    for n in 1..=N {
        runtime.client().publish("metered", &n).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            {
                let s = runtime.stats().handler("Metered::on");
                s.handled + s.failed == N as u64
            }
        })
        .await
    );
    let failures = (1..=N).filter(|n| n.is_multiple_of(3)).count() as u64;
    telemetry().guard.flush();
    assert_eq!(
        sum_u64("messaging.client.consumed.messages", "metered"),
        N as u64
    );
    assert_eq!(
        histogram_count("messaging.process.duration", "metered", None),
        N as u64 - failures
    );
    assert_eq!(
        histogram_count("messaging.process.duration", "metered", Some("handler")),
        failures
    );
    assert_eq!(sum_u64("nats_actors.handler.errors", "metered"), failures);
    // Sends are counted by operation (attribute `messaging.operation.name = send`).
    assert!(sum_u64("messaging.client.sent.messages", "send") >= N as u64);
    runtime.shutdown().await;
}

// --- Cross-language: a Python client with nats-py and the OpenTelemetry SDK ---

fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        venv.is_file(),
        "{} is missing: run `make python-env` (make test does) to install nats-py and opentelemetry-sdk",
        venv.display()
    );
    venv
}

fn script(name: &str) -> String {
    format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[derive(Actor)]
struct FromPython;

#[handlers]
impl FromPython {
    #[subscribe("py.in")]
    async fn on(&self, _payload: serde_json::Value, ctx: &Context) -> Result<(), HandlerError> {
        ctx.publish("py.in.done", &1).await?;
        Ok(())
    }

    #[subscribe("py.kick")]
    async fn kick(&self, _n: u32, ctx: &Context) -> Result<(), HandlerError> {
        ctx.publish("py.out", &"to python").await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_publish_is_continued_by_the_rust_actor() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(FromPython)
        .start()
        .await
        .unwrap();
    let out = Command::new(python())
        .args([script("publish_in_span.py"), server.url(), "py.in".into()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = TraceId::from_hex(ids["trace_id"].as_str().unwrap()).unwrap();
    let parent = SpanId::from_hex(ids["span_id"].as_str().unwrap()).unwrap();
    let found = eventually(Duration::from_secs(10), || async {
        trace_spans(trace)
            .iter()
            .any(|s| s.name == "process py.in" && s.parent_span_id == parent)
    })
    .await;
    assert!(
        found,
        "the Rust process span has the Python span as parent, in its trace: {:?}",
        trace_spans(trace)
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_publish_is_continued_by_a_python_consumer() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(FromPython)
        .start()
        .await
        .unwrap();
    let mut child = Command::new(python())
        .args([script("consume_in_span.py"), server.url(), "py.out".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        ready.as_deref().ok(),
        Some("ready"),
        "python consumer did not start"
    );
    runtime.client().publish("py.kick", &1).await.unwrap();
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("python printed its span");
    let status = child.wait().unwrap();
    assert!(status.success());
    let ids: serde_json::Value = serde_json::from_str(&line).unwrap();
    let trace = TraceId::from_hex(ids["trace_id"].as_str().unwrap()).unwrap();
    let parent = SpanId::from_hex(ids["parent_span_id"].as_str().unwrap()).unwrap();
    let send = span_named("send py.out").await;
    assert_eq!(
        send.span_context.trace_id(),
        trace,
        "python continues the Rust trace"
    );
    assert_eq!(
        send.span_context.span_id(),
        parent,
        "python's span is a child of the Rust send span"
    );
    runtime.shutdown().await;
}

#[derive(Actor)]
struct Relay;

#[handlers]
impl Relay {
    #[subscribe("relay.in")]
    async fn relay(&self, n: u32, ctx: &Context) -> Result<(), HandlerError> {
        ctx.publish("relay.out", &n).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_trace_stays_one_unsampled_trace() {
    use futures::StreamExt;
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Relay)
        .start()
        .await
        .unwrap();
    let raw = nats(&server).await;
    let mut out = raw.subscribe("relay.out").await.unwrap();
    raw.flush().await.unwrap();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let mut h = HeaderMap::new();
    h.insert("traceparent", traceparent);
    raw.publish_with_headers("relay.in", h, "5".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), out.next())
        .await
        .unwrap()
        .unwrap();
    let passed_on = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.to_string());
    assert_eq!(
        passed_on.as_deref(),
        Some(traceparent),
        "the unsampled context is passed on unchanged"
    );
    let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    assert!(
        trace_spans(trace).is_empty(),
        "nothing recorded for an unsampled trace"
    );
    let spans = telemetry().spans.get_finished_spans().unwrap();
    assert!(
        !spans
            .iter()
            .any(|s| s.name == "send relay.out" || s.name == "process relay.in"),
        "no new root traces either"
    );
    runtime.shutdown().await;
}

/// Holds its first message until `gate` opens, so that the others wait in the subscription's
/// buffer and are then taken one after another, in one context reused from message to message.
#[derive(Actor, Clone, Default)]
struct Burst {
    gate: std::sync::Arc<tokio::sync::Notify>,
}

#[handlers]
impl Burst {
    #[subscribe("burst.in")]
    async fn on(&self, n: u32, ctx: &Context) -> Result<(), HandlerError> {
        if n == 0 {
            self.gate.notified().await;
        }
        ctx.publish("burst.out", &n).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_taken_back_to_back_each_get_their_own_span_and_trace() {
    telemetry();
    const N: u32 = 20;
    let server = server();
    let actor = Burst::default();
    let runtime = nats_actors_suite::start(&server, actor.clone()).await;
    let raw = nats(&server).await;
    // Message n continues trace n + 1, from parent span n + 1.
    let trace = |n: u32| TraceId::from(u128::from(n) + 0xb0b0_0000);
    let parent = |n: u32| SpanId::from(u64::from(n) + 0xa0a0_0000);
    for n in 0..N {
        let mut h = HeaderMap::new();
        let tp = format!("00-{}-{}-01", trace(n), parent(n));
        h.insert("traceparent", tp.as_str());
        raw.publish_with_headers("burst.in", h, n.to_string().into())
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    // All of them in the runtime's client before the first one is let go.
    let stats = runtime.client().nats().statistics();
    let arrived = eventually(Duration::from_secs(5), || async {
        stats.in_messages.load(std::sync::atomic::Ordering::Relaxed) >= u64::from(N)
    })
    .await;
    assert!(arrived, "the messages reached the runtime's client");
    actor.gate.notify_one();
    let done = eventually(Duration::from_secs(10), || async {
        (0..N).all(|n| trace_spans(trace(n)).len() >= 2)
    })
    .await;
    assert!(done, "every message's spans were exported");
    for n in 0..N {
        let spans = trace_spans(trace(n));
        let process: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer)
            .collect();
        assert_eq!(process.len(), 1, "one process span for message {n}");
        let process = process[0];
        assert_eq!(
            process.parent_span_id,
            parent(n),
            "message {n}'s own parent"
        );
        assert!(process.end_time >= process.start_time);
        let send: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Producer)
            .collect();
        assert_eq!(send.len(), 1, "one send span for message {n}");
        assert_eq!(
            send[0].parent_span_id,
            process.span_context.span_id(),
            "message {n}'s publish continues its own process span"
        );
    }
    assert_eq!(runtime.stats().handler("Burst::on").handled, u64::from(N));
    runtime.shutdown().await;
}
