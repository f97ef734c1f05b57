//! Consumer options at run time, against a real server: `deliver_policy`, `max_ack_pending` and
//! `filters` decide what a handler is given, and a message whose handler holds its thread past
//! `ack_wait` on its last delivery reaches the dead-letter stream through the server's
//! `MAX_DELIVERIES` advisory.

#[path = "common/jetstream.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{stream, Job};
use nats_actors::jetstream;
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

/// Publishes `n` of `subject` and waits for each ack.
async fn publish(client: &Client, subject: &str, ns: impl IntoIterator<Item = u64>) {
    for n in ns {
        client.js_publish(subject, &Job { n }).await.unwrap();
    }
}

#[derive(Actor, Clone, Default)]
struct Picky {
    new_only: Arc<Mutex<Vec<u64>>>,
    last_each: Arc<Mutex<Vec<(String, u64)>>>,
    filtered: Arc<Mutex<Vec<String>>>,
}

#[handlers]
impl Picky {
    #[consumer(stream = "PICK", durable = "new-only", deliver_policy = "new")]
    async fn new_only(&self, job: Job) {
        self.new_only.lock().unwrap().push(job.n);
    }

    #[consumer(
        stream = "PICK",
        durable = "last-each",
        deliver_policy = "last_per_subject",
        filter = "pick.*"
    )]
    async fn last_each(&self, job: Job, subject: Subject) {
        self.last_each
            .lock()
            .unwrap()
            .push((subject.to_string(), job.n));
    }

    #[consumer(stream = "PICK", durable = "filtered", filters = "pick.a, pick.c")]
    async fn filtered(&self, _job: Job, subject: Subject) {
        self.filtered.lock().unwrap().push(subject.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_policy_and_filters_decide_what_a_handler_is_given() {
    logs();
    let server = server();
    let client = Client::new(async_nats::connect(server.url()).await.unwrap());
    let js = client.jetstream();
    js.create_stream(stream("PICK", "pick.>")).await.unwrap();
    // Stored before the consumers exist.
    publish(&client, "pick.a", 1..=3).await;
    publish(&client, "pick.b", 4..=5).await;
    let actor = Picky::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    publish(&client, "pick.c", [6]).await;
    publish(&client, "pick.b", [7]).await;
    let all = || async {
        actor.new_only.lock().unwrap().len() == 2
            && actor.last_each.lock().unwrap().len() == 4
            && actor.filtered.lock().unwrap().len() == 4
    };
    assert!(eventually(Duration::from_secs(10), all).await);
    // Give any message that should not come the time to come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Handlers run side by side: what each was given is compared sorted.
    let mut new_only = actor.new_only.lock().unwrap().clone();
    new_only.sort();
    assert_eq!(new_only, [6, 7]);
    let mut last = actor.last_each.lock().unwrap().clone();
    last.sort();
    // The last of each subject when the consumer was made, then what came after.
    assert_eq!(
        last,
        [
            ("pick.a".to_string(), 3),
            ("pick.b".to_string(), 5),
            ("pick.b".to_string(), 7),
            ("pick.c".to_string(), 6)
        ]
    );
    let mut filtered = actor.filtered.lock().unwrap().clone();
    filtered.sort();
    assert_eq!(filtered, ["pick.a", "pick.a", "pick.a", "pick.c"]);
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct OneAtATime {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

#[handlers]
impl OneAtATime {
    // Room for 8 at once in the process; the server hands out one unacked message at a time.
    #[consumer(stream = "ONE", durable = "one", max_ack_pending = 1, concurrency = 8)]
    async fn run(&self, _job: Job) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.running.fetch_sub(1, SeqCst);
        self.done.fetch_add(1, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ack_pending_bounds_what_runs_at_once() {
    logs();
    let server = server();
    let actor = OneAtATime::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("ONE", "one.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    publish(client, "one.x", 1..=20).await;
    let done = || async { actor.done.load(SeqCst) == 20 };
    assert!(eventually(Duration::from_secs(20), done).await);
    assert_eq!(actor.most.load(SeqCst), 1);
    let stream = client.jetstream().get_stream("ONE").await.unwrap();
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("one")
        .await
        .unwrap();
    assert_eq!(consumer.info().await.unwrap().config.max_ack_pending, 1);
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Hung {
    started: Arc<AtomicUsize>,
}

#[handlers]
impl Hung {
    #[consumer(stream = "HUNG", durable = "hung", ack_wait = "1s", max_deliver = 1)]
    async fn run(&self, _job: Job) {
        self.started.fetch_add(1, SeqCst);
        // Holds its thread past ack_wait: no in-progress ack goes out, and this was the last
        // delivery, so the server gives up on the message without a result from the handler.
        std::thread::sleep(Duration::from_millis(2500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_out_of_deliveries_without_a_result_is_dead_lettered_from_the_advisory() {
    logs();
    let server = server();
    let actor = Hung::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("HUNG", "hung.>"))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let ack = client
        .jetstream()
        .publish("hung.x", serde_json::to_vec(&Job { n: 9 }).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dead = || async { runtime.stats().handler("Hung::run").unwrap().dead_lettered == 1 };
    assert!(eventually(Duration::from_secs(15), dead).await);
    let letters = jetstream::dead_letters(client, "HUNG_DLQ", 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let l = &letters[0];
    assert_eq!(
        (l.subject.as_str(), l.stream.as_str(), l.consumer.as_str()),
        ("hung.x", "HUNG", "hung")
    );
    assert_eq!((l.stream_sequence, l.deliveries), (ack.sequence, 1));
    assert!(
        l.error
            .starts_with("delivery limit reached without a handler result"),
        "{}",
        l.error
    );
    assert_eq!(
        serde_json::from_slice::<Job>(&l.payload).unwrap().n,
        9,
        "the stored payload"
    );
    // The handler ran once: the server gave the message out no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(actor.started.load(SeqCst), 1);
    runtime.shutdown().await;
}
