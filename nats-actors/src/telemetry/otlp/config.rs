//! Where and how the built-in exporter sends, from the standard environment.

use std::time::Duration;

use super::compress::Compression;
use super::tls::Tls;

/// The export timeout when the environment sets none. The OTLP default is 10 s; lower, a
/// collector that does not answer holds neither the span queue nor shutdown for long (a
/// healthy one answers in milliseconds).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The export timeout of `signal` (`TRACES`, `METRICS`): `OTEL_EXPORTER_OTLP_{signal}_TIMEOUT`,
/// else `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), else [`DEFAULT_EXPORT_TIMEOUT`].
pub(crate) fn export_timeout(signal: &str) -> Duration {
    let ms = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    ms(&format!("OTEL_EXPORTER_OTLP_{signal}_TIMEOUT"))
        .or_else(|| ms("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis)
}

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
    /// `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`.
    pub compression: Compression,
    /// For an `https://` endpoint: the roots and client certificate to use, and (for HTTP)
    /// the rustls configuration built from them.
    pub tls: Option<(Tls, std::sync::Arc<rustls::ClientConfig>)>,
    /// What to log once telemetry is installed (a compression value that was ignored).
    pub notes: Vec<String>,
}

/// Why the built-in exporter does not serve what the environment asks for.
#[derive(Debug)]
pub(crate) enum NotServed {
    /// No traces endpoint is set.
    NoEndpoint,
    /// The SDK's exporter serves it instead; the reason, to be logged.
    Unsupported(String),
    /// The configuration is wrong (a certificate file that cannot be read or parsed).
    Invalid(String),
}

impl Config {
    /// The exporter the environment asks for: an `http://` or `https://` endpoint, compressed
    /// with gzip or not. Any other endpoint is [`NotServed::Unsupported`] (the SDK's OTLP
    /// exporter is used then).
    pub(crate) fn from_env(grpc: bool) -> Result<Self, NotServed> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(u) => u.trim().to_string(),
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").ok_or(NotServed::NoEndpoint)?;
                let base = base.trim().trim_end_matches('/');
                if grpc {
                    base.to_string()
                } else {
                    format!("{base}/v1/traces")
                }
            }
        };
        let secure = url.starts_with("https://");
        if !secure && !url.starts_with("http://") {
            return Err(NotServed::Unsupported(format!(
                "the traces endpoint `{url}` is neither http:// nor https://"
            )));
        }
        let tls = if secure {
            let tls = Tls::from_env("TRACES").map_err(NotServed::Invalid)?;
            // Built here, so that a client key that does not match its certificate is an
            // error at set-up.
            let rustls = tls.rustls_config(true).map_err(NotServed::Invalid)?;
            Some((tls, std::sync::Arc::new(rustls)))
        } else {
            None
        };
        let (compression, note) = Compression::from_env("TRACES");
        let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        let ms = |k: &str, default: u64| {
            var(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let timeout = export_timeout("TRACES");
        let max_queue = ms("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize;
        let max_batch = (ms("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize).min(max_queue);
        Ok(Self {
            url,
            grpc,
            headers,
            timeout,
            max_queue,
            max_batch,
            delay: Duration::from_millis(ms("OTEL_BSP_SCHEDULE_DELAY", 5000)),
            concurrency: ms("OTEL_BSP_MAX_CONCURRENT_EXPORTS", 2).clamp(1, 16) as usize,
            compression,
            tls,
            notes: note.into_iter().collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_and_percent_decoded() {
        assert_eq!(
            parse_headers("api-key=a%20b, x=1,bad"),
            vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
        );
    }
}
