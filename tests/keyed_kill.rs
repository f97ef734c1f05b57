//! Keyed virtual actors when a host process dies: one of three SIGKILLed mid-run and a new
//! one started later. Nothing is lost, nothing is applied twice, each key's order holds, and
//! every partition moves again (measured from the server's own record of what each partition's
//! consumer delivered and acked).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nats_actors_suite::ledger::{check_all, deposit_all, resumed_at, AccountRef};
use nats_actors_suite::{logs, nats, server, NatsServer};

/// A host process of the ledger, started and ready.
fn host(server: &NatsServer) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyed-host"))
        .arg(server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start keyed-host");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read keyed-host");
    assert_eq!(line.trim(), "ready", "keyed-host did not start");
    child
}

/// Stops a host by closing its stdin (a graceful shutdown) and waits for it, at most 20 s.
fn stop(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().expect("wait for keyed-host").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("keyed-host did not stop within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_process_killed_mid_run_loses_nothing_and_applies_nothing_twice() {
    logs();
    let server = server();
    let mut hosts = vec![host(&server), host(&server), host(&server)];
    let client = nats_actors::Client::new(nats(&server).await);
    const KEYS: u64 = 1000;
    const EACH: u64 = 100;
    let refs: Vec<AccountRef> = (0..KEYS)
        .map(|k| AccountRef::new(&client, k).unwrap())
        .collect();
    let started = Instant::now();
    deposit_all(&refs, 1..=40, 0).await;
    // SIGKILL one host mid-run (the first: it holds partitions whether or not they were shared
    // out yet).
    let mut victim = hosts.remove(0);
    victim.kill().expect("SIGKILL keyed-host");
    victim.wait().unwrap();
    let watch = tokio::spawn({
        let url = server.url();
        async move { resumed_at(&url).await }
    });
    deposit_all(&refs, 41..=70, 0).await;
    let took = watch
        .await
        .unwrap()
        .expect("a partition did not move again");
    // A new process takes its share again.
    hosts.push(host(&server));
    deposit_all(&refs, 71..=EACH, 0).await;
    check_all(&refs, EACH).await;
    println!(
        "{} commands over 3 processes, one killed and one started: {:?}; every partition moved again {took:?} after the kill",
        KEYS * EACH,
        started.elapsed()
    );
    for h in hosts {
        stop(h);
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
