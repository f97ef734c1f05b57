//! Network faults, not only process kills: the runtime reaches real servers through a
//! fault-injecting proxy (`nats_actors_suite::proxy`) that adds latency, stalls the link
//! without closing it, resets it in the middle of a frame, or cuts one cluster node off. An
//! idempotent durable consumer under a publisher must apply every job exactly once through
//! each; the time to notice each fault and to recover is measured and printed
//! (`cargo test --all-features --test network_faults -- --nocapture`).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use nats_actors::jetstream::StreamConfig;
use nats_actors::prelude::*;
use nats_actors_suite::{eventually, logs, nats, server, FaultProxy, NatsServer};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

#[derive(Actor, Clone, Default)]
struct Effects {
    /// How many times each job's effect was applied.
    applied: Arc<DashMap<u64, u32>>,
    calls: Arc<AtomicU64>,
}

#[handlers]
impl Effects {
    #[consumer(
        stream = "JOBS",
        durable = "effects",
        ack_wait = "2s",
        idempotent = true,
        concurrency = 16,
        backoff = "100ms",
        max_deliver = 20
    )]
    async fn apply(&self, job: Job) {
        self.calls.fetch_add(1, SeqCst);
        *self.applied.entry(job.n).or_insert(0) += 1;
    }
}

impl Effects {
    fn distinct(&self) -> usize {
        self.applied.len()
    }
}

fn jobs_stream(replicas: usize) -> StreamConfig {
    StreamConfig {
        name: "JOBS".into(),
        subjects: vec!["jobs.>".into()],
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Jobs per batch, and the pause between batches (a steady load through the fault).
const BATCH: u64 = 50;
const PACE: Duration = Duration::from_millis(50);
/// The most jobs a load publishes.
const MAX_JOBS: u64 = 20_000;

/// A publisher straight to the server(s): jobs with ids `<prefix>-<n>` (distinct per test: the
/// runtime shares its in-flight claims per bucket across the process), batch by batch, each
/// batch retried until every message of it is acked (the ids make a retry store nothing
/// twice), until [`stop`](Self::stop) or `limit` jobs.
struct Load {
    /// The end of the last batch begun.
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Jobs published, and retries.
    task: tokio::task::JoinHandle<(u64, u32)>,
}

impl Load {
    fn start(js: &jetstream::Context, prefix: &'static str, limit: u64) -> Load {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(publish(
            js.clone(),
            prefix,
            limit,
            sent.clone(),
            stop.clone(),
        ));
        Load { sent, stop, task }
    }

    /// A job not begun yet: its effect shows that the whole path works again after a fault
    /// (jobs already in the runtime's inbox go on being handled through a reconnect).
    fn fresh(&self) -> u64 {
        self.sent.load(SeqCst) + BATCH
    }

    /// Stops after the current batch; how many jobs were published, and the retries.
    async fn stop(self) -> (u64, u32) {
        self.stop.store(true, SeqCst);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the publisher finished")
            .expect("the publisher did not panic")
    }
}

async fn publish(
    js: jetstream::Context,
    prefix: &'static str,
    limit: u64,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> (u64, u32) {
    let mut retries = 0;
    let mut start = 0;
    while start < limit && !stop.load(SeqCst) {
        let batch = start..(start + BATCH).min(limit);
        sent.store(batch.end, SeqCst);
        while let Err(e) = publish_batch(&js, prefix, batch.clone()).await {
            retries += 1;
            assert!(retries < 100, "publishing keeps failing: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        start = batch.end;
        tokio::time::sleep(PACE).await;
    }
    (start, retries)
}

async fn publish_batch(
    js: &jetstream::Context,
    prefix: &str,
    batch: Range<u64>,
) -> Result<(), String> {
    let mut acks = Vec::new();
    for n in batch {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{prefix}-{n}"));
        let payload = serde_json::to_vec(&Job { n }).expect("a job encodes");
        let ack = js
            .publish_with_headers("jobs.run", headers, payload.into())
            .await
            .map_err(|e| e.to_string())?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How long until `done` holds, polled every millisecond for up to `within`; `None` if it
/// never did.
async fn time_until(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Some(start.elapsed())
}

/// Waits until the consumer has nothing pending and nothing unacked (no redelivery can come
/// any more), then asserts that each of `total` jobs was stored once and applied once.
async fn assert_each_applied_once(js: &jetstream::Context, actor: &Effects, total: u64) {
    let stream = js.get_stream("JOBS").await.expect("the stream");
    let last = std::sync::Mutex::new(None);
    let settled = eventually(Duration::from_secs(60), || async {
        let Ok(info) = stream.consumer_info("effects").await else {
            return false;
        };
        *last.lock().unwrap() = Some((info.num_pending, info.num_ack_pending));
        info.num_pending == 0 && info.num_ack_pending == 0 && actor.distinct() as u64 == total
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        settled,
        "not settled: {} of {total} jobs applied, (pending, unacked) = {last:?}",
        actor.distinct()
    );
    let stored = js
        .get_stream("JOBS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored, total, "each job stored once");
    let twice: Vec<(u64, u32)> = actor
        .applied
        .iter()
        .filter(|e| *e.value() != 1)
        .map(|e| (*e.key(), *e.value()))
        .collect();
    assert!(
        twice.is_empty(),
        "effects applied more than once: {twice:?}"
    );
}

/// One server, a proxy in front of it, a runtime with [`Effects`] through the proxy (default
/// connect options), and a JetStream context straight to the server for the publisher.
struct Rig {
    proxy: FaultProxy,
    runtime: Runtime,
    actor: Effects,
    js: jetstream::Context,
    _server: NatsServer,
}

impl Rig {
    async fn start(latency: Duration) -> Rig {
        logs();
        let server = server();
        let proxy = FaultProxy::to(&server);
        proxy.set_latency(latency);
        let actor = Effects::default();
        let runtime = Runtime::builder()
            .connect(nats_actors::ConnectOptions::new([proxy.url()]))
            .stream(jobs_stream(1))
            .actor(actor.clone())
            .start()
            .await
            .expect("start the runtime through the proxy");
        let js = jetstream::new(nats(&server).await);
        Rig {
            proxy,
            runtime,
            actor,
            js,
            _server: server,
        }
    }

    fn disconnects(&self) -> u64 {
        self.runtime.stats().disconnects
    }

    fn reconnects(&self) -> u64 {
        self.runtime.stats().reconnects
    }

    async fn applied_at_least(&self, n: usize) {
        let reached = eventually(Duration::from_secs(60), || async {
            self.actor.distinct() >= n
        })
        .await;
        assert!(reached, "stalled at {} effects", self.actor.distinct());
    }

    /// Stops `load`, asserts every job published was applied once, and shuts down.
    async fn finish(self, load: Load, what: &str) {
        let (total, retries) = load.stop().await;
        assert_each_applied_once(&self.js, &self.actor, total).await;
        report(what, total, retries, &self.actor, &self.runtime);
        self.runtime.shutdown().await;
    }
}

fn report(what: &str, total: u64, retries: u32, actor: &Effects, runtime: &Runtime) {
    let stats = runtime.stats();
    println!(
        "{what}: {total} jobs applied once each; {} handler calls, {} redeliveries skipped as \
         processed, {} reconnects, {retries} publish retries",
        actor.calls.load(SeqCst),
        stats.handler("Effects::apply").unwrap().duplicates,
        stats.reconnects
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_ms_each_way_slows_nothing_into_a_loss_or_a_disconnect() {
    let rig = Rig::start(Duration::from_millis(50)).await;
    // The proxy really delays: a round trip (a request no one answers: the server's "no
    // responders" comes back) takes at least the latency both ways.
    let start = Instant::now();
    let probe = rig
        .runtime
        .client()
        .nats()
        .request("rtt.probe", "".into())
        .await;
    let rtt = start.elapsed();
    assert!(probe.is_err(), "nobody answers rtt.probe");
    assert!(rtt >= Duration::from_millis(100), "round trip {rtt:?}");
    const TOTAL: u64 = 600;
    let load = Load::start(&rig.js, "latency", TOTAL);
    rig.applied_at_least(TOTAL as usize).await;
    assert_eq!(rig.disconnects(), 0, "100 ms round trips are no dead link");
    println!("latency: 50 ms each way, round trip {rtt:?}, no disconnect");
    rig.finish(load, "latency").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_link_is_noticed_within_ten_seconds_and_loses_nothing() {
    let rig = Rig::start(Duration::ZERO).await;
    let load = Load::start(&rig.js, "stall", MAX_JOBS);
    rig.applied_at_least(500).await;

    rig.proxy.stall();
    let detected = time_until(Duration::from_secs(15), || rig.disconnects() >= 1).await;
    let detected = detected.expect("a stalled link noticed within 15 s");
    assert!(
        detected < Duration::from_secs(10),
        "stall noticed after {detected:?}"
    );
    // Reconnect attempts through the stalled proxy hang until their connection timeout.
    assert_eq!(rig.reconnects(), 0, "no connection through a stalled link");
    // Anything received before the stall was handled long ago: the next new effect needs
    // the link back. The publisher went on: a job begun after the heal waits for the backlog.
    let before = rig.actor.distinct();
    let fresh = load.fresh();
    let start = Instant::now();
    rig.proxy.heal();
    let reconnected = time_until(Duration::from_secs(15), || rig.reconnects() >= 1).await;
    let next = time_until(Duration::from_secs(30), || rig.actor.distinct() > before)
        .await
        .map(|_| start.elapsed());
    let caught_up = time_until(Duration::from_secs(60), || {
        rig.actor.applied.contains_key(&fresh)
    })
    .await
    .map(|_| start.elapsed());
    println!(
        "stall: detected in {detected:?}; from the heal, reconnected in {reconnected:?}, next \
         job applied in {next:?}, the {} jobs stored meanwhile applied in {caught_up:?}",
        fresh - before as u64
    );
    assert!(caught_up.is_some(), "the backlog never applied");
    assert!(reconnected.is_some() && next.is_some(), "no recovery");
    rig.finish(load, "stall").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_in_the_middle_of_a_frame_lose_nothing_and_apply_nothing_twice() {
    let rig = Rig::start(Duration::ZERO).await;
    let load = Load::start(&rig.js, "reset", MAX_JOBS);
    for (i, threshold) in [500usize, 1_200, 2_000].into_iter().enumerate() {
        rig.applied_at_least(threshold).await;
        let disconnects = rig.disconnects();
        let fresh = load.fresh();
        let start = Instant::now();
        rig.proxy.reset_mid_frame();
        let detected = time_until(Duration::from_secs(15), || rig.disconnects() > disconnects)
            .await
            .expect("a reset noticed");
        let reconnected = time_until(Duration::from_secs(15), || rig.reconnects() > i as u64)
            .await
            .map(|_| start.elapsed());
        let next = time_until(Duration::from_secs(30), || {
            rig.actor.applied.contains_key(&fresh)
        })
        .await
        .map(|_| start.elapsed());
        println!(
            "reset {}: from the reset, detected in {detected:?}, reconnected in \
             {reconnected:?}, a later job applied in {next:?}",
            i + 1
        );
        assert!(reconnected.is_some() && next.is_some(), "no recovery");
    }
    assert_eq!(rig.proxy.resets(), 3);
    rig.finish(load, "reset").await;
}

/// A routed cluster whose nodes do not advertise each other to clients (`--no_advertise`):
/// the client knows only the proxies and cannot go around them. (`NatsCluster` advertises.)
fn cluster(size: usize) -> Vec<NatsServer> {
    let ports: Vec<u16> = (0..size)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        })
        .collect();
    let routes = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            NatsServer::builder()
                .arg("-n")
                .arg(format!("n{i}"))
                .arg("--cluster_name")
                .arg("network-faults")
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{port}"))
                .arg("--routes")
                .arg(routes.clone())
                .arg("--no_advertise")
                .start()
                .expect("start a cluster node")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_client_loses_nothing_and_applies_nothing_twice() {
    logs();
    let nodes = cluster(3);
    let proxies: Vec<FaultProxy> = nodes.iter().map(FaultProxy::to).collect();
    let options = nats_actors::ConnectOptions::new(proxies.iter().map(FaultProxy::url))
        .retry_on_initial_connect(true);
    let actor = Effects::default();
    // The cluster elects its JetStream meta leader after start: retry until the stream is made.
    let mut runtime = None;
    for _ in 0..100 {
        let started = Runtime::builder()
            .connect(options.clone())
            .stream(jobs_stream(3))
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
    let runtime = runtime.expect("the cluster takes the stream within 20 s");
    let nats_client = runtime.client().nats().clone();
    let pool = nats_client.server_pool().await.unwrap();
    assert!(
        pool.len() == 3 && pool.iter().all(|s| !s.is_discovered),
        "the client knows only the proxies: {pool:?}"
    );
    let direct = async_nats::connect(nodes.iter().map(NatsServer::url).collect::<Vec<_>>())
        .await
        .unwrap();
    let js = jetstream::new(direct);
    let load = Load::start(&js, "cut", MAX_JOBS);
    let reached = eventually(Duration::from_secs(60), || async {
        actor.distinct() >= 400
    })
    .await;
    assert!(reached, "stalled at {} effects", actor.distinct());

    let port = nats_client.server_info().port;
    let cut = nodes
        .iter()
        .position(|n| n.port() == port)
        .expect("on a node");
    let accepted: Vec<u64> = proxies.iter().map(FaultProxy::accepted).collect();
    let fresh = load.fresh();
    let start = Instant::now();
    proxies[cut].cut();
    let detected = time_until(Duration::from_secs(15), || runtime.stats().disconnects >= 1)
        .await
        .expect("the cut noticed");
    let reconnected = time_until(Duration::from_secs(15), || runtime.stats().reconnects >= 1)
        .await
        .map(|_| start.elapsed());
    let next = time_until(Duration::from_secs(30), || {
        actor.applied.contains_key(&fresh)
    })
    .await
    .map(|_| start.elapsed());
    println!(
        "cut n{cut}: from the cut, detected in {detected:?}, reconnected in {reconnected:?}, a \
         later job applied in {next:?}"
    );
    assert!(reconnected.is_some() && next.is_some(), "no recovery");
    let now_on = nats_client.server_info().port;
    assert_ne!(now_on, port, "moved off the cut node");
    let other = nodes.iter().position(|n| n.port() == now_on).unwrap();
    assert!(
        proxies[other].accepted() > accepted[other],
        "reconnected through the proxy of n{other}"
    );

    let (total, retries) = load.stop().await;
    assert_each_applied_once(&js, &actor, total).await;
    report("cut", total, retries, &actor, &runtime);
    runtime.shutdown().await;
}
