//! Supervision against a real server: a restarted server, and SIGTERM on a real process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, logs, server};

#[derive(Actor, Clone, Default)]
struct Tally {
    n: Arc<AtomicU64>,
}

#[handlers]
impl Tally {
    #[subscribe("tally")]
    async fn add(&self, k: u64) {
        self.n.fetch_add(k, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_resume_after_the_server_restarts() {
    logs();
    let mut server = server();
    let tally = Tally::default();
    let runtime = Runtime::builder()
        .connect(connect(&server).max_reconnect_delay(Duration::from_millis(100)))
        .actor(tally.clone())
        .start()
        .await
        .unwrap();
    runtime.client().publish("tally", &1u64).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            tally.n.load(SeqCst) == 1
        })
        .await
    );

    server.restart().unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            runtime.stats().reconnects >= 1
        })
        .await,
        "the runtime reconnects and counts it: {:?}",
        runtime.stats()
    );
    assert!(runtime.stats().disconnects >= 1);
    // Published after the reconnect: the subscription is back without any user code.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let _ = runtime.client().publish("tally", &10u64).await;
            let _ = runtime.client().nats().flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            tally.n.load(SeqCst) > 1
        })
        .await
    );
    assert_eq!(runtime.stats().handler("Tally::add").unwrap().rejected, 0);
    runtime.shutdown().await;
}

#[derive(Actor)]
struct Job;

#[handlers]
impl Job {
    #[subscribe("job")]
    async fn run(&self, ms: u64) {
        println!("handling");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        println!("finished");
    }
}

/// The child side of the SIGTERM test: runs only when the parent starts it.
#[test]
#[ignore = "run by sigterm_drains_in_flight_work_before_the_process_exits"]
fn sigterm_child() {
    let Ok(url) = std::env::var("SIGTERM_CHILD_NATS_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runtime = Runtime::builder()
            .connect(nats_actors::ConnectOptions::new([url]))
            .actor(Job)
            .start()
            .await
            .unwrap();
        println!("ready");
        runtime.run_until_shutdown_signal().await.unwrap();
        println!("exited");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_work_before_the_process_exits() {
    logs();
    let server = server();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SIGTERM_CHILD_NATS_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut next_line = async |lines: &mut Vec<String>| {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten();
        lines.extend(line.clone());
        line
    };
    while next_line(&mut lines)
        .await
        .is_some_and(|l| !l.contains("ready"))
    {}
    let client = async_nats::connect(server.url()).await.unwrap();
    client.publish("job", "500".into()).await.unwrap();
    client.flush().await.unwrap();
    while next_line(&mut lines).await.is_some_and(|l| l != "handling") {}
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    while next_line(&mut lines).await.is_some() {}
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the child exits cleanly on SIGTERM: {status:?}, output {lines:?}"
    );
    let finished = lines.iter().position(|l| l == "finished");
    let exited = lines.iter().position(|l| l == "exited");
    assert!(
        finished.is_some() && finished < exited,
        "the in-flight handler finished before the runtime returned: {lines:?}"
    );
}
