//! A runtime on a pool of 4 connections against a real server: handlers spread over them, what
//! it sends spread by subject with order per subject kept (100,000 messages over 10 subjects),
//! every connection back after a server restart, and the pool refused where it cannot work.

#[path = "support/http.rs"]
mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::jetstream::{JsPublish, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::{Error, Sender};
use nats_actors_suite::{connect, eventually, logs, nats, NatsServer};

#[derive(Actor, Clone, Default)]
struct Collector {
    seen: Arc<Mutex<HashMap<String, Vec<u64>>>>,
    stored: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Collector {
    #[subscribe("pool.*", buffer = 200_000)]
    async fn on(&self, n: u64, ctx: &Context) {
        let mut seen = self.seen.lock().unwrap();
        seen.entry(ctx.subject().to_string()).or_default().push(n);
    }

    #[request("pool_echo")]
    async fn echo(&self, n: u64) -> u64 {
        n + 1
    }

    #[consumer(stream = "POOL", durable = "pool")]
    async fn kept(&self, n: u64) {
        self.stored.lock().unwrap().push(n);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The messages each client connection sent the server (`in_msgs` of `/connz`).
async fn sent_per_connection(monitor: u16) -> Vec<u64> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], monitor));
    let page = http::get(addr, "/connz")
        .await
        .expect("the monitoring port answers");
    // The body may come in chunks: the JSON is from the first `{` to the last `}`.
    let body = &page.body;
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    let connz: serde_json::Value = serde_json::from_str(json).unwrap();
    connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["in_msgs"].as_u64().unwrap())
        .collect()
}

fn total(seen: &Mutex<HashMap<String, Vec<u64>>>) -> usize {
    seen.lock().unwrap().values().map(Vec::len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_connections_keep_order_per_subject_and_all_come_back_after_a_restart() {
    logs();
    let monitor = free_port();
    let mut server = NatsServer::builder()
        .arg("-m")
        .arg(monitor.to_string())
        .start()
        .unwrap();
    let collector = Collector::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .connections(4)
        .stream(StreamConfig {
            name: "POOL".into(),
            subjects: vec!["pool_kept.>".into()],
            ..Default::default()
        })
        .stream(StreamConfig {
            name: "POOL_PIPE".into(),
            subjects: vec!["pool_pipe.>".into()],
            ..Default::default()
        })
        .actor(collector.clone())
        .start()
        .await
        .unwrap();
    let health = runtime.health();
    assert_eq!(health.connections.len(), 4);
    assert!(health.ready && health.connections.iter().all(|c| c.connected));
    assert_eq!(
        sent_per_connection(monitor).await.len(),
        4,
        "four connections to the server"
    );

    // 100,000 messages over 10 subjects, each numbered in its subject.
    let client = runtime.client().clone();
    for chunk in 0..10u64 {
        let batch = (0..10_000u64).map(|i| {
            let n = chunk * 10_000 + i;
            (format!("pool.s{}", n % 10), n / 10)
        });
        let results = client.publish_batch(batch).await;
        assert!(results.iter().all(|r| r.is_ok()));
    }
    let all = || async { total(&collector.seen) == 100_000 };
    assert!(
        eventually(Duration::from_secs(30), all).await,
        "received {} of 100000",
        total(&collector.seen)
    );
    {
        let seen = collector.seen.lock().unwrap();
        assert_eq!(seen.len(), 10);
        let expected: Vec<u64> = (0..10_000).collect();
        for (subject, got) in seen.iter() {
            assert_eq!(got, &expected, "order of {subject}");
        }
    }
    // The subjects went out through more than one connection.
    let sent = sent_per_connection(monitor).await;
    eprintln!("messages each connection sent: {sent:?}");
    assert!(
        sent.iter().filter(|n| **n >= 10_000).count() >= 2,
        "{sent:?}"
    );
    assert!(sent.iter().sum::<u64>() >= 100_000, "{sent:?}");

    // A request and a JetStream consumer work through the pool.
    let back: u64 = client.request("pool_echo", &41u64).await.unwrap();
    assert_eq!(back, 42);
    client.js_publish("pool_kept.a", &7u64).await.unwrap();
    let kept = || async { collector.stored.lock().unwrap().as_slice() == [7] };
    assert!(eventually(Duration::from_secs(10), kept).await);
    // A pipelined publish over 10 subjects, so through several connections: each ack comes
    // back on its own connection, and each subject is stored in order.
    let batch = (0..1000u64).map(|n| (format!("pool_pipe.s{}", n % 10), n));
    let results = client
        .js_publish_pipelined(batch, 64, &JsPublish::new())
        .await;
    let sequences: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap().sequence)
        .collect();
    for s in 0..10 {
        let of_subject: Vec<u64> = sequences.iter().skip(s).step_by(10).copied().collect();
        assert!(of_subject.windows(2).all(|w| w[0] < w[1]), "order of s{s}");
    }
    let mut all = sequences.clone();
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<u64>>());

    // A server restart: every connection reconnects, and everything works again.
    server.restart().unwrap();
    let back_again = || async {
        let h = runtime.health();
        h.ready
            && h.connections
                .iter()
                .all(|c| c.connected && c.reconnects >= 1)
    };
    assert!(
        eventually(Duration::from_secs(20), back_again).await,
        "{:?}",
        runtime.health().connections
    );
    assert!(runtime.stats().reconnects >= 4, "{:?}", runtime.stats());
    let before = total(&collector.seen);
    let results = client
        .publish_batch((0..100u64).map(|n| (format!("pool.s{}", n % 10), n)))
        .await;
    assert!(results.iter().all(|r| r.is_ok()));
    let more = || async { total(&collector.seen) == before + 100 };
    assert!(eventually(Duration::from_secs(10), more).await);
    let back: u64 = client.request("pool_echo", &1u64).await.unwrap();
    assert_eq!(back, 2);
    client.js_publish("pool_kept.b", &8u64).await.unwrap();
    let kept = || async { collector.stored.lock().unwrap().as_slice() == [7, 8] };
    assert!(eventually(Duration::from_secs(15), kept).await);
    runtime.shutdown().await;
    let gone = || async { sent_per_connection(monitor).await.is_empty() };
    assert!(
        eventually(Duration::from_secs(5), gone).await,
        "every connection closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_is_refused_where_it_cannot_work() {
    logs();
    let server = NatsServer::start().unwrap();
    let given = nats(&server).await;
    let err = Runtime::builder()
        .client(given)
        .connections(2)
        .start()
        .await
        .err()
        .expect("a pool needs connect options");
    assert!(
        matches!(
            err,
            Error::Config {
                setting: "connections",
                ..
            }
        ),
        "{err}"
    );
    for n in [0, 17] {
        let err = Runtime::builder()
            .connect(connect(&server))
            .connections(n)
            .start()
            .await
            .err()
            .expect("out of range");
        assert!(err.to_string().contains("give 1 to 16"), "{err}");
    }
}
