//! Flushes and shutdowns that end by a deadline, whatever the collector does.
//!
//! The SDK's exporters block and take no deadline (a flush waits up to 5 s for its export
//! thread, which may itself wait out an export timeout). Each such call runs on a thread of its
//! own and is waited for until the deadline; one still running then is given up on: it goes on,
//! ends by its own timeouts, and holds up neither shutdown nor the process's exit (the thread is
//! detached). A later flush or shutdown does not wait again for an exporter that such a call
//! still holds. The built-in exporter takes the deadline itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::spans::Sink;

/// The SDK's exporters: spans (of user code, or all of them without the built-in exporter)
/// and metrics.
#[derive(Clone, Copy)]
enum Part {
    Tracer = 0,
    Meter = 1,
}

/// Calls running, per part: once a wait is over, the calls it gave up on.
static BUSY: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn busy(part: Part) -> bool {
    BUSY[part as usize].load(Ordering::Acquire) > 0
}

/// Calls running on threads of their own, to be waited for until a deadline.
struct Calls {
    done: mpsc::Sender<()>,
    finished: mpsc::Receiver<()>,
    waiting: usize,
}

impl Calls {
    fn new() -> Self {
        let (done, finished) = mpsc::channel();
        Self {
            done,
            finished,
            waiting: 0,
        }
    }

    /// Runs `call` on a thread of its own, counted busy for `part` while it runs. `wait`: the
    /// deadline applies to it (else it only runs).
    fn spawn(&mut self, part: Part, wait: bool, call: impl FnOnce() + Send + 'static) {
        let done = self.done.clone();
        BUSY[part as usize].fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("nats-actors-otel-flush".into())
            .spawn(move || {
                call();
                BUSY[part as usize].fetch_sub(1, Ordering::AcqRel);
                // Only a waited-for call counts down `waiting`.
                if wait {
                    let _ = done.send(());
                }
            });
        match spawned {
            Ok(_) => self.waiting += usize::from(wait),
            Err(e) => {
                BUSY[part as usize].fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(error = %e, "cannot start a thread to flush telemetry");
            }
        }
    }

    /// Waits for the calls to be waited for, until `deadline`; whether they all returned.
    fn wait(mut self, deadline: Instant) -> bool {
        while self.waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(left) {
                Ok(()) => self.waiting -= 1,
                Err(_) => return false,
            }
        }
        true
    }
}

/// Exports what is pending, waiting until `deadline` at most. Blocks.
pub(crate) fn flush(
    sink: Option<&Sink>,
    tracer: Option<&SdkTracerProvider>,
    meter: Option<&SdkMeterProvider>,
    deadline: Instant,
) {
    let mut calls = Calls::new();
    // A part still busy with a flush given up on would take this one after it: not asked again.
    if let Some(t) = tracer.filter(|_| !busy(Part::Tracer)).cloned() {
        calls.spawn(Part::Tracer, true, move || {
            let _ = t.force_flush();
        });
    }
    if let Some(m) = meter.filter(|_| !busy(Part::Meter)).cloned() {
        calls.spawn(Part::Meter, true, move || {
            let _ = m.force_flush();
        });
    }
    let sent = match sink {
        Some(Sink::Otlp(e)) => e.flush(deadline),
        _ => true,
    };
    if !calls.wait(deadline) && sent {
        tracing::warn!("telemetry export did not finish in time (collector slow or not answering)");
    }
}

/// Exports what is pending and stops the exporters, waiting until `deadline` at most (not at
/// all for a part still busy with a call given up on). Blocks.
pub(crate) fn shutdown(
    sink: Option<&Sink>,
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    deadline: Instant,
) {
    let mut calls = Calls::new();
    if let Some(t) = tracer {
        let wait = !busy(Part::Tracer);
        calls.spawn(Part::Tracer, wait, move || {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = t.shutdown_with_timeout(left);
        });
        if let Some(Sink::Otlp(e)) = sink {
            e.shutdown(deadline);
        }
    }
    if let Some(m) = meter {
        let wait = !busy(Part::Meter);
        calls.spawn(Part::Meter, wait, move || {
            let _ = m.shutdown();
        });
    }
    if !calls.wait(deadline) {
        tracing::warn!(
            "telemetry exporters did not shut down in time (collector slow or not answering)"
        );
    }
}
