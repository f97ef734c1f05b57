//! Health per handler against a real server (`Runtime::health().handlers`): what a core
//! handler holds in its buffer and has in flight, the last error a message ended with, a
//! handler paused by its supervisor after a panic, and a durable consumer's pending and
//! ack-pending as the server counts them.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::{HandlerHealth, HandlerState, Runtime as Rt};
use nats_actors_suite::{connect, eventually, logs, server};

/// The health of `handler` (instance 0).
fn of(runtime: &Rt, handler: &str) -> HandlerHealth {
    runtime
        .health()
        .handlers
        .into_iter()
        .find(|h| h.handler == handler && h.instance == 0)
        .unwrap_or_else(|| panic!("no handler {handler}"))
}

#[derive(Actor, Clone, Default)]
struct Busy {
    open: Arc<AtomicBool>,
}

#[handlers]
impl Busy {
    /// Waits while the gate is shut.
    #[subscribe("hh.work")]
    async fn work(&self, _n: u32) {
        for _ in 0..1000 {
            if self.open.load(SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[request("hh.check")]
    async fn check(&self, n: u32) -> Result<u32, HandlerError> {
        match n {
            0 => Err(HandlerError::fatal("zero is not a quantity")),
            n => Ok(n),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_handler_shows_what_it_holds_and_its_last_error() {
    logs();
    let server = server();
    let actor = Busy::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    let h = of(&runtime, "Busy::work");
    assert_eq!(
        (h.state, h.in_flight, h.buffered),
        (HandlerState::Running, 0, 0)
    );
    assert_eq!((h.consumer_pending, h.last_error), (None, None));
    for n in 0..50u32 {
        client.publish("hh.work", &n).await.unwrap();
    }
    client.nats().flush().await.unwrap();
    // One runs, the other 49 wait in its buffer.
    let holding = || async {
        let h = of(&runtime, "Busy::work");
        h.in_flight == 1 && h.buffered == 49
    };
    assert!(
        eventually(Duration::from_secs(10), holding).await,
        "{:?}",
        of(&runtime, "Busy::work")
    );
    actor.open.store(true, SeqCst);
    let done = || async {
        let h = of(&runtime, "Busy::work");
        h.in_flight == 0 && h.buffered == 0
    };
    assert!(
        eventually(Duration::from_secs(10), done).await,
        "{:?}",
        of(&runtime, "Busy::work")
    );

    let refused: Result<u32, _> = client.request("hh.check", &0u32).await;
    assert!(refused.is_err());
    let answered: u32 = client.request("hh.check", &7u32).await.unwrap();
    assert_eq!(answered, 7);
    // Kept after a message that succeeded.
    assert_eq!(
        of(&runtime, "Busy::check").last_error.as_deref(),
        Some("500:zero is not a quantity")
    );
    runtime.shutdown().await;
}

/// Panics on every call: its supervisor pauses it 10 ms, doubling with each panic.
#[derive(Actor, Default)]
#[actor(restart = "reset")]
struct Doomed {
    calls: u64,
}

#[handlers]
impl Doomed {
    #[request("hh.doomed")]
    async fn call(&mut self) -> u64 {
        self.calls += 1;
        panic!("doomed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_paused_after_a_panic_shows_as_restarting() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Doomed::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    // Seven panics: 10 + 20 + ... + 640 ms of pauses; the eighth pauses 1.28 s.
    for _ in 0..7 {
        let r: Result<u64, _> = client.request("hh.doomed", &()).await;
        assert!(r.is_err());
    }
    let eighth = tokio::spawn(async move {
        let r: Result<u64, _> = client.request("hh.doomed", &()).await;
        r.is_err()
    });
    let restarting = || async { of(&runtime, "Doomed::call").state == HandlerState::Restarting };
    assert!(eventually(Duration::from_secs(2), restarting).await);
    assert!(eighth.await.unwrap(), "the eighth call fails too");
    let h = of(&runtime, "Doomed::call");
    assert_eq!(h.state, HandlerState::Running);
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("doomed")),
        "{h:?}"
    );
    runtime.shutdown().await;
}

#[derive(Actor, Clone, Default)]
struct Held {
    open: Arc<AtomicBool>,
}

#[handlers]
impl Held {
    #[consumer(stream = "HH", durable = "held", max_ack_pending = 3, concurrency = 3)]
    async fn job(&self, _n: u32) {
        for _ in 0..3000 {
            if self.open.load(SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_shows_its_pending_and_ack_pending_as_the_server_counts_them() {
    logs();
    let server = server();
    let actor = Held::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(nats_actors::jetstream::StreamConfig {
            name: "HH".into(),
            subjects: vec!["hh.jobs.>".into()],
            ..Default::default()
        })
        .actor(actor.clone())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    for n in 0..10u32 {
        client.js_publish("hh.jobs.a", &n).await.unwrap();
    }
    // Three delivered and held (the consumer's limit), seven not delivered yet; read within 5 s.
    let counted = |want: (u64, u64)| {
        let runtime = &runtime;
        move || async move { of(runtime, "Held::job").consumer_pending == Some(want) }
    };
    assert!(
        eventually(Duration::from_secs(12), counted((7, 3))).await,
        "{:?}",
        of(&runtime, "Held::job")
    );
    assert_eq!(of(&runtime, "Held::job").in_flight, 3);
    actor.open.store(true, SeqCst);
    assert!(
        eventually(Duration::from_secs(12), counted((0, 0))).await,
        "{:?}",
        of(&runtime, "Held::job")
    );
    runtime.shutdown().await;
}
