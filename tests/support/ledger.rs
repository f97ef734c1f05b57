//! A keyed actor for the virtual-actor tests and their host process (an account that checks
//! the order of its deposits and counts what it applied), and the tests' common steps.

use std::time::{Duration, Instant};

use nats_actors::prelude::*;

/// A deposit: the `n`-th of its key (1, 2, ...).
#[derive(Debug, Serialize, Deserialize)]
pub struct Deposit {
    /// Its place among its key's deposits.
    pub n: u64,
    /// Added to the balance.
    pub amount: i64,
    /// How long the turn takes, in milliseconds.
    #[serde(default)]
    pub pause_ms: u64,
}

/// An account that checks the order of what it is given.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "account.{id}")]
pub struct Account {
    balance: i64,
    /// The last `n` applied.
    last: u64,
    /// Deposits seen out of order (an `n` other than `last + 1`).
    disorder: u64,
    /// Deposits applied.
    applied: u64,
}

/// What an account says of itself.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The sum of the amounts applied.
    pub balance: i64,
    /// The last `n` applied.
    pub last: u64,
    /// Deposits seen out of order.
    pub disorder: u64,
    /// Deposits applied.
    pub applied: u64,
}

#[handlers]
impl Account {
    #[command("account.{id}.deposit")]
    async fn deposit(&mut self, d: Deposit) {
        if d.pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(d.pause_ms)).await;
        }
        if d.n != self.last + 1 {
            self.disorder += 1;
        }
        self.last = d.n;
        self.balance += d.amount;
        self.applied += 1;
    }

    #[ask("account.{id}.summary")]
    async fn summary(&self) -> Summary {
        Summary {
            balance: self.balance,
            last: self.last,
            disorder: self.disorder,
            applied: self.applied,
        }
    }
}

/// How far each partition's consumer got: the last stream sequence it delivered and its ack
/// floor (`None` where the server did not answer in time: the machine is busy in these tests).
async fn progress(stream: &async_nats::jetstream::stream::Stream) -> Vec<Option<(u64, u64)>> {
    let mut out = Vec::new();
    for p in 0..16 {
        let info = stream.consumer_info(format!("partition-{p}")).await;
        out.push(
            info.ok()
                .map(|i| (i.delivered.stream_sequence, i.ack_floor.stream_sequence)),
        );
    }
    out
}

/// Watches every partition (of 16) of the ledger at `url` from now for up to 40 s, while
/// messages keep coming: how long until each moves again, delivering or acking (a partition
/// pinned to a dead process does neither until another process is pinned and takes it over).
/// Returns the longest wait, or `None` if some partition did not move.
pub async fn resumed_at(url: &str) -> Option<Duration> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.ok()?);
    let stream = js.get_stream("ACTORS_Account").await.ok()?;
    let start = Instant::now();
    let at_start = progress(&stream).await;
    let mut when: Vec<Option<Duration>> = vec![None; 16];
    while start.elapsed() < Duration::from_secs(40) && when.iter().any(Option::is_none) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = progress(&stream).await;
        for p in 0..16 {
            let moved = match (at_start[p], now[p]) {
                (Some(before), Some(now)) => now.0 > before.0 || now.1 > before.1,
                // Not known at the start: any answer later says it delivers.
                (None, Some(_)) => true,
                _ => false,
            };
            if when[p].is_none() && moved {
                when[p] = Some(start.elapsed());
            }
        }
    }
    eprintln!("resumed per partition: {when:?}");
    when.into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|w| w.into_iter().max().unwrap_or_default())
}

/// Sends deposits `ns` to every key, a window of acks outstanding.
pub async fn deposit_all(refs: &[AccountRef], ns: std::ops::RangeInclusive<u64>, pause_ms: u64) {
    for n in ns {
        let deposit = Deposit {
            n,
            amount: 1,
            pause_ms,
        };
        for chunk in refs.chunks(250) {
            for result in futures::future::join_all(chunk.iter().map(|r| r.deposit(&deposit))).await
            {
                result.unwrap();
            }
        }
    }
}

/// Asks every key for its summary; checks each applied `each` deposits, in order.
pub async fn check_all(refs: &[AccountRef], each: u64) {
    let mut total = 0;
    for r in refs {
        let s = r
            .with_timeout(Duration::from_secs(60))
            .summary()
            .await
            .unwrap();
        assert_eq!(
            (s.applied, s.last, s.disorder),
            (each, each, 0),
            "key {}: {s:?}",
            r.key()
        );
        total += s.balance;
    }
    assert_eq!(total, refs.len() as i64 * each as i64);
}
