//! Lame duck mode on a 3-node cluster: the node a runtime is connected to is put in lame duck
//! mode while messages flow. The runtime is told, its connection is closed by the server, it
//! reconnects to another node, and its handlers go on: every JetStream message handled, request
//! handlers answering again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::{eventually, logs, NatsCluster};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

#[derive(Actor, Clone, Default)]
struct Worker {
    handled: Arc<Mutex<BTreeSet<u64>>>,
}

#[handlers]
impl Worker {
    #[consumer(stream = "LDM", durable = "worker")]
    async fn job(&self, job: Job) {
        self.handled.lock().unwrap().insert(job.n);
    }

    #[request("ldm.echo")]
    async fn echo(&self, job: Job) -> u64 {
        job.n
    }
}

const CONFIG: &str = "lame_duck_grace_period: 1s\nlame_duck_duration: 30s";
const JOBS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_on_a_node_in_lame_duck_mode_moves_to_another_and_goes_on() {
    logs();
    let mut cluster = NatsCluster::start_with_config(3, CONFIG).unwrap();
    let urls = cluster.urls();
    let admin = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(urls.clone())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(admin.clone());
    let config = async_nats::jetstream::stream::Config {
        name: "LDM".into(),
        subjects: vec!["ldm.jobs.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    let made = || async { js.create_stream(config.clone()).await.is_ok() };
    assert!(
        eventually(Duration::from_secs(20), made).await,
        "no R3 stream"
    );
    let actor = Worker::default();
    let runtime = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new(urls.clone()))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let on = runtime.health().server.unwrap();
    let node: usize = on[1..2].parse().unwrap();
    // The sender stays on another node.
    let sender = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(500)))
        .connect(urls[(node + 1) % 3].clone())
        .await
        .unwrap();
    let sender_js = async_nats::jetstream::new(sender.clone());
    let mut failed_requests = 0;
    let mut entered = None;
    for n in 1..=JOBS {
        if n == 50 {
            cluster.node(node).lame_duck().unwrap();
            entered = Some(Instant::now());
        }
        // Sent again under the same id until stored: a leader moving away may lose an ack.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("job-{n}").as_str());
        let payload: Bytes = serde_json::to_vec(&Job { n }).unwrap().into();
        let stored = || async {
            let sent = sender_js
                .publish_with_headers("ldm.jobs.x", headers.clone(), payload.clone())
                .await;
            match sent {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            }
        };
        assert!(
            eventually(Duration::from_secs(20), stored).await,
            "job {n} not stored"
        );
        let answer = sender.request("ldm.echo", payload.clone()).await;
        match answer {
            Ok(m) if m.payload.as_ref() == n.to_string().as_bytes() => {}
            _ => failed_requests += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entered = entered.unwrap();
    let moved = || async {
        let h = runtime.health();
        h.ready
            && h.server
                .is_some_and(|s| !s.starts_with(&format!("n{node} ")))
    };
    assert!(
        eventually(Duration::from_secs(10), moved).await,
        "{:?}",
        runtime.health()
    );
    let all = || async { actor.handled.lock().unwrap().len() as u64 == JOBS };
    assert!(
        eventually(Duration::from_secs(30), all).await,
        "handled {} of {JOBS}",
        actor.handled.lock().unwrap().len()
    );
    let stats = runtime.stats();
    assert_eq!(stats.lame_duck, 1, "{stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    // Once moved, every request is answered again.
    for n in 0..20u64 {
        let payload = serde_json::to_vec(&Job { n }).unwrap();
        let m = sender.request("ldm.echo", payload.into()).await.unwrap();
        assert_eq!(m.payload.as_ref(), n.to_string().as_bytes());
    }
    println!(
        "lame duck on n{node}: runtime now on {:?}; {JOBS} jobs handled, {failed_requests} of {JOBS} requests unanswered while it moved, all done {:?} after",
        runtime.health().server,
        entered.elapsed()
    );
    runtime.shutdown().await;
}
