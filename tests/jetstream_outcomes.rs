//! JetStream consumers against a real server: the result of the handler decides the ack (every
//! row of the outcome table), dead letters carry what happened and replay, and an ack that comes
//! after ack_wait is counted.

#[path = "common/jetstream.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{stream, Job};
use futures::StreamExt;
use nats_actors::jetstream::{self, Delivery};
use nats_actors::prelude::*;
use nats_actors::HeaderMap;
use nats_actors_suite::{connect, eventually, logs, nats, server};

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
        let s = runtime.stats().handler("Outcomes::run").unwrap();
        s.handled == 4 && s.dead_lettered == 2
    })
    .await;
    let stats = runtime.stats().handler("Outcomes::run").unwrap();
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
            runtime.stats().handler("Flaky::pay").unwrap().dead_lettered == 1
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
    assert_eq!(runtime.stats().handler("Flaky::pay").unwrap().retried, 2);

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
            runtime.stats().handler("Blocking::run").unwrap().late_acks == 1
        })
        .await,
        "{:?}",
        runtime.stats().handler("Blocking::run").unwrap()
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
