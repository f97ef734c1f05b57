//! At default export settings (no `OTEL_EXPORTER_OTLP_TIMEOUT`), an HTTP collector that takes
//! connections and requests and never answers holds shutdown, the runtime's and the telemetry
//! guard's together, to at most the runtime's shutdown timeout plus 5 s.

#[path = "common/collector_trouble.rs"]
mod common;

use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Accepts up to 100 connections and reads what they send, for at most a minute, answering
/// nothing.
async fn black_hole(listener: tokio::net::TcpListener) {
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        let mut readers = Vec::new();
        for _ in 0..100 {
            let Ok((mut socket, _)) = listener.accept().await else {
                break;
            };
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                for _ in 0..100_000 {
                    if matches!(socket.read(&mut buf).await, Ok(0) | Err(_)) {
                        break;
                    }
                }
            }));
        }
        futures::future::pending::<()>().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_collector_holds_shutdown_to_its_timeout_plus_five_seconds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = tokio::spawn(black_hole(listener));
    let shutdown_timeout = Duration::from_secs(2);
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint: format!("http://127.0.0.1:{port}"),
        protocol: "http/protobuf",
        export_timeout_ms: None,
        shutdown_timeout: Some(shutdown_timeout),
        bound: shutdown_timeout + Duration::from_secs(5),
    })
    .await;
    collector.abort();
}
