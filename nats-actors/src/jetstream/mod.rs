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

mod consumer;
mod dead_letter;
mod idempotency;
mod publish;
mod streams;

pub use async_nats::jetstream::context::PublishErrorKind;
pub use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
pub use dead_letter::{
    dead_letters, replay_dead_letters, DeadLetter, DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_ERROR,
    DLQ_MSG_ID, DLQ_SEQUENCE, DLQ_STREAM, DLQ_SUBJECT, DLQ_TIME,
};
pub use publish::{JsPublish, Published};

#[doc(hidden)]
pub use consumer::JsSource;
pub(crate) use streams::declare;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::context::{Context, FromContext};
use crate::error::HandlerError;

/// Default deliveries of a message before it is dead-lettered (`max_deliver`).
pub const DEFAULT_MAX_DELIVER: u32 = 5;
/// Default time the server waits for an ack before redelivering (`ack_wait`).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Where a JetStream message came from and how often it was delivered; take it as a handler
/// argument (`delivery: Delivery`) or from [`Context::delivery`].
///
/// ```no_run
/// use nats_actors::prelude::*;
/// use nats_actors::jetstream::Delivery;
///
/// #[derive(Actor)]
/// struct Audit;
///
/// #[handlers]
/// impl Audit {
///     #[consumer(stream = "ORDERS", durable = "audit")]
///     async fn on_order(&self, raw: nats_actors::Bytes, delivery: Delivery) {
///         println!("{}#{} delivered {} time(s)", delivery.stream, delivery.stream_sequence, delivery.delivered);
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The stream.
    pub stream: Arc<str>,
    /// The consumer.
    pub consumer: Arc<str>,
    /// The message's sequence in the stream.
    pub stream_sequence: u64,
    /// The delivery's sequence in the consumer.
    pub consumer_sequence: u64,
    /// How many times the message has been delivered, this time included (1 the first time).
    pub delivered: u64,
    /// Messages still pending for the consumer after this one.
    pub pending: u64,
    /// When the message was stored.
    pub published: SystemTime,
}

impl Delivery {
    /// Reads a JetStream ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
    /// <consumer seq>.<nanos>.<pending>`, or the newer form with a domain and an account hash
    /// after `$JS.ACK.` (and a token more at the end). `stream`/`consumer` are shared when they
    /// are the names in the subject.
    fn parse(reply: &str, stream: &Arc<str>, consumer: Option<&Arc<str>>) -> Option<Self> {
        let rest = reply.strip_prefix("$JS.ACK.")?;
        let tokens: Vec<&str> = rest.split('.').collect();
        let t = match tokens.len() {
            7 => &tokens[..],
            n if n >= 9 => &tokens[2..9],
            _ => return None,
        };
        let name = |have: Option<&Arc<str>>, token: &str| match have {
            Some(a) if &**a == token => a.clone(),
            _ => Arc::from(token),
        };
        let num = |i: usize| t[i].parse::<u64>().ok();
        Some(Self {
            stream: name(Some(stream), t[0]),
            consumer: name(consumer, t[1]),
            delivered: num(2)?,
            stream_sequence: num(3)?,
            consumer_sequence: num(4)?,
            published: SystemTime::UNIX_EPOCH + Duration::from_nanos(num(5)?),
            pending: num(6)?,
        })
    }
}

/// The delivery of a message, read from its ack subject only when something asks for it (the
/// `Delivery` extractor, a failure, idempotency): a message that is simply acked never pays for it.
pub(crate) struct LazyDelivery {
    stream: Arc<str>,
    consumer: Option<Arc<str>>,
    /// Boxed, so that a handler context stays small for the messages that never ask.
    parsed: std::sync::OnceLock<Option<Box<Delivery>>>,
}

impl LazyDelivery {
    pub(crate) fn new(stream: Arc<str>, consumer: Option<Arc<str>>) -> Self {
        Self {
            stream,
            consumer,
            parsed: std::sync::OnceLock::new(),
        }
    }

    /// The delivery of the message with ack subject `reply`.
    pub(crate) fn get(&self, reply: Option<&async_nats::Subject>) -> Option<&Delivery> {
        self.parsed
            .get_or_init(|| {
                Delivery::parse(reply?.as_str(), &self.stream, self.consumer.as_ref()).map(Box::new)
            })
            .as_deref()
    }
}

impl FromContext for Delivery {
    fn from_context(ctx: &Context) -> Result<Self, HandlerError> {
        ctx.delivery().cloned().ok_or_else(|| {
            HandlerError::new("`Delivery` is only available in #[consumer] handlers")
        })
    }
}

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
    };

    #[test]
    fn ack_subjects_of_both_forms() {
        let stream: Arc<str> = Arc::from("ORDERS");
        let d = Delivery::parse(
            "$JS.ACK.ORDERS.audit.3.42.17.1700000000000000000.5",
            &stream,
            None,
        )
        .unwrap();
        assert_eq!(
            (
                d.delivered,
                d.stream_sequence,
                d.consumer_sequence,
                d.pending
            ),
            (3, 42, 17, 5)
        );
        assert!(Arc::ptr_eq(&d.stream, &stream));
        assert_eq!(&*d.consumer, "audit");
        let v2 = "$JS.ACK.hub.ACCHASH.ORDERS.audit.1.7.7.1700000000000000000.0.xyz";
        assert_eq!(
            Delivery::parse(v2, &stream, None).unwrap().stream_sequence,
            7
        );
        assert!(Delivery::parse("$JS.ACK.ORDERS.audit.x.1.1.1.1", &stream, None).is_none());
        assert!(Delivery::parse("_INBOX.abc", &stream, None).is_none());
    }

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
