//! `#[kv_watch]` handlers against a real server: puts, deletes and purges in revision order with
//! `Param`s from the key, the `from` modes, a bad value or a panic that does not stop the
//! watch, and 10,000 updates over 100 keys through two server restarts, every revision handled
//! exactly once, in order.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::kv::{KvConfig, KvEntry, KvOperation};
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

/// What a watcher saw: key parameter (or key), operation, value, revision.
type Seen = Arc<Mutex<Vec<(String, KvOperation, Option<u32>, u64)>>>;

#[derive(Actor, Clone, Default)]
struct Services {
    seen: Seen,
}

#[handlers]
impl Services {
    #[kv_watch(bucket = "config", key = "services.{name}")]
    async fn changed(&self, name: Param<String>, entry: KvEntry<u32>) {
        assert!(entry.value != Some(13), "unlucky value");
        let row = (name.0, entry.operation, entry.value, entry.revision);
        self.seen.lock().unwrap().push(row);
    }
}

fn config(name: &str, history: i64) -> KvConfig {
    KvConfig {
        bucket: name.into(),
        history,
        ..Default::default()
    }
}

fn rows(seen: &Seen) -> Vec<(String, KvOperation, Option<u32>)> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .map(|(k, o, v, _)| (k.clone(), *o, *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_each_change_in_order_and_goes_on_past_bad_values_and_panics() {
    logs();
    let server = server();
    let watcher = Services::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .kv(config("config", 10))
        .start()
        .await
        .unwrap();
    let kv = runtime.client().kv::<u32>("config").await.unwrap();
    // Before the watcher starts: its current value is seen first (`from = "last_per_key"`).
    kv.put("services.a", &1).await.unwrap();
    kv.put("services.a", &2).await.unwrap();
    runtime.shutdown().await;
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(watcher.clone())
        .start()
        .await
        .unwrap();
    let raw = runtime
        .client()
        .jetstream()
        .get_key_value("config")
        .await
        .unwrap();
    let kv = runtime.client().kv::<u32>("config").await.unwrap();
    kv.put("services.b", &5).await.unwrap();
    kv.put("other.x", &9).await.unwrap(); // not under the watched key
    kv.delete("services.a").await.unwrap();
    raw.put("services.c", "not a number".into()).await.unwrap();
    kv.put("services.c", &13).await.unwrap(); // the handler panics
    kv.purge("services.b").await.unwrap();
    kv.put("services.a", &3).await.unwrap();
    let expected = vec![
        ("a".to_string(), KvOperation::Put, Some(2)),
        ("b".to_string(), KvOperation::Put, Some(5)),
        ("a".to_string(), KvOperation::Delete, None),
        ("b".to_string(), KvOperation::Purge, None),
        ("a".to_string(), KvOperation::Put, Some(3)),
    ];
    let all = eventually(Duration::from_secs(10), || async {
        rows(&watcher.seen).len() >= expected.len()
    })
    .await;
    assert!(all, "saw {:?}", rows(&watcher.seen));
    assert_eq!(rows(&watcher.seen), expected);
    let revisions: Vec<u64> = watcher.seen.lock().unwrap().iter().map(|r| r.3).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    let stats = runtime.stats().handler("Services::changed").unwrap();
    assert_eq!((stats.rejected, stats.panics), (1, 1), "{stats:?}");
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Modes {
    new: Seen,
    all: Seen,
}

#[handlers]
impl Modes {
    #[kv_watch(bucket = "modes", from = "new")]
    async fn only_new(&self, entry: KvEntry<u32>) {
        let row = (entry.key, entry.operation, entry.value, entry.revision);
        self.new.lock().unwrap().push(row);
    }

    #[kv_watch(bucket = "modes", key = ">", from = "all_history")]
    async fn everything(&self, entry: KvEntry<u32>) {
        let row = (entry.key, entry.operation, entry.value, entry.revision);
        self.all.lock().unwrap().push(row);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sees_only_later_changes_and_all_history_every_kept_revision() {
    logs();
    let server = server();
    let setup = Runtime::builder()
        .connect(connect(&server))
        .kv(config("modes", 10))
        .start()
        .await
        .unwrap();
    let kv = setup.client().kv::<u32>("modes").await.unwrap();
    kv.put("k", &1).await.unwrap();
    kv.put("k", &2).await.unwrap();
    let modes = Modes::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(modes.clone())
        .start()
        .await
        .unwrap();
    kv.put("k", &3).await.unwrap();
    let done = eventually(Duration::from_secs(10), || async {
        rows(&modes.all).len() >= 3 && !rows(&modes.new).is_empty()
    })
    .await;
    assert!(
        done,
        "new {:?}, all {:?}",
        rows(&modes.new),
        rows(&modes.all)
    );
    let put = |v| ("k".to_string(), KvOperation::Put, Some(v));
    assert_eq!(rows(&modes.new), [put(3)]);
    assert_eq!(rows(&modes.all), [put(1), put(2), put(3)]);
    runtime.shutdown().await;
    setup.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Tracker {
    /// Revisions handled, per key, in the order handled.
    handled: Arc<Mutex<HashMap<String, Vec<u64>>>>,
}

#[handlers]
impl Tracker {
    #[kv_watch(bucket = "load", key = "k.{n}", from = "all_history")]
    async fn update(&self, n: Param<u32>, entry: KvEntry<u64>) {
        let _ = n;
        let mut handled = self.handled.lock().unwrap();
        handled.entry(entry.key).or_default().push(entry.revision);
    }
}

impl Tracker {
    fn count(&self) -> usize {
        self.handled.lock().unwrap().values().map(Vec::len).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_two_server_restarts_every_revision_is_handled_exactly_once_in_order() {
    logs();
    const UPDATES: u64 = 10_000;
    let mut server = server();
    let tracker = Tracker::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .kv(config("load", 64))
        .actor(tracker.clone())
        .start()
        .await
        .unwrap();
    let url = server.url();
    // Writes on a connection of its own, retrying through the outages. A put whose ack was
    // lost may be stored twice: a revision more, which the watcher must see like any other.
    let writer = tokio::spawn(async move {
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await
            .unwrap();
        let kv = async_nats::jetstream::new(nats)
            .get_key_value("load")
            .await
            .unwrap();
        let mut failures = 0u32;
        for i in 0..UPDATES {
            let body = bytes::Bytes::from(serde_json::to_vec(&i).unwrap());
            while kv
                .put(format!("k.{}", i % 100), body.clone())
                .await
                .is_err()
            {
                failures += 1;
                assert!(failures < 2_000, "the writer cannot write");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    for threshold in [2_000, 6_000] {
        let reached = eventually(Duration::from_secs(60), || async {
            tracker.count() >= threshold
        })
        .await;
        assert!(reached, "stalled at {} before a restart", tracker.count());
        tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
    }
    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finished")
        .unwrap();
    let info = runtime
        .client()
        .jetstream()
        .get_stream("KV_load")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    let written = info.state.last_sequence;
    assert!(written >= UPDATES, "{written} revisions");
    let all = eventually(Duration::from_secs(60), || async {
        tracker.count() as u64 >= written
    })
    .await;
    assert!(all, "{} of {written} revisions handled", tracker.count());
    let handled = tracker.handled.lock().unwrap().clone();
    for (key, revisions) in handled.iter() {
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "{key}: out of order or twice: {revisions:?}"
        );
    }
    let every: BTreeSet<u64> = handled.values().flatten().copied().collect();
    assert_eq!(every.len() as u64, written, "each revision handled once");
    assert_eq!(every, (1..=written).collect(), "no revision missed");
    println!(
        "{written} revisions over {} keys handled exactly once through 2 restarts ({} reconnects)",
        handled.len(),
        runtime.stats().reconnects
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_watchers_cluster_node_is_killed_every_revision_is_handled_exactly_once() {
    logs();
    const UPDATES: u64 = 3_000;
    let mut cluster = nats_actors_suite::NatsCluster::start(3).expect("start a 3-node cluster");
    let tracker = Tracker::default();
    let options = nats_actors::ConnectOptions::new(cluster.urls()).retry_on_initial_connect(true);
    // The cluster elects its JetStream meta leader after start: retry until the bucket is made.
    let mut runtime = None;
    for _ in 0..50 {
        let started = Runtime::builder()
            .connect(options.clone())
            .kv(KvConfig {
                num_replicas: 3,
                ..config("load", 64)
            })
            .actor(tracker.clone())
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
    let runtime = runtime.expect("the cluster takes the bucket within 10 s");
    let urls = cluster.urls();
    let writer = tokio::spawn(async move {
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls)
            .await
            .unwrap();
        let kv = async_nats::jetstream::new(nats)
            .get_key_value("load")
            .await
            .unwrap();
        let mut failures = 0u32;
        for i in 0..UPDATES {
            let body = bytes::Bytes::from(serde_json::to_vec(&i).unwrap());
            while kv
                .put(format!("k.{}", i % 100), body.clone())
                .await
                .is_err()
            {
                failures += 1;
                assert!(failures < 2_000, "the writer cannot write");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let reached = eventually(Duration::from_secs(60), || async {
        tracker.count() >= 1_000
    })
    .await;
    assert!(reached, "stalled at {} before the kill", tracker.count());
    let on = runtime.client().nats().server_info().server_name;
    let index: usize = on.trim_start_matches('n').parse().unwrap();
    cluster.node(index).kill();
    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finished")
        .unwrap();
    let written = runtime
        .client()
        .jetstream()
        .get_stream("KV_load")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .last_sequence;
    let all = eventually(Duration::from_secs(60), || async {
        tracker.count() as u64 >= written
    })
    .await;
    assert!(all, "{} of {written} revisions handled", tracker.count());
    let handled = tracker.handled.lock().unwrap().clone();
    let every: BTreeSet<u64> = handled.values().flatten().copied().collect();
    assert_eq!(
        every.len() as u64,
        tracker.count() as u64,
        "a revision handled twice"
    );
    assert_eq!(every, (1..=written).collect(), "no revision missed");
    for (key, revisions) in handled.iter() {
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "{key}: {revisions:?}"
        );
    }
    println!("{written} revisions handled exactly once after losing {on}");
    runtime.shutdown().await;
}
