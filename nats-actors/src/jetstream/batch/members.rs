//! The messages of one batch and how each is settled: what the consumer hands a batch
//! handler's context, and reads back once the handler is done.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::Message as JsMessage;

use crate::error::HandlerError;
use crate::jetstream::delivery::{Delivery, LazyDelivery};

/// The messages of one batch, shared by the consumer and the batch's items.
pub(crate) struct Members {
    pub(crate) messages: Vec<JsMessage>,
    deliveries: Vec<LazyDelivery>,
    pub(crate) verdicts: Mutex<Vec<Verdict>>,
}

/// How one message of a batch is settled.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// As the handler's result says.
    Follow,
    Ack,
    Nak(Duration),
    /// As this error would settle a one-message consumer's message.
    Fail(HandlerError),
    Term(String),
    DeadLetter(String),
    /// It did not decode: dead-lettered with the reason, never in the batch.
    Rejected(HandlerError),
}

impl Members {
    pub(crate) fn new(
        messages: Vec<JsMessage>,
        stream: &Arc<str>,
        consumer: &Option<Arc<str>>,
    ) -> Self {
        let n = messages.len();
        Self {
            deliveries: (0..n)
                .map(|_| LazyDelivery::new(stream.clone(), consumer.clone()))
                .collect(),
            verdicts: Mutex::new((0..n).map(|_| Verdict::Follow).collect()),
            messages,
        }
    }

    /// The delivery of message `i`, read from its ack subject.
    pub(crate) fn delivery(&self, i: usize) -> Option<&Delivery> {
        self.deliveries[i].get(self.messages[i].message.reply.as_ref())
    }

    pub(super) fn set(&self, i: usize, verdict: Verdict) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        verdicts[i] = verdict;
    }

    /// The verdicts, taken once the handler is done.
    pub(crate) fn take_verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *verdicts)
    }
}
