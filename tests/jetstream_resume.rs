//! How fast a JetStream consumer handles messages again once the client has reconnected: after
//! a single server restarts, and after the cluster node the client was on is killed. A
//! publisher on its own connection keeps storing a message every few milliseconds; the test
//! timestamps the runtime's reconnect (or the consumer's new leader) and the first message
//! handled after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nats_actors::jetstream::StreamConfig;
use nats_actors::prelude::*;
use nats_actors_suite::{eventually, logs, NatsCluster};

#[path = "common/jetstream.rs"]
mod common;
use common::Job;

/// The bar: handling resumes within this long after the reconnect.
const RESUME_WITHIN: Duration = Duration::from_secs(1);

#[derive(Actor, Clone, Default)]
struct Clock {
    /// When each message was handled.
    handled: Arc<Mutex<Vec<Instant>>>,
}

#[handlers]
impl Clock {
    #[consumer(stream = "RESUME", durable = "clock")]
    async fn tick(&self, _job: Job) {
        self.handled.lock().unwrap().push(Instant::now());
    }
}

impl Clock {
    fn count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    /// The first message handled at or after `t`.
    fn first_after(&self, t: Instant) -> Option<Instant> {
        self.handled
            .lock()
            .unwrap()
            .iter()
            .copied()
            .find(|h| *h >= t)
    }
}

fn stream(replicas: usize) -> StreamConfig {
    StreamConfig {
        num_replicas: replicas,
        ..common::stream("RESUME", "resume.>")
    }
}

/// Stores a job every 5 ms on its own connection (retrying through outages) until dropped.
fn publisher(urls: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls)
            .await
            .expect("publisher connects");
        let js = async_nats::jetstream::new(nats);
        // Bounded: 20,000 x 5 ms is far longer than any test here.
        for n in 0..20_000u64 {
            let body = serde_json::to_vec(&Job { n }).unwrap();
            if let Ok(ack) = js.publish("resume.tick", body.into()).await {
                // Short: an ack lost to a restart must not hold the next publish up, or the
                // consumer would look slow to resume when it only had nothing to take.
                let _ = tokio::time::timeout(Duration::from_millis(100), ack).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Waits for the runtime's reconnect count to pass `before` (polled every 2 ms, up to 30 s);
/// returns when it was seen.
async fn reconnected(runtime: &Runtime, before: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime.stats().reconnects <= before {
        assert!(Instant::now() < deadline, "the runtime never reconnected");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Instant::now()
}

/// Waits for a message handled after `since` and returns how long after `since` it was.
async fn resumed(actor: &Clock, since: Instant) -> Duration {
    let handled = eventually(Duration::from_secs(30), || async {
        actor.first_after(since).is_some()
    })
    .await;
    assert!(handled, "no message handled within 30 s of the reconnect");
    actor.first_after(since).unwrap() - since
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_within_a_second_of_reconnecting_after_a_server_restart() {
    logs();
    let mut server = nats_actors_suite::server();
    let actor = Clock::default();
    let runtime = Runtime::builder()
        .connect(nats_actors_suite::connect(&server))
        .stream(stream(1))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let publishing = publisher(vec![server.url()]);
    let mut gaps = Vec::new();
    for round in 0..3 {
        let before = actor.count();
        assert!(
            eventually(Duration::from_secs(10), || async {
                actor.count() >= before + 50
            })
            .await,
            "round {round}: messages are not flowing"
        );
        let reconnects = runtime.stats().reconnects;
        tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
        let at = reconnected(&runtime, reconnects).await;
        gaps.push(resumed(&actor, at).await);
    }
    publishing.abort();
    println!("resumed after a server restart: {gaps:?} after the reconnect");
    for gap in &gaps {
        assert!(*gap <= RESUME_WITHIN, "resumed {gap:?} after the reconnect");
    }
    runtime.shutdown().await;
}

/// A runtime on `cluster` with the replicated stream and `actor`, once the cluster has elected
/// its JetStream meta leader; and a publisher storing jobs meanwhile.
async fn on_cluster(cluster: &NatsCluster, actor: &Clock) -> Runtime {
    let options = nats_actors::ConnectOptions::new(cluster.urls()).retry_on_initial_connect(true);
    for _ in 0..50 {
        let started = Runtime::builder()
            .connect(options.clone())
            .stream(stream(3))
            .actor(actor.clone())
            .start()
            .await;
        match started {
            Ok(r) => return r,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("the cluster did not take the stream within 10 s");
}

/// The nodes leading the stream and its consumer (`None` while there is no leader).
async fn leaders(js: &async_nats::jetstream::Context) -> (Option<String>, Option<String>) {
    let Ok(mut stream) = js.get_stream("RESUME").await else {
        return (None, None);
    };
    let of_stream = stream
        .info()
        .await
        .ok()
        .and_then(|i| i.cluster.clone()?.leader);
    let of_consumer = stream
        .consumer_info("clock")
        .await
        .ok()
        .and_then(|i| i.cluster.clone()?.leader);
    (of_stream, of_consumer)
}

/// Moves the leaders of the stream and its consumer off `node` (a step down elects another).
async fn lead_elsewhere(nats: &async_nats::Client, node: &str) {
    let js = async_nats::jetstream::new(nats.clone());
    let moved = eventually(Duration::from_secs(20), || async {
        let (s, c) = leaders(&js).await;
        let (Some(s), Some(c)) = (s, c) else {
            return false;
        };
        if s == node {
            let _ = nats
                .request("$JS.API.STREAM.LEADER.STEPDOWN.RESUME", "".into())
                .await;
        }
        if c == node {
            let _ = nats
                .request("$JS.API.CONSUMER.LEADER.STEPDOWN.RESUME.clock", "".into())
                .await;
        }
        s != node && c != node
    })
    .await;
    assert!(moved, "the leaders did not move off {node}");
}

fn node_index(name: &str) -> usize {
    name.trim_start_matches('n')
        .parse()
        .expect("nodes are named n0, n1, ...")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_within_a_second_of_moving_to_another_cluster_node() {
    logs();
    let mut cluster = NatsCluster::start(3).expect("start a 3-node cluster");
    let actor = Clock::default();
    let runtime = on_cluster(&cluster, &actor).await;
    let publishing = publisher(cluster.urls());
    assert!(
        eventually(Duration::from_secs(20), || async { actor.count() >= 50 }).await,
        "messages are not flowing"
    );
    // Only the node the client is on is lost: the stream and its consumer lead elsewhere.
    let on = runtime.client().nats().server_info().server_name;
    lead_elsewhere(runtime.client().nats(), &on).await;
    // The publisher moves off the node to be killed: its own reconnect is not the consumer's gap.
    publishing.abort();
    let publishing = publisher(vec![cluster.urls()[(node_index(&on) + 1) % 3].clone()]);
    let reconnects = runtime.stats().reconnects;
    cluster.node(node_index(&on)).kill();
    let at = reconnected(&runtime, reconnects).await;
    let gap = resumed(&actor, at).await;
    publishing.abort();
    println!("resumed {gap:?} after reconnecting from the killed {on}");
    assert!(gap <= RESUME_WITHIN, "resumed {gap:?} after the reconnect");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_within_a_second_of_its_new_leader_after_losing_the_old() {
    logs();
    let mut cluster = NatsCluster::start(3).expect("start a 3-node cluster");
    let actor = Clock::default();
    let runtime = on_cluster(&cluster, &actor).await;
    let publishing = publisher(cluster.urls());
    assert!(
        eventually(Duration::from_secs(20), || async { actor.count() >= 50 }).await,
        "messages are not flowing"
    );
    // The client stays connected: no reconnect tells it that its pull request is gone.
    let on = runtime.client().nats().server_info().server_name;
    lead_elsewhere(runtime.client().nats(), &on).await;
    let js = runtime.client().jetstream().clone();
    let (_, leader) = leaders(&js).await;
    let leader = leader.expect("the consumer has a leader");
    let killed = node_index(&leader);
    let survivor = cluster.urls()[(killed + 1) % 3].clone();
    publishing.abort();
    let publishing = publisher(vec![survivor.clone()]);
    cluster.node(killed).kill();
    // Watched from a node that lives: when the consumer answers again, it has a new leader.
    let watcher = async_nats::jetstream::new(async_nats::connect(survivor).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let elected = loop {
        if let (_, Some(now)) = leaders(&watcher).await {
            if now != leader {
                break Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new consumer leader within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let gap = resumed(&actor, elected).await;
    publishing.abort();
    assert_eq!(
        runtime.stats().reconnects,
        0,
        "the client was not on the killed node"
    );
    println!("resumed {gap:?} after the consumer's new leader took over from {leader}");
    assert!(gap <= RESUME_WITHIN, "resumed {gap:?} after the election");
    runtime.shutdown().await;
}
