//! Keyed virtual actors when a runtime is cut off from the server (its connection reset and
//! refused): nothing is lost, nothing is applied twice, each key's order holds, and every
//! partition moves again within the 10 s bound (measured from the server's own record of what
//! each partition's consumer delivered and acked).

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::ledger::{check_all, deposit_all, resumed_at, Account, AccountRef};
use nats_actors_suite::{connect, logs, nats, server, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_cut_off_is_taken_over_within_ten_seconds_without_loss_or_disorder() {
    logs();
    let server = server();
    let proxy = FaultProxy::to(&server);
    let cut_off = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new([proxy.url()]))
        .shutdown_timeout(Duration::from_secs(2))
        .actor(Account::default())
        .start()
        .await
        .unwrap();
    let client = nats_actors::Client::new(nats(&server).await);
    let refs: Vec<AccountRef> = (0..300)
        .map(|k| AccountRef::new(&client, k).unwrap())
        .collect();
    // The first runtime is pinned on every partition; the second waits.
    deposit_all(&refs, 1..=1, 0).await;
    let standby = Runtime::builder()
        .connect(connect(&server))
        .actor(Account::default())
        .start()
        .await
        .unwrap();
    deposit_all(&refs, 2..=10, 2).await;
    proxy.cut();
    let watch = tokio::spawn({
        let url = server.url();
        async move { resumed_at(&url).await }
    });
    deposit_all(&refs, 11..=30, 0).await;
    let took = watch
        .await
        .unwrap()
        .expect("a partition did not move again");
    check_all(&refs, 30).await;
    println!("every partition moved again {took:?} after the cut");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    standby.shutdown().await;
    cut_off.shutdown().await;
}
