//! `#[object_watch]` handlers against a real server: puts and deletes as typed `ObjectInfo`s,
//! the `from` modes, a panic that does not stop the watch, and 300 puts through two server
//! restarts, every version stored handled exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::objects::{ObjectInfo, ObjectStoreConfig};
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

/// What a watcher saw: name, deleted, size, version (nuid).
type Seen = Arc<Mutex<Vec<(String, bool, usize, String)>>>;

#[derive(Actor, Clone, Default)]
struct Uploads {
    seen: Seen,
}

#[handlers]
impl Uploads {
    #[object_watch(bucket = "uploads")]
    async fn changed(&self, object: ObjectInfo) {
        assert!(object.name != "poison", "a panic in the handler");
        let row = (object.name, object.deleted, object.size, object.nuid);
        self.seen.lock().unwrap().push(row);
    }
}

#[derive(Actor, Clone, Default)]
struct OnlyNew {
    seen: Seen,
}

#[handlers]
impl OnlyNew {
    #[object_watch(bucket = "uploads", from = "new")]
    async fn changed(&self, object: ObjectInfo) {
        let row = (object.name, object.deleted, object.size, object.nuid);
        self.seen.lock().unwrap().push(row);
    }
}

fn uploads() -> ObjectStoreConfig {
    ObjectStoreConfig {
        bucket: "uploads".into(),
        ..Default::default()
    }
}

fn names(seen: &Seen) -> Vec<(String, bool, usize)> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .map(|(n, d, s, _)| (n.clone(), *d, *s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_puts_and_deletes_and_goes_on_past_a_panic() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .object_store(uploads())
        .start()
        .await
        .unwrap();
    let store = runtime.client().objects("uploads").await.unwrap();
    // Before the watchers start: the current info is seen by the default mode only.
    store.put("before", &mut &b"12345"[..]).await.unwrap();
    runtime.shutdown().await;

    let all = Uploads::default();
    let new = OnlyNew::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .object_store(uploads())
        .actor(all.clone())
        .actor(new.clone())
        .start()
        .await
        .unwrap();
    let store = runtime.client().objects("uploads").await.unwrap();
    store.put("a", &mut &b"abc"[..]).await.unwrap();
    store.put("poison", &mut &b"x"[..]).await.unwrap();
    store.put("b", &mut &b"abcdef"[..]).await.unwrap();
    store.delete("a").await.unwrap();
    let want = vec![
        ("before".to_string(), false, 5),
        ("a".to_string(), false, 3),
        ("b".to_string(), false, 6),
        ("a".to_string(), true, 0),
    ];
    let reached = eventually(Duration::from_secs(10), || async {
        names(&all.seen).len() >= want.len() && names(&new.seen).len() >= want.len()
    })
    .await;
    assert!(
        reached,
        "saw {:?} and {:?}",
        names(&all.seen),
        names(&new.seen)
    );
    assert_eq!(names(&all.seen), want, "in order, the panic skipped");
    let mut after = want[1..].to_vec();
    after.insert(1, ("poison".to_string(), false, 1));
    assert_eq!(names(&new.seen), after, "from = \"new\": no current info");
    let stats = runtime.stats();
    assert_eq!(
        stats.handler("Uploads::changed").unwrap().panics,
        1,
        "the panic counted"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_two_server_restarts_every_version_is_handled_exactly_once() {
    logs();
    let mut server = server();
    let watcher = Uploads::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .object_store(uploads())
        .actor(watcher.clone())
        .start()
        .await
        .unwrap();
    let store = runtime.client().objects("uploads").await.unwrap();
    const OBJECTS: usize = 300;
    let puts = tokio::spawn(async move {
        let mut retries = 0u32;
        for n in 0..OBJECTS {
            let body = vec![n as u8; 1 + n % 7];
            // Bounded: a put that fails (the server is down) is tried again for up to 30 s.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while store
                .put(format!("obj-{n}").as_str(), &mut body.as_slice())
                .await
                .is_err()
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "put {n} kept failing"
                );
                retries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        retries
    });
    for restart in 1..=2 {
        let at = restart * OBJECTS / 3;
        let reached = eventually(Duration::from_secs(30), || async {
            watcher.seen.lock().unwrap().len() >= at
        })
        .await;
        assert!(reached, "stalled before restart {restart}");
        tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
    }
    let retries = puts.await.unwrap();
    let store = runtime.client().objects("uploads").await.unwrap();
    let stored: HashMap<String, String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.nuid))
        .collect();
    assert_eq!(stored.len(), OBJECTS);
    let reached = eventually(Duration::from_secs(30), || async {
        let seen = watcher.seen.lock().unwrap();
        let versions: HashSet<&String> = seen.iter().map(|(_, _, _, v)| v).collect();
        stored.values().all(|v| versions.contains(v))
    })
    .await;
    let seen = watcher.seen.lock().unwrap().clone();
    assert!(reached, "{} of {OBJECTS} current versions seen", seen.len());
    let mut versions = HashSet::new();
    for (name, _, _, version) in &seen {
        assert!(
            versions.insert(version.clone()),
            "{name} version {version} handled twice"
        );
    }
    println!(
        "{OBJECTS} objects, {} versions handled once each through 2 restarts ({retries} put retries, {} reconnects)",
        seen.len(),
        runtime.stats().reconnects
    );
    runtime.shutdown().await;
}
