//! [`ShutdownHandle`]: asks a running runtime to shut down, from any task.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::Notify;

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
