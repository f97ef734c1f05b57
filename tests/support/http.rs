//! A plain HTTP/1.1 GET, for the health listener's probes and `/metrics`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a GET answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header lines, as sent.
    pub headers: String,
    /// The body, whole.
    pub body: String,
}

/// `GET path` on `addr` (`None` when nothing listens or it does not answer within 5 s).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Option<Response> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (headers, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Some(Response {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    })
}
