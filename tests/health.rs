//! Health and readiness against a real server: `Runtime::health` and the `/livez` and
//! `/readyz` probes of the health listener through a server kill and restart and through a
//! graceful shutdown with a handler still running, each response recorded in order.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, nats, server};

#[derive(Actor, Clone, Default)]
struct Slow {
    started: Arc<AtomicBool>,
}

#[handlers]
impl Slow {
    #[subscribe("health.work")]
    async fn work(&self, _n: u32) {
        self.started.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// `GET path` on `addr`: the status code and the trimmed body (`None` when nothing listens).
async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let r = nats_actors_suite::http::get(addr, path).await?;
    Some((r.status, r.body.trim().to_string()))
}

/// Keeps `r` in `seen` when its status differs from the last one kept (the reason's seconds
/// change while the server is down).
fn note(seen: &mut Vec<(u16, String)>, r: Option<(u16, String)>) -> (u16, String) {
    let r = r.expect("the listener answers");
    if seen.last().map(|l| l.0) != Some(r.0) {
        seen.push(r.clone());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_connection_and_the_drain() {
    logs();
    let mut server = server();
    let slow = Slow::default();
    let runtime = Runtime::builder()
        .connect(connect(&server).ping_interval(Duration::from_millis(500)))
        .health_listener("127.0.0.1:0")
        .shutdown_timeout(Duration::from_secs(10))
        .actor(slow.clone())
        .start()
        .await
        .unwrap();
    let addr = runtime.health_addr().expect("the listener is bound");
    let mut seen: Vec<(u16, String)> = Vec::new();

    let health = runtime.health();
    assert!(
        health.ready && health.connected && !health.draining,
        "{health:?}"
    );
    assert!(
        health.server.as_deref().unwrap_or("").contains("127.0.0.1"),
        "{health:?}"
    );
    assert_eq!(get(addr, "/livez").await.map(|r| r.0), Some(200));
    assert_eq!(
        note(&mut seen, get(addr, "/readyz").await),
        (200, "ready".into())
    );
    assert_eq!(get(addr, "/nope").await.map(|r| r.0), Some(404));
    // No telemetry installed in this process: no metrics, and the answer says how to get them.
    let metrics = get(addr, "/metrics").await.expect("the listener answers");
    assert_eq!(metrics.0, 404);
    assert!(
        metrics.1.contains("OTEL_METRICS_EXPORTER=prometheus"),
        "{metrics:?}"
    );

    // The server dies: not ready (the runtime is alive), until it is back and confirmed.
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while note(&mut seen, get(addr, "/readyz").await).0 == 200 {
        assert!(
            Instant::now() < deadline,
            "still ready 10 s after the server died"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!runtime.health().connected);
    assert!(
        seen.last()
            .unwrap()
            .1
            .starts_with("not ready: disconnected"),
        "{seen:?}"
    );
    assert_eq!(
        get(addr, "/livez").await.map(|r| r.0),
        Some(200),
        "alive while down"
    );
    tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while note(&mut seen, get(addr, "/readyz").await).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready 20 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(runtime.health().ready);

    // A graceful shutdown with a handler running: not ready while it drains.
    let outside = nats(&server).await;
    outside.publish("health.work", "1".into()).await.unwrap();
    outside.flush().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            slow.started.load(SeqCst)
        })
        .await
    );
    let shutting = tokio::spawn(runtime.shutdown());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = note(&mut seen, get(addr, "/readyz").await);
        if r.0 == 503 && r.1.contains("draining") {
            break;
        }
        assert!(Instant::now() < deadline, "never draining: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(addr, "/livez").await.map(|r| r.0),
        Some(200),
        "alive while draining"
    );
    let report = shutting.await.unwrap();
    assert_eq!(report.aborted, 0);
    assert_eq!(
        get(addr, "/livez").await,
        None,
        "the listener stops with the runtime"
    );
    println!("/readyz, in order: {seen:?}");
    let statuses: Vec<u16> = seen.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 503, 200, 503], "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_fails_the_start() {
    logs();
    let server = server();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let refused = Runtime::builder()
        .connect(connect(&server))
        .health_listener(addr.as_str())
        .start()
        .await
        .err()
        .expect("the start fails");
    let text = refused.to_string();
    assert!(
        text.contains("health listener") && text.contains(&addr),
        "{text}"
    );
}
