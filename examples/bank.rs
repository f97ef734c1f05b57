//! A bank of keyed virtual actors: one `Account` actor per account id, hosted by three runtimes
//! that share the accounts out. A transfer is a command to the payer, which holds the amount and
//! sends a credit command to the payee; the payee answers with a settle command. A reminder
//! set with the transfer gives the amount back if no answer came within 2 s (the payee here is
//! frozen and never answers). The money in the bank never changes: the summary checks it.
//!
//! `cargo run --example bank` starts a throwaway nats-server (JetStream in a temp dir) unless
//! `NATS_URL` points at one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nats_actors::prelude::*;

const ACCOUNTS: u64 = 10;
const OPENING: i64 = 1_000;
const TRANSFERS: u64 = 200;
/// The account that takes credits and never answers: transfers to it time out.
const FROZEN: u64 = 9;

#[derive(Debug, Serialize, Deserialize)]
struct Open {
    amount: i64,
    frozen: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Transfer {
    id: String,
    to: String,
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Credit {
    id: String,
    from: String,
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Settle {
    id: String,
    by: String,
}

/// What an account says of itself.
#[derive(Debug, Serialize, Deserialize)]
struct Summary {
    balance: i64,
    held: i64,
    sent: u64,
    expired: u64,
    refused: u64,
    reversed: u64,
}

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "bank.{id}")]
struct Account {
    opened: bool,
    frozen: bool,
    balance: i64,
    /// Amounts of transfers sent and not settled yet, by transfer id.
    held: BTreeMap<String, i64>,
    /// Credits taken, by transfer id (a credit sent again is taken once).
    credited: BTreeMap<String, i64>,
    /// Transfers given back after their reminder.
    given_back: BTreeSet<String>,
    sent: u64,
    expired: u64,
    refused: u64,
    reversed: u64,
}

fn failed(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(e.to_string())
}

#[handlers]
impl Account {
    #[command("bank.{id}.open")]
    async fn open(&mut self, o: Open) {
        if !self.opened {
            self.opened = true;
            self.frozen = o.frozen;
            self.balance = o.amount;
        }
    }

    /// The payer's side: hold the amount, ask the payee to take it, and give it back if no
    /// answer comes in time.
    #[command("bank.{id}.transfer")]
    async fn transfer(
        &mut self,
        id: Param<String>,
        t: Transfer,
        ctx: &Context,
    ) -> Result<(), HandlerError> {
        if self.held.contains_key(&t.id) {
            return Ok(());
        }
        if t.amount <= 0 || t.amount > self.balance {
            self.refused += 1;
            return Ok(());
        }
        self.balance -= t.amount;
        self.held.insert(t.id.clone(), t.amount);
        self.sent += 1;
        ctx.remind_in(&t.id, Duration::from_secs(2), "expire", &t.id)
            .await
            .map_err(failed)?;
        let credit = Credit {
            id: t.id,
            from: id.into_inner(),
            amount: t.amount,
        };
        AccountRef::new(ctx.client(), &t.to)
            .map_err(failed)?
            .credit(&credit)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The payee's side: take the amount once, and say so (a frozen account says nothing).
    #[command("bank.{id}.credit")]
    async fn credit(
        &mut self,
        id: Param<String>,
        c: Credit,
        ctx: &Context,
    ) -> Result<(), HandlerError> {
        if self.frozen {
            return Ok(());
        }
        if !self.credited.contains_key(&c.id) {
            self.balance += c.amount;
            self.credited.insert(c.id.clone(), c.amount);
        }
        AccountRef::new(ctx.client(), &c.from)
            .map_err(failed)?
            .settle(&Settle {
                id: c.id,
                by: id.into_inner(),
            })
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The payee took it: the hold ends, and so does the reminder. Had the reminder given the
    /// amount back already, the payee gives the credit back.
    #[command("bank.{id}.settle")]
    async fn settle(&mut self, s: Settle, ctx: &Context) -> Result<(), HandlerError> {
        if self.held.remove(&s.id).is_some() {
            ctx.cancel_reminder(&s.id).await.map_err(failed)?;
        } else if self.given_back.contains(&s.id) {
            AccountRef::new(ctx.client(), &s.by)
                .map_err(failed)?
                .reverse(&s.id)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// A credit that came too late: the payer gave the amount back to itself already.
    #[command("bank.{id}.reverse")]
    async fn reverse(&mut self, transfer: String) {
        if let Some(amount) = self.credited.remove(&transfer) {
            self.balance -= amount;
            self.reversed += 1;
        }
    }

    /// No answer in time: the amount comes back.
    #[command("bank.{id}.expire")]
    async fn expire(&mut self, transfer: String) {
        if let Some(amount) = self.held.remove(&transfer) {
            self.balance += amount;
            self.expired += 1;
            self.given_back.insert(transfer);
        }
    }

    #[ask("bank.{id}.summary")]
    async fn summary(&self) -> Summary {
        Summary {
            balance: self.balance,
            held: self.held.values().sum(),
            sent: self.sent,
            expired: self.expired,
            refused: self.refused,
            reversed: self.reversed,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, options) = nats_actors_suite::example_server(true)?;
    let mut runtimes = Vec::new();
    for _ in 0..3 {
        let runtime = Runtime::builder()
            .connect(options.clone().name("bank"))
            .actor(Account::default())
            .start()
            .await?;
        runtimes.push(runtime);
    }
    let client = runtimes[0].client().clone();
    let account = |n: u64| AccountRef::new(&client, n.to_string());
    for n in 0..ACCOUNTS {
        let open = Open {
            amount: OPENING,
            frozen: n == FROZEN,
        };
        account(n)?.open(&open).await?;
    }

    // Transfers between accounts, some to the frozen one; each payer's in order.
    let started = Instant::now();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for t in 0..TRANSFERS {
        // Halfway, a pause: the runtime that started first held every partition, and the three
        // share them out within seconds while transfers flow.
        if t == TRANSFERS / 2 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let from = next(ACCOUNTS - 1);
        let to = (from + 1 + next(ACCOUNTS - 1)) % ACCOUNTS;
        let transfer = Transfer {
            id: format!("t{t}"),
            to: to.to_string(),
            amount: 1 + next(200) as i64,
        };
        account(from)?.transfer(&transfer).await?;
    }

    // Every hold ends: settled, or given back by its reminder (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let summaries = loop {
        let mut all = Vec::new();
        for n in 0..ACCOUNTS {
            all.push(account(n)?.summary().await?);
        }
        if all.iter().all(|s| s.held == 0) || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let total: i64 = summaries.iter().map(|s| s.balance + s.held).sum();
    let sent: u64 = summaries.iter().map(|s| s.sent).sum();
    let expired: u64 = summaries.iter().map(|s| s.expired).sum();
    let refused: u64 = summaries.iter().map(|s| s.refused).sum();
    let reversed: u64 = summaries.iter().map(|s| s.reversed).sum();
    let held: i64 = summaries.iter().map(|s| s.held).sum();
    for (n, s) in summaries.iter().enumerate() {
        println!("account {n}: balance {:>5}", s.balance);
    }
    let shares: Vec<Vec<u16>> = runtimes
        .iter()
        .map(|r| {
            r.health()
                .partitions
                .get("Account")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    println!(
        "{TRANSFERS} transfers in {:?}: {sent} sent, {expired} given back after their reminder, \
         {refused} refused for lack of funds, {reversed} late credits given back; partitions per runtime {shares:?}",
        started.elapsed()
    );
    println!(
        "money in the bank: {total} (opened with {})",
        ACCOUNTS as i64 * OPENING
    );
    for runtime in runtimes {
        runtime.shutdown().await;
    }
    if total != ACCOUNTS as i64 * OPENING || held != 0 || expired == 0 {
        return Err(format!(
            "the books do not balance: total {total}, held {held}, expired {expired}"
        )
        .into());
    }
    Ok(())
}
