//! Publish/subscribe against a real server: ordering, wildcards, parameters, queue groups.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{eventually, logs, nats, server, start};

#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    seq: u64,
}

#[derive(Actor, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
    other: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Recorder {
    #[subscribe("ticks")]
    async fn on_tick(&self, tick: Tick) {
        self.seen.lock().unwrap().push(tick.seq);
    }

    #[subscribe("ticks")]
    async fn also_on_tick(&self, tick: Tick) -> Result<(), HandlerError> {
        self.other.lock().unwrap().push(tick.seq);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_typed_messages_arrive_once_and_in_order() {
    logs();
    let server = server();
    let actor = Recorder::default();
    let runtime = start(&server, actor.clone()).await;
    const N: u64 = 10_000;
    for seq in 0..N {
        runtime
            .client()
            .publish("ticks", &Tick { seq })
            .await
            .unwrap();
    }
    let all = eventually(Duration::from_secs(30), || async {
        actor.seen.lock().unwrap().len() as u64 >= N
            && actor.other.lock().unwrap().len() as u64 >= N
    })
    .await;
    assert!(
        all,
        "received {} and {} of {N}",
        actor.seen.lock().unwrap().len(),
        actor.other.lock().unwrap().len()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let expected: Vec<u64> = (0..N).collect();
    assert_eq!(
        *actor.seen.lock().unwrap(),
        expected,
        "every message once, in order"
    );
    assert_eq!(
        *actor.other.lock().unwrap(),
        expected,
        "the second handler too"
    );
    let stats = runtime.stats();
    assert_eq!(stats.handler("Recorder::on_tick").unwrap().handled, N);
    assert_eq!(stats.dropped, 0);
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Router {
    star: Arc<Mutex<Vec<String>>>,
    tail: Arc<Mutex<Vec<String>>>,
    shops: Arc<Mutex<Vec<(String, u32)>>>,
}

#[handlers]
impl Router {
    #[subscribe("route.*.one")]
    async fn star(&self, ctx: &Context) {
        self.star.lock().unwrap().push(ctx.subject().to_string());
    }

    #[subscribe("route.>")]
    async fn tail(&self, subject: nats_actors::Subject) {
        self.tail.lock().unwrap().push(subject.to_string());
    }

    #[subscribe("shop.{region}.{id}")]
    async fn shop(&self, region: Param<String>, id: Param<u32>) {
        self.shops.lock().unwrap().push((region.into_inner(), *id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_route_and_parameters_are_extracted_by_type() {
    logs();
    let server = server();
    let actor = Router::default();
    let runtime = start(&server, actor.clone()).await;
    let client = runtime.client();
    for subject in [
        "route.a.one",
        "route.b.one",
        "route.a.two",
        "route.x.y.z",
        "shop.eu.42",
        "shop.us.abc",
        "shop.us.7",
    ] {
        client.publish(subject, &()).await.unwrap();
    }
    let done = eventually(Duration::from_secs(5), || async {
        actor.tail.lock().unwrap().len() == 4
            && actor.shops.lock().unwrap().len() == 2
            && actor.star.lock().unwrap().len() == 2
    })
    .await;
    assert!(
        done,
        "tail {:?} shops {:?}",
        actor.tail.lock().unwrap(),
        actor.shops.lock().unwrap()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            let shop = runtime.stats().handler("Router::shop").unwrap();
            shop.rejected == 1 && shop.handled == 2
        })
        .await
    );
    assert_eq!(
        *actor.star.lock().unwrap(),
        vec!["route.a.one", "route.b.one"]
    );
    assert_eq!(
        *actor.tail.lock().unwrap(),
        vec!["route.a.one", "route.b.one", "route.a.two", "route.x.y.z"]
    );
    assert_eq!(
        *actor.shops.lock().unwrap(),
        vec![("eu".to_string(), 42), ("us".to_string(), 7)]
    );
    let shop = runtime.stats().handler("Router::shop").unwrap();
    assert_eq!(
        (shop.received, shop.handled, shop.rejected),
        (3, 2, 1),
        "the bad parameter is counted, not handled"
    );
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
#[actor(instances = 2, queue = "workers")]
struct Worker {
    handled: Arc<DashMap<u64, u32>>,
}

#[handlers]
impl Worker {
    #[subscribe("jobs")]
    async fn job(&self, tick: Tick) {
        *self.handled.entry(tick.seq).or_default() += 1;
        // Long enough that one instance cannot take every message.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_of_two_instances_handles_each_message_once() {
    logs();
    let server = server();
    let actor = Worker::default();
    let runtime = start(&server, actor.clone()).await;
    const N: u64 = 2_000;
    for seq in 0..N {
        runtime
            .client()
            .publish("jobs", &Tick { seq })
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(20), || async {
            actor.handled.len() as u64 == N
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        actor.handled.iter().all(|e| *e.value() == 1),
        "a message was handled twice"
    );
    let stats = runtime.stats();
    let per_instance: Vec<u64> = stats
        .handlers
        .iter()
        .filter(|h| h.handler == "Worker::job")
        .map(|h| h.handled)
        .collect();
    assert_eq!(per_instance.len(), 2, "two instances");
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "both instances handled some: {per_instance:?}"
    );
    assert_eq!(per_instance.iter().sum::<u64>(), N);
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Follower {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[handlers]
impl Follower {
    #[subscribe("stream.ticks")]
    async fn on_tick(&self, tick: Tick) {
        self.seen.lock().unwrap().push(tick.seq);
    }
}

/// A handler that always has a message waiting takes them without waiting on anything else:
/// shutdown must still stop it promptly, and every message it was given before the drain is
/// handled, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_continuous_stream_is_prompt_and_loses_nothing_delivered() {
    logs();
    let server = server();
    let actor = Follower::default();
    let runtime = start(&server, actor.clone()).await;
    let publisher = nats(&server).await;
    let publishing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = publishing.clone();
    let seen = actor.seen.clone();
    let feeder = tokio::spawn(async move {
        let mut seq = 0u64;
        // Bounded in count and time; stopped by the flag once shutdown is over.
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while seq < 2_000_000
            && std::time::Instant::now() < until
            && flag.load(std::sync::atomic::Ordering::Relaxed)
        {
            // Always ahead of the handler, never by more than a third of the subscription's
            // buffer (64 Ki messages): core NATS has no backpressure, and a publisher that
            // outruns the handler long enough (a loaded machine) overflows the buffer, where
            // the server's messages are dropped (slow consumer) before any handler sees them.
            while seq.is_multiple_of(1_000)
                && seq.saturating_sub(seen.lock().unwrap().len() as u64) > 20_000
                && std::time::Instant::now() < until
                && flag.load(std::sync::atomic::Ordering::Relaxed)
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let body = format!("{{\"seq\":{seq}}}");
            if publisher
                .publish("stream.ticks", body.into())
                .await
                .is_err()
            {
                break;
            }
            seq += 1;
        }
        let _ = publisher.flush().await;
        seq
    });
    let busy = eventually(Duration::from_secs(20), || async {
        actor.seen.lock().unwrap().len() >= 20_000
    })
    .await;
    assert!(busy, "handled {}", actor.seen.lock().unwrap().len());
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(15), runtime.shutdown())
        .await
        .expect("shutdown finishes while messages keep arriving");
    let took = started.elapsed();
    publishing.store(false, std::sync::atomic::Ordering::Relaxed);
    let published = feeder.await.unwrap();
    assert_eq!(report.aborted, 0, "nothing aborted");
    let seen = actor.seen.lock().unwrap().clone();
    let expected: Vec<u64> = (0..seen.len() as u64).collect();
    assert!(
        seen == expected,
        "every message delivered before the drain handled once, in order ({} handled, {published} published)",
        seen.len()
    );
    assert!(
        (seen.len() as u64) < published,
        "the stream was still running when shutdown began ({} of {published})",
        seen.len()
    );
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
}
