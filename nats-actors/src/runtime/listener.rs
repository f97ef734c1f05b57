//! The health listener (feature `health`): HTTP/1.1 on the address given to
//! [`RuntimeBuilder::health_listener`](crate::RuntimeBuilder::health_listener) or in
//! `NATS_ACTORS_HEALTH_ADDR`, answering Kubernetes-style probes from [`Health`](super::Health):
//! `/livez` (200 while the runtime runs), `/readyz` (200 when ready, 503 with the reason
//! otherwise) and `/metrics` (the metrics in the Prometheus text format, when telemetry has
//! them: [`TelemetryBuilder::prometheus`](crate::telemetry::TelemetryBuilder::prometheus)).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use super::health::Watched;
use crate::error::Error;

/// The listening task, stopped when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (an error at start if it cannot) and serves the probes from `watched`.
pub(crate) async fn listen(addr: &str, watched: Arc<Watched>) -> Result<Listener, Error> {
    let refused = |e: std::io::Error| Error::Config {
        setting: "health listener",
        reason: format!("cannot listen on `{addr}`: {e}"),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(refused)?;
    let bound = listener.local_addr().map_err(refused)?;
    tracing::info!(addr = %bound, "health listener: /livez, /readyz, /metrics");
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: try again a little later.
                    tracing::warn!(error = %e, "health listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let watched = watched.clone();
            tokio::spawn(async move {
                let answer = hyper::service::service_fn(move |request: Request<_>| {
                    let response = answer(&watched, request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer);
                // Bounded: a client that never finishes its request does not hold a task.
                let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
            });
        }
    });
    Ok(Listener { addr: bound, task })
}

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn answer(watched: &Watched, path: &str) -> Response<Full<Bytes>> {
    let mut content_type = "text/plain; charset=utf-8";
    let (status, body) = match path {
        "/livez" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" => {
            let health = watched.snapshot();
            match health.reason() {
                None => (StatusCode::OK, "ready\n".to_string()),
                Some(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            }
        }
        "/metrics" => match crate::telemetry::prometheus_text() {
            Some(Ok(text)) => {
                content_type = PROMETHEUS_TEXT;
                (StatusCode::OK, text)
            }
            Some(Err(why)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metrics cannot be read: {why}\n"),
            ),
            None => (
                StatusCode::NOT_FOUND,
                "metrics are off: install telemetry with Prometheus text \
                 (OTEL_METRICS_EXPORTER=prometheus, or TelemetryBuilder::prometheus)\n"
                    .to_string(),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "try /livez, /readyz or /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
