//! JetStream consumers against a real server: the result of the handler decides the ack (every
//! row of the outcome table), dead letters carry what happened and replay, deduplicated
//! publishing, stream declarations, and a consumer deleted under the runtime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nats_actors::jetstream::{self, Delivery, JsPublish, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::{Error, HeaderMap};
use nats_actors_suite::{connect, eventually, logs, nats, server};

fn stream(name: &str, subjects: &str) -> StreamConfig {
    StreamConfig {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

/// What each delivery looked like: (kind, n, delivery count, when).
type Seen = Arc<Mutex<Vec<(String, u64, u64, Instant)>>>;

#[derive(Actor, Clone, Default)]
struct Outcomes {
    seen: Seen,
}

#[handlers]
impl Outcomes {
    #[consumer(
        stream = "JOBS",
        durable = "outcomes",
        filter = "jobs.{kind}",
        max_deliver = 4,
        backoff = "100ms",
        ack_wait = "1s",
        double_ack = true
    )]
    async fn run(
        &self,
        kind: Param<String>,
        job: Job,
        delivery: Delivery,
    ) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .push((kind.0.clone(), job.n, delivery.delivered, Instant::now()));
        match (kind.as_str(), delivery.delivered) {
            ("ok", _) => Ok(()),
            ("retry", 1 | 2) => Err(HandlerError::retry_after(
                "busy",
                Duration::from_millis(300),
            )),
            ("retry", _) => Ok(()),
            ("fatal", _) => Err(HandlerError::fatal("order references a deleted account")),
            ("panic", 1) => panic!("boom on the first delivery"),
            ("panic", _) => Ok(()),
            ("slow", _) => {
                // Longer than ack_wait: in-progress acks keep the message ours.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                Ok(())
            }
            _ => Err(HandlerError::bad_request("unknown kind")),
        }
    }
}

impl Outcomes {
    fn deliveries(&self, kind: &str) -> Vec<(u64, Instant)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == kind)
            .map(|s| (s.2, s.3))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_result_decides_the_ack() {
    logs();
    let server = server();
    let actor = Outcomes::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("JOBS", "jobs.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let mut terminated = nats(&server)
        .await
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.JOBS.outcomes")
        .await
        .unwrap();
    for kind in ["ok", "retry", "fatal", "panic", "slow"] {
        client
            .js_publish(&format!("jobs.{kind}"), &Job { n: 1 })
            .await
            .unwrap();
    }
    // Not a Job: never reaches the handler.
    client
        .js_publish("jobs.ok", &serde_json::json!({"n": "not a number"}))
        .await
        .unwrap();

    let settled = eventually(Duration::from_secs(15), || async {
        let s = runtime.stats().handler("Outcomes::run");
        s.handled == 4 && s.dead_lettered == 2
    })
    .await;
    let stats = runtime.stats().handler("Outcomes::run");
    assert!(settled, "{stats:?}");

    // ack: once; retry_after: delivered 3 times, 300 ms apart at least.
    assert_eq!(actor.deliveries("ok").len(), 1);
    let retry = actor.deliveries("retry");
    assert_eq!(retry.iter().map(|d| d.0).collect::<Vec<_>>(), [1, 2, 3]);
    for pair in retry.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_millis(290) && gap < Duration::from_secs(3),
            "{gap:?}"
        );
    }
    // panic: nak, redelivered, then acked; the runtime went on.
    assert_eq!(
        actor
            .deliveries("panic")
            .iter()
            .map(|d| d.0)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(stats.panics, 1);
    // A handler running past ack_wait (1 s) was not redelivered.
    assert_eq!(actor.deliveries("slow").len(), 1);
    // fatal and undecodable: terminated and dead-lettered, each after one delivery.
    assert_eq!(actor.deliveries("fatal").len(), 1);
    assert_eq!(
        (stats.rejected, stats.retried, stats.ack_failures),
        (1, 3, 0)
    );
    let letters = jetstream::dead_letters(client, "JOBS_DLQ", 10)
        .await
        .unwrap();
    let mut errors: Vec<(String, u64)> = letters
        .iter()
        .map(|l| (l.subject.clone(), l.deliveries))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [("jobs.fatal".to_string(), 1), ("jobs.ok".to_string(), 1)]
    );
    assert!(letters
        .iter()
        .any(|l| l.error == "order references a deleted account"));
    assert!(
        letters.iter().any(|l| l.error.contains("invalid JSON")),
        "{letters:?}"
    );

    // `+TERM reason` reaches the server's terminated advisory.
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), terminated.next())
            .await
            .expect("terminated advisories")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        reasons.push(v["reason"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        reasons.contains(&"order references a deleted account".to_string()),
        "{reasons:?}"
    );

    // Nothing is left unacknowledged.
    let info = client
        .jetstream()
        .get_stream("JOBS")
        .await
        .unwrap()
        .consumer_info("outcomes")
        .await
        .unwrap();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Flaky {
    healthy: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
}

#[handlers]
impl Flaky {
    #[consumer(
        stream = "PAY",
        durable = "payer",
        max_deliver = 3,
        backoff = "50ms",
        dead_letter = "PAY_DEAD"
    )]
    async fn pay(&self, job: Job) -> Result<(), HandlerError> {
        if !self.healthy.load(SeqCst) {
            return Err(HandlerError::new(format!("gateway down for {}", job.n)));
        }
        self.done.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deliver_dead_letters_with_every_field_and_replay_puts_it_back() {
    logs();
    let server = server();
    let actor = Flaky::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("PAY", "pay.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    headers.insert("X-Tenant", "acme");
    headers.insert("Content-Type", "application/json");
    headers.insert("Nats-Msg-Id", "pay-7");
    let payload = serde_json::to_vec(&Job { n: 7 }).unwrap();
    let js = client.jetstream();
    let ack = js
        .publish_with_headers("pay.eu", headers, payload.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let before = time_now();
    assert!(
        eventually(Duration::from_secs(10), || async {
            runtime.stats().handler("Flaky::pay").dead_lettered == 1
        })
        .await
    );
    let letters = jetstream::dead_letters(client, "PAY_DEAD", 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.subject, "pay.eu");
    assert_eq!(l.stream, "PAY");
    assert_eq!(l.stream_sequence, ack.sequence);
    assert_eq!(l.consumer, "payer");
    assert_eq!(l.deliveries, 3);
    assert_eq!(l.error, "gave up after 3 deliveries: gateway down for 7");
    assert!(
        l.failed_at.starts_with(&before[..10]),
        "{} vs {before}",
        l.failed_at
    );
    assert_eq!(l.payload.as_ref(), payload.as_slice());
    let h = |name: &str| l.headers.get(name).map(|v| v.as_str().to_string());
    assert_eq!(
        h("traceparent").as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(h("X-Tenant").as_deref(), Some("acme"));
    assert_eq!(h(jetstream::DLQ_MSG_ID).as_deref(), Some("pay-7"));
    assert_eq!(runtime.stats().handler("Flaky::pay").retried, 2);

    // The gateway is back: replay puts the message back into PAY and the handler takes it.
    actor.healthy.store(true, SeqCst);
    assert_eq!(
        jetstream::replay_dead_letters(client, "PAY_DEAD")
            .await
            .unwrap(),
        1
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            actor.done.load(SeqCst) == 1
        })
        .await
    );
    assert!(jetstream::dead_letters(client, "PAY_DEAD", 10)
        .await
        .unwrap()
        .is_empty());
    runtime.shutdown().await;
}

fn time_now() -> String {
    // The date part of an RFC 3339 timestamp, from the system clock.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

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

#[derive(Actor, Clone, Default)]
struct Blocking {
    deliveries: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Blocking {
    #[consumer(stream = "BLOCK", durable = "blocking", ack_wait = "1s")]
    async fn run(&self, _job: Job, delivery: Delivery) {
        self.deliveries.lock().unwrap().push(delivery.delivered);
        if delivery.delivered == 1 {
            // Blocks its thread past ack_wait: no in-progress ack can go out meanwhile.
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_after_ack_wait_is_counted_and_the_redelivery_seen() {
    logs();
    let server = server();
    let actor = Blocking::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("BLOCK", "block.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    runtime
        .client()
        .js_publish("block.a", &Job { n: 1 })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            runtime.stats().handler("Blocking::run").late_acks == 1
        })
        .await,
        "{:?}",
        runtime.stats().handler("Blocking::run")
    );
    // The server had given up on the first delivery and sent it again.
    assert!(
        eventually(Duration::from_secs(5), || async {
            actor.deliveries.lock().unwrap().contains(&2)
        })
        .await
    );
    runtime.shutdown().await;
}
