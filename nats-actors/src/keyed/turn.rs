//! One turn of one keyed actor: its state loaded if it is not in memory, the message run
//! unless it was applied already, the state saved with compare-and-set (run again on fresh
//! state after a conflict), the ask answered, the message acked. A failed command runs again
//! in place, after a pause, so that the key's later messages keep their order; after its last
//! attempt it goes to the dead-letter stream. A failed turn leaves no trace in the state: the
//! next one starts from what was saved.

use std::time::Duration;

use super::shared::{Item, Shared};
use super::state::{Loaded, StateError};
use crate::error::HandlerError;
use crate::jetstream::dead_letter::Letter;
use crate::outcome::Outcome;

/// Compare-and-set conflicts one message may meet before it counts as a failure.
const CONFLICTS: u32 = 10;

/// Runs `item` on the actor of `key` (`loaded`, or read from the bucket); returns the actor
/// to keep in memory (`None`: read it again next time).
pub(super) async fn run<A: Send + Sync + 'static>(
    sh: &Shared<A>,
    key: &str,
    mut loaded: Option<Box<Loaded<A>>>,
    item: &Item,
) -> Option<Box<Loaded<A>>> {
    let route = &sh.routes[item.route];
    if item.settled {
        sh.ack(item, "+ACK").await;
        return loaded;
    }
    if loaded.is_none() {
        sh.counters
            .activations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut failures = 0u32;
    let mut conflicts = 0u32;
    let mut outages = 0usize;
    let mut waiting = None;
    loop {
        let mut actor = match loaded.take() {
            Some(a) => a,
            None => Box::new(sh.load(key).await?),
        };
        if route.mutable && item.seq <= actor.applied {
            tracing::debug!(
                actor = sh.layout.actor,
                key,
                seq = item.seq,
                "already applied; acked"
            );
            sh.ack(item, "+ACK").await;
            return Some(actor);
        }
        let (mut ctx, started) = route
            .worker
            .prepare(item.message.clone(), sh.delivery(item));
        ctx.in_turn(
            format!("{}:{key}:{}", sh.layout.actor, item.seq),
            sh.reminders(key, item.partition),
        );
        if ctx.frame().context().is_some() {
            ctx.frame().set("nats_actors.key", key.to_string());
        }
        let outcome = route
            .worker
            .call_turn((route.turn)(&actor.cell, &ctx), &ctx)
            .await;
        let (reply, error) = match outcome {
            Ok(Outcome::Done) => (None, None),
            Ok(Outcome::Reply(payload, codec)) => (Some((payload, codec)), None),
            Ok(Outcome::Failed(e)) => (None, Some((e, "handler"))),
            Ok(Outcome::Rejected(e)) => (None, Some((e, "decode"))),
            Err(panic) => (None, Some((panic, "panic"))),
        };
        let error = match error {
            None if route.mutable => match sh.save(key, &mut actor, item.seq).await {
                Ok(()) => None,
                Err(StateError::Conflict) if conflicts < CONFLICTS => {
                    conflicts += 1;
                    sh.conflicted();
                    tracing::debug!(
                        actor = sh.layout.actor,
                        key,
                        conflicts,
                        "state written meanwhile; running again on it"
                    );
                    continue;
                }
                Err(StateError::Nats(e)) if !sh.stopping() => {
                    // The bucket is away (a cluster electing a leader, say): the same message
                    // waits for it, not counted as a run, and every key waiting backs off
                    // (spread out) rather than all asking again at once.
                    outages += 1;
                    if waiting.is_none() {
                        waiting = Some(sh.outage.waits(sh.layout.actor, key, "save", &e));
                    }
                    let spread = Duration::from_millis(u64::from(nuid::next().as_bytes()[0]));
                    let pause =
                        crate::runtime::connect::backoff(outages + 4, Duration::from_secs(5));
                    tokio::time::sleep(pause + spread).await;
                    continue;
                }
                Err(StateError::Nats(_)) => return None,
                Err(e) => Some((
                    HandlerError::fatal(format!("cannot save the state of `{key}`: {e}")),
                    "state",
                )),
            },
            other => other,
        };
        let Some((error, error_type)) = error else {
            route.worker.record(ctx.frame(), started, None, None);
            if let (true, Some((payload, codec))) = (route.ask, reply) {
                sh.answer(item, &ctx, payload, codec).await;
            }
            sh.ack(item, "+ACK").await;
            return Some(actor);
        };
        route
            .worker
            .record(ctx.frame(), started, Some(error_type), Some(&error));
        // What the turn wrote into the state goes: the next run starts from the saved one.
        let keep = (!route.mutable && error_type != "panic").then_some(actor);
        failures += 1;
        let last = route.ask
            || error_type == "decode"
            || !error.is_retryable()
            || failures >= sh.keyed.options.attempts;
        if !last {
            let pause = error
                .retry_delay()
                .unwrap_or_else(|| Duration::from_millis(100 << (failures - 1).min(7)));
            tokio::time::sleep(pause).await;
            loaded = keep;
            continue;
        }
        if route.ask {
            sh.error_reply(item, &ctx, &error).await;
            sh.ack(item, "+ACK").await;
        } else {
            give_up(sh, item, &error, failures).await;
        }
        return keep;
    }
}

/// Stores a command that failed for good in the dead-letter stream, then terminates it.
async fn give_up<A: Send + Sync + 'static>(
    sh: &Shared<A>,
    item: &Item,
    error: &HandlerError,
    runs: u32,
) {
    let why = format!("{}:{}", error.code(), error.description());
    let letter = Letter {
        subject: item.message.subject.as_str(),
        headers: item.message.headers.as_ref(),
        payload: item.message.payload.clone(),
        stream_sequence: item.seq,
        deliveries: u64::from(runs),
        error: &why,
    };
    match sh.dead_letters.store(&sh.client, None, letter).await {
        Ok(()) => {
            tracing::warn!(actor = sh.layout.actor, subject = %item.message.subject, seq = item.seq, error = %why, dlq = %sh.dead_letters.name, "command failed for good; dead-lettered");
            sh.ack(item, "+TERM").await;
        }
        Err(e) => {
            // Not acked: it comes back after ack_wait.
            tracing::error!(actor = sh.layout.actor, subject = %item.message.subject, seq = item.seq, error = %e, "cannot dead-letter a failed command; left unacked");
        }
    }
}
