//! [`Health`]: whether the runtime can do its work now: connected (with every subscription
//! confirmed again after a reconnect), not draining. What `/readyz` answers from (see
//! [`RuntimeBuilder::health_listener`](crate::RuntimeBuilder::health_listener), feature
//! `health`).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use async_nats::connection::State;

use super::link::Link;
use crate::supervision::Stopper;

/// A snapshot of the runtime's health, from [`Runtime::health`](crate::Runtime::health).
///
/// ```no_run
/// # async fn demo(runtime: nats_actors::Runtime) {
/// let health = runtime.health();
/// if !health.ready {
///     eprintln!("not ready: {}", health.reason().unwrap_or_default());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Connected, every subscription and consumer confirmed, and not draining.
    pub ready: bool,
    /// Connected, and (after a reconnect) every subscription confirmed by the server again.
    pub connected: bool,
    /// The server connected to: its name and address.
    pub server: Option<String>,
    /// Shutdown has begun: handlers finish what they have, nothing new is taken.
    pub draining: bool,
    /// When the connection went down, while it is down.
    pub down_since: Option<SystemTime>,
    /// Why supervision stopped the runtime (an actor past its `max_restarts`), if it did.
    pub failure: Option<String>,
    /// The partitions of each keyed actor type pinned to this process (its keys live here).
    pub partitions: std::collections::BTreeMap<String, Vec<u16>>,
}

impl Health {
    /// Why it is not ready (`None` when it is).
    pub fn reason(&self) -> Option<String> {
        if let Some(failure) = &self.failure {
            Some(format!("stopped by supervision: {failure}"))
        } else if self.draining {
            Some("draining".into())
        } else if !self.connected {
            Some(match self.down_since {
                Some(at) => {
                    let secs = at.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
                    format!("disconnected from NATS for {secs:.1} s")
                }
                None => "not connected to NATS".into(),
            })
        } else {
            None
        }
    }
}

/// What health is read from; shared with the listener.
#[derive(Debug)]
pub(crate) struct Watched {
    nats: async_nats::Client,
    /// `None` for a connection made elsewhere (its events are not the runtime's).
    link: Option<Arc<Link>>,
    draining: AtomicBool,
    stopper: Arc<Stopper>,
}

impl Watched {
    pub(crate) fn new(
        nats: async_nats::Client,
        link: Option<Arc<Link>>,
        stopper: Arc<Stopper>,
    ) -> Arc<Self> {
        Arc::new(Self {
            nats,
            link,
            draining: AtomicBool::new(false),
            stopper,
        })
    }

    pub(crate) fn draining(&self) {
        self.draining.store(true, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Health {
        let down_since = self.link.as_ref().and_then(|l| l.down_since());
        let connected = self.nats.connection_state() == State::Connected && down_since.is_none();
        let draining = self.draining.load(Relaxed);
        let server = connected.then(|| {
            let info = self.nats.server_info();
            format!("{} ({}:{})", info.server_name, info.host, info.port)
        });
        let failure = self.stopper.why();
        Health {
            ready: connected && !draining && failure.is_none(),
            failure,
            connected,
            server,
            draining,
            down_since,
            partitions: Default::default(),
        }
    }
}
