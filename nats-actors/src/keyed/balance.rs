//! Sharing the partitions out. The server pins each partition to the first process that pulls
//! it, so a process that starts later would get none. Every host answers a census ping on
//! `$ACTORS_HOSTS.<actor>.ping` with the partitions it is busy with (the NATS way of discovery,
//! as `$SRV.PING`); a host that is above its fair share while another is below it stops pulling
//! some of its partitions for 5 s and unpins them, and the server pins each to one of the
//! processes waiting on it. So that those are the hosts below the share, the giver first says
//! which partitions it gives on `$ACTORS_HOSTS.<actor>.give`, and the hosts at or above the
//! share stop waiting on them for as long. No state is kept beyond what the server keeps; a
//! notice that is lost only makes the sharing slower.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::Client;

/// How long a census waits for answers.
const ANSWERS: Duration = Duration::from_secs(1);
/// When a host takes its first census.
pub(super) const FIRST: Duration = Duration::from_secs(2);
/// How often a host takes a census.
pub(super) const EVERY: Duration = Duration::from_secs(10);
/// How long a partition given away is not pulled here: long enough for it to be unpinned and
/// pinned elsewhere, short enough that this process is soon a standby for it again (a standby
/// that does not pull cannot take over).
pub(super) const COOLDOWN: Duration = Duration::from_secs(5);

/// One host's answer.
#[derive(Serialize, Deserialize)]
pub(super) struct Answer {
    pub(super) host: String,
    pub(super) busy: usize,
}

/// The time between two unpins of the partitions a host gives away.
pub(super) const STAGGER: Duration = Duration::from_millis(250);

/// A host's notice of the partitions it gives away.
#[derive(Serialize, Deserialize)]
pub(super) struct Notice {
    pub(super) host: String,
    /// The fair share the giver counted: a host that has as many does not take them.
    pub(super) fair: usize,
    pub(super) partitions: Vec<usize>,
}

/// What the hosts of actor `actor` say to each other: `ping` (a census) and `give` (a notice).
pub(super) fn subjects(actor: &str) -> String {
    format!("$ACTORS_HOSTS.{actor}.*")
}

/// The census subject of actor `actor`.
pub(super) fn ping(actor: &str) -> String {
    format!("$ACTORS_HOSTS.{actor}.ping")
}

/// The subject of the notices of actor `actor`.
pub(super) fn give(actor: &str) -> String {
    format!("$ACTORS_HOSTS.{actor}.give")
}

/// The busy partitions of every other host that answered within [`ANSWERS`].
pub(super) async fn census(
    client: Client,
    subject: String,
    me: String,
) -> Result<Vec<usize>, String> {
    let nats = client.nats();
    let inbox = nats.new_inbox();
    let mut answers = nats
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    nats.publish_with_reply(subject, inbox, Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let mut others = Vec::new();
    let deadline = tokio::time::sleep(ANSWERS);
    tokio::pin!(deadline);
    for _ in 0..10_000 {
        tokio::select! {
            Some(m) = answers.next() => {
                if let Ok(a) = serde_json::from_slice::<Answer>(&m.payload) {
                    if a.host != me {
                        others.push(a.busy);
                    }
                }
            }
            _ = &mut deadline => break,
        }
    }
    Ok(others)
}

/// The fair share of busy partitions, when a host has `mine` and the others `others`.
pub(super) fn fair(mine: usize, others: &[usize]) -> usize {
    let total = mine + others.iter().sum::<usize>();
    total.div_ceil(others.len() + 1)
}

/// How many of its `mine` busy partitions a host gives away, when the others have `others`:
/// what it holds above the fair share, when some other host is below it.
pub(super) fn to_give(mine: usize, others: &[usize]) -> usize {
    let fair = fair(mine, others);
    match others.iter().any(|o| *o < fair) && mine > fair {
        true => mine - fair,
        false => 0,
    }
}

/// A notice heard from another host, while it lasts.
struct Noticed {
    until: Instant,
    fair: usize,
    partitions: Vec<usize>,
}

/// This host's side of the sharing: the pauses of its partitions' pulls, and the last notice
/// it heard.
pub(super) struct Sharing {
    pauses: Vec<watch::Sender<Option<Instant>>>,
    noticed: Option<Noticed>,
}

impl Sharing {
    pub(super) fn new(pauses: Vec<watch::Sender<Option<Instant>>>) -> Self {
        Sharing {
            pauses,
            noticed: None,
        }
    }

    /// Stops pulling partition `p` for [`COOLDOWN`] and `later`: this host gives it away.
    pub(super) fn pause(&self, p: usize, later: Duration) {
        self.pauses[p].send_replace(Some(Instant::now() + COOLDOWN + later));
    }

    /// Another host gives partitions away; `busy` is how many this host has, `free(p)` says
    /// whether `p` is pinned elsewhere.
    pub(super) fn heard(&mut self, notice: Notice, busy: usize, free: impl Fn(usize) -> bool) {
        let unpins = STAGGER * notice.partitions.len() as u32;
        self.noticed = Some(Noticed {
            until: Instant::now() + COOLDOWN + unpins,
            fair: notice.fair,
            partitions: notice.partitions,
        });
        self.step_aside(busy, free);
    }

    /// On a notice and after each new pin here: a host that has its fair share stops waiting
    /// on the partitions given away, for as long as the notice lasts, so that hosts below it
    /// get them.
    pub(super) fn step_aside(&mut self, busy: usize, free: impl Fn(usize) -> bool) {
        let Some(n) = &self.noticed else { return };
        if n.until <= Instant::now() {
            self.noticed = None;
            return;
        }
        if busy < n.fair {
            return;
        }
        for &p in n
            .partitions
            .iter()
            .filter(|&&p| p < self.pauses.len() && free(p))
        {
            self.pauses[p].send_replace(Some(n.until));
        }
        self.noticed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::to_give;

    #[test]
    fn gives_what_is_above_the_fair_share_to_hosts_below_it() {
        assert_eq!(to_give(16, &[]), 0);
        assert_eq!(to_give(16, &[0, 0]), 10);
        assert_eq!(to_give(6, &[5, 5]), 0);
        assert_eq!(to_give(8, &[8]), 0);
        assert_eq!(to_give(9, &[7]), 1);
        assert_eq!(to_give(3, &[13]), 0);
        assert_eq!(super::fair(16, &[0, 0]), 6);
    }
}
