//! The receiver's HTTP/1.1 side: `POST /v1/traces` and `/v1/metrics`, protobuf, plain or
//! gzipped (`Content-Encoding: gzip`), on a plain or TLS connection.

use std::io::Read as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Store;

/// Serves keep-alive HTTP/1.1 requests with a `Content-Length` body on one connection.
pub(super) async fn serve_http<S>(mut conn: S, store: Arc<Store>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if path == "/v1/traces" {
            *store.tenant.lock().unwrap() = header("x-tenant");
        }
        buf.reserve((head_end + length).saturating_sub(buf.len()));
        while buf.len() < head_end + length {
            match conn.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let raw = &buf[head_end..head_end + length];
        let gzipped = header("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let unzipped;
        let body = if gzipped {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut out)
                .is_err()
            {
                out.clear();
            }
            unzipped = out;
            store.compressed(&path);
            &unzipped[..]
        } else {
            raw
        };
        let status = match path.as_str() {
            "/v1/traces" if store.counting => {
                if store.count_request(body) {
                    "200 OK"
                } else {
                    "400 Bad Request"
                }
            }
            "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
                Ok(req) => {
                    store.traces(req);
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            },
            "/v1/metrics" => {
                *store.metric_exports.lock().unwrap() += 1;
                "200 OK"
            }
            _ => "404 Not Found",
        };
        buf.drain(..head_end + length);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
