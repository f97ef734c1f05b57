//! Keyed virtual actors on a 3-node cluster with the stream and the state bucket replicated
//! three times: the node that leads the stream is killed mid-run. The runtimes on it reconnect
//! elsewhere, partitions whose pins lapsed are taken over (reading what was left from the new
//! leader), and nothing is lost, nothing is applied twice, each key's order holds.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::ledger::{check_all, deposit_all, Account, AccountRef};
use nats_actors_suite::{eventually, logs, NatsCluster};

fn options(cluster: &NatsCluster) -> nats_actors::ConnectOptions {
    nats_actors::ConnectOptions::new(cluster.urls()).retry_on_initial_connect(true)
}

/// A runtime of the ledger on the cluster, once the cluster answers for JetStream.
async fn runtime(cluster: &NatsCluster) -> Runtime {
    for _ in 0..50 {
        let started = Runtime::builder()
            .connect(options(cluster))
            .shutdown_timeout(Duration::from_secs(5))
            .actor(Account::default())
            .start()
            .await;
        match started {
            Ok(r) => return r,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("the cluster did not take the keyed actor within 10 s");
}

/// The node leading stream `name` (`n0`, `n1`, ...), when there is one.
async fn leader(js: &async_nats::jetstream::Context, name: &str) -> Option<String> {
    let mut stream = js.get_stream(name).await.ok()?;
    stream.info().await.ok()?.cluster.clone()?.leader
}

/// Creates the ledger's stream and state bucket replicated 3 times, as an operator would
/// before the runtimes start (the ledger's actor declares no `replicas`, so its runtimes keep
/// what they find).
async fn replicated(js: &async_nats::jetstream::Context) {
    use async_nats::jetstream::stream;
    let config = stream::Config {
        name: "ACTORS_Account".into(),
        subjects: vec!["account.*.>".into(), "$ACTORS.Account.>".into()],
        subject_transform: Some(stream::SubjectTransform {
            source: "account.*.>".into(),
            destination: "$ACTORS.Account.{{partition(16,1)}}.account.{{wildcard(1)}}.>".into(),
        }),
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: 3,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        allow_message_schedules: true,
        ..Default::default()
    };
    let made = || async { js.create_stream(config.clone()).await.is_ok() };
    assert!(
        eventually(Duration::from_secs(20), made).await,
        "no R3 stream"
    );
    let bucket = async_nats::jetstream::kv::Config {
        bucket: "ACTORS_Account".into(),
        history: 1,
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.create_key_value(bucket).await.unwrap();
}

/// Checks that the runtimes' declarations kept the stream, the bucket and every partition's
/// consumer replicated 3 times (a consumer on one node would stop its partition when that node
/// dies).
async fn replicated_still(js: &async_nats::jetstream::Context) {
    let mut stream = js.get_stream("ACTORS_Account").await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);
    let bucket = js.get_stream("KV_ACTORS_Account").await.unwrap();
    assert_eq!(bucket.cached_info().config.num_replicas, 3);
    for p in 0..16 {
        let mut consumer = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&format!(
                "partition-{p}"
            ))
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        let followers = info.cluster.as_ref().map_or(0, |c| c.replicas.len());
        assert_eq!(followers, 2, "partition {p}: {:?}", info.cluster);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_leading_the_stream_killed_mid_run_loses_nothing_and_applies_nothing_twice() {
    logs();
    let mut cluster = NatsCluster::start(3).unwrap();
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cluster.urls())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    replicated(&js).await;
    let runtimes = [
        runtime(&cluster).await,
        runtime(&cluster).await,
        runtime(&cluster).await,
    ];
    replicated_still(&js).await;
    let client = nats_actors::Client::new(nats.clone());
    let refs: Vec<AccountRef> = (0..300)
        .map(|k| AccountRef::new(&client, k).unwrap())
        .collect();
    // Turns of 50 ms: the kill finds commands stored and not yet applied.
    deposit_all(&refs, 1..=10, 50).await;
    let mut stream = js.get_stream("ACTORS_Account").await.unwrap();
    let unsettled = stream.info().await.unwrap().state.messages;
    assert!(unsettled > 0, "every command was settled before the kill");
    let Some(killed) = leader(&js, "ACTORS_Account").await else {
        panic!("the stream has no leader");
    };
    let node: usize = killed.trim_start_matches('n').parse().unwrap();
    cluster.node(node).kill();
    let killed_at = Instant::now();
    // Commands are sent again once the stream has a new leader (one sent while it had none
    // fails, and sending it again under a new message id could store it twice).
    // Watched from a node that lives.
    let survivor = cluster.urls()[(node + 1) % 3].clone();
    let watcher = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(500)))
        .connect(survivor)
        .await
        .unwrap();
    let watcher = async_nats::jetstream::new(watcher);
    let elected = || async {
        let now = leader(&watcher, "ACTORS_Account").await;
        now.is_some_and(|l| l != killed)
    };
    assert!(
        eventually(Duration::from_secs(30), elected).await,
        "no new stream leader within 30 s"
    );
    println!(
        "node {killed} killed with {unsettled} commands unsettled; a new stream leader after {:?}",
        killed_at.elapsed()
    );
    deposit_all(&refs, 11..=30, 0).await;
    check_all(&refs, 30).await;
    println!(
        "300 keys x 30 commands on 3 runtimes, the stream leader killed: all applied once, in order, {:?} after the kill",
        killed_at.elapsed()
    );
    for r in runtimes {
        r.shutdown().await;
    }
}
