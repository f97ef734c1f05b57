//! Telemetry recorded by in-memory exporters, for the telemetry tests: one installation per test
//! binary (it is process-global), and look-ups of the spans it finished.

use std::sync::OnceLock;
use std::time::Duration;

use nats_actors::telemetry::{Sampling, TelemetryBuilder, TelemetryGuard};
use opentelemetry::trace::TraceId;
use opentelemetry::Value;
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

use crate::eventually;

/// What the installation records into.
pub struct Recorded {
    /// Every finished span (exported unbatched: a span is here as soon as it ends).
    pub spans: InMemorySpanExporter,
    /// The metrics, exported when [`Recorded::guard`] is flushed.
    pub metrics: InMemoryMetricExporter,
    /// The installation.
    pub guard: TelemetryGuard,
}

/// One telemetry installation for this test binary (it is process-global).
pub fn telemetry() -> &'static Recorded {
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

/// The value of attribute `key` of `span`.
pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// The value of attribute `key` of `span`, as a string.
pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

/// Waits until a finished span named `name` exists, and returns it.
pub async fn span_named(name: &str) -> SpanData {
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

/// The finished spans of `trace`.
pub fn trace_spans(trace: TraceId) -> Vec<SpanData> {
    telemetry()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}
