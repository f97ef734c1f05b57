//! The OpenTelemetry SDK's OTLP exporters (for metrics, for spans of user code, and for spans
//! the built-in exporter cannot serve), with the built-in exporter's TLS: rustls on ring, the
//! platform's roots plus `OTEL_EXPORTER_OTLP_[signal_]CERTIFICATE`, and mutual TLS with
//! `_CLIENT_CERTIFICATE` and `_CLIENT_KEY`. The SDK reads `_COMPRESSION` itself (gzip).

use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};

use super::otlp::tls::Tls;
use super::otlp::{export_timeout, Compression};

/// Whether `signal`'s endpoint (`OTEL_EXPORTER_OTLP_{signal}_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) is `https://`.
fn secure(signal: &str) -> bool {
    [
        format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"),
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    .is_some_and(|v| v.trim().starts_with("https://"))
}

/// `signal`'s TLS settings when its endpoint is `https://`; an error names a bad file.
fn tls(signal: &str) -> Result<Option<Tls>, String> {
    if secure(signal) {
        Tls::from_env(signal).map(Some)
    } else {
        Ok(None)
    }
}

/// A blocking HTTP client on rustls (ring) with `tls`, for the SDK's HTTP exporters. Built on
/// a thread of its own, as the SDK builds its own: a blocking client starts a runtime, which
/// cannot be done on an async worker thread.
fn http_client(tls: Option<&Tls>, timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    let rustls = match tls {
        Some(tls) => tls.rustls_config(true)?,
        None => Tls::default().rustls_config(false)?,
    };
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .use_preconfigured_tls(rustls)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    })
    .join()
    .map_err(|_| "the thread building the HTTP client panicked".to_string())?
}

/// The SDK's span exporter over `protocol`, as the environment configures it.
pub(super) fn span_exporter(
    protocol: Protocol,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let timeout = export_timeout("TRACES");
    let tls = tls("TRACES")?;
    let builder = opentelemetry_otlp::SpanExporter::builder();
    match protocol {
        Protocol::Grpc => {
            let mut b = builder.with_tonic().with_timeout(timeout);
            if let Some(tls) = &tls {
                b = b.with_tls_config(tls.tonic());
            }
            b.build()
        }
        _ => builder
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(http_client(tls.as_ref(), timeout)?)
            .build(),
    }
    .map_err(|e| e.to_string())
}

/// The SDK's metric exporter over `protocol`, as the environment configures it, and a note
/// to log when `OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION` has a value that is ignored.
pub(super) fn metric_exporter(
    protocol: Protocol,
) -> Result<(opentelemetry_otlp::MetricExporter, Option<String>), String> {
    let timeout = export_timeout("METRICS");
    let tls = tls("METRICS")?;
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match protocol {
        Protocol::Grpc => {
            let mut b = builder.with_tonic().with_timeout(timeout);
            if let Some(tls) = &tls {
                b = b.with_tls_config(tls.tonic());
            }
            b.build()
        }
        _ => builder
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(http_client(tls.as_ref(), timeout)?)
            .build(),
    }
    .map_err(|e| e.to_string())?;
    Ok((exporter, Compression::from_env("METRICS").1))
}
