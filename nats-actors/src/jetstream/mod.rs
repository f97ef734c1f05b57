//! JetStream: streams declared in code, `#[consumer]` handlers whose result decides the ack,
//! bounded retries, a dead-letter stream, deduplicated and pipelined publishing, and idempotent
//! consumers.
//!
//! ```no_run
//! use std::time::Duration;
//! use nats_actors::prelude::*;
//! use nats_actors::jetstream::{Delivery, StreamConfig};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Task { id: u64 }
//!
//! #[derive(Actor)]
//! struct Worker;
//!
//! #[handlers]
//! impl Worker {
//!     // Ok -> ack; a retryable error -> nak with the backoff; after 5 deliveries, or on a
//!     // fatal error or an undecodable payload -> stored in TASKS_DLQ, then terminated.
//!     #[consumer(stream = "TASKS", durable = "workers", filter = "tasks.>",
//!                max_deliver = 5, backoff = "1s, 5s, 30s", dead_letter = "TASKS_DLQ")]
//!     async fn run(&self, task: Task, delivery: Delivery) -> Result<(), HandlerError> {
//!         println!("task {} (delivery {})", task.id, delivery.delivered);
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), nats_actors::Error> {
//! Runtime::builder()
//!     .stream(StreamConfig {
//!         name: "TASKS".into(),
//!         subjects: vec!["tasks.>".into()],
//!         retention: nats_actors::jetstream::RetentionPolicy::WorkQueue,
//!         duplicate_window: Duration::from_secs(120),
//!         ..Default::default()
//!     })
//!     .actor(Worker)
//!     .run_until_shutdown_signal()
//!     .await
//! # }
//! ```

mod acks;
mod atomic;
pub(crate) mod batch;
pub(crate) mod consumer;
pub(crate) mod dead_letter;
pub(crate) mod delivery;
mod idempotency;
mod pipeline;
mod publish;
mod replay;
mod streams;

pub use async_nats::jetstream::context::PublishErrorKind;
pub use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
pub use atomic::{BatchPublished, MAX_ATOMIC_BATCH};
pub use batch::{Batch, Item};
pub use dead_letter::{
    DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_ERROR, DLQ_MSG_ID, DLQ_SEQUENCE, DLQ_STREAM, DLQ_SUBJECT,
    DLQ_TIME,
};
pub use delivery::Delivery;
pub use publish::{JsPublish, Published};
pub use replay::{dead_letters, replay_dead_letters, DeadLetter, DeadLetterError};

#[doc(hidden)]
pub(crate) use streams::{declare, named};

use std::time::Duration;

/// Default deliveries of a message before it is dead-lettered (`max_deliver`).
pub const DEFAULT_MAX_DELIVER: u32 = 5;
/// Default time the server waits for an ack before redelivering (`ack_wait`).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Where a consumer starts reading (`deliver_policy`).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverFrom {
    All,
    New,
    Last,
    LastPerSubject,
}

/// The dead-letter stream of a consumer (`dead_letter`).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// `<STREAM>_DLQ`.
    Default,
    Stream(&'static str),
    /// `dead_letter = false`: terminated messages are only logged and counted.
    Off,
}

/// The options of `#[consumer(...)]`, as the macro writes them.
#[doc(hidden)]
#[derive(Debug)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    /// `None` for an ordered, ephemeral consumer.
    pub durable: Option<&'static str>,
    pub filters: &'static [&'static str],
    pub ack_wait_ms: Option<u64>,
    pub max_deliver: Option<u32>,
    pub backoff_ms: &'static [u64],
    pub max_ack_pending: Option<i64>,
    pub deliver: DeliverFrom,
    pub dead_letter: DeadLetterTarget,
    pub idempotent: bool,
    pub idempotency_ttl_ms: Option<u64>,
    pub double_ack: bool,
    pub batch: Option<usize>,
    /// `batch_wait`: how long a batch handler waits for its batch to fill.
    pub batch_wait_ms: Option<u64>,
    /// The handler takes a `Batch<T>`: it gets up to `batch` messages at once.
    pub batched: bool,
}

impl ConsumerSpec {
    pub(crate) fn ack_wait(&self) -> Duration {
        self.ack_wait_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_ACK_WAIT)
    }

    pub(crate) fn max_deliver(&self) -> u32 {
        self.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER)
    }

    /// The nak delay after delivery `delivered` failed: the backoff schedule (its last value
    /// repeated), else exponential from 1 s up to 60 s.
    pub(crate) fn backoff(&self, delivered: u64) -> Duration {
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.backoff_ms {
            [] => Duration::from_secs(1u64 << i.min(6)).min(Duration::from_secs(60)),
            steps => Duration::from_millis(steps[i.min(steps.len() - 1)]),
        }
    }

    /// The dead-letter stream's name, if any.
    pub(crate) fn dead_letter_stream(&self) -> Option<String> {
        match self.dead_letter {
            DeadLetterTarget::Default => Some(format!("{}_DLQ", self.stream)),
            DeadLetterTarget::Stream(s) => Some(s.to_string()),
            DeadLetterTarget::Off => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ConsumerSpec = ConsumerSpec {
        stream: "S",
        durable: Some("d"),
        filters: &[],
        ack_wait_ms: None,
        max_deliver: None,
        backoff_ms: &[],
        max_ack_pending: None,
        deliver: DeliverFrom::All,
        dead_letter: DeadLetterTarget::Default,
        idempotent: false,
        idempotency_ttl_ms: None,
        double_ack: false,
        batch: None,
        batch_wait_ms: None,
        batched: false,
    };

    #[test]
    fn backoff_schedule_then_its_last_step() {
        let spec = ConsumerSpec {
            backoff_ms: &[100, 500],
            ..SPEC
        };
        let got: Vec<u64> = (1..=4)
            .map(|n| spec.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(got, [100, 500, 500, 500]);
    }

    #[test]
    fn default_backoff_doubles_up_to_a_minute() {
        let got: Vec<u64> = [1, 2, 3, 7, 50]
            .iter()
            .map(|n| SPEC.backoff(*n).as_secs())
            .collect();
        assert_eq!(got, [1, 2, 4, 60, 60]);
        assert_eq!(SPEC.dead_letter_stream().as_deref(), Some("S_DLQ"));
        assert_eq!(SPEC.max_deliver(), 5);
    }
}
