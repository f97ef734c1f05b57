//! What every turn of a keyed actor reads: its handlers (routes, picked by subject), the
//! client, the state bucket and the stream; and how a message becomes an [`Item`] for a key,
//! is acked, and an ask is answered.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::Store;
use async_nats::jetstream::stream::Stream;
use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;
use tokio::sync::watch;

use super::layout::REPLY_TO;
use super::layout::{self, Layout};
use super::outage::Outage;
use super::spec::Keyed;
use super::state::{self, Loaded, StateError};
use crate::client::Client;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::HandlerError;
use crate::handler::{Turn, Worker};
use crate::jetstream::dead_letter::DeadLetters;
use crate::jetstream::delivery::{Delivery, LazyDelivery};
use crate::stats::KeyedCounters;
use crate::telemetry::spans::SendKind;

/// One handler of the actor: its worker (the shared per-message path), its turn and how its
/// subject reads.
pub(super) struct Route<A> {
    pub(super) worker: Worker<A>,
    pub(super) turn: Turn<A>,
    /// `&mut self`: its turns save the state.
    pub(super) mutable: bool,
    pub(super) ask: bool,
    /// The tokens of its subject (`None` for a parameter).
    tokens: Vec<Option<&'static str>>,
}

impl<A> Route<A> {
    pub(super) fn new(worker: Worker<A>, turn: Turn<A>, mutable: bool, ask: bool) -> Self {
        let tokens = worker
            .spec
            .subject
            .split('.')
            .map(|t| (t != "*").then_some(t))
            .collect();
        Self {
            worker,
            turn,
            mutable,
            ask,
            tokens,
        }
    }

    fn matches(&self, subject: &str) -> bool {
        let mut n = 0;
        for (i, token) in subject.split('.').enumerate() {
            match self.tokens.get(i) {
                Some(Some(t)) if *t != token => return false,
                Some(_) => n += 1,
                None => return false,
            }
        }
        n == self.tokens.len()
    }
}

/// What every turn reads.
pub(super) struct Shared<A> {
    pub(super) keyed: Keyed<A>,
    pub(super) layout: Layout,
    pub(super) routes: Vec<Route<A>>,
    pub(super) client: Client,
    pub(super) codec: Codec,
    pub(super) store: Store,
    pub(super) stream: Stream,
    pub(super) dead_letters: DeadLetters,
    pub(super) counters: Arc<KeyedCounters>,
    pub(super) stream_name: Arc<str>,
    pub(super) consumers: Vec<Arc<str>>,
    pub(super) stopping: watch::Receiver<bool>,
    /// Keys waiting on the bucket, reported together.
    pub(super) outage: Outage,
}

/// One message for a key: a delivery of a partition consumer, or one read from the stream for
/// a takeover.
pub(super) struct Item {
    /// As the handler sees it: the subject as published; the ack subject as reply (none for a
    /// message read for a takeover).
    pub(super) message: Message,
    pub(super) seq: u64,
    pub(super) partition: u16,
    pub(super) route: usize,
    /// Run in the takeover already: acked without running.
    pub(super) settled: bool,
}

impl<A: Send + Sync + 'static> Shared<A> {
    pub(super) fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Where the reminders of `key` (in partition `p`) go.
    pub(super) fn reminders(&self, key: &str, p: u16) -> crate::context::Reminders {
        let key_subject = self.layout.key_subject(key).unwrap_or_default();
        crate::context::Reminders {
            stream: self.stream_name.clone(),
            schedules: self.layout.reminders(&key_subject),
            target: self.layout.partition_prefix(p),
            key_subject,
        }
    }

    pub(super) fn conflicted(&self) {
        self.counters.conflicts.fetch_add(1, Relaxed);
    }

    /// Reads the state of `key`, trying again while the bucket is away; `None` at shutdown or
    /// while the stored state does not decode (the key's messages then stay unacked).
    pub(super) async fn load(&self, key: &str) -> Option<Loaded<A>> {
        let state_key = layout::state_key(key);
        let mut waiting = None;
        for attempt in 1usize.. {
            match state::load(&self.store, &self.keyed, self.codec, &state_key).await {
                Ok(l) => return Some(l),
                Err(e) => {
                    if matches!(e, StateError::Decode(_)) {
                        if attempt == 1 || attempt.is_multiple_of(20) {
                            tracing::error!(actor = self.layout.actor, key, error = %e, "the state of this key does not decode; its messages wait");
                        }
                    } else if waiting.is_none() {
                        waiting = Some(self.outage.waits(self.layout.actor, key, "read", &e));
                    }
                    if self.stopping() {
                        return None;
                    }
                    tokio::time::sleep(crate::runtime::connect::backoff(
                        attempt,
                        Duration::from_secs(5),
                    ))
                    .await;
                }
            }
        }
        None
    }

    pub(super) async fn save(
        &self,
        key: &str,
        actor: &mut Loaded<A>,
        seq: u64,
    ) -> Result<(), StateError> {
        let state_key = layout::state_key(key);
        state::save(&self.store, &self.keyed, self.codec, &state_key, actor, seq).await
    }

    pub(super) fn delivery(&self, item: &Item) -> Option<LazyDelivery> {
        item.message.reply.as_ref()?;
        Some(LazyDelivery::new(
            self.stream_name.clone(),
            Some(self.consumers[usize::from(item.partition)].clone()),
        ))
    }

    /// Settles a delivery by its ack subject. A message read for a takeover is settled with the
    /// rest of the takeover, by the host.
    pub(super) async fn ack(&self, item: &Item, how: &'static str) {
        let Some(reply) = item.message.reply.clone() else {
            return;
        };
        if let Err(e) = self
            .client
            .nats()
            .publish(reply, Bytes::from_static(how.as_bytes()))
            .await
        {
            tracing::warn!(actor = self.layout.actor, error = %e, "cannot ack; the message comes back and is acked then");
        }
    }

    fn reply_to(item: &Item) -> Option<Subject> {
        let h = item.message.headers.as_ref()?;
        crate::headers::get(h, REPLY_TO).map(Subject::from)
    }

    /// Sends an ask's answer to where it asked for it.
    pub(super) async fn answer(&self, item: &Item, ctx: &Context, payload: Bytes, codec: Codec) {
        let Some(to) = Self::reply_to(item) else {
            tracing::warn!(actor = self.layout.actor, subject = %item.message.subject, "an ask without a {REPLY_TO} header; nothing to answer");
            return;
        };
        let h = codec.headers();
        if let Err(e) = self
            .client
            .send(Some(ctx.frame()), SendKind::Reply, to, h, payload)
            .await
        {
            tracing::warn!(actor = self.layout.actor, error = %e, "cannot send the answer");
        }
    }

    pub(super) async fn error_reply(&self, item: &Item, ctx: &Context, error: &HandlerError) {
        let Some(to) = Self::reply_to(item) else {
            return;
        };
        let h = crate::headers::error_headers(error);
        if let Err(e) = self
            .client
            .send(Some(ctx.frame()), SendKind::Reply, to, h, Bytes::new())
            .await
        {
            tracing::warn!(actor = self.layout.actor, error = %e, "cannot send the error answer");
        }
    }

    /// The stream sequence and delivery count of a delivery.
    pub(super) fn sequence(&self, m: &async_nats::jetstream::Message) -> Option<(u64, u64)> {
        let reply = m.message.reply.as_ref()?;
        let d = Delivery::parse(reply.as_str(), &self.stream_name, None)?;
        Some((d.stream_sequence, d.delivered))
    }

    /// The item of a delivery of partition `p`: `None` (after terminating it) when no handler
    /// takes its subject.
    pub(super) fn item(
        &self,
        p: u16,
        m: async_nats::jetstream::Message,
        ran: &std::collections::HashSet<u64>,
    ) -> Option<(String, Item)> {
        let m = m.message;
        let seq = m
            .reply
            .as_ref()
            .and_then(|r| Delivery::parse(r.as_str(), &self.stream_name, None))
            .map(|d| d.stream_sequence)?;
        let (key, item) = self.item_of(p, m.subject.clone(), m.reply, m.headers, m.payload, seq)?;
        Some((
            key,
            Item {
                settled: ran.contains(&seq),
                ..item
            },
        ))
    }

    pub(super) fn item_of(
        &self,
        p: u16,
        stored: Subject,
        reply: Option<Subject>,
        headers: Option<HeaderMap>,
        payload: Bytes,
        seq: u64,
    ) -> Option<(String, Item)> {
        let original = self.layout.split(stored.as_str()).map(|(_, s)| s)?;
        let key = self.layout.key_of(original)?;
        let route = self.routes.iter().position(|r| r.matches(original))?;
        let length = payload.len();
        let message = Message {
            subject: Subject::from(original),
            reply,
            payload,
            headers,
            status: None,
            description: None,
            length,
        };
        Some((
            key,
            Item {
                message,
                seq,
                partition: p,
                route,
                settled: false,
            },
        ))
    }
}
