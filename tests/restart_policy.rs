//! Supervision against a real server: `restart = "reset"` gives an actor whose handler panicked
//! a fresh state (the default keeps whatever the panic left), and past `max_restarts` within
//! `restart_window` the runtime stops itself with the reason, so that the process can exit
//! non-zero.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::Error;
use nats_actors_suite::{connect, logs, server};

/// Adds to a total; 13 panics half-way through the update.
macro_rules! counter {
    ($name:ident, $($attr:tt)*) => {
        #[derive(Actor, Default)]
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
}
