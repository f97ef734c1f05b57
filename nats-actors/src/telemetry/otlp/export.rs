//! The bounded queue the message path pushes finished spans to, and the thread that encodes and
//! sends them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use futures::StreamExt;
use opentelemetry_sdk::Resource;

use super::config::Config;
use super::encode::{Encoder, Head};
use super::transport::Transport;
use crate::telemetry::record::Rec;

/// The largest request sent (the default limit of OTLP receivers is 4 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Default)]
struct FlushState {
    requested: u64,
    done: u64,
}

struct Shared {
    queue: Mutex<Vec<Rec>>,
    wake: tokio::sync::Notify,
    flush: Mutex<FlushState>,
    flushed: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

/// The exporter: a bounded queue the message path pushes to, and the thread that sends it.
pub(crate) struct Exporter {
    shared: Arc<Shared>,
    max_queue: usize,
    max_batch: usize,
}

impl Exporter {
    /// Starts the export thread.
    pub(crate) fn start(config: Config, resource: &Resource) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(config.max_batch)),
            wake: tokio::sync::Notify::new(),
            flush: Mutex::new(FlushState::default()),
            flushed: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let (max_queue, max_batch) = (config.max_queue, config.max_batch);
        let head = Head::new(resource);
        let s = shared.clone();
        std::thread::Builder::new()
            .name("nats-actors-otlp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the OTLP export thread; spans are dropped");
                        s.flush.lock().unwrap_or_else(|p| p.into_inner()).done = u64::MAX;
                        s.flushed.notify_all();
                        return;
                    }
                };
                rt.block_on(run(s.clone(), config, head));
                // Gone (stopped, or could not start): flushes return at once from now on.
                s.flush.lock().unwrap_or_else(|p| p.into_inner()).done = u64::MAX;
                s.flushed.notify_all();
            })?;
        Ok(Self {
            shared,
            max_queue,
            max_batch,
        })
    }

    /// Queues a finished span; when the queue is full it is dropped and counted. The record
    /// comes by value, out of its box: the thread that made the box frees it.
    pub(crate) fn push(&self, rec: Rec) {
        let len = {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= self.max_queue {
                drop(q);
                if self.shared.dropped.fetch_add(1, Relaxed) == 0 {
                    tracing::warn!(
                        max_queue = self.max_queue,
                        "OTLP span queue full: spans are dropped (OTEL_BSP_MAX_QUEUE_SIZE)"
                    );
                }
                return;
            }
            q.push(rec);
            q.len()
        };
        if len == self.max_batch {
            self.shared.wake.notify_one();
        }
    }

    /// Sends everything queued so far; waits until `deadline`. Blocks. Returns whether it was
    /// all sent (or failed) in time.
    pub(crate) fn flush(&self, deadline: Instant) -> bool {
        let mut f = self.shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        f.requested += 1;
        let target = f.requested;
        self.shared.wake.notify_one();
        while f.done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "OTLP span export did not finish in time (collector slow or not answering)"
                );
                return false;
            }
            f = self
                .shared
                .flushed
                .wait_timeout(f, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Whether the export thread is still behind a flush that was given up on (waiting out
    /// the export timeout of a collector that does not answer).
    fn behind(&self) -> bool {
        let f = self.shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        f.done < f.requested
    }

    /// Flushes until `deadline`, then stops the export thread; says what was lost, if anything.
    /// An export thread still behind an earlier flush is told to stop and not waited for again.
    pub(crate) fn shutdown(&self, deadline: Instant) {
        let behind = self.behind();
        self.shared.stop.store(true, Relaxed);
        if behind {
            self.shared.wake.notify_one();
        } else {
            self.flush(deadline);
        }
        let s = &self.shared;
        let (exported, dropped, failed) = (
            s.exported.load(Relaxed),
            s.dropped.load(Relaxed),
            s.failed.load(Relaxed),
        );
        if behind || dropped + failed > 0 {
            tracing::warn!(
                exported,
                dropped,
                failed,
                unfinished = behind,
                "OTLP spans lost: dropped with the queue full, in failed exports, or still unsent at shutdown"
            );
        }
    }
}

async fn run(shared: Arc<Shared>, config: Config, head: Head) {
    let transport = Transport::new(&config);
    let mut enc = Encoder::default();
    let mut spare: Vec<Rec> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.delay) => {}
            _ = shared.wake.notified() => {}
        }
        let requested = shared
            .flush
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requested;
        loop {
            let batch = {
                let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.is_empty() {
                    break;
                }
                std::mem::replace(&mut *q, std::mem::take(&mut spare))
            };
            let mut chunks: Vec<&[Rec]> = batch.chunks(config.max_batch).rev().collect();
            let mut sending = futures::stream::FuturesUnordered::new();
            while let Some(chunk) = chunks.pop() {
                let body = enc.request(&head, chunk, config.grpc);
                // Collectors refuse requests over 4 MiB by default: split until they fit.
                if body.len() > MAX_REQUEST_BYTES && chunk.len() > 1 {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    chunks.extend([b, a]);
                    continue;
                }
                if sending.len() >= config.concurrency {
                    if let Some(sent) = sending.next().await {
                        count(&shared, &config, sent);
                    }
                }
                let spans = chunk.len() as u64;
                let send = transport.send(config.compression.apply(body, config.grpc));
                sending.push(async move { (spans, send.await) });
            }
            while let Some(sent) = sending.next().await {
                count(&shared, &config, sent);
            }
            spare = batch;
            spare.clear();
        }
        {
            let mut f = shared.flush.lock().unwrap_or_else(|p| p.into_inner());
            f.done = f.done.max(requested);
        }
        shared.flushed.notify_all();
        if shared.stop.load(Relaxed) {
            return;
        }
    }
}

/// Counts a finished request's spans as exported or failed (the first failure is logged).
fn count(shared: &Shared, config: &Config, (spans, sent): (u64, Result<(), String>)) {
    match sent {
        Ok(()) => {
            shared.exported.fetch_add(spans, Relaxed);
        }
        Err(e) => {
            if shared.failed.fetch_add(spans, Relaxed) == 0 {
                tracing::warn!(url = %config.url, error = %e, "OTLP span export failed");
            }
        }
    }
}
