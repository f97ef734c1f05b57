//! Console mode: with no OTLP endpoint, each finished trace is printed as an indented tree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// A trace is printed once no span of it ended for this long.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
struct Pending {
    traces: HashMap<TraceId, (Vec<SpanData>, Instant)>,
}

/// Collects spans per trace and prints each trace as a tree once it is quiet.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleExporter {
    pending: Arc<Mutex<Pending>>,
}

impl ConsoleExporter {
    pub(crate) fn new() -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let weak = Arc::downgrade(&pending);
        std::thread::Builder::new()
            .name("nats-actors-console".into())
            .spawn(move || {
                while let Some(p) = weak.upgrade() {
                    flush(&p, false);
                    drop(p);
                    std::thread::sleep(QUIET / 3);
                }
            })
            .ok();
        Self { pending }
    }
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for span in batch {
            let entry = p
                .traces
                .entry(span.span_context.trace_id())
                .or_insert_with(|| (Vec::new(), Instant::now()));
            entry.0.push(span);
            entry.1 = Instant::now();
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        flush(&self.pending, true);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        flush(&self.pending, true);
        Ok(())
    }
}

fn flush(pending: &Mutex<Pending>, all: bool) {
    let ready: Vec<Vec<SpanData>> = {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<TraceId> = p
            .traces
            .iter()
            .filter(|(_, (_, last))| all || last.elapsed() >= QUIET)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| p.traces.remove(&id).map(|(s, _)| s))
            .collect()
    };
    for spans in ready {
        print!("{}", render(spans));
    }
}

/// The tree of one trace, children in start order.
pub(crate) fn render(mut spans: Vec<SpanData>) -> String {
    spans.sort_by_key(|s| s.start_time);
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let mut out = String::new();
    let trace = spans
        .first()
        .map(|s| s.span_context.trace_id().to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "trace {trace}");
    for (i, s) in spans.iter().enumerate() {
        if !ids.contains(&s.parent_span_id) {
            write_span(&mut out, &spans, i, 1);
        }
    }
    out
}

fn write_span(out: &mut String, spans: &[SpanData], i: usize, depth: usize) {
    let s = &spans[i];
    let took = s.end_time.duration_since(s.start_time).unwrap_or_default();
    let kind = match s.span_kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    let _ = write!(
        out,
        "{:indent$}{} [{kind}] {:.3} ms",
        "",
        s.name,
        took.as_secs_f64() * 1e3,
        indent = depth * 2
    );
    for kv in &s.attributes {
        let key = kv.key.as_str();
        if matches!(
            key,
            "messaging.consumer.group.name" | "error.type" | "messaging.message.id"
        ) {
            let _ = write!(out, " {key}={}", kv.value);
        }
    }
    if let Status::Error { description } = &s.status {
        let _ = write!(out, " ERROR: {description}");
    }
    out.push('\n');
    let id = s.span_context.span_id();
    for (j, child) in spans.iter().enumerate() {
        if child.parent_span_id == id && j != i {
            write_span(out, spans, j, depth + 1);
        }
    }
}
