//! Where a `#[consumer]` handler's messages come from: its consumer, created or updated at
//! start, and the pull stream, made again when the consumer is deleted or the stream ends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::Message as JsMessage;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::dead_letter::{self, DeadLetters};
use super::super::idempotency::{self, Processed};
use super::super::{ConsumerSpec, DeliverFrom};
use crate::client::Client;
use crate::error::Error;
use crate::stats::HandlerCounters;

/// What a consumer handler's task owns besides its worker.
pub(crate) struct JsSource {
    pub(super) stream: async_nats::jetstream::stream::Stream,
    /// `None` for an ordered consumer (made again from `ordered` each time).
    pub(super) config: Option<pull::Config>,
    pub(super) ordered: pull::OrderedConfig,
    pub(super) spec: &'static ConsumerSpec,
    pub(super) what: String,
    pub(super) dead_letters: Option<Arc<DeadLetters>>,
    pub(super) processed: Option<Processed>,
    /// The stream's and the durable consumer's names, shared by every delivery.
    pub(super) stream_name: Arc<str>,
    pub(super) durable_name: Option<Arc<str>>,
    /// An ordered consumer's last message handled (its stream sequence; 0: none yet): a new
    /// ordered consumer starts after it, so that nothing is missed or handled twice.
    pub(super) handled: AtomicU64,
}

/// Why a message stream stopped yielding.
pub(super) enum Problem {
    /// Logged; the stream goes on (a missed heartbeat, a failed pull).
    Transient(String),
    /// The stream is over: make the consumer (and the stream) again.
    Recreate(String),
    /// The server stopped sending idle heartbeats (or, for an ordered consumer, any failure):
    /// pull again on a new stream.
    Stalled,
}

/// How often the server says a pull is alive when it has nothing to send; two missed in a row
/// make a new pull (a consumer leader that moved without a reconnect, a lost pull request).
const HEARTBEAT: Duration = Duration::from_secs(5);

pub(super) type Messages = BoxStream<'static, Result<JsMessage, Problem>>;

impl JsSource {
    /// Creates or updates the consumer of `spec` (and its dead-letter stream, idempotency
    /// bucket and exhausted-message watcher).
    pub(crate) async fn setup(
        client: &Client,
        spec: &'static ConsumerSpec,
        handler: &str,
        counters: Arc<HandlerCounters>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Self, Option<JoinHandle<()>>), Error> {
        let what = match spec.durable {
            Some(d) => format!("consumer {}/{d} of {handler}", spec.stream),
            None => format!("ordered consumer on {} of {handler}", spec.stream),
        };
        let stream = client
            .jetstream()
            .get_stream(spec.stream)
            .await
            .map_err(|e| Error::JetStream {
                what: what.clone(),
                reason: format!(
                    "stream {} is not there ({e}); declare it with RuntimeBuilder::stream",
                    spec.stream
                ),
            })?;
        // What the consumer keeps beside the stream (dead letters, processed ids) is replicated
        // like the stream.
        let replicas = stream.cached_info().config.num_replicas.max(1);
        let (filter_subject, filter_subjects) = match spec.filters {
            [one] => (one.to_string(), Vec::new()),
            many => (String::new(), many.iter().map(|s| s.to_string()).collect()),
        };
        let deliver_policy = match spec.deliver {
            DeliverFrom::All => DeliverPolicy::All,
            DeliverFrom::New => DeliverPolicy::New,
            DeliverFrom::Last => DeliverPolicy::Last,
            DeliverFrom::LastPerSubject => DeliverPolicy::LastPerSubject,
        };
        let ordered = pull::OrderedConfig {
            filter_subject: filter_subject.clone(),
            filter_subjects: filter_subjects.clone(),
            deliver_policy,
            ..Default::default()
        };
        let Some(durable) = spec.durable else {
            let source = Self {
                stream,
                config: None,
                ordered,
                spec,
                what,
                dead_letters: None,
                processed: None,
                stream_name: Arc::from(spec.stream),
                durable_name: None,
                handled: AtomicU64::new(0),
            };
            return Ok((source, None));
        };
        let config = pull::Config {
            durable_name: Some(durable.to_string()),
            description: Some(format!("{handler} (nats-actors)")),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait(),
            max_deliver: i64::from(spec.max_deliver()),
            filter_subject,
            filter_subjects,
            deliver_policy,
            max_ack_pending: spec.max_ack_pending.unwrap_or(0),
            ..Default::default()
        };
        stream
            .create_consumer(config.clone())
            .await
            .map_err(|e| Error::JetStream {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let processed = match spec.idempotent {
            true => {
                let ttl = spec
                    .idempotency_ttl_ms
                    .map(Duration::from_millis)
                    .unwrap_or(idempotency::DEFAULT_TTL);
                Some(Processed::open(client, spec.stream, durable, ttl, replicas).await?)
            }
            false => None,
        };
        let (dead_letters, watcher) = match spec.dead_letter_stream() {
            None => (None, None),
            Some(name) => {
                let dl = DeadLetters::ensure(client, name, spec.stream, durable, replicas).await?;
                let dl = Arc::new(dl);
                let subject = format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{durable}",
                    spec.stream
                );
                let sub = client
                    .nats()
                    .queue_subscribe(subject.clone(), "nats-actors-dead-letter".into())
                    .await
                    .map_err(|e| Error::JetStream {
                        what: what.clone(),
                        reason: format!("cannot subscribe to {subject}: {e}"),
                    })?;
                let task = tokio::spawn(dead_letter::watch_exhausted(
                    client.clone(),
                    stream.clone(),
                    dl.clone(),
                    counters,
                    sub,
                    stop,
                ));
                (Some(dl), Some(task))
            }
        };
        let source = Self {
            stream,
            config: Some(config),
            ordered,
            spec,
            what,
            dead_letters,
            processed,
            stream_name: Arc::from(spec.stream),
            durable_name: Some(Arc::from(durable)),
            handled: AtomicU64::new(0),
        };
        Ok((source, watcher))
    }

    /// A new message stream, pulling `batch` at a time (a durable consumer's); for a durable
    /// consumer that was deleted, the consumer again.
    pub(super) async fn messages(&self, recreate: bool, batch: usize) -> Result<Messages, String> {
        let Some(config) = &self.config else {
            let mut ordered = self.ordered.clone();
            let handled = self.handled.load(Relaxed);
            if handled > 0 {
                ordered.deliver_policy = DeliverPolicy::ByStartSequence {
                    start_sequence: handled + 1,
                };
            }
            let consumer = self
                .stream
                .create_consumer(ordered)
                .await
                .map_err(|e| e.to_string())?;
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            return Ok(messages
                // The ordered stream remakes its consumer on missed heartbeats, not when the
                // server lost it (a restart) or a pull failed: any error is a reason to start a
                // new one after the last message handled.
                .map(|m| m.map_err(|_| Problem::Stalled))
                .boxed());
        };
        let consumer = if recreate {
            self.stream
                .create_consumer(config.clone())
                .await
                .map_err(|e| e.to_string())?
        } else {
            self.stream
                .get_consumer::<pull::Config>(config.durable_name.as_deref().unwrap_or_default())
                .await
                .map_err(|e| e.to_string())?
        };
        let messages = consumer
            .stream()
            .heartbeat(HEARTBEAT)
            .max_messages_per_batch(batch)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        Ok(messages
            .map(|m| {
                m.map_err(|e| match e.kind() {
                    MessagesErrorKind::ConsumerDeleted
                    | MessagesErrorKind::PushBasedConsumer
                    | MessagesErrorKind::RequestLimitExceeded => Problem::Recreate(e.to_string()),
                    MessagesErrorKind::MissingHeartbeat => Problem::Stalled,
                    _ => Problem::Transient(e.to_string()),
                })
            })
            .boxed())
    }
}
