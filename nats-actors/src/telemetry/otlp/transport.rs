//! One export request over gRPC or HTTP/protobuf.

use std::time::Duration;

use bytes::Bytes;

use super::compress::Compression;
use super::config::Config;
use super::tls::Tls;

pub(super) enum Transport {
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
    pub(super) fn new(config: &Config) -> Self {
        if config.grpc {
            let mut endpoint = match tonic::transport::Endpoint::from_shared(config.url.clone()) {
                Ok(e) => e.timeout(config.timeout).connect_timeout(config.timeout),
                Err(e) => return Self::Broken(format!("bad endpoint {}: {e}", config.url)),
            };
            if let Some((tls, _)) = &config.tls {
                endpoint = match endpoint.tls_config(tls.tonic()) {
                    Ok(e) => e,
                    Err(e) => return Self::Broken(format!("TLS to {}: {e}", config.url)),
                };
            }
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
            let mut fixed = vec![
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", timeout.as_str()),
            ];
            if config.compression == Compression::Gzip {
                fixed.push(("grpc-encoding", "gzip"));
            }
            for (k, v) in fixed {
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
            if config.compression == Compression::Gzip {
                headers.insert(
                    reqwest::header::CONTENT_ENCODING,
                    reqwest::header::HeaderValue::from_static("gzip"),
                );
            }
            // Always a rustls configuration of our own (ring), even for `http://`: reqwest
            // has no crypto provider of its own in this build.
            let rustls = match &config.tls {
                Some((_, rustls)) => Ok(rustls.as_ref().clone()),
                None => Tls::default().rustls_config(false),
            };
            let client = rustls.and_then(|rustls| {
                reqwest::Client::builder()
                    .timeout(config.timeout)
                    .use_preconfigured_tls(rustls)
                    .build()
                    .map_err(|e| e.to_string())
            });
            match client {
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
    pub(super) fn send(
        &self,
        body: Bytes,
    ) -> impl std::future::Future<Output = Result<(), String>> + use<> {
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
                        .map_err(|e| chain(&e))?;
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
        .map_err(|e| chain(&e))?;
    let mut req = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(body)));
    *req.method_mut() = http::Method::POST;
    *req.version_mut() = http::Version::HTTP_2;
    *req.uri_mut() =
        http::Uri::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    *req.headers_mut() = headers;
    let resp = channel.call(req).await.map_err(|e| chain(&e))?;
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

/// `e` and its sources: what failed (a refused certificate, a connection refused) is often
/// only in the sources of reqwest's and tonic's errors.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
