//! Counters the runtime keeps, and the [`Stats`] snapshot it hands out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Adds one to a counter that only one task writes (others only read it): a plain load and
/// store instead of a locked read-modify-write, on every message.
#[inline(always)]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

/// The one writer of a handler's per-message counters. [`Counters::register`] makes exactly one
/// per [`HandlerCounters`] and it is not `Clone`: it moves into the handler's task, whose
/// messages (even `concurrency = N` of them, polled by that one task) are the only writers, so
/// a plain load and store is exact.
#[derive(Debug)]
pub(crate) struct Tally(Arc<HandlerCounters>);

impl Tally {
    #[inline(always)]
    pub fn received(&self) {
        bump(&self.0.received);
    }
    #[inline(always)]
    pub fn handled(&self) {
        bump(&self.0.handled);
    }
    #[inline(always)]
    pub fn failed(&self) {
        bump(&self.0.failed);
    }
    #[inline(always)]
    pub fn rejected(&self) {
        bump(&self.0.rejected);
    }
    #[inline(always)]
    pub fn panicked(&self) {
        bump(&self.0.panics);
    }
    #[inline(always)]
    pub fn dropped(&self) {
        bump(&self.0.dropped);
    }
    /// What the handler's inbox holds now.
    #[inline(always)]
    pub fn buffered(&self, n: usize) {
        self.0.buffered.store(n as u64, Relaxed);
    }
}

/// Counters of one handler on one actor instance. `received`, `handled`, `failed`, `rejected`,
/// `panics` and `dropped` are written only through its [`Tally`].
#[derive(Debug)]
pub(crate) struct HandlerCounters {
    pub actor: &'static str,
    pub method: &'static str,
    pub template: &'static str,
    pub instance: usize,
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
    pub panics: AtomicU64,
    /// Resets of the instance's state after a panic of this handler (`restart = "reset"`).
    pub restarts: AtomicU64,
    pub dropped: AtomicU64,
    /// Whether what is published while its subscription is down is lost (core NATS delivery).
    pub at_most_once: bool,
    /// Outages of its subscription (the connection's, or its own), and their time in all.
    pub outages: AtomicU64,
    pub unsubscribed_ns: AtomicU64,
    /// Whether processing time and the last error are kept (service endpoints).
    pub timed: bool,
    /// Nanoseconds spent processing, summed (when `timed`).
    pub processing_ns: AtomicU64,
    /// `code:description` of the last error.
    pub last_error: Mutex<Option<String>>,
    /// Messages held in its inbox (core handlers), as its task last counted them.
    pub buffered: AtomicU64,
    /// Paused by its supervisor after a panic.
    pub restarting: AtomicBool,
    /// Why supervision stopped its instance (`on_limit = "stop_actor"`), once it did.
    pub stopped_by: Mutex<Option<String>>,
    /// Its tasks: one that finished means it stopped.
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    pub js: JsCounters,
}

/// What a JetStream consumer handler did with its messages beyond handling them.
#[derive(Debug, Default)]
pub(crate) struct JsCounters {
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates: AtomicU64,
    pub ack_failures: AtomicU64,
    pub late_acks: AtomicU64,
    /// The durable consumer as the server last told (see `jetstream::consumer::pending`):
    /// messages not delivered yet and delivered but not acked; `None` before the first read.
    pub pending: Mutex<Option<(u64, u64)>>,
}

impl HandlerCounters {
    pub fn new(
        actor: &'static str,
        method: &'static str,
        template: &'static str,
        instance: usize,
    ) -> Self {
        Self {
            actor,
            method,
            template,
            instance,
            received: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            at_most_once: false,
            outages: AtomicU64::new(0),
            unsubscribed_ns: AtomicU64::new(0),
            timed: false,
            processing_ns: AtomicU64::new(0),
            last_error: Mutex::new(None),
            buffered: AtomicU64::new(0),
            restarting: AtomicBool::new(false),
            stopped_by: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            js: JsCounters::default(),
        }
    }

    /// Keeps processing time and the last error too, when `timed`.
    pub fn timed(mut self, timed: bool) -> Self {
        self.timed = timed;
        self
    }

    /// Marks a handler of core NATS delivery, whose outages are recorded.
    pub fn at_most_once(mut self, at_most_once: bool) -> Self {
        self.at_most_once = at_most_once;
        self
    }

    /// Its subscription was down for `lasted`: counted and logged, naming the handler.
    pub fn outage(&self, lasted: Duration) {
        self.outages.fetch_add(1, Relaxed);
        let ns = u64::try_from(lasted.as_nanos()).unwrap_or(u64::MAX);
        self.unsubscribed_ns.fetch_add(ns, Relaxed);
        tracing::warn!(
            handler = %format_args!("{}::{}", self.actor, self.method),
            subject = self.template,
            instance = self.instance,
            lasted = ?lasted,
            "subscription was down: core NATS messages published meanwhile were not delivered (at most once); a #[consumer] on a stream keeps them"
        );
    }

    /// Messages that ended in an error: handler errors, rejections, panics.
    #[cfg(feature = "service")]
    pub fn errors(&self) -> u64 {
        self.failed.load(Relaxed) + self.rejected.load(Relaxed) + self.panics.load(Relaxed)
    }
}

/// Counters of one keyed actor type in this process (written by its host and its turns).
#[derive(Debug, Default)]
pub(crate) struct KeyedCounters {
    pub actor: &'static str,
    pub activations: AtomicU64,
    pub passivations: AtomicU64,
    pub conflicts: AtomicU64,
    pub active: AtomicU64,
    /// The partitions pinned here, as the host last knew them.
    pub partitions: Mutex<Vec<u16>>,
}

impl KeyedCounters {
    fn snapshot(&self) -> KeyedStats {
        KeyedStats {
            actor: self.actor.to_string(),
            partitions: self
                .partitions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            active: self.active.load(Relaxed),
            activations: self.activations.load(Relaxed),
            passivations: self.passivations.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
        }
    }
}

/// Counters of the whole runtime.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub handlers: Mutex<Vec<Arc<HandlerCounters>>>,
    pub keyed: Mutex<Vec<Arc<KeyedCounters>>>,
    /// Slow-consumer events of async-nats (a subscription's channel full), for subscriptions
    /// that are not a handler's inbox.
    pub slow_consumer_events: AtomicU64,
    /// Connects after each connection's first, summed over the runtime's connections.
    pub reconnects: AtomicU64,
    pub disconnects: AtomicU64,
    pub lame_duck: AtomicU64,
    pub server_errors: AtomicU64,
    pub subscription_restarts: AtomicU64,
    pub last_outage: Mutex<Option<Outage>>,
}

impl Counters {
    /// Adds a handler's counters; returns them (to read) and their one writer.
    pub fn register(&self, c: HandlerCounters) -> (Arc<HandlerCounters>, Tally) {
        let c = Arc::new(c);
        self.handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        (c.clone(), Tally(c))
    }

    /// Adds the counters of keyed actor `actor`.
    #[cfg(feature = "jetstream")]
    pub fn register_keyed(&self, actor: &'static str) -> Arc<KeyedCounters> {
        let c = Arc::new(KeyedCounters {
            actor,
            ..Default::default()
        });
        self.keyed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        c
    }

    /// The keyed actors' counters.
    pub fn keyed(&self) -> Vec<KeyedStats> {
        let keyed = self.keyed.lock().unwrap_or_else(|e| e.into_inner());
        keyed.iter().map(|k| k.snapshot()).collect()
    }

    /// The connection was down: every at-most-once handler's subscription with it.
    pub fn outage(&self, outage: Outage) {
        *self.last_outage.lock().unwrap_or_else(|e| e.into_inner()) = Some(outage);
        let handlers = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        for h in handlers.iter().filter(|h| h.at_most_once) {
            h.outage(outage.lasted);
        }
    }

    /// Messages dropped in all: by handler inboxes, and by async-nats as it reported them.
    #[cfg(feature = "telemetry")]
    pub fn dropped(&self) -> u64 {
        let inboxes: u64 = self
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.dropped.load(Relaxed))
            .sum();
        inboxes + self.slow_consumer_events.load(Relaxed)
    }

    pub fn snapshot(&self) -> Stats {
        let handlers: Vec<HandlerStats> = self
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| HandlerStats {
                handler: format!("{}::{}", c.actor, c.method),
                subject: c.template.to_string(),
                instance: c.instance,
                received: c.received.load(Relaxed),
                handled: c.handled.load(Relaxed),
                failed: c.failed.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
                panics: c.panics.load(Relaxed),
                restarts: c.restarts.load(Relaxed),
                dropped: c.dropped.load(Relaxed),
                retried: c.js.retried.load(Relaxed),
                dead_lettered: c.js.dead_lettered.load(Relaxed),
                duplicates: c.js.duplicates.load(Relaxed),
                ack_failures: c.js.ack_failures.load(Relaxed),
                late_acks: c.js.late_acks.load(Relaxed),
                outages: c.outages.load(Relaxed),
                unsubscribed: Duration::from_nanos(c.unsubscribed_ns.load(Relaxed)),
            })
            .collect();
        let inboxes: u64 = handlers.iter().map(|h| h.dropped).sum();
        Stats {
            handlers,
            keyed: self.keyed(),
            dropped: inboxes + self.slow_consumer_events.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            lame_duck: self.lame_duck.load(Relaxed),
            server_errors: self.server_errors.load(Relaxed),
            subscription_restarts: self.subscription_restarts.load(Relaxed),
            last_outage: *self.last_outage.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// A snapshot of the runtime's health counters.
///
/// ```no_run
/// # async fn demo(runtime: nats_actors::Runtime) {
/// let stats = runtime.stats();
/// if let Some(orders) = stats.handler("Inventory::on_created") {
///     println!("handled {} of {}, {} dropped", orders.handled, orders.received, stats.dropped);
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// One entry per handler and actor instance.
    pub handlers: Vec<HandlerStats>,
    /// One entry per keyed actor type (`#[actor(key = "...")]`).
    pub keyed: Vec<KeyedStats>,
    /// Messages dropped because a handler's [`Buffer`](crate::Buffer) was full, summed over the
    /// handlers (exact: see [`HandlerStats::dropped`]), plus any async-nats reported dropping
    /// for other subscriptions of the connection.
    pub dropped: u64,
    /// Reconnections after the first connect.
    pub reconnects: u64,
    /// Disconnections.
    pub disconnects: u64,
    /// Lame-duck notices from the server.
    pub lame_duck: u64,
    /// Errors the server reported.
    pub server_errors: u64,
    /// Subscriptions the runtime had to make again after they ended.
    pub subscription_restarts: u64,
    /// The last time the connection was down, from the disconnect to the reconnect confirmed
    /// (the server had every subscription again).
    pub last_outage: Option<Outage>,
}

/// A keyed actor type in this process: where its keys live and what its actors did.
///
/// ```no_run
/// # fn demo(runtime: nats_actors::Runtime) {
/// for k in runtime.stats().keyed {
///     println!("{}: partitions {:?}, {} actors in memory, {} conflicts", k.actor, k.partitions, k.active, k.conflicts);
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// The actor type.
    pub actor: String,
    /// The partitions pinned to this process, as it last knew them (a pin it lost without
    /// hearing of it shows until its next census, at most 10 s).
    pub partitions: Vec<u16>,
    /// Actors in memory now.
    pub active: u64,
    /// Actors made from their saved state (a key's first message here, or after it was dropped).
    pub activations: u64,
    /// Actors dropped: idle for `idle`, or to make room under `max_active`.
    pub passivations: u64,
    /// Saves that met a state written meanwhile (the turn ran again on it).
    pub conflicts: u64,
}

/// A time the connection was down: core NATS messages published meanwhile were not delivered
/// to the runtime's `#[subscribe]` and `#[request]` handlers (JetStream consumers get theirs
/// after it).
///
/// ```no_run
/// # fn demo(runtime: nats_actors::Runtime) {
/// if let Some(outage) = runtime.stats().last_outage {
///     println!("down for {:?} from {:?}", outage.lasted, outage.started);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outage {
    /// When the connection went down.
    pub started: SystemTime,
    /// Until the reconnect was confirmed.
    pub lasted: Duration,
}

impl Stats {
    /// The counters of `handler` (`"Actor::method"`) summed over its instances; `None` when
    /// the runtime has no such handler (a misspelt name is not a handler with zero counts).
    pub fn handler(&self, handler: &str) -> Option<HandlerStats> {
        let mut sum = HandlerStats {
            handler: handler.to_string(),
            ..HandlerStats::default()
        };
        let mut found = false;
        for h in self.handlers.iter().filter(|h| h.handler == handler) {
            found = true;
            sum.subject.clone_from(&h.subject);
            sum.received += h.received;
            sum.handled += h.handled;
            sum.failed += h.failed;
            sum.rejected += h.rejected;
            sum.panics += h.panics;
            sum.restarts += h.restarts;
            sum.dropped += h.dropped;
            sum.retried += h.retried;
            sum.dead_lettered += h.dead_lettered;
            sum.duplicates += h.duplicates;
            sum.ack_failures += h.ack_failures;
            sum.late_acks += h.late_acks;
            sum.outages += h.outages;
            sum.unsubscribed += h.unsubscribed;
        }
        found.then_some(sum)
    }
}

/// Counters of one handler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerStats {
    /// `Actor::method`.
    pub handler: String,
    /// The subject template.
    pub subject: String,
    /// The actor instance (0-based).
    pub instance: usize,
    /// Messages delivered to the handler.
    pub received: u64,
    /// Messages handled without error (replies sent, for a request).
    pub handled: u64,
    /// Handler errors.
    pub failed: u64,
    /// Messages rejected before the handler ran: undecodable payload, bad parameter.
    pub rejected: u64,
    /// Panics caught.
    pub panics: u64,
    /// Resets of the actor's state after a panic of this handler (`restart = "reset"`).
    pub restarts: u64,
    /// Messages the client received for the handler and dropped because its
    /// [`Buffer`](crate::Buffer) was full. Exact: every message received is delivered
    /// (`received`), still waiting, or counted here.
    pub dropped: u64,
    /// JetStream: messages negatively acknowledged for redelivery.
    pub retried: u64,
    /// JetStream: messages stored in the dead-letter stream and terminated.
    pub dead_lettered: u64,
    /// JetStream: messages an idempotent consumer had already processed, acked without a call.
    pub duplicates: u64,
    /// JetStream: acks, naks or terms that could not be sent (the message will be redelivered).
    pub ack_failures: u64,
    /// JetStream: acks sent more than `ack_wait` after the server last heard about the message
    /// (in-progress acks could not be sent): it may have been redelivered meanwhile.
    pub late_acks: u64,
    /// `#[subscribe]` and `#[request]`: times its subscription was down (the connection was, or
    /// the subscription ended and was made again), each logged as a warning naming the handler.
    /// What was published meanwhile was not delivered: core NATS is at most once.
    pub outages: u64,
    /// How long its subscription was down in all, to the reconnect (or new subscription)
    /// confirmed by a round trip.
    pub unsubscribed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_is_summed_over_instances_and_an_unknown_name_is_none() {
        let counters = Counters::default();
        let (_, a) = counters.register(HandlerCounters::new("Shop", "buy", "shop.buy", 0));
        let (_, b) = counters.register(HandlerCounters::new("Shop", "buy", "shop.buy", 1));
        a.received();
        a.handled();
        b.received();
        b.rejected();
        let stats = counters.snapshot();
        let buy = stats.handler("Shop::buy").expect("registered");
        assert_eq!((buy.received, buy.handled, buy.rejected), (2, 1, 1));
        assert_eq!(stats.handler("Shop::by"), None);
    }
}
