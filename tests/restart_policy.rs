//! Supervision against a real server: `restart = "reset"` gives an actor whose handler panicked
//! a fresh state (the default keeps whatever the panic left), and past `max_restarts` within
//! `restart_window` the runtime stops itself with the reason, so that the process can exit
//! non-zero, or with `on_limit = "stop_actor"` only that instance stops and the rest goes on.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::{Error, HandlerState, RequestError};
use nats_actors_suite::{connect, logged, logs, server};

/// Adds to a total; 13 panics half-way through the update.
macro_rules! counter {
    ($name:ident, $($attr:tt)*) => {
        #[derive(Actor, Clone, Default)]
        #[actor($($attr)*)]
        struct $name {
            total: u64,
        }

        #[handlers]
        impl $name {
            #[request("counter.add")]
            async fn add(&mut self, n: u64) -> u64 {
                self.total += 1000;
                assert!(n != 13, "unlucky number");
                self.total -= 1000;
                self.total += n;
                self.total
            }

            #[request("counter.total")]
            async fn total(&self) -> u64 {
                self.total
            }
        }
    };
}

counter!(Resetting, restart = "reset");
counter!(Keeping, name = "Keeping");

async fn add(client: &Client, n: u64) -> Result<u64, nats_actors::RequestError> {
    client.request("counter.add", &n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_gives_a_fresh_state_after_a_panic_and_keep_does_not() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Resetting::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    assert_eq!(add(client, 1).await.unwrap(), 1);
    assert_eq!(add(client, 2).await.unwrap(), 3);
    let failed = add(client, 13).await.unwrap_err();
    assert!(failed.to_string().contains("panicked"), "{failed}");
    let total: u64 = client.request("counter.total", &()).await.unwrap();
    assert_eq!(total, 0, "reset to Default after the panic");
    assert_eq!(add(client, 5).await.unwrap(), 5, "and it goes on");
    let stats = runtime.stats().handler("Resetting::add").unwrap();
    assert_eq!((stats.panics, stats.restarts), (1, 1));
    runtime.shutdown().await;

    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Keeping::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client();
    assert_eq!(add(client, 3).await.unwrap(), 3);
    assert!(add(client, 13).await.is_err());
    let total: u64 = client.request("counter.total", &()).await.unwrap();
    assert_eq!(total, 1003, "keep: the state as the panic left it");
    let stats = runtime.stats().handler("Keeping::add").unwrap();
    assert_eq!((stats.panics, stats.restarts), (1, 0));
    runtime.shutdown().await;
}

counter!(
    Fragile,
    restart = "reset",
    max_restarts = 2,
    restart_window = "30s"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_restarts_the_runtime_stops_itself_with_the_reason() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Fragile::default())
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    let running = tokio::spawn(runtime.run_until_shutdown_signal());
    for attempt in 1..=3 {
        let failed = add(&client, 13).await;
        assert!(failed.is_err(), "attempt {attempt} panics");
    }
    let ended = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the runtime stops itself")
        .unwrap();
    match ended {
        Err(Error::Supervision { reason }) => {
            assert!(
                reason.contains("Fragile") && reason.contains("3 times"),
                "{reason}"
            );
        }
        other => panic!("expected a supervision stop, got {other:?}"),
    }
    // The log says which panics the actor went on after, and which one stopped it.
    let of_fragile = |what: &str| {
        logged(what)
            .into_iter()
            .filter(|l| l.contains("Fragile::add"))
            .count()
    };
    assert_eq!(of_fragile("handler panicked; the actor goes on"), 2);
    assert_eq!(of_fragile("handler panicked past its restart limit"), 1);
}

counter!(
    Brittle,
    instances = 2,
    max_restarts = 1,
    on_limit = "stop_actor"
);

/// Answers while `Brittle` breaks down.
#[derive(Actor)]
struct Steady;

#[handlers]
impl Steady {
    #[request("steady.ping")]
    async fn ping(&self) -> &'static str {
        "pong"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_actor_stops_only_the_instance_past_its_limit_and_its_queue_group_goes_on() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Brittle::default())
        .actor(Steady)
        .start()
        .await
        .unwrap();
    let client = runtime.client().clone();
    let health = || runtime.health();
    // The queue group spreads the unlucky numbers over both instances: the first to panic
    // twice within the window stops.
    let stopped = |h: &nats_actors::Health| {
        h.handlers
            .iter()
            .filter(|h| h.handler == "Brittle::add" && h.state == HandlerState::Stopped)
            .map(|h| h.instance)
            .collect::<Vec<_>>()
    };
    let mut panics = 0;
    while stopped(&health()).is_empty() {
        assert!(panics < 40, "no instance stopped after {panics} panics");
        assert!(add(&client, 13).await.is_err());
        panics += 1;
        // The stop is made once its second panic is answered; give it a moment.
        for _ in 0..20 {
            if !stopped(&health()).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let snapshot = health();
    let gone = stopped(&snapshot);
    assert_eq!(gone.len(), 1, "one instance stopped: {snapshot:?}");
    let gone = gone[0];
    // Both handlers of that instance stopped with it; the other instance's run.
    for h in snapshot
        .handlers
        .iter()
        .filter(|h| h.handler.starts_with("Brittle::"))
    {
        if h.instance == gone {
            assert_eq!(h.state, HandlerState::Stopped, "{h:?}");
        } else {
            assert_eq!(h.state, HandlerState::Running, "{h:?}");
        }
    }
    let why = snapshot
        .handlers
        .iter()
        .find(|h| h.handler == "Brittle::add" && h.instance == gone)
        .and_then(|h| h.stopped_by.clone())
        .unwrap_or_default();
    assert!(
        why.contains("panicked 2 times") && why.contains("max_restarts = 1"),
        "{why}"
    );
    // The runtime goes on, ready, and the surviving instance takes every request.
    assert!(snapshot.ready && snapshot.failure.is_none(), "{snapshot:?}");
    let pong: String = client.request("steady.ping", &()).await.unwrap();
    assert_eq!(pong, "pong");
    let before = received(&runtime, gone);
    for n in 100..150u64 {
        add(&client, n)
            .await
            .unwrap_or_else(|e| panic!("add {n}: {e}"));
    }
    assert_eq!(
        received(&runtime, gone),
        before,
        "the stopped instance took none"
    );
    // Once the last instance goes too, its subjects have no responders: no request hangs.
    while stopped(&health()).len() < 2 {
        assert!(
            panics < 80,
            "the second instance did not stop after {panics} panics"
        );
        assert!(add(&client, 13).await.is_err());
        panics += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    match add(&client, 1).await {
        Err(RequestError::NoResponders { .. }) => {}
        other => panic!("expected no responders, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let pong: String = client.request("steady.ping", &()).await.unwrap();
    assert_eq!(pong, "pong");
    let end = health();
    assert!(
        end.ready && end.failure.is_none(),
        "the runtime still runs: {end:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), runtime.shutdown())
        .await
        .expect("shutdown with stopped instances");
}

/// Messages the `Brittle::add` handler of `instance` received.
fn received(runtime: &Runtime, instance: usize) -> u64 {
    let stats = runtime.stats();
    let h = stats
        .handlers
        .iter()
        .find(|h| h.handler == "Brittle::add" && h.instance == instance);
    h.map(|h| h.received).expect("Brittle::add is counted")
}
