//! [`ObjectError`]: what an object store operation can fail with, one variant per thing to do
//! about it.

/// A failed operation of an [`ObjectStore`](crate::objects::ObjectStore) handle, or a read
/// that did not give the object whole.
///
/// ```
/// use nats_actors::objects::ObjectError;
/// let err = ObjectError::Truncated { name: "scan.tiff".into(), chunks: 8, found: 7 };
/// assert_eq!(err.to_string(), "object `scan.tiff` is truncated: 7 of its 8 chunks are stored");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// The name is empty.
    #[error("invalid object name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bucket does not exist (declare it with `RuntimeBuilder::object_store`) or cannot
    /// be read.
    #[error("object store `{bucket}`: {reason}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// No such object (never put, or deleted).
    #[error("no object `{name}` in `{bucket}`")]
    NotFound {
        /// The bucket.
        bucket: String,
        /// The name.
        name: String,
    },
    /// Fewer chunks are stored than the object's info says (removed under it, or expired).
    #[error("object `{name}` is truncated: {found} of its {chunks} chunks are stored")]
    Truncated {
        /// The name.
        name: String,
        /// The chunks its info names.
        chunks: usize,
        /// The chunks found.
        found: usize,
    },
    /// What was read is not what was put: its SHA-256 digest or its size differ.
    #[error("object `{name}` is corrupt: {what}")]
    Corrupt {
        /// The name.
        name: String,
        /// What differs (`digest SHA-256=... where its info says SHA-256=...`, or the size).
        what: String,
    },
    /// Reading the data to put failed (the `AsyncRead` gave an error).
    #[error("reading the data of `{name}` failed: {source}")]
    Read {
        /// The name.
        name: String,
        /// The reader's error.
        source: std::io::Error,
    },
    /// The operation could not be done (no server, a timeout, a refusal).
    #[error("object {operation} of `{name}` failed: {source}")]
    Nats {
        /// `put`, `get`, `info`, `list`, `delete`, `link` or `update`.
        operation: &'static str,
        /// The name (empty for `list`).
        name: String,
        /// What async-nats or the server said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ObjectError {
    pub(crate) fn nats(
        operation: &'static str,
        name: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Nats {
            operation,
            name: name.into(),
            source: source.into(),
        }
    }
}

/// For [`ObjectReader::into_async_read`](crate::objects::ObjectReader::into_async_read): a
/// truncated or corrupt object is `InvalidData`, a missing one `NotFound`.
impl From<ObjectError> for std::io::Error {
    fn from(e: ObjectError) -> Self {
        let kind = match e {
            ObjectError::Truncated { .. } | ObjectError::Corrupt { .. } => {
                std::io::ErrorKind::InvalidData
            }
            ObjectError::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
