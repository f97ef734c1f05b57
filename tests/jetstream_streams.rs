//! JetStream streams and the consumers on them, against a real server: deduplicated publishing
//! (with expectations, pipelined), stream declarations, a consumer deleted under the runtime, and
//! an ordered consumer replaying a stream, and the trace every send of a handler continues.

#[path = "common/jetstream.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{stream, Job};
use futures::StreamExt;
use nats_actors::jetstream::{self, Delivery, JsPublish, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::{Error, Sender};
use nats_actors_suite::{connect, eventually, logs, nats, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_msg_id_is_stored_once_and_the_duplicate_is_visible() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(StreamConfig {
            duplicate_window: Duration::from_secs(60),
            ..stream("DEDUP", "dedup.>")
        })
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let opts = JsPublish::new().msg_id("order-1");
    let first = client.js_publish_with("dedup.a", &1, &opts).await.unwrap();
    let second = client.js_publish_with("dedup.a", &1, &opts).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.sequence, second.sequence);
    // Derived ids: the same content is stored once, other content again.
    let derived = JsPublish::new().derive_msg_id();
    let a = client
        .js_publish_with("dedup.b", &"x", &derived)
        .await
        .unwrap();
    let b = client
        .js_publish_with("dedup.b", &"x", &derived)
        .await
        .unwrap();
    let c = client
        .js_publish_with("dedup.b", &"y", &derived)
        .await
        .unwrap();
    assert!(!a.duplicate && b.duplicate && !c.duplicate);
    // Expectations: a stale expected sequence is refused, with the kind to match on.
    let stale = client
        .js_publish_with("dedup.c", &2, &JsPublish::new().expected_last_sequence(1))
        .await
        .unwrap_err();
    match stale {
        nats_actors::PublishError::JetStream {
            source, attempts, ..
        } => {
            assert_eq!(
                source.kind(),
                jetstream::PublishErrorKind::WrongLastSequence
            );
            assert_eq!(attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    let info = client
        .jetstream()
        .get_stream("DEDUP")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 3);
    // Pipelined: 1,000 messages with 64 acks outstanding, all stored, in order.
    let results = client
        .js_publish_pipelined(
            (0..1000u32).map(|i| ("dedup.p", i)),
            64,
            &JsPublish::new().msg_id("batch"),
        )
        .await;
    let seqs: Vec<u64> = results.into_iter().map(|r| r.unwrap().sequence).collect();
    assert_eq!(seqs.len(), 1000);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    // The same batch again stores nothing new.
    let again = client
        .js_publish_pipelined(
            (0..1000u32).map(|i| ("dedup.p", i)),
            64,
            &JsPublish::new().msg_id("batch"),
        )
        .await;
    assert!(again.iter().all(|r| r.as_ref().unwrap().duplicate));
    // No stream takes the subject: a clear error after the retries.
    let err = client
        .js_publish_with("nowhere", &1, &JsPublish::new().attempts(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            nats_actors::PublishError::JetStream { attempts: 2, .. }
        ),
        "{err}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_declared_twice_is_fine_and_an_incompatible_change_is_a_clear_error() {
    logs();
    let server = server();
    let config = StreamConfig {
        max_messages: 1000,
        ..stream("DECL", "decl.>")
    };
    for _ in 0..2 {
        let rt = Runtime::builder()
            .connect(connect(&server))
            .stream(config.clone())
            .start()
            .await
            .unwrap();
        rt.shutdown().await;
    }
    // A compatible change is applied.
    let rt = Runtime::builder()
        .connect(connect(&server))
        .stream(StreamConfig {
            max_messages: 2000,
            ..config.clone()
        })
        .start()
        .await
        .unwrap();
    let info = rt
        .client()
        .jetstream()
        .get_stream("DECL")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.max_messages, 2000);
    rt.shutdown().await;
    // The storage type cannot change.
    let err = Runtime::builder()
        .connect(connect(&server))
        .stream(StreamConfig {
            storage: jetstream::StorageType::Memory,
            ..config
        })
        .start()
        .await
        .err()
        .expect("an incompatible change fails the start");
    match &err {
        Error::JetStream { what, reason } => {
            assert_eq!(what, "stream DECL");
            assert!(
                reason.contains("`storage (\"file\" -> \"memory\")`"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[derive(Actor, Clone, Default)]
struct Counter {
    done: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Counter {
    #[consumer(stream = "GONE", durable = "counter")]
    async fn count(&self, job: Job) {
        self.done.lock().unwrap().push(job.n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_deleted_under_the_runtime_is_made_again() {
    logs();
    let server = server();
    let actor = Counter::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("GONE", "gone.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    client.js_publish("gone.a", &Job { n: 1 }).await.unwrap();
    let has = |n: u64| actor.done.lock().unwrap().contains(&n);
    assert!(eventually(Duration::from_secs(5), || async { has(1) }).await);
    client
        .jetstream()
        .get_stream("GONE")
        .await
        .unwrap()
        .delete_consumer("counter")
        .await
        .unwrap();
    client.js_publish("gone.a", &Job { n: 2 }).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async { has(2) }).await,
        "the consumer was not made again"
    );
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Replay {
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
}

#[handlers]
impl Replay {
    #[consumer(stream = "HISTORY", ordered = true, filter = "history.>")]
    async fn replay(&self, job: Job, delivery: Delivery) {
        self.seen
            .lock()
            .unwrap()
            .push((job.n, delivery.stream_sequence));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_consumer_replays_the_stream_in_order() {
    logs();
    let server = server();
    let nats = nats(&server).await;
    let js = async_nats::jetstream::new(nats.clone());
    js.create_stream(stream("HISTORY", "history.>"))
        .await
        .unwrap();
    let client = Client::new(nats);
    for n in 0..20u64 {
        client
            .js_publish(&format!("history.{}", n % 3), &Job { n })
            .await
            .unwrap();
    }
    let actor = Replay::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            actor.seen.lock().unwrap().len() == 20
        })
        .await
    );
    let seen = actor.seen.lock().unwrap().clone();
    assert_eq!(seen, (0..20u64).map(|n| (n, n + 1)).collect::<Vec<_>>());
    // No durable consumer and no dead-letter stream were made for it.
    let names: Vec<String> = js
        .stream_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["HISTORY"]);
    runtime.shutdown().await;
}

/// Sends from code that serves both a handler and the outside: generic over [`Sender`].
async fn forward(to: &impl Sender, n: u32) -> Result<(), nats_actors::PublishError> {
    to.publish("relay.core", &n).await
}

#[derive(Actor)]
struct Relay;

#[handlers]
impl Relay {
    #[subscribe("relay.in")]
    async fn relay(&self, n: u32, ctx: &Context) -> Result<(), HandlerError> {
        forward(ctx, n).await?;
        ctx.js_publish("relay.js.one", &n).await?;
        let batch = (0..3u32).map(|i| ("relay.js.many", n + i));
        for result in ctx.js_publish_pipelined(batch, 2, &JsPublish::new()).await {
            result?;
        }
        Ok(())
    }
}

/// The trace id of a message's `traceparent`.
fn trace_id(headers: Option<&async_nats::HeaderMap>) -> Option<String> {
    let traceparent = headers?.get("traceparent")?.as_str();
    Some(traceparent.split('-').nth(1)?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_of_a_handler_continues_its_trace_and_a_client_send_starts_none() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("RELAY", "relay.js.>"))
        .actor(Relay)
        .start()
        .await
        .unwrap();
    let nats = nats(&server).await;
    let mut core = nats.subscribe("relay.core").await.unwrap();
    nats.flush().await.unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").as_str(),
    );
    nats.publish_with_headers("relay.in", headers, "10".into())
        .await
        .unwrap();
    let relayed = tokio::time::timeout(Duration::from_secs(5), core.next())
        .await
        .expect("the handler publishes within 5 s")
        .unwrap();
    assert_eq!(relayed.payload.as_ref(), b"10");
    assert_eq!(trace_id(relayed.headers.as_ref()).as_deref(), Some(trace));
    // The JetStream sends, single and pipelined: stored in order, each under the same trace.
    let js = runtime
        .client()
        .jetstream()
        .get_stream("RELAY")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            js.clone().get_info().await.unwrap().state.messages == 4
        })
        .await
    );
    let mut stored = Vec::new();
    for seq in 1..=4 {
        let m = js.get_raw_message(seq).await.unwrap();
        assert_eq!(trace_id(Some(&m.headers)).as_deref(), Some(trace), "#{seq}");
        stored.push((
            m.subject.to_string(),
            String::from_utf8_lossy(&m.payload).into_owned(),
        ));
    }
    let expected = [
        ("relay.js.one", "10"),
        ("relay.js.many", "10"),
        ("relay.js.many", "11"),
        ("relay.js.many", "12"),
    ];
    assert_eq!(
        stored,
        expected.map(|(s, p)| (s.to_string(), p.to_string()))
    );
    // The same helper from outside a handler: no trace to continue.
    forward(runtime.client(), 99).await.unwrap();
    let outside = tokio::time::timeout(Duration::from_secs(5), core.next())
        .await
        .expect("the client publishes within 5 s")
        .unwrap();
    assert_eq!(outside.payload.as_ref(), b"99");
    assert_ne!(trace_id(outside.headers.as_ref()).as_deref(), Some(trace));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_publish_over_max_payload_fails_before_sending_and_the_rest_are_stored() {
    logs();
    let server = nats_actors_suite::NatsServer::builder()
        .config("max_payload: 4096")
        .start()
        .unwrap();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("BIG", "big.>"))
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let big = "x".repeat(5000);
    let err = client.js_publish("big.one", &big).await.unwrap_err();
    assert!(
        matches!(&err, nats_actors::PublishError::MaxPayload { max: 4096, size, .. } if *size > 5000),
        "{err:?}"
    );
    let batch = [
        ("big.many", "small".to_string()),
        ("big.many", big),
        ("big.many", "small".into()),
    ];
    let results = client
        .js_publish_pipelined(batch, 4, &JsPublish::new())
        .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(
            &results[1],
            Err(nats_actors::PublishError::MaxPayload { max: 4096, .. })
        ),
        "{results:?}"
    );
    let stored = client.jetstream().get_stream("BIG").await.unwrap();
    assert_eq!(stored.cached_info().state.messages, 2);
    runtime.shutdown().await;
}

/// A window wider than async-nats' 5,000 JetStream ack permits, and two pipelines at once that
/// together would hold them all, finish: a pipeline awaits its acks on a subscription of its
/// own, without those permits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_over_the_ack_permits_finish_and_store_everything() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("WIDE", "wide.>"))
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let options = JsPublish::new();
    let one = client.js_publish_pipelined((0..6000u32).map(|i| ("wide.one", i)), 10_000, &options);
    let one = tokio::time::timeout(Duration::from_secs(60), one)
        .await
        .expect("a window of 10,000 finishes");
    assert_eq!(one.iter().filter(|r| r.is_ok()).count(), 6000);
    let seqs: Vec<u64> = one.iter().map(|r| r.as_ref().unwrap().sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "stored in order");
    let a = client.js_publish_pipelined((0..4000u32).map(|i| ("wide.a", i)), 4000, &options);
    let b = client.js_publish_pipelined((0..4000u32).map(|i| ("wide.b", i)), 4000, &options);
    let (a, b) = tokio::time::timeout(Duration::from_secs(60), futures::future::join(a, b))
        .await
        .expect("two pipelines of 4,000 at once finish");
    assert_eq!(a.iter().chain(&b).filter(|r| r.is_ok()).count(), 8000);
    let info = client
        .jetstream()
        .get_stream("WIDE")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 14_000);
    runtime.shutdown().await;
}

/// Each message of a pipeline ends with its own fate: stored in order; an ack that never comes
/// times out (sent again only with a message id); an answer that is no ack fails that message
/// alone; no stream listening is retried, then reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_of_a_pipeline_ends_with_its_own_fate() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("FATE", "fate.stored"))
        .start()
        .await
        .unwrap();
    let nats = nats(&server).await;
    // A listener that never acks, and one that answers what no stream would.
    let mut silent = nats.subscribe("fate.silent").await.unwrap();
    let mut garbage = nats.subscribe("fate.garbage").await.unwrap();
    let answerer = nats.clone();
    let answering = tokio::spawn(async move {
        while let Some(m) = garbage.next().await {
            let reply = m.reply.expect("a reply subject");
            answerer.publish(reply, "not an ack".into()).await.unwrap();
        }
    });
    nats.flush().await.unwrap();
    let client = runtime.client().with_timeout(Duration::from_millis(300));
    let subjects = [
        "fate.stored",
        "fate.silent",
        "fate.garbage",
        "fate.nowhere",
        "fate.stored",
    ];
    let started = std::time::Instant::now();
    let results = client
        .js_publish_pipelined(subjects.map(|s| (s, 1u8)), 8, &JsPublish::new().attempts(2))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let kind = |i: usize| match &results[i] {
        Err(nats_actors::PublishError::JetStream { source, .. }) => Some(source.kind()),
        _ => None,
    };
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    assert_eq!(results[0].as_ref().unwrap().sequence, 1);
    assert_eq!(results[4].as_ref().unwrap().sequence, 2);
    assert_eq!(kind(1), Some(Kind::TimedOut), "{:?}", results[1]);
    assert_eq!(kind(2), Some(Kind::Other), "{:?}", results[2]);
    assert_eq!(kind(3), Some(Kind::StreamNotFound), "{:?}", results[3]);
    // Without a message id, the silent one was sent once: it may have been stored.
    let once = tokio::time::timeout(Duration::from_millis(300), silent.next()).await;
    assert!(once.is_ok());
    let again = tokio::time::timeout(Duration::from_millis(300), silent.next()).await;
    assert!(again.is_err(), "sent again without a message id");
    // With one, sending it again is safe, and it is.
    let with_id = JsPublish::new().msg_id("fate").attempts(2);
    let results = client
        .js_publish_pipelined([("fate.silent", 1u8)], 8, &with_id)
        .await;
    assert!(results[0].is_err());
    for n in 0..2 {
        let sent = tokio::time::timeout(Duration::from_secs(5), silent.next()).await;
        let headers = sent.expect("sent again").unwrap().headers.unwrap();
        assert_eq!(
            headers.get("Nats-Msg-Id").unwrap().as_str(),
            "fate-0",
            "send {n}"
        );
    }
    answering.abort();
    runtime.shutdown().await;
}
