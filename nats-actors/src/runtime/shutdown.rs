//! [`ShutdownHandle`]: asks a running runtime to shut down, from any task; and the graceful
//! shutdown itself.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Runtime, ShutdownReport};

/// Asks a running [`Runtime`](super::Runtime) to shut down; cheap to clone, usable from any task.
///
/// ```no_run
/// # async fn demo(runtime: nats_actors::Runtime) -> Result<(), nats_actors::Error> {
/// let handle = runtime.shutdown_handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     handle.shutdown();
/// });
/// runtime.run_until_shutdown_signal().await
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ShutdownHandle {
    inner: Arc<(AtomicBool, Notify)>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown of the runtime.
    pub fn shutdown(&self) {
        self.inner.0.store(true, Relaxed);
        self.inner.1.notify_one();
    }

    pub(super) async fn requested(&self) {
        while !self.inner.0.load(Relaxed) {
            self.inner.1.notified().await;
        }
    }
}

impl Runtime {
    /// Shuts down gracefully: no new deliveries (each subscription is drained), in-flight
    /// handlers finish within the shutdown timeout, replies and publishes are flushed, spans and
    /// metrics too (within what is left of the timeout, at least 2 s, at most 10 s, whatever the
    /// collector does), and a connection the runtime opened is closed.
    pub async fn shutdown(self) -> ShutdownReport {
        self.watched.draining();
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let mut aborted = 0;
        // Subscriptions stop first and request handlers after them, so that an in-flight handler
        // can still call a responder of the same runtime while it finishes.
        for phase in self.phases {
            phase.flag.store(true, Relaxed);
            let _ = phase.stop.send(true);
            for mut task in phase.tasks {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                    aborted += 1;
                }
            }
        }
        if aborted > 0 {
            tracing::warn!(aborted, timeout = ?self.shutdown_timeout, "handlers still running at the shutdown deadline were aborted");
        }
        // Bounded: during an outage a flush would wait for the reconnect, which may never come.
        let flush_by = deadline.max(tokio::time::Instant::now() + Duration::from_secs(5));
        for member in &self.pool.members {
            match tokio::time::timeout_at(flush_by, member.nats.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot flush the connection at shutdown"),
                Err(_) => tracing::warn!(
                    "the connection could not be flushed in time at shutdown (server unreachable?)"
                ),
            }
        }
        // Spans and metrics get the time left to the deadline, at least 2 s and at most 10 s;
        // the telemetry guard's shutdown does not wait again for exports given up on here.
        let now = tokio::time::Instant::now();
        crate::telemetry::flush(
            deadline.clamp(now + Duration::from_secs(2), now + Duration::from_secs(10)),
        )
        .await;
        if self.pool.owned {
            let closing = self.pool.members.iter().map(|member| async move {
                let closed = member.closed.notified();
                if matches!(
                    tokio::time::timeout(Duration::from_secs(5), member.nats.drain()).await,
                    Ok(Ok(()))
                ) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
                }
            });
            futures::future::join_all(closing).await;
        }
        ShutdownReport {
            aborted,
            failure: self.stopper.why(),
        }
    }
}
