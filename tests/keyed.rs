//! Keyed virtual actors against a real server: one actor per key, commands applied once and
//! in order per key across three runtimes, asks in order with commands, state saved with
//! compare-and-set, a state that does not decode holding only its key, passivation and
//! `max_active`.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;
use nats_actors_suite::ledger::{check_all, deposit_all, Account, AccountRef, Deposit, Summary};
use nats_actors_suite::{logs, server, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_after_commands_sees_them_and_the_state_outlives_the_runtime() {
    logs();
    let server = server();
    let runtime = start(&server, Account::default()).await;
    let account = AccountRef::new(runtime.client(), "42").unwrap();
    for n in 1..=3 {
        account
            .deposit(&Deposit {
                n,
                amount: 10,
                pause_ms: 0,
            })
            .await
            .unwrap();
    }
    let summary = account.summary().await.unwrap();
    assert_eq!(
        summary,
        Summary {
            balance: 30,
            last: 3,
            disorder: 0,
            applied: 3
        }
    );
    runtime.shutdown().await;
    // A new runtime loads the saved state.
    let runtime = start(&server, Account::default()).await;
    let account = AccountRef::new(runtime.client(), "42").unwrap();
    account
        .deposit(&Deposit {
            n: 4,
            amount: 1,
            pause_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(account.summary().await.unwrap().balance, 31);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_over_three_runtimes_apply_every_command_once_in_order() {
    logs();
    let server = server();
    let runtimes = [
        start(&server, Account::default()).await,
        start(&server, Account::default()).await,
        start(&server, Account::default()).await,
    ];
    let client = runtimes[0].client().clone();
    const KEYS: u64 = 1000;
    const EACH: u64 = 100;
    let started = Instant::now();
    // Every key's commands in order, keys interleaved, a window of acks outstanding.
    let refs: Vec<AccountRef> = (0..KEYS)
        .map(|k| AccountRef::new(&client, k).unwrap())
        .collect();
    for n in 1..=EACH {
        let deposit = Deposit {
            n,
            amount: 1,
            pause_ms: 0,
        };
        let sends = refs.iter().map(|r| r.deposit(&deposit));
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
    }
    let sent = started.elapsed();
    // The last key's ask comes after its commands: it sees them all.
    let mut total = 0;
    let mut disorder = 0;
    for r in &refs {
        let s = r
            .with_timeout(Duration::from_secs(60))
            .summary()
            .await
            .unwrap();
        assert_eq!(
            s.applied,
            EACH,
            "key {} applied {} of {EACH}",
            r.key(),
            s.applied
        );
        total += s.balance;
        disorder += s.disorder;
    }
    println!(
        "{} commands sent in {sent:?}; all applied after {:?}",
        KEYS * EACH,
        started.elapsed()
    );
    assert_eq!(disorder, 0);
    assert_eq!(total, (KEYS * EACH) as i64);
    let handled: Vec<u64> = runtimes
        .iter()
        .map(|r| r.stats().handlers.iter().map(|h| h.handled).sum())
        .collect();
    println!("handled per runtime: {handled:?}");
    // By now the processes have shared the partitions out: each handles a share of more.
    for n in EACH + 1..=EACH + 10 {
        let deposit = Deposit {
            n,
            amount: 1,
            pause_ms: 0,
        };
        let sends = refs.iter().map(|r| r.deposit(&deposit));
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
    }
    for r in &refs {
        let s = r
            .with_timeout(Duration::from_secs(60))
            .summary()
            .await
            .unwrap();
        assert_eq!(s.applied, EACH + 10, "key {}", r.key());
    }
    let later: Vec<u64> = runtimes
        .iter()
        .zip(&handled)
        .map(|(r, before)| r.stats().handlers.iter().map(|h| h.handled).sum::<u64>() - before)
        .collect();
    println!("handled per runtime after sharing: {later:?}");
    let all: u64 = later.iter().sum();
    assert!(
        later.iter().all(|&n| n * 10 >= all),
        "a runtime handled under a tenth: {later:?}"
    );
    // Each partition is pinned to one runtime, and each runtime's health says which.
    let owned = || {
        runtimes
            .iter()
            .map(|r| {
                r.health()
                    .partitions
                    .get("Account")
                    .cloned()
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    };
    let shared_out = || async {
        let mut all: Vec<u16> = owned().concat();
        all.sort_unstable();
        all == (0..16).collect::<Vec<u16>>()
    };
    assert!(
        nats_actors_suite::eventually(Duration::from_secs(15), shared_out).await,
        "partitions per runtime: {:?}",
        owned()
    );
    for r in runtimes {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_written_meanwhile_is_reloaded_and_the_command_runs_on_it() {
    logs();
    let server = server();
    let runtime = start(&server, Account::default()).await;
    let account = AccountRef::new(runtime.client(), "cas").unwrap();
    account
        .deposit(&Deposit {
            n: 1,
            amount: 10,
            pause_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(account.summary().await.unwrap().balance, 10);
    // Another activation of the key writes while this one holds it in memory.
    let js = async_nats::jetstream::new(nats_actors_suite::nats(&server).await);
    let bucket = js.get_key_value("ACTORS_Account").await.unwrap();
    let entry = bucket.entry("cas").await.unwrap().unwrap();
    let mut stored: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    stored["state"]["balance"] = serde_json::json!(1010);
    let written = serde_json::to_vec(&stored).unwrap();
    bucket
        .update("cas", written.into(), entry.revision)
        .await
        .unwrap();
    // The next save conflicts: the actor reads that state and runs the deposit on it.
    account
        .deposit(&Deposit {
            n: 2,
            amount: 5,
            pause_ms: 0,
        })
        .await
        .unwrap();
    let summary = account.summary().await.unwrap();
    assert_eq!(
        summary.balance, 1015,
        "the other write was kept: {summary:?}"
    );
    assert_eq!(summary.applied, 2);
    runtime.shutdown().await;
}

/// An actor that forgets, on purpose, what it did since it was loaded: it tells when it was
/// dropped from memory and read again.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "counter.{id}", idle = "300ms", max_active = 2)]
struct Counter {
    count: u64,
    #[serde(skip)]
    since_load: u64,
}

#[handlers]
impl Counter {
    #[command("counter.{id}.add")]
    async fn add(&mut self) {
        self.count += 1;
        self.since_load += 1;
    }

    /// The count and the turns since the actor was read from the bucket.
    #[ask("counter.{id}.get")]
    async fn get(&mut self) -> (u64, u64) {
        self.since_load += 1;
        (self.count, self.since_load)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_dropped_and_read_again_and_max_active_bounds_them() {
    logs();
    let server = server();
    let runtime = start(&server, Counter::default()).await;
    let client = runtime.client();
    let a = CounterRef::new(client, "a").unwrap();
    a.add().await.unwrap();
    a.add().await.unwrap();
    assert_eq!(
        a.get().await.unwrap(),
        (2, 3),
        "kept in memory between turns"
    );
    // Idle past 300 ms: dropped; the next turn reads the saved state again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        a.get().await.unwrap(),
        (2, 1),
        "read again after being idle"
    );
    // Two in memory at most: a third key makes the least recently used one go.
    let b = CounterRef::new(client, "b").unwrap();
    let c = CounterRef::new(client, "c").unwrap();
    b.add().await.unwrap();
    assert_eq!(b.get().await.unwrap(), (1, 2));
    c.add().await.unwrap();
    assert_eq!(c.get().await.unwrap(), (1, 2));
    assert_eq!(a.get().await.unwrap(), (2, 1), "`a` was dropped for `c`");
    let stats = runtime.stats().keyed.into_iter().next().unwrap();
    assert!(stats.active <= 2, "{stats:?}");
    // `a` idle, then `a` for `c` and the next one for `a`: at least three dropped.
    assert!(stats.passivations >= 3, "{stats:?}");
    assert!(stats.activations >= 5, "{stats:?}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_after_its_partition_moved_away_and_back_sees_every_command() {
    logs();
    let server = server();
    let runtimes = [
        start(&server, Account::default()).await,
        start(&server, Account::default()).await,
    ];
    let client = runtimes[0].client();
    let refs: Vec<AccountRef> = (0..40)
        .map(|k| AccountRef::new(client, k).unwrap())
        .collect();
    let stream = client
        .jetstream()
        .get_stream("ACTORS_Account")
        .await
        .unwrap();
    // Every partition's pin is taken away before each command and each ask: the server pins
    // whichever process pulls next, so a key's command and the ask after it are often handled
    // by different processes, and a process that had the actor before must read it again.
    let unpin_all = || async {
        for p in 0..16 {
            let _ = stream
                .unpin_consumer(&format!("partition-{p}"), "actors")
                .await;
        }
    };
    for n in 1..=12 {
        unpin_all().await;
        deposit_all(&refs, n..=n, 0).await;
        unpin_all().await;
        check_all(&refs, n).await;
    }
    for runtime in runtimes {
        runtime.shutdown().await;
    }
}

/// Deposits whose first run fails after it published: each records two entries on a trail.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "audited.{id}")]
struct Audited {
    recorded: u64,
}

/// The inputs whose first run has failed already.
static FAILED_ONCE: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

#[handlers]
impl Audited {
    #[ask("audited.{id}.recorded")]
    async fn recorded(&self) -> u64 {
        self.recorded
    }

    #[command("audited.{id}.record")]
    async fn record(&mut self, n: u64, ctx: &Context) -> Result<(), HandlerError> {
        for part in ["debit", "credit"] {
            ctx.js_publish(&format!("trail.{part}"), &n)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
        }
        self.recorded += 1;
        let mut failed = FAILED_ONCE.lock().unwrap();
        if !failed.contains(&n) {
            failed.push(n);
            return Err(HandlerError::new("failed after publishing; runs again"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_run_again_publishes_to_jetstream_under_the_same_ids_and_is_stored_once() {
    logs();
    let server = server();
    let runtime = start(&server, Audited::default()).await;
    let js = runtime.client().jetstream().clone();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "TRAIL".into(),
        subjects: vec!["trail.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let audited = AuditedRef::new(runtime.client(), "7").unwrap();
    for n in 1..=5u64 {
        audited.record(&n).await.unwrap();
    }
    // Each command ran twice (the first run failed after publishing) and published twice each
    // time: the stream kept one of each pair, with the turn's ids.
    let mut trail = js.get_stream("TRAIL").await.unwrap();
    let stored = async {
        for _ in 0..100 {
            if trail.info().await.unwrap().state.messages >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let any duplicate that would be stored arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        trail.info().await.unwrap().state.messages
    };
    assert_eq!(stored.await, 10);
    let mut ids = Vec::new();
    for seq in 1..=10 {
        let m = trail.get_raw_message(seq).await.unwrap();
        ids.push(m.headers.get("Nats-Msg-Id").unwrap().to_string());
    }
    for (i, id) in ids.iter().enumerate() {
        let parts: Vec<&str> = id.split(':').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!((parts[0], parts[1]), ("Audited", "7"), "{id}");
        assert_eq!(parts[3], (i % 2).to_string(), "{id}");
    }
    assert_eq!(
        audited.recorded().await.unwrap(),
        5,
        "each command applied once"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_does_not_decode_holds_its_key_only_until_it_does() {
    logs();
    let server = server();
    let runtime = start(&server, Account::default()).await;
    let client = runtime.client();
    let js = client.jetstream();
    let bucket = js.get_key_value("ACTORS_Account").await.unwrap();
    // What an older version of the actor might have left: not this actor's state.
    bucket.put("7", "not an account".into()).await.unwrap();
    let deposit = |n| Deposit {
        n,
        amount: 5,
        pause_ms: 0,
    };
    let seven = AccountRef::new(client, "7").unwrap();
    seven.deposit(&deposit(1)).await.unwrap();
    // The command is stored and waits, unacked; the other keys go on.
    let eight = AccountRef::new(client, "8").unwrap();
    eight.deposit(&deposit(1)).await.unwrap();
    assert_eq!(eight.summary().await.unwrap().applied, 1);
    let short = seven.with_timeout(Duration::from_millis(500));
    assert!(short.summary().await.is_err(), "an ask waits behind it too");
    let mut stream = js.get_stream("ACTORS_Account").await.unwrap();
    assert!(stream.info().await.unwrap().state.messages >= 1);
    let left = bucket.get("7").await.unwrap().unwrap();
    assert_eq!(
        left.as_ref(),
        b"not an account",
        "nothing was saved over it"
    );
    // The state put right (here: removed), the key's messages run.
    bucket.delete("7").await.unwrap();
    let applied = seven
        .with_timeout(Duration::from_secs(15))
        .summary()
        .await
        .unwrap();
    assert_eq!((applied.applied, applied.balance), (1, 5));
    runtime.shutdown().await;
}
