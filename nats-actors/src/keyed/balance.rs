//! Sharing the partitions out. The server pins each partition to the first process that pulls
//! it, so a process that starts later would get none. Every host answers a census ping on
//! `$ACTORS.<actor>.hosts` with the partitions it is busy with (the NATS way of discovery, as
//! `$SRV.PING`); a host that is above its fair share while another is below it stops pulling
//! some of its partitions for 5 s and unpins them, and the server pins each to one of the
//! processes waiting on it. No state is kept beyond what the server keeps.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::Client;

/// How long a census waits for answers.
const ANSWERS: Duration = Duration::from_secs(1);
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

/// The census subject of actor `actor`.
pub(super) fn subject(actor: &str) -> String {
    format!("$ACTORS.{actor}.hosts")
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

/// How many of its `mine` busy partitions a host gives away, when the others have `others`:
/// what it holds above the fair share, when some other host is below it.
pub(super) fn to_give(mine: usize, others: &[usize]) -> usize {
    let hosts = others.len() + 1;
    let total = mine + others.iter().sum::<usize>();
    let fair = total.div_ceil(hosts);
    match others.iter().any(|o| *o < fair) && mine > fair {
        true => mine - fair,
        false => 0,
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
    }
}
