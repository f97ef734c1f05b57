//! No silent loss: messages async-nats drops for a slow consumer are counted and reported.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

#[derive(Actor)]
struct Sluggish;

#[handlers]
impl Sluggish {
    #[subscribe("firehose")]
    async fn take(&self, _n: u32) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dropped_message_is_counted() {
    logs();
    let server = server();
    // A tiny buffer so that the burst below overflows it.
    let options = connect(&server).subscription_capacity(8);
    let runtime = Runtime::builder()
        .connect(options)
        .actor(Sluggish)
        .start()
        .await
        .unwrap();
    const N: u64 = 100;
    for n in 0..N as u32 {
        runtime.client().publish("firehose", &n).await.unwrap();
    }
    runtime.client().nats().flush().await.unwrap();
    // Everything published is either handled or counted as dropped: nothing vanishes.
    let accounted = eventually(Duration::from_secs(20), || async {
        let s = runtime.stats();
        s.handler("Sluggish::take").unwrap().handled + s.dropped == N
    })
    .await;
    let s = runtime.stats();
    assert!(
        accounted,
        "handled {} + dropped {} != {N}",
        s.handler("Sluggish::take").unwrap().handled,
        s.dropped
    );
    assert!(
        s.dropped > 0,
        "the burst should have overflowed the 8-message buffer"
    );
    runtime.shutdown().await;
}
