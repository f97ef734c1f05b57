//! With the collector unreachable, handlers answer as usual and shutdown does not hang.

#[path = "common/collector_trouble.rs"]
mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_stops_neither_handling_nor_shutdown() {
    // A loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint: format!("http://127.0.0.1:{port}"),
        protocol: "grpc",
        export_timeout_ms: Some(500),
        shutdown_timeout: None,
        bound: Duration::from_secs(8),
    })
    .await;
}
