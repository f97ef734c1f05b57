//! Idempotent consumers: the ids of processed messages live in a KV bucket with a TTL, shared by
//! every instance and kept across restarts, so a redelivered message that was already processed
//! is acked without calling the handler again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{Config, Store};
use async_nats::jetstream::stream::StorageType;
use async_nats::HeaderMap;
use bytes::Bytes;

use super::Delivery;
use crate::client::Client;
use crate::error::Error;
use crate::headers;

/// Default time a processed id is remembered.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The ids this process is handling right now.
type Claims = Arc<Mutex<HashSet<String>>>;

/// The processed ids of one consumer, and the ids this process is handling right now.
pub(crate) struct Processed {
    kv: Store,
    in_flight: Claims,
}

/// An id being handled by this process; released on drop.
pub(crate) struct Claim {
    key: String,
    in_flight: Claims,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl Processed {
    /// Opens (or makes, with `replicas`: the stream's) bucket `processed_<stream>_<consumer>`.
    pub(crate) async fn open(
        client: &Client,
        stream: &str,
        consumer: &str,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Self, Error> {
        let bucket = format!("processed_{}_{}", sanitize(stream), sanitize(consumer));
        let config = Config {
            bucket: bucket.clone(),
            description: format!("ids of messages {consumer} processed (nats-actors)"),
            history: 1,
            max_age: ttl,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let kv = client
            .jetstream()
            .create_or_update_key_value(config)
            .await
            .map_err(|e| Error::JetStream {
                what: format!("idempotency bucket {bucket}"),
                reason: e.to_string(),
            })?;
        // One claim set per bucket in the process, shared by every instance of the consumer.
        static CLAIMS: std::sync::OnceLock<Mutex<HashMap<String, Claims>>> =
            std::sync::OnceLock::new();
        let in_flight = CLAIMS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(bucket)
            .or_default()
            .clone();
        Ok(Self { kv, in_flight })
    }

    /// Claims `key` for this delivery; `None` while another delivery of the same id is being
    /// handled here.
    pub(crate) fn claim(&self, key: &str) -> Option<Claim> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.insert(key.to_string()).then(|| Claim {
            key: key.to_string(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// The message's id: its `Nats-Msg-Id` when it has one (the same message published twice),
    /// else its stream sequence (the same stored message delivered twice).
    pub(crate) fn key(headers: Option<&HeaderMap>, delivery: &Delivery) -> String {
        match headers.and_then(|h| headers::get(h, "Nats-Msg-Id")) {
            Some(id) if !id.is_empty() => encode(id),
            _ => format!("seq.{}", delivery.stream_sequence),
        }
    }

    /// Whether `key` was processed; an error when the bucket cannot be read (then nothing is
    /// known, and the message must wait).
    pub(crate) async fn seen(&self, key: &str) -> Result<bool, String> {
        self.kv
            .get(key)
            .await
            .map(|v| v.is_some())
            .map_err(|e| e.to_string())
    }

    /// Records `key` as processed, retrying for up to `within` (a server restart).
    pub(crate) async fn mark(&self, key: &str, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.kv.put(key, Bytes::new()).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + delay >= deadline => {
                    return Err(e.to_string())
                }
                Err(e) => {
                    tracing::debug!(key, error = %e, "cannot record a processed id yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// A bucket name token: `[A-Za-z0-9_-]`, anything else as `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A KV key for any message id: `id.<id>` when it is made of safe characters, else
/// `hex.<hex of its bytes>` (distinct prefixes: no id can take another's key).
fn encode(id: &str) -> String {
    let safe = id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='));
    if safe {
        format!("id.{id}")
    } else {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("hex.{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys() {
        assert_eq!(encode("order-7"), "id.order-7");
        assert_eq!(encode("a.b c"), "hex.612e622063");
        assert_ne!(encode("612e622063"), encode("a.b c"));
        assert_eq!(sanitize("ORDERS.v2"), "ORDERS_v2");
    }
}
