//! [`KvError`]: what a typed KV operation can fail with, one variant per thing to do about it.

/// A failed operation of a [`Kv`](crate::kv::Kv) handle.
///
/// ```
/// use nats_actors::kv::KvError;
/// let err = KvError::Conflict { key: "limits.eu".into(), expected: 3, current: Some(5) };
/// assert_eq!(err.to_string(), "`limits.eu` is at revision 5, not 3");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is not a valid KV key (`[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`).
    #[error("invalid KV key `{key}`: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bucket does not exist (declare it with `RuntimeBuilder::kv`) or cannot be read.
    #[error("KV bucket `{bucket}`: {reason}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode the value of `{key}`: {source}")]
    Encode {
        /// The key.
        key: String,
        /// The codec's error.
        source: crate::EncodeError,
    },
    /// A stored value does not decode into the handle's type.
    #[error("the value of `{key}` at revision {revision} does not decode: {source}")]
    Decode {
        /// The key.
        key: String,
        /// The revision read.
        revision: u64,
        /// The codec's error.
        source: crate::DecodeError,
    },
    /// `create`: the key already has a value.
    #[error("`{key}` already exists (revision {revision})")]
    Exists {
        /// The key.
        key: String,
        /// Its current revision.
        revision: u64,
    },
    /// `update`: the key is not at the expected revision (compare-and-set lost).
    #[error("`{key}` is at revision {}, not {expected}", current.map_or("none".to_string(), |c| c.to_string()))]
    Conflict {
        /// The key.
        key: String,
        /// The revision the update expected.
        expected: u64,
        /// The revision the server has (`None` when the key has no value).
        current: Option<u64>,
    },
    /// The operation could not be done (no server, a timeout, a refusal).
    #[error("KV {operation} of `{key}` failed: {source}")]
    Nats {
        /// `get`, `put`, `create`, `update`, `delete`, `purge`, `keys` or `history`.
        operation: &'static str,
        /// The key (empty for `keys`).
        key: String,
        /// What async-nats or the server said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
