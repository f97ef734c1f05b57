//! The test kit (`nats_actors::testing::TestRuntime`) as a user's test would use it: one call
//! starts a server and the actors, then publish and wait for "handled", capture what a handler
//! publishes, call a request handler, read the stats; and how long the start takes.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors::testing::{TestRuntime, TestingError};

#[derive(Actor, Clone, Default)]
struct Orders {
    total: Arc<AtomicU64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Placed {
    id: u32,
    cents: u64,
}

#[handlers]
impl Orders {
    #[subscribe("orders.placed")]
    async fn placed(&self, order: Placed, ctx: &Context) -> Result<(), HandlerError> {
        self.total.fetch_add(order.cents, SeqCst);
        ctx.publish(&format!("orders.{}.accepted", order.id), &order)
            .await?;
        Ok(())
    }

    #[request("orders.total")]
    async fn total(&self) -> u64 {
        self.total.load(SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_test_publishes_waits_captures_requests_and_reads_stats() {
    let orders = Orders::default();
    let started = Instant::now();
    let kit = TestRuntime::start(Runtime::builder().actor(orders.clone()))
        .await
        .expect("a server and the actors");
    let start = started.elapsed();
    let mut accepted = kit.capture("orders.*.accepted").await.unwrap();
    for (id, cents) in [(1, 250), (2, 100)] {
        kit.client()
            .publish("orders.placed", &Placed { id, cents })
            .await
            .unwrap();
    }
    let stats = kit.handled("Orders::placed", 2).await.unwrap();
    assert_eq!((stats.handled, stats.failed), (2, 0));
    assert_eq!(
        accepted.next::<Placed>().await.unwrap(),
        Placed { id: 1, cents: 250 }
    );
    let second = accepted.message().await.unwrap();
    assert_eq!(second.subject.as_str(), "orders.2.accepted");
    let total: u64 = kit.client().request("orders.total", &()).await.unwrap();
    assert_eq!(total, 350);
    assert_eq!(kit.stats().handler("Orders::total").unwrap().handled, 1);

    // What never happens is a typed time-out, not a hang.
    let waited = Instant::now();
    let never = kit.handled("Orders::nope", 1).await.unwrap_err();
    assert!(matches!(never, TestingError::TimedOut { .. }), "{never}");
    assert!(waited.elapsed() < Duration::from_secs(12));
    assert_eq!(kit.stop().await.aborted, 0);
    println!("TestRuntime::start (a server and two handlers): {start:?}");
}
