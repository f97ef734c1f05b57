//! The metrics as Prometheus text, for `/metrics` of the health listener: the same instruments
//! as OTLP, read at each scrape by a reader of their own (cumulative), named by OpenTelemetry's
//! Prometheus compatibility rules: `.` becomes `_`, the unit a suffix (`_seconds`), a counter
//! ends in `_total`, the resource is `target_info`, the meter's name the `otel_scope_name` label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Gauge, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

/// What the reader hands its points to between scrapes: nothing, they are read at the scrape.
#[derive(Debug)]
pub(crate) struct AtScrape;

impl PushMetricExporter for AtScrape {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The reader a scrape collects from; a clone of it is given to the meter provider.
pub(crate) type ScrapeReader = PeriodicReader<AtScrape>;

/// A reader for scrapes. Its own timer only hands points to [`AtScrape`]: rarely.
pub(crate) fn reader() -> ScrapeReader {
    PeriodicReader::builder(AtScrape)
        .with_interval(Duration::from_secs(3600))
        .build()
}

/// Collects what the instruments hold now and renders it.
pub(crate) fn scrape(reader: &ScrapeReader) -> Result<String, String> {
    let mut collected = ResourceMetrics::default();
    reader.collect(&mut collected).map_err(|e| e.to_string())?;
    Ok(render(&collected))
}

/// One metric family: its type, help and sample lines.
struct Family {
    kind: &'static str,
    help: String,
    samples: String,
}

/// `collected` in the Prometheus text format (version 0.0.4).
fn render(collected: &ResourceMetrics) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for scope in collected.scope_metrics() {
        let scope_label = KeyValue::new("otel_scope_name", scope.scope().name().to_string());
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(data) => family(&mut families, metric, data, &scope_label),
                AggregatedMetrics::U64(data) => family(&mut families, metric, data, &scope_label),
                AggregatedMetrics::I64(data) => family(&mut families, metric, data, &scope_label),
            }
        }
    }
    let mut out = String::from("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
    let resource: Vec<KeyValue> = collected
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let _ = writeln!(out, "target_info{} 1", labels(resource.iter(), None));
    for (name, f) in families {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        out.push_str(&f.samples);
    }
    out
}

/// A number as Prometheus writes it.
trait Sample: Copy {
    fn text(self) -> String;
}

impl Sample for f64 {
    fn text(self) -> String {
        if self.is_nan() {
            "NaN".into()
        } else if self.is_infinite() {
            if self > 0.0 { "+Inf" } else { "-Inf" }.into()
        } else {
            self.to_string()
        }
    }
}

impl Sample for u64 {
    fn text(self) -> String {
        self.to_string()
    }
}

impl Sample for i64 {
    fn text(self) -> String {
        self.to_string()
    }
}

/// Adds `metric`'s points to its family (made on first sight).
fn family<T: Sample>(
    families: &mut BTreeMap<String, Family>,
    metric: &Metric,
    data: &MetricData<T>,
    scope: &KeyValue,
) {
    let base = with_unit(&sanitize(metric.name()), metric.unit());
    let (name, kind) = match data {
        MetricData::Sum(s) if s.is_monotonic() => (counter_name(&base), "counter"),
        MetricData::Sum(_) | MetricData::Gauge(_) => (base, "gauge"),
        MetricData::Histogram(_) => (base, "histogram"),
        // Not rendered: nats-actors records none, and Prometheus text has no such type.
        MetricData::ExponentialHistogram(_) => return,
    };
    let f = families.entry(name.clone()).or_insert_with(|| Family {
        kind,
        help: metric.description().to_string(),
        samples: String::new(),
    });
    if f.kind != kind {
        // Two instruments that map to one name with different types: the first one's stays.
        return;
    }
    let out = &mut f.samples;
    match data {
        MetricData::Sum(Sum { .. }) | MetricData::Gauge(Gauge { .. }) => {
            for (attributes, value) in points(data) {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(attributes.iter().chain([scope]), None),
                    value.text()
                );
            }
        }
        MetricData::Histogram(h) => histogram(out, &name, h, scope),
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// The attributes and value of each point of a sum or gauge.
fn points<T: Sample>(data: &MetricData<T>) -> Vec<(Vec<KeyValue>, T)> {
    match data {
        MetricData::Sum(s) => s
            .data_points()
            .map(|p| (p.attributes().cloned().collect(), p.value()))
            .collect(),
        MetricData::Gauge(g) => g
            .data_points()
            .map(|p| (p.attributes().cloned().collect(), p.value()))
            .collect(),
        _ => Vec::new(),
    }
}

/// `_bucket` lines (cumulative, up to `+Inf`), `_sum` and `_count` of each point.
fn histogram<T: Sample>(out: &mut String, name: &str, h: &Histogram<T>, scope: &KeyValue) {
    for p in h.data_points() {
        let attributes: Vec<KeyValue> = p.attributes().cloned().collect();
        let mut cumulative = 0u64;
        let bounds: Vec<f64> = p.bounds().collect();
        for (i, count) in p.bucket_counts().enumerate() {
            cumulative += count;
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| b.text());
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                labels(attributes.iter().chain([scope]), Some(&le))
            );
        }
        let plain = labels(attributes.iter().chain([scope]), None);
        let _ = writeln!(out, "{name}_sum{plain} {}", p.sum().text());
        let _ = writeln!(out, "{name}_count{plain} {}", p.count());
    }
}

/// `{k="v",...}` (with `le` last when given), or nothing without labels.
fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) -> String {
    let mut parts: Vec<String> = attributes
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                sanitize(kv.key.as_str()),
                escape_value(&value_text(&kv.value))
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn value_text(v: &Value) -> String {
    v.as_str().into_owned()
}

/// A metric or label name: what is not `[a-zA-Z0-9_:]` becomes `_`, and it does not start with
/// a digit.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The name with its unit as a suffix; annotations (`{message}`) add none.
fn with_unit(name: &str, unit: &str) -> String {
    let suffix = match unit {
        "" | "1" => return name.to_string(),
        u if u.starts_with('{') => return name.to_string(),
        "s" => "seconds".to_string(),
        "ms" => "milliseconds".to_string(),
        "By" => "bytes".to_string(),
        other => sanitize(other),
    };
    if name.ends_with(&format!("_{suffix}")) {
        name.to_string()
    } else {
        format!("{name}_{suffix}")
    }
}

fn counter_name(name: &str) -> String {
    if name.ends_with("_total") {
        name.to_string()
    } else {
        format!("{name}_total")
    }
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        assert_eq!(
            with_unit(&sanitize("messaging.process.duration"), "s"),
            "messaging_process_duration_seconds"
        );
        assert_eq!(
            counter_name(&with_unit(
                &sanitize("messaging.client.sent.messages"),
                "{message}"
            )),
            "messaging_client_sent_messages_total"
        );
        assert_eq!(with_unit("size_bytes", "By"), "size_bytes");
        assert_eq!(sanitize("9lives.x-y"), "_9lives_x_y");
    }

    #[test]
    fn label_values_are_escaped() {
        let kv = KeyValue::new("error.type", "a \"b\"\\\nc");
        assert_eq!(
            labels([&kv].into_iter(), Some("0.5")),
            r#"{error_type="a \"b\"\\\nc",le="0.5"}"#
        );
        assert_eq!(labels(std::iter::empty(), None), "");
    }
}
