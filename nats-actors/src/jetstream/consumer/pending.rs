//! What a durable consumer has left, as the server counts it, read every few seconds for
//! [`Runtime::health`](crate::Runtime::health): messages not delivered yet (`num_pending`) and
//! delivered but not acked (`num_ack_pending`, every process's).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use tokio::sync::watch;

use crate::stats::HandlerCounters;

/// How often the server is asked.
const EVERY: Duration = Duration::from_secs(5);

/// Reads consumer `durable` of `stream` every [`EVERY`] into `counters` until `stop`.
pub(super) async fn watch(
    stream: Stream,
    durable: &'static str,
    counters: Arc<HandlerCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // A failed read (no leader for a moment, say) keeps the last figures.
        if let Ok(info) = stream.consumer_info(durable).await {
            let now = (info.num_pending, info.num_ack_pending as u64);
            *counters
                .js
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(now);
        }
    }
}
