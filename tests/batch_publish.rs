//! Batch publishing against a real server: core batches with one flush and per-message
//! results, and atomic JetStream batches (nats-server 2.12+) stored whole or not at all.

use std::time::Duration;

use futures::StreamExt;
use nats_actors::jetstream::{JsPublish, StreamConfig, MAX_ATOMIC_BATCH};
use nats_actors::prelude::*;
use nats_actors::{PublishError, Sender};
use nats_actors_suite::{connect, logs, nats, server};

/// A value that encodes, or refuses to.
enum Reading {
    Value(u32),
    Refused,
    Huge,
}

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reading::Value(v) => s.serialize_u32(*v),
            Reading::Refused => Err(serde::ser::Error::custom("this reading refuses to encode")),
            Reading::Huge => s.serialize_str(&"x".repeat(2 << 20)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_batch_arrives_in_order_and_a_bad_message_fails_alone() {
    logs();
    let server = server();
    let raw = nats(&server).await;
    let mut sub = raw.subscribe("batch.>").await.unwrap();
    raw.flush().await.unwrap();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .start()
        .await
        .unwrap();
    let client = runtime.client();

    let readings = (0..1000u32).map(|i| {
        let value = match i {
            500 => Reading::Refused,
            700 => Reading::Huge,
            _ => Reading::Value(i),
        };
        (format!("batch.{}", i % 10), value)
    });
    let results = client.publish_batch(readings).await;
    assert_eq!(results.len(), 1000);
    for (i, r) in results.iter().enumerate() {
        match i {
            500 => assert!(matches!(r, Err(PublishError::Encode { .. })), "{r:?}"),
            700 => assert!(matches!(r, Err(PublishError::MaxPayload { .. })), "{r:?}"),
            _ => assert!(r.is_ok(), "message {i}: {r:?}"),
        }
    }
    // The flush means every good message reached the server: all 998 arrive, in order per
    // subject (and, on one connection, in order overall).
    let mut got = Vec::new();
    while got.len() < 998 {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the batch arrives")
            .unwrap();
        let n: u32 = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(msg.subject.as_str(), format!("batch.{}", n % 10));
        got.push(n);
    }
    let expected: Vec<u32> = (0..1000).filter(|i| *i != 500 && *i != 700).collect();
    assert_eq!(got, expected);
    runtime.shutdown().await;
}

fn stream(name: &str, subjects: &str) -> StreamConfig {
    StreamConfig {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    }
}

fn atomic(name: &str, subjects: &str) -> StreamConfig {
    StreamConfig {
        allow_atomic_publish: true,
        duplicate_window: Duration::from_secs(60),
        ..stream(name, subjects)
    }
}

async fn stored(client: &Client, name: &str) -> u64 {
    let mut s = client.jetstream().get_stream(name).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_batch_is_stored_whole_in_order_or_not_at_all() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(atomic("LEDGER", "ledger.>"))
        .stream(stream("PLAIN", "plain.>"))
        .start()
        .await
        .unwrap();
    let client = runtime.client();

    // Stored whole: consecutive sequences, in the order given, with their own subjects.
    client.js_publish("ledger.open", &0i64).await.unwrap();
    let lines: Vec<_> = (1..=5i64)
        .map(|i| (format!("ledger.line.{i}"), i))
        .collect();
    let batch = client
        .js_publish_atomic(lines, &JsPublish::new().msg_id("t1"))
        .await
        .unwrap();
    assert_eq!(
        (batch.first_sequence, batch.last_sequence, batch.count),
        (2, 6, 5)
    );
    assert_eq!(batch.stream, "LEDGER");
    let js = client.jetstream();
    let ledger = js.get_stream("LEDGER").await.unwrap();
    for seq in 2..=6u64 {
        let msg = ledger.get_raw_message(seq).await.unwrap();
        let n = (seq - 1) as i64;
        assert_eq!(msg.subject.as_str(), format!("ledger.line.{n}"));
        assert_eq!(serde_json::from_slice::<i64>(&msg.payload).unwrap(), n);
        let id = msg.headers.get("Nats-Msg-Id").unwrap().to_string();
        assert_eq!(id, format!("t1-{}", n - 1));
    }

    // The server refuses the second message (its id is already stored): nothing is.
    let before = stored(client, "LEDGER").await;
    let dup = [("ledger.x", 1i64), ("ledger.y", 2), ("ledger.z", 3)];
    client
        .js_publish_with("ledger.y", &9i64, &JsPublish::new().msg_id("t2-1"))
        .await
        .unwrap();
    let err = client
        .js_publish_atomic(dup, &JsPublish::new().msg_id("t2"))
        .await
        .unwrap_err();
    eprintln!("a duplicate id in the batch: {err}");
    match &err {
        PublishError::AtomicBatch { count, code, .. } => {
            assert_eq!(*count, 3);
            assert!(code.is_some(), "the server's code: {err}");
        }
        other => panic!("expected an atomic batch error, got {other:?}"),
    }
    assert_eq!(
        stored(client, "LEDGER").await,
        before + 1,
        "only t2-1 itself"
    );

    // A stale expectation fails the batch at its commit: nothing stored.
    let before = stored(client, "LEDGER").await;
    let err = client
        .js_publish_atomic(
            [("ledger.a", 1i64), ("ledger.b", 2)],
            &JsPublish::new().expected_last_sequence(1),
        )
        .await
        .unwrap_err();
    eprintln!("a stale expectation: {err}");
    assert!(matches!(err, PublishError::AtomicBatch { .. }), "{err:?}");
    assert_eq!(stored(client, "LEDGER").await, before);

    // A message over max_payload in the middle: refused on the client, nothing stored.
    let err = client
        .js_publish_atomic(
            [
                ("ledger.a", Reading::Value(1)),
                ("ledger.b", Reading::Huge),
                ("ledger.c", Reading::Value(3)),
            ],
            &JsPublish::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::MaxPayload { .. }), "{err:?}");
    // Nor does a value that does not encode send anything.
    let err = client
        .js_publish_atomic(
            [
                ("ledger.a", Reading::Value(1)),
                ("ledger.b", Reading::Refused),
            ],
            &JsPublish::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Encode { .. }), "{err:?}");
    assert_eq!(stored(client, "LEDGER").await, before);

    // Refused before sending: empty, over the server's limit, an unsupported expectation.
    let none: Vec<(&str, i64)> = Vec::new();
    let over: Vec<_> = (0..=MAX_ATOMIC_BATCH as i64)
        .map(|i| ("ledger.many", i))
        .collect();
    for (batch, why) in [
        (none, "empty"),
        (over, "limit of 1000"),
        (vec![("ledger.a", 1)], "Expected-Last-Msg-Id"),
    ] {
        let opts = if why.starts_with("Expected") {
            JsPublish::new().expected_last_msg_id("t1-4")
        } else {
            JsPublish::new()
        };
        let err = client.js_publish_atomic(batch, &opts).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
    assert_eq!(stored(client, "LEDGER").await, before);

    // A stream that does not allow atomic batches: the server's code 10174, nothing stored.
    let err = client
        .js_publish_atomic([("plain.a", 1), ("plain.b", 2)], &JsPublish::new())
        .await
        .unwrap_err();
    eprintln!("a stream without allow_atomic: {err}");
    match &err {
        PublishError::AtomicBatch { code, .. } => assert_eq!(*code, Some(10174), "{err}"),
        other => panic!("expected an atomic batch error, got {other:?}"),
    }
    assert_eq!(stored(client, "PLAIN").await, 0);
    // No stream at all.
    let err = client
        .js_publish_atomic([("nowhere.a", 1)], &JsPublish::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no stream takes"), "{err}");

    // The largest batch the server takes is stored whole.
    let full: Vec<_> = (0..MAX_ATOMIC_BATCH as i64)
        .map(|i| (format!("ledger.full.{}", i % 7), i))
        .collect();
    let before = stored(client, "LEDGER").await;
    let batch = client
        .js_publish_atomic(full, &JsPublish::new())
        .await
        .unwrap();
    assert_eq!(batch.count, MAX_ATOMIC_BATCH);
    assert_eq!(stored(client, "LEDGER").await, before + 1000);
    runtime.shutdown().await;
}
