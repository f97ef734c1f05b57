//! Actor semantics against a real server: one at a time by default, `concurrency = N`,
//! `&mut self` handlers exclusive, and graceful shutdown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, nats, server};

/// Tracks how many handler calls overlap.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    done: AtomicUsize,
}

impl Gauge {
    async fn hold(&self, for_: Duration) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        tokio::time::sleep(for_).await;
        self.now.fetch_sub(1, SeqCst);
        self.done.fetch_add(1, SeqCst);
    }
}

#[derive(Actor, Clone, Default)]
struct Pool {
    serial: Arc<Gauge>,
    parallel: Arc<Gauge>,
}

#[handlers]
impl Pool {
    #[subscribe("work.serial")]
    async fn serial(&self, _n: u32) {
        self.serial.hold(Duration::from_millis(50)).await;
    }

    #[subscribe("work.parallel", concurrency = 4)]
    async fn parallel(&self, _n: u32) {
        self.parallel.hold(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_is_one_at_a_time_and_concurrency_runs_n_at_once() {
    logs();
    let server = server();
    let pool = Pool::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(pool.clone())
        .start()
        .await
        .unwrap();
    for n in 0..8u32 {
        runtime.client().publish("work.serial", &n).await.unwrap();
        runtime.client().publish("work.parallel", &n).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            pool.serial.done.load(SeqCst) == 8 && pool.parallel.done.load(SeqCst) == 8
        })
        .await
    );
    assert_eq!(
        pool.serial.max.load(SeqCst),
        1,
        "the default handler ran more than one at a time"
    );
    assert_eq!(
        pool.parallel.max.load(SeqCst),
        4,
        "concurrency = 4 should run exactly 4 at once"
    );
    runtime.shutdown().await;
}

#[derive(Actor, Default)]
struct Counter {
    value: u64,
    log: Vec<u64>,
}

#[handlers]
impl Counter {
    #[subscribe("count.add", concurrency = 8)]
    async fn add(&mut self, n: u64) {
        // No lock in user code: &mut self handlers run one at a time.
        let before = self.value;
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.value = before + n;
        self.log.push(n);
    }

    #[request("count.get")]
    async fn get(&self) -> u64 {
        self.value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mut_self_handlers_own_the_state_without_locks() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Counter::default())
        .start()
        .await
        .unwrap();
    for n in 1..=100u64 {
        runtime.client().publish("count.add", &n).await.unwrap();
    }
    let total = 100 * 101 / 2;
    assert!(
        eventually(Duration::from_secs(10), || async {
            runtime
                .client()
                .request::<u64, _>("count.get", &())
                .await
                .ok()
                == Some(total)
        })
        .await,
        "no update may be lost"
    );
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Slow {
    started: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

#[handlers]
impl Slow {
    #[subscribe("slow.job")]
    async fn job(&self, ms: u64, ctx: &Context) -> Result<(), HandlerError> {
        self.started.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ctx.publish("slow.done", &ms).await?;
        self.finished.store(true, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_in_flight_handler_and_flushes_its_publish() {
    logs();
    let server = server();
    let watcher = nats(&server).await;
    let mut done = watcher.subscribe("slow.done").await.unwrap();
    watcher.flush().await.unwrap();
    let slow = Slow::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(slow.clone())
        .start()
        .await
        .unwrap();
    runtime.client().publish("slow.job", &400u64).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            slow.started.load(SeqCst)
        })
        .await
    );
    let report = runtime.shutdown().await;
    assert!(
        slow.finished.load(SeqCst),
        "shutdown returned before the in-flight handler finished"
    );
    assert_eq!(report.aborted, 0);
    use futures::StreamExt;
    let msg = tokio::time::timeout(Duration::from_secs(5), done.next())
        .await
        .expect("the handler's publish was flushed");
    assert_eq!(&msg.unwrap().payload[..], b"400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_aborts_handlers_still_running_at_the_deadline() {
    logs();
    let server = server();
    let slow = Slow::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(slow.clone())
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    runtime
        .client()
        .publish("slow.job", &60_000u64)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            slow.started.load(SeqCst)
        })
        .await
    );
    let started = std::time::Instant::now();
    let report = runtime.shutdown().await;
    assert_eq!(report.aborted, 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown must respect its deadline"
    );
    assert!(!slow.finished.load(SeqCst));
}

#[derive(Actor, Clone, Default)]
struct Caller {
    answer: Arc<AtomicUsize>,
    started: Arc<AtomicBool>,
}

#[handlers]
impl Caller {
    #[subscribe("call.later")]
    async fn later(&self, ms: u64, ctx: &Context) -> Result<(), HandlerError> {
        self.started.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let n: usize = ctx.request("call.answer", &()).await?;
        self.answer.store(n, SeqCst);
        Ok(())
    }
}

#[derive(Actor)]
struct Answerer;

#[handlers]
impl Answerer {
    #[request("call.answer")]
    async fn answer(&self) -> usize {
        42
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_handler_can_still_call_a_responder_of_the_same_runtime_at_shutdown() {
    logs();
    let server = server();
    let caller = Caller::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(caller.clone())
        .actor(Answerer)
        .start()
        .await
        .unwrap();
    runtime
        .client()
        .publish("call.later", &300u64)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            caller.started.load(SeqCst)
        })
        .await
    );
    let report = runtime.shutdown().await;
    assert_eq!(report.aborted, 0);
    assert_eq!(
        caller.answer.load(SeqCst),
        42,
        "request handlers drain after subscriptions"
    );
}
