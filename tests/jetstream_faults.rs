//! JetStream under faults, against a real server: killed and restarted twice under load with an
//! idempotent consumer (no message lost, every effect applied exactly once), and handlers that
//! panic on some messages (every message ends processed or dead-lettered, the runtime alive).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::jetstream::{self, JsPublish, StreamConfig};
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

const TOTAL: u64 = 10_000;

#[derive(Actor, Clone, Default)]
struct Effects {
    /// How many times each job's effect was applied.
    applied: Arc<DashMap<u64, u32>>,
    calls: Arc<AtomicU64>,
}

#[handlers]
impl Effects {
    #[consumer(
        stream = "LOAD",
        durable = "effects",
        ack_wait = "2s",
        idempotent = true,
        concurrency = 4,
        backoff = "100ms",
        max_deliver = 20
    )]
    async fn apply(&self, job: Job) {
        self.calls.fetch_add(1, SeqCst);
        *self.applied.entry(job.n).or_insert(0) += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_twice_under_load_loses_nothing_and_applies_each_effect_once() {
    logs();
    let mut server = server();
    let actor = Effects::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(StreamConfig {
            name: "LOAD".into(),
            subjects: vec!["load.>".into()],
            ..Default::default()
        })
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    // Message ids make the publisher's retries safe: a publish that timed out but was stored
    // is not stored again.
    let publisher = tokio::spawn(async move {
        let mut failed = 0;
        for chunk in 0..(TOTAL / 500) {
            // Message `i` of a pipelined batch gets the id `load-<chunk>-<i>`.
            let options = JsPublish::new()
                .msg_id(format!("load-{chunk}"))
                .attempts(60);
            let jobs = (chunk * 500..(chunk + 1) * 500).map(|n| ("load.jobs", Job { n }));
            let results = client.js_publish_pipelined(jobs, 128, &options).await;
            failed += results.iter().filter(|r| r.is_err()).count();
        }
        failed
    });

    for threshold in [2_500u64, 6_000] {
        assert!(
            eventually(Duration::from_secs(60), || async {
                actor.applied.len() as u64 >= threshold
            })
            .await,
            "stalled at {} effects before restart",
            actor.applied.len()
        );
        tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
    }
    let failed = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publisher finished")
        .unwrap();
    assert_eq!(failed, 0, "publishes failed for good");
    let all = eventually(Duration::from_secs(120), || async {
        actor.applied.len() as u64 == TOTAL
    })
    .await;
    assert!(
        all,
        "only {} of {TOTAL} jobs had an effect",
        actor.applied.len()
    );
    let twice: Vec<u64> = actor
        .applied
        .iter()
        .filter(|e| *e.value() != 1)
        .map(|e| *e.key())
        .collect();
    assert!(
        twice.is_empty(),
        "effects applied more than once: {twice:?}"
    );
    let stats = runtime.stats();
    assert!(stats.reconnects >= 2, "{stats:?}");
    let info = runtime
        .client()
        .jetstream()
        .get_stream("LOAD")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, TOTAL, "each job stored once");
    println!(
        "{TOTAL} jobs, {} handler calls, {} redeliveries skipped as already processed, {} reconnects",
        actor.calls.load(SeqCst),
        stats.handler("Effects::apply").unwrap().duplicates,
        stats.reconnects
    );
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Brittle {
    done: Arc<AtomicU64>,
}

#[handlers]
impl Brittle {
    #[consumer(
        stream = "BRITTLE",
        durable = "brittle",
        max_deliver = 2,
        backoff = "10ms"
    )]
    async fn run(&self, job: Job) {
        if job.n % 100 == 7 {
            panic!("job {} always panics", job.n);
        }
        self.done.fetch_add(1, SeqCst);
    }

    #[request("brittle.alive")]
    async fn alive(&self) -> u64 {
        self.done.load(SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_of_a_hundred_ends_processed_or_dead_lettered_and_the_runtime_lives() {
    logs();
    let server = server();
    let actor = Brittle::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(StreamConfig {
            name: "BRITTLE".into(),
            subjects: vec!["brittle.jobs".into()],
            ..Default::default()
        })
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let results = client
        .js_publish_pipelined(
            (0..1000).map(|n| ("brittle.jobs", Job { n })),
            128,
            &JsPublish::new(),
        )
        .await;
    assert!(results.iter().all(|r| r.is_ok()));
    let settled = eventually(Duration::from_secs(30), || async {
        let s = runtime.stats().handler("Brittle::run").unwrap();
        s.handled + s.dead_lettered == 1000
    })
    .await;
    let stats = runtime.stats().handler("Brittle::run").unwrap();
    assert!(settled, "{stats:?}");
    assert_eq!(
        (stats.handled, stats.dead_lettered, stats.panics),
        (990, 10, 20)
    );
    let letters = jetstream::dead_letters(client, "BRITTLE_DLQ", 100)
        .await
        .unwrap();
    assert_eq!(letters.len(), 10);
    assert!(letters
        .iter()
        .all(|l| l.deliveries == 2 && l.error.contains("always panics")));
    // Still serving.
    let done: u64 = client.request("brittle.alive", &()).await.unwrap();
    assert_eq!(done, 990);
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Tally {
    seen: Arc<DashMap<u64, u32>>,
}

#[handlers]
impl Tally {
    #[consumer(
        stream = "REPLICATED",
        durable = "tally",
        ack_wait = "2s",
        backoff = "100ms",
        max_deliver = 20,
        concurrency = 4
    )]
    async fn count(&self, job: Job) {
        *self.seen.entry(job.n).or_insert(0) += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_killed_under_load_loses_nothing() {
    logs();
    let mut cluster = nats_actors_suite::NatsCluster::start(3).expect("start a 3-node cluster");
    let actor = Tally::default();
    let options = nats_actors::ConnectOptions::new(cluster.urls()).retry_on_initial_connect(true);
    // The cluster elects its JetStream meta leader after start: retry until the stream is made.
    let mut runtime = None;
    for _ in 0..50 {
        let started = Runtime::builder()
            .connect(options.clone())
            .stream(StreamConfig {
                name: "REPLICATED".into(),
                subjects: vec!["replicated.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .actor(actor.clone())
            .start()
            .await;
        match started {
            Ok(r) => {
                runtime = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let runtime = runtime.expect("the cluster takes the stream within 10 s");
    let client = runtime.client().clone();
    const JOBS: u64 = 3_000;
    let publisher = tokio::spawn(async move {
        let mut failed = 0;
        for chunk in 0..(JOBS / 250) {
            let options = JsPublish::new().msg_id(format!("c-{chunk}")).attempts(60);
            let jobs = (chunk * 250..(chunk + 1) * 250).map(|n| ("replicated.jobs", Job { n }));
            failed += client
                .js_publish_pipelined(jobs, 64, &options)
                .await
                .iter()
                .filter(|r| r.is_err())
                .count();
        }
        failed
    });
    assert!(
        eventually(Duration::from_secs(60), || async {
            actor.seen.len() >= 500
        })
        .await
    );
    // Kill the stream's leader: the others elect a new one; publishers and the consumer go on.
    let info = runtime
        .client()
        .jetstream()
        .get_stream("REPLICATED")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("a stream leader");
    let index: usize = leader.trim_start_matches('n').parse().unwrap();
    cluster.node(index).kill();
    println!("killed {leader}");

    let failed = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publisher finished")
        .unwrap();
    assert_eq!(failed, 0);
    let all = eventually(Duration::from_secs(90), || async {
        actor.seen.len() as u64 == JOBS
    })
    .await;
    assert!(all, "{} of {JOBS} jobs seen", actor.seen.len());
    let redelivered = actor.seen.iter().filter(|e| *e.value() > 1).count();
    println!("{JOBS} jobs handled after losing {leader}; {redelivered} handled more than once (at-least-once)");
    runtime.shutdown().await;
}
