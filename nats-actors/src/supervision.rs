//! Supervision: what happens to an actor instance after one of its handlers panics
//! (`#[actor(restart = "reset", max_restarts = N, restart_window = "60s")]`). The panic is
//! caught and counted as always; then its [`Supervisor`] resets the state where the policy
//! says so, pauses the handler with a backoff that doubles with each panic in the window, and
//! past `max_restarts` in the window stops the runtime with the reason (so that
//! [`Runtime::run_until_shutdown_signal`](crate::Runtime::run_until_shutdown_signal) returns an
//! error and the process exits non-zero, for its orchestrator to start it again), or with
//! `on_limit = "stop_actor"` only that instance: its handlers stop as at shutdown.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::stats::HandlerCounters;

/// The first pause after a panic; each further panic in the window doubles it, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Resets one instance's state (takes its lock, puts a fresh value in).
pub(crate) type Reset = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// The supervision of one actor instance, shared by its handlers.
pub(crate) struct Supervisor {
    actor: &'static str,
    instance: usize,
    reset: Option<Reset>,
    /// At most this many panics in this window; one more stops what `on_limit` names.
    limit: Option<(u32, Duration)>,
    /// When the panics of the window happened.
    panics: Mutex<VecDeque<Instant>>,
    on_limit: Arc<Stopper>,
    /// The counters of the instance's handlers, told why when it stops alone.
    handlers: Mutex<Vec<Arc<HandlerCounters>>>,
}

impl Supervisor {
    pub(crate) fn new(
        actor: &'static str,
        instance: usize,
        reset: Option<Reset>,
        limit: Option<(u32, Duration)>,
        on_limit: Arc<Stopper>,
    ) -> Self {
        Self {
            actor,
            instance,
            reset,
            limit,
            panics: Mutex::new(VecDeque::new()),
            on_limit,
            handlers: Mutex::new(Vec::new()),
        }
    }

    /// Adds a handler of the instance.
    pub(crate) fn watch(&self, counters: Arc<HandlerCounters>) {
        self.handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counters);
    }

    /// After a panic of the handler counted by `counters`: past the limit stop the runtime (or
    /// the instance), else reset the state (if the policy says so) and pause.
    pub(crate) async fn recover(&self, counters: &HandlerCounters) {
        let window = self.limit.map_or(Duration::from_secs(60), |(_, w)| w);
        let recent = {
            let mut panics = self.panics.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            while panics.front().is_some_and(|t| now - *t > window) {
                panics.pop_front();
            }
            panics.push_back(now);
            panics.len() as u32
        };
        if let Some((max, window)) = self.limit {
            if recent > max {
                let why = format!(
                    "{} (instance {}) panicked {recent} times within {window:?} (max_restarts = {max})",
                    self.actor, self.instance
                );
                tracing::error!(
                    actor = self.actor,
                    instance = self.instance,
                    "{why}; stopping {}",
                    self.on_limit.what
                );
                for c in self
                    .handlers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    *c.stopped_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                }
                self.on_limit.stop(why);
                return;
            }
        }
        counters.restarting.store(true, Relaxed);
        if let Some(reset) = &self.reset {
            reset().await;
            counters.restarts.fetch_add(1, Relaxed);
            tracing::warn!(
                actor = self.actor,
                instance = self.instance,
                panics = recent,
                "actor state reset after a panic"
            );
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (recent - 1).min(20))
            .min(MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
        counters.restarting.store(false, Relaxed);
    }
}

/// How supervision stops the runtime, or one instance: a signal its stop waits for, and the
/// reason.
#[derive(Debug)]
pub(crate) struct Stopper {
    /// What it stops, for the log.
    what: &'static str,
    stopped: AtomicBool,
    notify: Notify,
    why: Mutex<Option<String>>,
}

impl Stopper {
    /// The stopper of the runtime.
    pub(crate) fn runtime() -> Self {
        Self::new("the runtime")
    }

    /// The stopper of one actor instance (`on_limit = "stop_actor"`).
    pub(crate) fn instance() -> Self {
        Self::new("this actor instance; the runtime goes on")
    }

    fn new(what: &'static str) -> Self {
        Self {
            what,
            stopped: AtomicBool::new(false),
            notify: Notify::new(),
            why: Mutex::new(None),
        }
    }

    fn stop(&self, why: String) {
        let mut reason = self.why.lock().unwrap_or_else(|e| e.into_inner());
        reason.get_or_insert(why);
        self.stopped.store(true, Relaxed);
        self.notify.notify_waiters();
    }

    /// Returns once supervision has stopped the runtime.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.stopped.load(Relaxed) {
                return;
            }
            notified.await;
        }
    }

    /// Why supervision stopped the runtime, if it did.
    pub(crate) fn why(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
