//! Where a JetStream message came from, read from its ack subject.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where a JetStream message came from and how often it was delivered; take it as a handler
/// argument (`delivery: Delivery`) or from [`Context::delivery`](crate::Context::delivery).
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
    pub(crate) fn parse(
        reply: &str,
        stream: &Arc<str>,
        consumer: Option<&Arc<str>>,
    ) -> Option<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
