//! The acks of one pipelined publish. Each message asks for its ack at `<inbox>.<index>`, on a
//! wildcard subscription of the pipeline's own (one per connection it sends through), and one
//! timer serves all of them. So an ack costs a channel receive and a small parse, where
//! async-nats' `jetstream::Context::publish` gives every message a fresh inbox, a oneshot
//! channel, a timer and an untagged JSON parse (measured: about 5,000 instructions an ack).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::context::{PublishError as AckError, PublishErrorKind};
use async_nats::jetstream::ErrorCode;
use async_nats::{Message, StatusCode, Subject, Subscriber};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;

use super::publish::Published;

/// The most acks outstanding at once: async-nats' default capacity of a subscription, so that
/// acks never overflow the inbox of a connection made with the defaults.
pub(super) const MAX_OUTSTANDING: usize = 1 << 16;

/// The acks awaited by one pipeline, each with what settling it needs (`T`).
pub(super) struct Acks<T> {
    /// By connection (its slot in the client's pool; one without a pool).
    inboxes: Vec<Option<Inbox>>,
    awaited: Awaited<T>,
    timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The timer is set for the oldest awaited ack, or fired and not yet looked at.
    armed: bool,
}

struct Inbox {
    prefix: String,
    sub: Subscriber,
    /// The subscription ended (the connection closed): what it awaited times out.
    ended: bool,
}

/// The messages whose acks are awaited, by index: message `base + i` when `slots[i]` is set.
struct Awaited<T> {
    slots: VecDeque<Option<(T, quanta::Instant)>>,
    base: usize,
    count: usize,
}

/// An ack as the server sends it (`{"stream":"S","seq":7}`, or `{"error":{...}}`).
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    error: Option<async_nats::jetstream::Error>,
}

impl<T> Acks<T> {
    /// Acks that time out `timeout` after their message was sent.
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            inboxes: Vec::new(),
            awaited: Awaited {
                slots: VecDeque::new(),
                base: 0,
                count: 0,
            },
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    /// How many acks are awaited.
    pub(super) fn len(&self) -> usize {
        self.awaited.count
    }

    /// The reply subject of message `index` sent through connection `slot` (`nats`): the
    /// pipeline's subscription on it is made on first use, before the message is sent, so the
    /// server knows it when the ack comes.
    pub(super) async fn reply_to(
        &mut self,
        slot: usize,
        nats: &async_nats::Client,
        index: usize,
    ) -> Result<Subject, async_nats::SubscribeError> {
        if self.inboxes.len() <= slot {
            self.inboxes.resize_with(slot + 1, || None);
        }
        let inbox = match &mut self.inboxes[slot] {
            Some(inbox) => inbox,
            empty => {
                let prefix = nats.new_inbox();
                let sub = nats.subscribe(format!("{prefix}.*")).await?;
                empty.insert(Inbox {
                    prefix,
                    sub,
                    ended: false,
                })
            }
        };
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(index);
        let mut reply = String::with_capacity(inbox.prefix.len() + 1 + digits.len());
        reply.push_str(&inbox.prefix);
        reply.push('.');
        reply.push_str(digits);
        Ok(Subject::from(reply))
    }

    /// Awaits the ack of message `index`, just sent (indices only grow).
    pub(super) fn sent(&mut self, index: usize, value: T) {
        let a = &mut self.awaited;
        if a.slots.is_empty() {
            a.base = index;
        }
        while a.base + a.slots.len() < index {
            a.slots.push_back(None);
        }
        a.slots.push_back(Some((value, crate::clock::now())));
        a.count += 1;
    }

    /// The next ack that came (or timed out), with its message's value.
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(T, Result<Published, AckError>)>> {
        if self.awaited.count == 0 {
            return Poll::Ready(None);
        }
        for i in 0..self.inboxes.len() {
            let Some(inbox) = self.inboxes[i].as_mut().filter(|b| !b.ended) else {
                continue;
            };
            while let Poll::Ready(next) = inbox.sub.poll_next_unpin(cx) {
                let Some(message) = next else {
                    inbox.ended = true;
                    break;
                };
                let Some(index) = index_of(&message.subject) else {
                    continue;
                };
                // A late ack of a message already timed out is not awaited any more.
                if let Some(value) = self.awaited.take(index) {
                    return Poll::Ready(Some((value, ack_of(&message))));
                }
            }
        }
        self.poll_expired(cx)
    }

    /// The oldest awaited ack, if it has waited its timeout; otherwise the timer is set for it.
    fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(T, Result<Published, AckError>)>> {
        loop {
            if self.armed {
                if self.timer.poll_unpin(cx).is_pending() {
                    return Poll::Pending;
                }
                self.armed = false;
            }
            // Settled slots never stay at the front: it is the oldest awaited.
            let Some(Some((_, sent))) = self.awaited.slots.front() else {
                return Poll::Pending;
            };
            let waited = crate::clock::elapsed(*sent);
            if waited >= self.timeout {
                let oldest = self.awaited.base;
                let value = self.awaited.take(oldest).expect("the oldest is awaited");
                let timed_out = AckError::new(PublishErrorKind::TimedOut);
                return Poll::Ready(Some((value, Err(timed_out))));
            }
            let deadline = tokio::time::Instant::now() + (self.timeout - waited);
            self.timer.as_mut().reset(deadline);
            self.armed = true;
        }
    }
}

impl<T> Awaited<T> {
    /// Stops awaiting message `index`; settled slots at the front go.
    fn take(&mut self, index: usize) -> Option<T> {
        let slot = self.slots.get_mut(index.checked_sub(self.base)?)?;
        let (value, _) = slot.take()?;
        self.count -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(value)
    }
}

/// The index at the end of an ack's subject (`<inbox>.<index>`).
fn index_of(subject: &str) -> Option<usize> {
    subject.rsplit('.').next()?.parse().ok()
}

/// What an ack message says, as async-nats would read it.
fn ack_of(message: &Message) -> Result<Published, AckError> {
    if message.status == Some(StatusCode::NO_RESPONDERS) {
        return Err(AckError::new(PublishErrorKind::StreamNotFound));
    }
    let reply: Reply = serde_json::from_slice(&message.payload)
        .map_err(|e| AckError::with_source(PublishErrorKind::Other, e))?;
    match reply.error {
        None => Ok(Published {
            stream: reply.stream,
            sequence: reply.seq,
            duplicate: reply.duplicate,
        }),
        Some(error) => Err(match error.error_code() {
            ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID => {
                AckError::with_source(PublishErrorKind::WrongLastMessageId, error)
            }
            ErrorCode::STREAM_WRONG_LAST_SEQUENCE => {
                AckError::with_source(PublishErrorKind::WrongLastSequence, error)
            }
            _ => AckError::with_source(PublishErrorKind::Other, error),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_come_from_the_last_token() {
        assert_eq!(index_of("_INBOX.abc.17"), Some(17));
        assert_eq!(index_of("_INBOX.abc.x"), None);
        assert_eq!(index_of(""), None);
    }

    fn message(status: Option<StatusCode>, payload: &'static str) -> Message {
        Message {
            subject: "_INBOX.a.0".into(),
            reply: None,
            payload: payload.into(),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn acks_read_as_async_nats_reads_them() {
        let ok = ack_of(&message(None, r#"{"stream":"S","seq":7,"domain":"d"}"#)).unwrap();
        assert_eq!(
            (ok.stream.as_str(), ok.sequence, ok.duplicate),
            ("S", 7, false)
        );
        let dup = ack_of(&message(None, r#"{"stream":"S","seq":7,"duplicate":true}"#)).unwrap();
        assert!(dup.duplicate);
        let wrong =
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#;
        let kind = ack_of(&message(None, wrong)).unwrap_err().kind();
        assert_eq!(kind, PublishErrorKind::WrongLastSequence);
        let none = ack_of(&message(Some(StatusCode::NO_RESPONDERS), "")).unwrap_err();
        assert_eq!(none.kind(), PublishErrorKind::StreamNotFound);
        let garbage = ack_of(&message(None, "{")).unwrap_err();
        assert_eq!(garbage.kind(), PublishErrorKind::Other);
    }
}
