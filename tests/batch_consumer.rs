//! Batch consumer handlers against a real server: each message of a batch settled as its
//! handler said, a message that does not decode dead-lettered alone, redelivery of only what
//! was nak'ed, one result for the whole batch, and in-progress acks for a slow batch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::jetstream::{Batch, StreamConfig};
use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

/// The batches a handler was called with: each value and its delivery count.
type Calls = Arc<Mutex<Vec<Vec<(u64, u64)>>>>;

fn record(calls: &Calls, batch: &Batch<u64>) {
    let seen = batch
        .iter()
        .map(|item| (**item, item.delivery().map_or(0, |d| d.delivered)))
        .collect();
    calls.lock().unwrap().push(seen);
}

#[derive(Actor, Clone, Default)]
struct Settler {
    mixed: Calls,
    whole: Calls,
    slow: Calls,
}

#[handlers]
impl Settler {
    #[consumer(
        stream = "BT",
        durable = "settler",
        filter = "bt.mixed",
        batch = 20,
        batch_wait = "300ms"
    )]
    async fn mixed(&self, batch: Batch<u64>) -> Result<(), HandlerError> {
        record(&self.mixed, &batch);
        for item in &batch {
            let first = item.delivery().is_some_and(|d| d.delivered == 1);
            match **item {
                3 if first => item.nak(Duration::from_millis(100)),
                5 => item.term("five is terminated"),
                7 => item.dead_letter("seven is dead-lettered"),
                8 => item.fail(HandlerError::fatal("eight failed for good")),
                9 if first => item.fail(HandlerError::retry_after(
                    "nine later",
                    Duration::from_millis(100),
                )),
                _ => {}
            }
        }
        Ok(()) // every other message: acked
    }

    #[consumer(
        stream = "BT",
        durable = "whole",
        filter = "bt.whole",
        batch = 20,
        batch_wait = "300ms",
        backoff = "100ms"
    )]
    async fn whole(&self, batch: Batch<u64>) -> Result<(), HandlerError> {
        record(&self.whole, &batch);
        match batch.iter().next().and_then(|i| i.delivery()) {
            Some(d) if d.delivered == 1 => Err(HandlerError::new("not yet")),
            _ => Ok(()),
        }
    }

    #[consumer(
        stream = "BT",
        durable = "slow",
        filter = "bt.slow",
        batch = 20,
        batch_wait = "300ms",
        ack_wait = "1s"
    )]
    async fn slow(&self, batch: Batch<u64>) {
        record(&self.slow, &batch);
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

async fn pending(client: &Client, durable: &str) -> (u64, usize) {
    let stream = client.jetstream().get_stream("BT").await.unwrap();
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_of_a_batch_is_settled_as_its_handler_said() {
    logs();
    let server = server();
    let stream = StreamConfig {
        name: "BT".into(),
        subjects: vec!["bt.>".into()],
        ..Default::default()
    };
    // The messages are stored before the consumers start, so that each comes as one batch.
    let setup = Runtime::builder()
        .connect(connect(&server))
        .stream(stream.clone())
        .start()
        .await
        .unwrap();
    let js = setup.client().jetstream().clone();
    for i in 0..10u64 {
        if i == 4 {
            // Not a u64: it never reaches the batch.
            js.publish("bt.mixed", "\"four\"".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let body = serde_json::to_vec(&i).unwrap();
        js.publish("bt.mixed", body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish("bt.whole", body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for i in 0..3u64 {
        let body = serde_json::to_vec(&i).unwrap();
        js.publish("bt.slow", body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    setup.shutdown().await;

    let settler = Settler::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream)
        .actor(settler.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    let done = || async {
        pending(&client, "settler").await == (0, 0)
            && pending(&client, "whole").await == (0, 0)
            && pending(&client, "slow").await == (0, 0)
    };
    let calls = |c: &Calls| c.lock().unwrap().clone();
    assert!(
        eventually(Duration::from_secs(20), done).await,
        "{:?} {:?} {:?}",
        calls(&settler.mixed),
        calls(&settler.whole),
        calls(&settler.slow)
    );
    let first: Vec<(u64, u64)> = (0..10).map(|v| (v, 1)).collect();

    // `mixed`: one batch of the ten values that decode, then only 3 and 9 again.
    let mixed = calls(&settler.mixed);
    eprintln!("mixed: {mixed:?}");
    assert_eq!(mixed[0], first);
    let again: Vec<(u64, u64)> = mixed[1..].iter().flatten().copied().collect();
    let mut values: Vec<u64> = again.iter().map(|(v, _)| *v).collect();
    values.sort();
    assert_eq!(values, [3, 9], "only the nak'ed ones come again: {mixed:?}");
    assert!(again.iter().all(|(_, d)| *d == 2), "{mixed:?}");

    // The dead letters: the one that did not decode, seven and eight; five only terminated.
    let letters = nats_actors::jetstream::dead_letters(&client, "BT_DLQ", 10)
        .await
        .unwrap();
    let mut reasons: Vec<String> = letters.iter().map(|l| l.error.clone()).collect();
    reasons.sort();
    assert_eq!(letters.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("seven is dead-lettered")));
    assert!(reasons.iter().any(|r| r.contains("eight failed for good")));
    let bad = letters
        .iter()
        .find(|l| l.payload.as_ref() == b"\"four\"")
        .expect("the undecodable message is a dead letter of its own");
    assert!(!bad.error.is_empty());
    let stats = runtime.stats().handler("Settler::mixed").unwrap();
    assert_eq!(stats.dead_lettered, 3, "{stats:?}");

    // `whole`: the handler's error naks the whole batch; it comes back whole, and is acked.
    let whole = calls(&settler.whole);
    eprintln!("whole: {whole:?}");
    let second: Vec<(u64, u64)> = (0..10).map(|v| (v, 2)).collect();
    assert_eq!(whole, [first, second]);

    // `slow`: 2.5 s with ack_wait 1 s, kept alive: called once, nothing redelivered.
    let slow = calls(&settler.slow);
    assert_eq!(slow, [vec![(0, 1), (1, 1), (2, 1)]]);
    let stats = runtime.stats().handler("Settler::slow").unwrap();
    assert_eq!((stats.handled, stats.received), (3, 3), "{stats:?}");
    runtime.shutdown().await;
}
