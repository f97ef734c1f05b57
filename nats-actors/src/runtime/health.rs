//! [`Health`]: whether the runtime can do its work now: connected (with every subscription
//! confirmed again after a reconnect), not draining. What `/readyz` answers from (see
//! [`RuntimeBuilder::health_listener`](crate::RuntimeBuilder::health_listener), feature
//! `health`).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use async_nats::connection::State;

use super::link::Link;
use crate::stats::Counters;
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
    /// Each handler of each actor instance.
    pub handlers: Vec<HandlerHealth>,
    /// Each connection of the runtime (one unless
    /// [`RuntimeBuilder::connections`](crate::RuntimeBuilder::connections)); `connected` above
    /// is true when every one is.
    pub connections: Vec<ConnectionHealth>,
}

/// One connection of the runtime, in [`Health::connections`].
///
/// ```no_run
/// # async fn demo(runtime: nats_actors::Runtime) {
/// for (i, c) in runtime.health().connections.iter().enumerate() {
///     println!("connection {i}: {:?}, {} reconnects, {} messages in", c.server, c.reconnects, c.messages_in);
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionHealth {
    /// Connected, and (after a reconnect) every subscription on it confirmed again.
    pub connected: bool,
    /// The server it is connected to: its name and address.
    pub server: Option<String>,
    /// When it went down, while it is down.
    pub down_since: Option<SystemTime>,
    /// Reconnects confirmed (the server had its subscriptions again).
    pub reconnects: u64,
    /// Messages it received (async-nats' count).
    pub messages_in: u64,
}

/// One handler of one actor instance, in [`Health::handlers`].
///
/// ```no_run
/// # async fn demo(runtime: nats_actors::Runtime) {
/// for h in runtime.health().handlers {
///     println!("{} #{}: {:?}, {} buffered, last error {:?}", h.handler, h.instance, h.state, h.buffered, h.last_error);
///     if let Some((pending, ack_pending)) = h.consumer_pending {
///         println!("  its consumer: {pending} to deliver, {ack_pending} delivered and not acked");
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerHealth {
    /// `Actor::method`.
    pub handler: String,
    /// The actor instance (0 with one instance).
    pub instance: usize,
    /// Running, restarting after a panic, or stopped.
    pub state: HandlerState,
    /// Messages started and not finished.
    pub in_flight: u64,
    /// Messages a core handler (`#[subscribe]`, `#[request]`, endpoint) holds in its buffer, as
    /// it last counted them: when it took in what had arrived, and 0 once it is empty.
    pub buffered: u64,
    /// A durable `#[consumer]`'s messages as the server counted them (read every 5 s): not
    /// delivered yet, and delivered (to any process) but not acked. `None` for other handlers
    /// and before the first read.
    pub consumer_pending: Option<(u64, u64)>,
    /// `code:description` of the last error a message ended with.
    pub last_error: Option<String>,
    /// Why supervision stopped its instance (`on_limit = "stop_actor"`), once it did.
    pub stopped_by: Option<String>,
}

/// What a handler is doing, in [`HandlerHealth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerState {
    /// Taking messages.
    Running,
    /// Paused by its supervisor after a panic (`restart = ...`, `max_restarts`).
    Restarting,
    /// One of its tasks ended: shutdown, a failure that ended its loop, or supervision
    /// stopping its instance past `max_restarts` (`on_limit = "stop_actor"`, see
    /// [`HandlerHealth::stopped_by`]).
    Stopped,
}

/// The health of every handler counted in `counters`.
pub(crate) fn handlers(counters: &Counters) -> Vec<HandlerHealth> {
    let all = counters.handlers.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .map(|c| {
            let tasks = c.tasks.lock().unwrap_or_else(|e| e.into_inner());
            // Its tasks (the handler's loop, and a consumer's watchers) end together at
            // shutdown; one that ended before has stopped the handler.
            let stopped = tasks.iter().any(|t| t.is_finished());
            let state = match (stopped, c.restarting.load(Relaxed)) {
                (true, _) => HandlerState::Stopped,
                (false, true) => HandlerState::Restarting,
                (false, false) => HandlerState::Running,
            };
            let finished = c.handled.load(Relaxed)
                + c.failed.load(Relaxed)
                + c.rejected.load(Relaxed)
                + c.panics.load(Relaxed)
                + c.js.duplicates.load(Relaxed);
            HandlerHealth {
                handler: format!("{}::{}", c.actor, c.method),
                instance: c.instance,
                state,
                in_flight: c.received.load(Relaxed).saturating_sub(finished),
                buffered: c.buffered.load(Relaxed),
                consumer_pending: *c.js.pending.lock().unwrap_or_else(|e| e.into_inner()),
                last_error: c
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                stopped_by: c
                    .stopped_by
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }
        })
        .collect()
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
    /// Each connection, with its link (`None` for a connection made elsewhere: its events are
    /// not the runtime's).
    connections: Vec<(async_nats::Client, Option<Arc<Link>>)>,
    draining: AtomicBool,
    stopper: Arc<Stopper>,
}

impl Watched {
    pub(crate) fn new(pool: &super::pool::Pool, stopper: Arc<Stopper>) -> Arc<Self> {
        Arc::new(Self {
            connections: pool
                .members
                .iter()
                .map(|m| (m.nats.clone(), m.link.clone()))
                .collect(),
            draining: AtomicBool::new(false),
            stopper,
        })
    }

    pub(crate) fn draining(&self) {
        self.draining.store(true, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Health {
        let connections: Vec<ConnectionHealth> = self
            .connections
            .iter()
            .map(|(nats, link)| {
                let down_since = link.as_ref().and_then(|l| l.down_since());
                let connected = nats.connection_state() == State::Connected && down_since.is_none();
                ConnectionHealth {
                    connected,
                    server: connected.then(|| {
                        let info = nats.server_info();
                        format!("{} ({}:{})", info.server_name, info.host, info.port)
                    }),
                    down_since,
                    reconnects: link.as_ref().map_or(0, |l| l.confirmed()),
                    messages_in: nats.statistics().in_messages.load(Relaxed),
                }
            })
            .collect();
        let connected = connections.iter().all(|c| c.connected);
        let down_since = connections.iter().filter_map(|c| c.down_since).min();
        let server = connections.first().and_then(|c| c.server.clone());
        let draining = self.draining.load(Relaxed);
        let failure = self.stopper.why();
        Health {
            connections,
            ready: connected && !draining && failure.is_none(),
            failure,
            connected,
            server,
            draining,
            down_since,
            partitions: Default::default(),
            handlers: Vec::new(),
        }
    }
}
