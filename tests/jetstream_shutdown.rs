//! A JetStream consumer at shutdown: what it pulled and had not started goes back at the signal
//! (not when the handler in flight is done), and comes back in stream order.

#[path = "common/jetstream.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{stream, Job};
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, nats, server};

#[derive(Actor, Clone, Default)]
struct Slow {
    started: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Slow {
    #[consumer(stream = "SHUT", durable = "slow", batch = 10)]
    async fn run(&self, job: Job) {
        self.started.lock().unwrap().push(job.n);
        if job.n == 1 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
}

/// The server's count of delivered messages not yet acked, nak'ed ones excluded.
async fn ack_pending(js: &async_nats::jetstream::Context) -> usize {
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream("slow", "SHUT").await.unwrap();
    consumer.info().await.unwrap().num_ack_pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstarted_messages_go_back_at_the_signal_and_return_in_stream_order() {
    logs();
    let server = server();
    let js = async_nats::jetstream::new(nats(&server).await);
    let first = Slow::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream("SHUT", "shut.>"))
        .actor(first.clone())
        .start()
        .await
        .unwrap();
    for n in 1..=5u64 {
        runtime
            .client()
            .js_publish("shut.job", &Job { n })
            .await
            .unwrap();
    }
    // 1 runs for 1.5 s; 2 to 5 were pulled with it and wait.
    assert!(
        eventually(Duration::from_secs(5), || async {
            first.started.lock().unwrap().as_slice() == [1] && ack_pending(&js).await == 5
        })
        .await,
        "started {:?}",
        first.started.lock().unwrap()
    );
    let signal = Instant::now();
    let stopping = tokio::spawn(runtime.shutdown());
    // Back at the signal: another client of the same consumer gets them at once, in order,
    // while the handler in flight still has a second to go.
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream("slow", "SHUT").await.unwrap();
    let mut batch = consumer
        .batch()
        .max_messages(4)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut taken = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        taken.push((serde_json::from_slice::<Job>(&m.payload).unwrap().n, m));
    }
    let took = signal.elapsed();
    let order: Vec<u64> = taken.iter().map(|(n, _)| *n).collect();
    assert_eq!(order, [2, 3, 4, 5], "given back after {took:?}");
    assert!(
        took < Duration::from_millis(700),
        "given back after {took:?}, with the handler in flight for 1.5 s"
    );
    // Handed back once more, in order, for the next instance.
    for (_, m) in &taken {
        m.ack_with(async_nats::jetstream::AckKind::Nak(None))
            .await
            .unwrap();
    }
    let report = stopping.await.unwrap();
    assert_eq!(report.aborted, 0, "the handler in flight finished");
    assert_eq!(first.started.lock().unwrap().as_slice(), [1]);
    // A new instance gets them in stream order, each once.
    let second = Slow::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(second.clone())
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            second.started.lock().unwrap().len() >= 4
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(second.started.lock().unwrap().as_slice(), [2, 3, 4, 5]);
    runtime.shutdown().await;
    println!("given back {took:?} after the signal");
}
