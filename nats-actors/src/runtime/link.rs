//! The runtime's view of its connection: when it went down, when a reconnect was confirmed (the
//! server has every subscription again), the outage that the at-most-once handlers lived
//! through, a signal that JetStream consumers watch to pull again at once, and the
//! connection's event callback that feeds them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::stats::{Counters, Outage};

/// Shared by the event callback (which only records and wakes), the task that confirms each
/// reconnect, and the handlers that watch for it.
#[derive(Debug)]
pub(crate) struct Link {
    /// Bumped each time a reconnect is confirmed.
    reconnected: watch::Sender<u64>,
    /// When the connection went down, while it is down.
    down_since: Mutex<Option<(SystemTime, Instant)>>,
    /// Woken by every `Connected` event after the first.
    connected: Notify,
}

/// How long the round trip that confirms a reconnect may take before the next one is awaited.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

impl Link {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            reconnected: watch::channel(0).0,
            down_since: Mutex::new(None),
            connected: Notify::new(),
        })
    }

    /// The connection went down (the first time only, until a reconnect is confirmed).
    pub(crate) fn disconnected(&self) {
        let mut down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        down.get_or_insert_with(|| (SystemTime::now(), Instant::now()));
    }

    /// The client connected again; [`Link::confirm`] finishes the job.
    pub(crate) fn connected(&self) {
        self.connected.notify_one();
    }

    /// Since when the connection has been down (until a reconnect is confirmed).
    pub(crate) fn down_since(&self) -> Option<SystemTime> {
        let down = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        down.map(|(at, _)| at)
    }

    /// How many reconnects were confirmed.
    pub(crate) fn confirmed(&self) -> u64 {
        *self.reconnected.borrow()
    }

    /// Changes after each confirmed reconnect.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) fn reconnects(&self) -> watch::Receiver<u64> {
        self.reconnected.subscribe()
    }

    /// Starts confirming reconnects on `nats`, until the returned guard is dropped.
    pub(crate) fn watch(
        self: &Arc<Self>,
        nats: async_nats::Client,
        counters: Arc<Counters>,
    ) -> Watch {
        Watch(tokio::spawn(self.clone().confirm(nats, counters)))
    }

    /// Runs until aborted: after each reconnect, one round trip to the server (async-nats sends
    /// every subscription again before it takes this ping), then the outage is recorded for the
    /// handlers that lost what was published meanwhile, and the watchers are told.
    async fn confirm(self: Arc<Self>, nats: async_nats::Client, counters: Arc<Counters>) {
        loop {
            self.connected.notified().await;
            match tokio::time::timeout(CONFIRM_WITHIN, nats.flush()).await {
                Ok(Ok(())) => {}
                // Down again: the next `Connected` tries again, and the outage goes on.
                _ => continue,
            }
            let down = self
                .down_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some((started, at)) = down {
                counters.outage(Outage {
                    started,
                    lasted: at.elapsed(),
                });
            }
            self.reconnected.send_modify(|n| *n += 1);
        }
    }
}

/// The task that confirms reconnects; stopped when dropped (with the runtime).
#[derive(Debug)]
pub(crate) struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The connection's event callback: counts, logs, and tells the link.
pub(crate) fn events(
    counters: Arc<Counters>,
    link: Arc<Link>,
    closed: Arc<Notify>,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    use async_nats::Event;
    // This connection's first connect is not a reconnect (the runtime may have several).
    let first = std::sync::atomic::AtomicBool::new(true);
    move |event| {
        match &event {
            Event::Connected => {
                if !first.swap(false, Relaxed) {
                    counters.reconnects.fetch_add(1, Relaxed);
                    link.connected();
                    tracing::info!("reconnected to NATS");
                }
            }
            Event::Disconnected => {
                counters.disconnects.fetch_add(1, Relaxed);
                link.disconnected();
                tracing::warn!("disconnected from NATS; reconnecting");
            }
            Event::SlowConsumer(sid) => {
                // Not a handler's subscription: those never fill (see `handler::inbox`).
                let n = counters.slow_consumer_events.fetch_add(1, Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(sid, events = n, "slow consumer: async-nats dropped NATS messages for a subscription whose channel was full");
                }
            }
            Event::LameDuckMode => {
                counters.lame_duck.fetch_add(1, Relaxed);
                tracing::warn!("the server entered lame duck mode");
            }
            Event::ServerError(e) => {
                counters.server_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "server error");
            }
            Event::ClientError(e) => tracing::warn!(error = %e, "client error"),
            Event::Closed => closed.notify_waiters(),
            Event::Draining => {}
        }
        std::future::ready(())
    }
}
