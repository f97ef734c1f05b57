//! [`Kv`]: a typed handle on a key-value bucket. Values go through the client's codec; writes go
//! through the JetStream send path (a span each, the trace context in the headers, the send
//! metrics), reads through async-nats' direct gets under a request span and the request
//! metrics.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Entry, Operation, Store};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::KvError;
use crate::client::Client;
use crate::error::PublishError;
use crate::jetstream::JsPublish;
use crate::origin::Origin;

/// A typed handle on a KV bucket; cheap to clone. Get one with [`Client::kv`] (or
/// [`Context::kv`](crate::Context::kv) in a handler, whose writes continue its trace).
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::kv::KvError> {
/// use nats_actors::kv::KvError;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Limits { per_minute: u32 }
///
/// let limits = client.kv::<Limits>("limits").await?;
/// let revision = limits.put("eu", &Limits { per_minute: 60 }).await?;
/// // Compare-and-set: fails with the current revision if someone wrote in between.
/// match limits.update("eu", &Limits { per_minute: 120 }, revision).await {
///     Ok(_) => {}
///     Err(KvError::Conflict { current, .. }) => println!("lost the race to {current:?}"),
///     Err(e) => return Err(e),
/// }
/// let now = limits.get("eu").await?.map(|l| l.per_minute);
/// # Ok(()) }
/// ```
pub struct Kv<T> {
    store: Arc<Store>,
    client: Client,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Kv<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            client: self.client.clone(),
            value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Kv<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("bucket", &self.store.name)
            .finish()
    }
}

/// One revision of a key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct KvEntry<T> {
    /// The key.
    pub key: String,
    /// The value: `None` for a delete or a purge.
    pub value: Option<T>,
    /// The revision (the bucket stream's sequence).
    pub revision: u64,
    /// When it was written.
    pub created: SystemTime,
    /// What the write was.
    pub operation: KvOperation,
}

/// What wrote a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOperation {
    /// A value.
    Put,
    /// A delete marker (history kept).
    Delete,
    /// A purge marker (history removed).
    Purge,
}

impl From<Operation> for KvOperation {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Put => Self::Put,
            Operation::Delete => Self::Delete,
            Operation::Purge => Self::Purge,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Kv<T> {
    pub(crate) fn new(store: Arc<Store>, client: Client) -> Self {
        Self {
            store,
            client,
            value: PhantomData,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.store.name
    }

    /// The value of `key`; `None` when it has none (never written, deleted or purged).
    pub async fn get(&self, key: &str) -> Result<Option<T>, KvError> {
        Ok(self.entry(key).await?.and_then(|e| e.value))
    }

    /// The latest revision of `key` (a delete or purge too); `None` when it was never written.
    pub async fn entry(&self, key: &str) -> Result<Option<KvEntry<T>>, KvError> {
        valid(key)?;
        let entry = self
            .traced(key, self.store.entry(key))
            .await
            .map_err(|e| nats("get", key, e))?;
        entry.map(|e| self.typed(e)).transpose()
    }

    /// Writes `value`; returns its revision.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, KvError> {
        let payload = self.encode(key, value)?;
        self.write("put", key, payload, None, None).await
    }

    /// Writes `value` only if `key` has none (never written, or deleted or purged); fails with
    /// [`KvError::Exists`] otherwise.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, KvError> {
        let payload = self.encode(key, value)?;
        match self
            .write("create", key, payload.clone(), Some(0), None)
            .await
        {
            Err(KvError::Conflict { current, .. }) => {
                // A deleted or purged key can be created again, on top of its marker.
                let latest = self.entry(key).await?;
                match latest {
                    Some(e) if e.operation != KvOperation::Put => {
                        self.write("create", key, payload, Some(e.revision), None)
                            .await
                    }
                    Some(e) => Err(exists(key, e.revision)),
                    None => Err(exists(key, current.unwrap_or(0))),
                }
            }
            done => done,
        }
    }

    /// Writes `value` only if `key` is still at `revision` (compare-and-set); fails with
    /// [`KvError::Conflict`], carrying the current revision, otherwise.
    pub async fn update(&self, key: &str, value: &T, revision: u64) -> Result<u64, KvError> {
        let payload = self.encode(key, value)?;
        self.write("update", key, payload, Some(revision), None)
            .await
    }

    /// Deletes `key`, keeping its history; [`get`](Self::get) then gives `None`.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write(
            "delete",
            key,
            Bytes::new(),
            None,
            Some(("KV-Operation", "DEL")),
        )
        .await
        .map(drop)
    }

    /// Deletes `key` and its history (only the purge marker stays).
    pub async fn purge(&self, key: &str) -> Result<(), KvError> {
        self.write(
            "purge",
            key,
            Bytes::new(),
            None,
            Some(("KV-Operation", "PURGE")),
        )
        .await
        .map(drop)
    }

    /// The keys that have a value.
    pub async fn keys(&self) -> Result<Vec<String>, KvError> {
        let keys = async {
            let keys = self.store.keys().await.map_err(|e| nats("keys", "", e))?;
            keys.try_collect().await.map_err(|e| nats("keys", "", e))
        };
        self.traced(">", keys).await
    }

    /// Every revision of `key` the bucket keeps (its `history`), oldest first.
    pub async fn history(&self, key: &str) -> Result<Vec<KvEntry<T>>, KvError> {
        valid(key)?;
        let entries = async {
            let history = self
                .store
                .history(key)
                .await
                .map_err(|e| nats("history", key, e))?;
            history
                .try_collect::<Vec<Entry>>()
                .await
                .map_err(|e| nats("history", key, e))
        };
        let entries = self.traced(key, entries).await?;
        entries.into_iter().map(|e| self.typed(e)).collect()
    }

    /// Runs the read `op` of `key` under a request span (`request $KV.<bucket>.<key>`) and the
    /// request metrics.
    async fn traced<R, E: std::fmt::Display>(
        &self,
        key: &str,
        op: impl std::future::Future<Output = Result<R, E>>,
    ) -> Result<R, E> {
        let subject = format!("{}{key}", self.store.prefix);
        self.client.traced_read(&subject, "kv", op).await
    }

    fn encode(&self, key: &str, value: &T) -> Result<Bytes, KvError> {
        valid(key)?;
        self.client
            .codec()
            .encode(value)
            .map_err(|source| KvError::Encode {
                key: key.into(),
                source,
            })
    }

    fn typed(&self, e: Entry) -> Result<KvEntry<T>, KvError> {
        let operation = KvOperation::from(e.operation);
        let value =
            match operation {
                KvOperation::Put => {
                    Some(self.client.codec().decode(&e.value).map_err(|source| {
                        KvError::Decode {
                            key: e.key.clone(),
                            revision: e.revision,
                            source,
                        }
                    })?)
                }
                _ => None,
            };
        Ok(KvEntry {
            key: e.key,
            value,
            revision: e.revision,
            created: e.created.into(),
            operation,
        })
    }

    /// Publishes to the key's subject under a send span, waiting for the stream's ack: at
    /// `expected` revision only (0: none yet), with a `KV-Operation` marker for a delete or
    /// purge (a purge also rolls the key's history up).
    async fn write(
        &self,
        operation: &'static str,
        key: &str,
        payload: Bytes,
        expected: Option<u64>,
        marker: Option<(&'static str, &'static str)>,
    ) -> Result<u64, KvError> {
        valid(key)?;
        let store = &self.store;
        let subject = format!(
            "{}{key}",
            store.put_prefix.as_ref().unwrap_or(&store.prefix)
        );
        let mut headers = match marker {
            None => Origin::client(&self.client, self.client.codec()).headers(),
            Some(_) => HeaderMap::new(),
        };
        if let Some((name, value)) = marker {
            headers.insert(name, value);
            if value == "PURGE" {
                headers.insert("Nats-Rollup", "sub");
            }
        }
        let mut options = JsPublish::new().attempts(1);
        if let Some(revision) = expected {
            options = options.expected_last_subject_sequence(revision);
        }
        let sent = self
            .client
            .js_send(None, &subject, headers, payload, &options, usize::MAX)
            .await;
        match sent {
            Ok(published) => Ok(published.sequence),
            Err(PublishError::JetStream { source, .. })
                if source.kind() == PublishErrorKind::WrongLastSequence =>
            {
                Err(KvError::Conflict {
                    key: key.into(),
                    expected: expected.unwrap_or(0),
                    current: current_revision(&source.to_string()),
                })
            }
            Err(e) => Err(nats(operation, key, e)),
        }
    }
}

/// The revision the server names in a wrong-last-sequence refusal (`... wrong last sequence:
/// 5`); `None` when it names none.
fn current_revision(refusal: &str) -> Option<u64> {
    let after = refusal.rsplit("sequence:").next()?;
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn exists(key: &str, revision: u64) -> KvError {
    KvError::Exists {
        key: key.into(),
        revision,
    }
}

fn nats(
    operation: &'static str,
    key: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> KvError {
    KvError::Nats {
        operation,
        key: key.into(),
        source: Box::new(source),
    }
}

/// A KV key: `[-/_=.a-zA-Z0-9]+`, neither starting nor ending with `.`.
pub(crate) fn valid(key: &str) -> Result<(), KvError> {
    let reason = if key.is_empty() {
        "empty"
    } else if key.starts_with('.') || key.ends_with('.') {
        "starts or ends with `.`"
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    {
        "only letters, digits and `-/_=.` are allowed"
    } else {
        return Ok(());
    };
    Err(KvError::InvalidKey {
        key: key.into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_as_the_server_does() {
        for good in ["a", "a.b", "services/eu-1", "k=v", "A_Z.09"] {
            assert!(valid(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "a.", "a b", "a*", "a>", "é"] {
            assert!(
                matches!(valid(bad), Err(KvError::InvalidKey { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_current_revision_is_read_from_the_refusal() {
        let refusal = "wrong last sequence: jetstream error: wrong last sequence: 5 (code 400)";
        assert_eq!(current_revision(refusal), Some(5));
        assert_eq!(current_revision("wrong last sequence"), None);
    }
}
