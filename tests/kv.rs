//! KV buckets against a real server: declared on the builder (created, kept, an incompatible
//! change refused by name), and the typed handle: get, put, create, compare-and-set with the
//! current revision in the conflict, delete, purge, keys, history, expiry, bad keys and
//! values that do not decode.

use std::time::Duration;

use nats_actors::kv::{KvConfig, KvError, KvOperation};
use nats_actors::prelude::*;
use nats_actors::Error;
use nats_actors_suite::{connect, logs, server};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Limits {
    per_minute: u32,
}

fn limits(per_minute: u32) -> Limits {
    Limits { per_minute }
}

fn bucket(name: &str) -> KvConfig {
    KvConfig {
        bucket: name.into(),
        history: 5,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_bucket_is_made_kept_and_an_incompatible_change_is_named() {
    logs();
    let server = server();
    let start = |config: KvConfig| {
        Runtime::builder()
            .connect(connect(&server))
            .kv(config)
            .start()
    };
    let runtime = start(bucket("decl")).await.unwrap();
    let kv = runtime.client().kv::<Limits>("decl").await.unwrap();
    kv.put("eu", &limits(60)).await.unwrap();
    runtime.shutdown().await;
    // The same declaration again keeps the bucket and what is in it; a longer history is an
    // update the server takes.
    let runtime = start(KvConfig {
        history: 10,
        ..bucket("decl")
    })
    .await
    .unwrap();
    let kv = runtime.client().kv::<Limits>("decl").await.unwrap();
    assert_eq!(kv.get("eu").await.unwrap(), Some(limits(60)));
    let status = runtime
        .client()
        .jetstream()
        .get_key_value("decl")
        .await
        .unwrap()
        .status()
        .await
        .unwrap();
    assert_eq!(status.history(), 10);
    runtime.shutdown().await;
    // File to memory storage cannot be changed in place.
    let err = start(KvConfig {
        storage: nats_actors::jetstream::StorageType::Memory,
        ..bucket("decl")
    })
    .await
    .err()
    .expect("the storage change is refused");
    match &err {
        Error::JetStream { what, reason } => {
            assert_eq!(what, "KV bucket decl");
            assert!(reason.contains("`storage`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_writes_keep_revisions_and_a_lost_compare_and_set_says_the_current_one() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .kv(bucket("limits"))
        .start()
        .await
        .unwrap();
    let kv = runtime.client().kv::<Limits>("limits").await.unwrap();
    assert_eq!(kv.bucket(), "limits");
    assert_eq!(kv.get("eu").await.unwrap(), None);
    assert!(kv.entry("eu").await.unwrap().is_none());

    let first = kv.create("eu", &limits(60)).await.unwrap();
    match kv.create("eu", &limits(1)).await {
        Err(KvError::Exists { key, revision }) => {
            assert_eq!((key.as_str(), revision), ("eu", first))
        }
        other => panic!("{other:?}"),
    }
    let second = kv.update("eu", &limits(120), first).await.unwrap();
    assert!(second > first);
    match kv.update("eu", &limits(7), first).await {
        Err(KvError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, "eu");
            assert_eq!(expected, first);
            assert_eq!(current, Some(second));
        }
        other => panic!("{other:?}"),
    }
    let entry = kv.entry("eu").await.unwrap().unwrap();
    assert_eq!(entry.value, Some(limits(120)));
    assert_eq!(entry.revision, second);
    assert_eq!(entry.operation, KvOperation::Put);
    assert!(entry.created <= std::time::SystemTime::now());

    kv.put("us", &limits(30)).await.unwrap();
    let mut keys = kv.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["eu", "us"]);

    // Deleted: no value, the marker is the latest entry, history is kept, and it can be
    // created again.
    kv.delete("eu").await.unwrap();
    assert_eq!(kv.get("eu").await.unwrap(), None);
    let marker = kv.entry("eu").await.unwrap().unwrap();
    assert_eq!(
        (marker.operation, marker.value),
        (KvOperation::Delete, None)
    );
    let history = kv.history("eu").await.unwrap();
    let ops: Vec<_> = history.iter().map(|e| e.operation).collect();
    assert_eq!(
        ops,
        [KvOperation::Put, KvOperation::Put, KvOperation::Delete]
    );
    assert_eq!(history[0].value, Some(limits(60)));
    let again = kv.create("eu", &limits(5)).await.unwrap();
    assert_eq!(kv.get("eu").await.unwrap(), Some(limits(5)));
    assert!(again > marker.revision);
    assert_eq!(kv.keys().await.unwrap().len(), 2);

    // Purged: only the purge marker is left.
    kv.purge("us").await.unwrap();
    let history = kv.history("us").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].operation, KvOperation::Purge);
    assert_eq!(kv.get("us").await.unwrap(), None);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_undecodable_values_missing_buckets_and_expiry_are_clear() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .kv(KvConfig {
            max_age: Duration::from_secs(1),
            ..bucket("short")
        })
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let kv = client.kv::<Limits>("short").await.unwrap();
    for bad in ["", ".eu", "eu.", "e u", "eu>"] {
        match kv.put(bad, &limits(1)).await {
            Err(KvError::InvalidKey { key, .. }) => assert_eq!(key, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(matches!(kv.get(bad).await, Err(KvError::InvalidKey { .. })));
    }
    // Written by someone else, not as the handle's type.
    let raw = client.jetstream().get_key_value("short").await.unwrap();
    let revision = raw.put("odd", "not json".into()).await.unwrap();
    match kv.get("odd").await {
        Err(KvError::Decode {
            key, revision: r, ..
        }) => assert_eq!((key.as_str(), r), ("odd", revision)),
        other => panic!("{other:?}"),
    }
    match client.kv::<Limits>("absent").await {
        Err(KvError::Bucket { bucket, reason }) => {
            assert_eq!(bucket, "absent");
            assert!(reason.contains("RuntimeBuilder::kv"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Values older than `max_age` are gone.
    kv.put("eu", &limits(60)).await.unwrap();
    assert_eq!(kv.get("eu").await.unwrap(), Some(limits(60)));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(kv.get("eu").await.unwrap(), None);
    runtime.shutdown().await;
}
