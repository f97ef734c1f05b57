//! The runtime's connections: one by default, or a pool of `connections(n)`. Each has its
//! own event callback, reconnect watch and close signal; the first also declares streams and
//! buckets and is the runtime's own client's.

use std::sync::Arc;

use tokio::sync::Notify;

use super::link::{events, Link, Watch};
use super::{Connection, RuntimeBuilder};
use crate::client::Client;
use crate::error::Error;
use crate::stats::Counters;

/// The most connections a pool takes.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// One connection of the runtime.
pub(crate) struct Member {
    pub(crate) nats: async_nats::Client,
    /// `None` for a connection made elsewhere (its events are its own).
    pub(crate) link: Option<Arc<Link>>,
    pub(crate) closed: Arc<Notify>,
    /// Confirms its reconnects; stopped with the runtime.
    _watch: Option<Watch>,
}

/// The runtime's connections, and whether it made them (and so closes them).
pub(crate) struct Pool {
    pub(crate) members: Vec<Member>,
    pub(crate) owned: bool,
}

impl Pool {
    /// Connects `n` times with the builder's options, or takes the connection given.
    pub(crate) async fn open(
        connection: Connection,
        n: usize,
        counters: &Arc<Counters>,
    ) -> Result<Self, Error> {
        let opts = match connection {
            Connection::Client(nats) if n == 1 => {
                let member = Member {
                    nats,
                    link: None,
                    closed: Arc::new(Notify::new()),
                    _watch: None,
                };
                return Ok(Self {
                    members: vec![member],
                    owned: false,
                });
            }
            Connection::Client(_) => {
                return Err(Error::Config {
                    setting: "connections",
                    reason: "a pool makes its own connections: give connect options \
                             (`connect`, `connect_from_env`), not a client"
                        .into(),
                })
            }
            Connection::Options(opts) => opts?,
        };
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let (link, closed) = (Link::new(), Arc::new(Notify::new()));
            let options = opts.clone().into_async_nats().await?;
            let options =
                options.event_callback(events(counters.clone(), link.clone(), closed.clone()));
            let nats = options.connect(opts.servers().to_vec()).await?;
            members.push(Member {
                _watch: Some(link.watch(nats.clone(), counters.clone())),
                nats,
                link: Some(link),
                closed,
            });
        }
        Ok(Self {
            members,
            owned: true,
        })
    }

    /// The first connection: declarations, the runtime's client, its health's server.
    pub(crate) fn main(&self) -> &Member {
        &self.members[0]
    }

    /// A client per connection (each sending through all of them when there are several).
    pub(crate) fn clients(&self) -> Vec<Client> {
        let nats: Vec<_> = self.members.iter().map(|m| m.nats.clone()).collect();
        match nats.as_slice() {
            [one] => vec![Client::new(one.clone())],
            all => Client::pool(all),
        }
    }
}

impl RuntimeBuilder {
    /// Opens `n` connections (at most 16; 1 by default) and spreads the
    /// handlers over them, each handler on one, so that its messages stay in order. What the
    /// runtime sends goes through the connection its subject hashes to, so order per subject
    /// holds too. Each connection reconnects on its own; `health().connections` shows each one.
    /// Also from the environment: `NATS_ACTORS_CONNECTIONS`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// let runtime = nats_actors::Runtime::builder().connections(4).start().await?;
    /// assert_eq!(runtime.health().connections.len(), 4);
    /// # Ok(()) }
    /// ```
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = Some(n);
        self
    }
}

/// The pool size: the builder's, else `NATS_ACTORS_CONNECTIONS`, else 1; checked.
pub(crate) fn size(set: Option<usize>) -> Result<usize, Error> {
    let n = match set {
        Some(n) => n,
        None => match std::env::var("NATS_ACTORS_CONNECTIONS") {
            Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| Error::Config {
                setting: "NATS_ACTORS_CONNECTIONS",
                reason: format!("`{v}` is not a number of connections"),
            })?,
            _ => 1,
        },
    };
    if !(1..=MAX_CONNECTIONS).contains(&n) {
        return Err(Error::Config {
            setting: "connections",
            reason: format!("{n} connections: give 1 to {MAX_CONNECTIONS}"),
        });
    }
    Ok(n)
}
