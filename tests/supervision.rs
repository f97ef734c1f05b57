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

#[derive(Actor, Clone, Default)]
struct Three {
    events: Arc<AtomicU64>,
}

#[handlers]
impl Three {
    #[subscribe("outage.events")]
    async fn event(&self, _n: u64) {
        self.events.fetch_add(1, SeqCst);
    }

    #[request("outage.ask")]
    async fn ask(&self, n: u64) -> u64 {
        n + 1
    }

    #[consumer(stream = "OUTAGE", durable = "three")]
    async fn job(&self, _n: u64) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_recorded_for_each_core_handler_and_ends_when_the_server_has_them_again() {
    logs();
    let mut server = server();
    let three = Three::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(nats_actors::jetstream::StreamConfig {
            name: "OUTAGE".into(),
            subjects: vec!["outage.jobs".into()],
            ..Default::default()
        })
        .actor(three.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(runtime.stats().last_outage, None);

    let killed_at = std::time::SystemTime::now();
    let down = std::time::Instant::now();
    server.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| server.restart()).expect("start nats-server again");
    assert!(
        eventually(Duration::from_secs(15), || async {
            runtime.stats().last_outage.is_some()
        })
        .await,
        "no outage recorded: {:?}",
        runtime.stats()
    );
    let window = down.elapsed();
    // Confirmed means subscribed again: one publish and one request, not retried, get through.
    let outside = nats_actors_suite::nats(&server).await;
    outside.publish("outage.events", "7".into()).await.unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        outside.request("outage.ask", "41".into()),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    assert_eq!(answer.payload.as_ref(), b"42");
    assert!(
        eventually(Duration::from_secs(2), || async {
            three.events.load(SeqCst) == 1
        })
        .await
    );

    let stats = runtime.stats();
    let outage = stats.last_outage.unwrap();
    assert!(outage.lasted >= Duration::from_secs(1), "{outage:?}");
    assert!(outage.lasted <= window, "{outage:?} longer than {window:?}");
    let started = outage.started.duration_since(killed_at).unwrap_or_default();
    assert!(
        started < Duration::from_millis(500),
        "went down {started:?} after the kill"
    );
    for core in ["Three::event", "Three::ask"] {
        let h = stats.handler(core).unwrap();
        assert_eq!(h.outages, 1, "{core}: {h:?}");
        assert_eq!(h.unsubscribed, outage.lasted, "{core}");
    }
    let consumer = stats.handler("Three::job").unwrap();
    assert_eq!(
        (consumer.outages, consumer.unsubscribed),
        (0, Duration::ZERO)
    );
    runtime.shutdown().await;
}
