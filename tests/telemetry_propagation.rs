//! Trace context across the wire, recorded by in-memory exporters: garbage and oversized trace
//! headers, an unsampled trace passed on unchanged, messages taken back to back each continuing
//! their own trace, and traces shared with Python (nats-py and the OpenTelemetry SDK).

use std::process::{Command, Stdio};
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::HeaderMap;
use nats_actors_suite::recorded::{span_named, telemetry, trace_spans};
use nats_actors_suite::{connect, eventually, nats, server};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;

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
            runtime.stats().handler("Tolerant::on").unwrap().handled == n as u64
        })
        .await,
        "{:?}",
        runtime.stats().handler("Tolerant::on").unwrap()
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
    assert_eq!(
        runtime.stats().handler("Burst::on").unwrap().handled,
        u64::from(N)
    );
    runtime.shutdown().await;
}
