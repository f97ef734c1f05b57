//! Error types: one per operation, each with variants a caller can match on.

use std::time::Duration;

/// Errors of starting the runtime: configuration, connecting, subscribing, setting up
/// streams and telemetry. (What fails later has its own type: [`PublishError`],
/// [`RequestError`], and [`HandlerError`] for a handler.)
///
/// ```
/// let err = nats_actors::Error::Config { setting: "NATS_URL", reason: "names no server".into() };
/// assert_eq!(err.to_string(), "invalid setting NATS_URL: names no server");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection to NATS could not be made.
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// A setting (an environment variable, or the option it stands for) is invalid.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting, e.g. `NATS_URL` or `OTEL_TRACES_SAMPLER`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A handler's subscription could not be made.
    #[error("cannot subscribe {handler} to `{subject}`: {source}")]
    Subscribe {
        /// `Actor::method` of the handler.
        handler: String,
        /// The subject subscribed to.
        subject: String,
        /// The cause.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The server did not confirm the subscriptions at start (the flush after subscribing failed).
    #[error("the server did not confirm the subscriptions: {0}")]
    Flush(#[source] async_nats::client::FlushError),
    /// Reading a credentials or key file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JetStream stream, consumer or bucket could not be set up at startup; `what` names it
    /// (and the field, for a change the server cannot apply).
    #[error("cannot set up {what}: {reason}")]
    JetStream {
        /// The stream, consumer or bucket.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// Supervision stopped the runtime: an actor panicked more than its `max_restarts` within
    /// its `restart_window`; `reason` says which and how often.
    #[error("stopped by supervision: {reason}")]
    Supervision {
        /// Which actor, and how often it panicked.
        reason: String,
    },
    /// Telemetry could not be installed: `what` could not be made (an OTLP exporter, the export
    /// thread, the tracing subscriber), or telemetry is already installed in this process.
    #[cfg(feature = "telemetry")]
    #[error("cannot install telemetry ({what}): {reason}")]
    Telemetry {
        /// What could not be made.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// A payload could not be encoded.
///
/// ```
/// use nats_actors::Codec;
/// // JSON cannot encode a map with non-string keys:
/// let mut map = std::collections::HashMap::new();
/// map.insert((1, 2), 3);
/// assert!(Codec::Json.encode(&map).is_err());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// MessagePack encoding failed.
    #[error("cannot encode MessagePack: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
}

/// A payload could not be decoded; for a request this becomes an error reply with code 400.
///
/// ```
/// use nats_actors::{Codec, DecodeError};
/// let err = Codec::Json.decode::<u32>(b"").unwrap_err();
/// assert!(matches!(err, DecodeError::EmptyPayload));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload was empty where a value was expected.
    #[error("empty payload where a value was expected")]
    EmptyPayload,
    /// The `Content-Type` header names a codec nats-actors does not know.
    #[error("unknown Content-Type `{0}`; expected application/json or application/msgpack")]
    UnknownContentType(String),
    /// The payload is not valid JSON for the expected type.
    #[error("invalid JSON payload: {0}")]
    Json(#[from] serde_json::Error),
    /// The payload is not valid MessagePack for the expected type.
    #[error("invalid MessagePack payload: {0}")]
    MsgPack(#[from] rmp_serde::decode::Error),
    /// The `Content-Encoding` header names a compression nats-actors does not take (code 415).
    #[error("unsupported Content-Encoding `{0}`; expected gzip, zstd or identity")]
    UnknownEncoding(String),
    /// The compressed payload inflates past the bound (code 413): a decompression bomb, or a
    /// payload larger than any handler should be given.
    #[error("the payload inflates past {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The payload is not valid data of its `Content-Encoding` (code 400).
    #[error("corrupt {encoding} payload: {reason}")]
    Corrupt {
        /// The encoding it claims.
        encoding: String,
        /// What the decompressor said.
        reason: String,
    },
}

/// A publish failed; nothing was sent.
///
/// ```
/// let err = nats_actors::PublishError::MaxPayload { subject: "a".into(), size: 2, max: 1 };
/// assert!(err.to_string().contains("max_payload"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The value could not be encoded.
    #[error("cannot publish to `{subject}`: {source}")]
    Encode {
        /// The subject.
        subject: String,
        /// The cause.
        #[source]
        source: EncodeError,
    },
    /// The message is larger than the server's `max_payload`.
    #[error(
        "cannot publish {size} bytes to `{subject}`: over the server's max_payload of {max} bytes"
    )]
    MaxPayload {
        /// The subject.
        subject: String,
        /// Size of payload and headers.
        size: usize,
        /// The server's limit.
        max: usize,
    },
    /// The client could not send it (connection closed, invalid subject).
    #[error("cannot publish to `{subject}`: {source}")]
    Nats {
        /// The subject.
        subject: String,
        /// The cause.
        #[source]
        source: async_nats::PublishError,
    },
    #[cfg(feature = "jetstream")]
    /// A JetStream publish was not acknowledged: match `source.kind()` (no stream for the
    /// subject, wrong last sequence, timed out, ...). It may still have been stored when it
    /// timed out; with a `Nats-Msg-Id`, publishing it again cannot store it twice.
    #[error("JetStream publish to `{subject}` failed after {attempts} attempt(s): {source}")]
    JetStream {
        /// The subject.
        subject: String,
        /// How many times it was sent.
        attempts: u32,
        /// The cause.
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    #[cfg(feature = "jetstream")]
    /// An atomic batch was not stored, none of it (or, when the commit's ack timed out, it
    /// is not known whether all of it was). `code` is the server's JetStream error code, e.g.
    /// 10174 when the stream does not allow atomic publish.
    #[error("atomic batch of {count} message(s) starting at `{subject}` not stored: {reason}")]
    AtomicBatch {
        /// The subject of the batch's first message.
        subject: String,
        /// The messages in the batch.
        count: usize,
        /// The server's JetStream error code (`err_code`), when it gave one.
        code: Option<u64>,
        /// Why.
        reason: String,
    },
    #[cfg(feature = "jetstream")]
    /// A reminder could not be set or cancelled: outside a keyed actor's turn, a name or
    /// subject that does not fit, or the server refused it.
    #[error("reminder `{name}`: {reason}")]
    Reminder {
        /// The reminder's name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A request failed. Match on the variant: each failure mode is distinct.
///
/// ```
/// use nats_actors::RequestError;
/// let err = RequestError::Service { code: 404, description: "no such user".into() };
/// assert_eq!(err.code(), Some(404));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request could not be sent.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// No responder is subscribed to the subject.
    #[error("no responders on `{subject}`")]
    NoResponders {
        /// The subject.
        subject: String,
    },
    /// No reply arrived within the timeout.
    #[error("request to `{subject}` timed out after {timeout:?}")]
    Timeout {
        /// The subject.
        subject: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The responder replied with an error (`Nats-Service-Error` headers).
    #[error("service error {code}: {description}")]
    Service {
        /// The error code (400 for bad input, 500 for a handler failure or panic).
        code: u16,
        /// The description the responder gave.
        description: String,
    },
    /// The reply could not be decoded into the expected type.
    #[error("cannot decode the reply: {0}")]
    Decode(#[from] DecodeError),
    /// The subject could not be built (a parameter value is not a subject token).
    #[error("invalid subject `{subject}`: {reason}")]
    InvalidSubject {
        /// The subject template.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// The ask of a keyed actor was not stored (the server's reason).
    #[error("`{subject}` was not stored: {reason}")]
    NotStored {
        /// The subject.
        subject: String,
        /// What the server or the client said.
        reason: String,
    },
    /// Another client failure (connection closed).
    #[error("request to `{subject}` failed: {source}")]
    Nats {
        /// The subject.
        subject: String,
        /// The cause.
        #[source]
        source: async_nats::RequestError,
    },
}

impl RequestError {
    /// The service error code, when the responder replied with an error.
    pub fn code(&self) -> Option<u16> {
        match self {
            RequestError::Service { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The error a handler returns; for a request it becomes an error reply with the
/// `Nats-Service-Error` and `Nats-Service-Error-Code` headers.
///
/// Any `std::error::Error` converts into it with `?` (code 500); give a code for a typed reply:
///
/// ```
/// use nats_actors::HandlerError;
/// let err = HandlerError::with_code(404, "no such order");
/// assert_eq!((err.code(), err.description()), (404, "no such order"));
/// let err: HandlerError = "x".parse::<u32>().unwrap_err().into();
/// assert_eq!(err.code(), 500);
/// ```
pub struct HandlerError(Box<Failure>);

/// Boxed, so that a `Result<T, HandlerError>` (every handler's, and the runtime's outcome of
/// every message) is as small as `T` and a pointer: errors are rare, results are not.
struct Failure {
    code: u16,
    description: String,
    retry: Retry,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Whether a JetStream consumer retries the message after this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// By the code: 4xx never (retrying bad input cannot help), anything else with the
    /// consumer's backoff.
    ByCode,
    /// After this delay.
    After(Duration),
    /// Never: term and dead-letter.
    Never,
}

impl HandlerError {
    /// A failure with code 500.
    pub fn new(description: impl Into<String>) -> Self {
        Self::with_code(500, description)
    }

    /// A failure with the given code (use HTTP-like codes: 400 bad input, 404 missing, 500 failure).
    pub fn with_code(code: u16, description: impl Into<String>) -> Self {
        Self(Box::new(Failure {
            code,
            description: description.into(),
            retry: Retry::ByCode,
            source: None,
        }))
    }

    /// A transient failure (code 503) that a JetStream consumer retries after `delay` (a nak
    /// with that delay), instead of the consumer's backoff.
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = nats_actors::HandlerError::retry_after("database busy", Duration::from_secs(2));
    /// assert_eq!(err.retry_delay(), Some(Duration::from_secs(2)));
    /// assert!(err.is_retryable());
    /// ```
    pub fn retry_after(description: impl Into<String>, delay: Duration) -> Self {
        let mut err = Self::with_code(503, description);
        err.0.retry = Retry::After(delay);
        err
    }

    /// A failure that retrying cannot fix (code 500): a JetStream consumer terminates the
    /// message with this reason and stores it in the dead-letter stream.
    ///
    /// ```
    /// let err = nats_actors::HandlerError::fatal("order references a deleted account");
    /// assert!(!err.is_retryable());
    /// ```
    pub fn fatal(description: impl Into<String>) -> Self {
        let mut err = Self::new(description);
        err.0.retry = Retry::Never;
        err
    }

    /// Whether a JetStream consumer redelivers the message after this error: not for
    /// [`HandlerError::fatal`] nor for codes 400-499 (bad input stays bad), else yes.
    ///
    /// ```
    /// use nats_actors::HandlerError;
    /// assert!(!HandlerError::bad_request("no such field").is_retryable());
    /// assert!(HandlerError::new("connection reset").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self.0.retry {
            Retry::ByCode => !(400..500).contains(&self.0.code),
            Retry::After(_) => true,
            Retry::Never => false,
        }
    }

    /// The delay asked for with [`HandlerError::retry_after`].
    pub fn retry_delay(&self) -> Option<Duration> {
        match self.0.retry {
            Retry::After(d) => Some(d),
            _ => None,
        }
    }

    /// Bad input from the caller: code 400.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::with_code(400, description)
    }

    /// The code sent in `Nats-Service-Error-Code`.
    pub fn code(&self) -> u16 {
        self.0.code
    }

    /// The description sent in `Nats-Service-Error`.
    pub fn description(&self) -> &str {
        &self.0.description
    }

    /// The underlying error, when it was converted from one.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// The same code, description and retry, without the source (which cannot be cloned): the
    /// error of a batch handler, for each message it settles.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) fn copied(&self) -> Self {
        Self(Box::new(Failure {
            code: self.0.code,
            description: self.0.description.clone(),
            retry: self.0.retry,
            source: None,
        }))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        Self(Box::new(Failure {
            code: 500,
            description: err.to_string(),
            retry: Retry::ByCode,
            source: Some(Box::new(err)),
        }))
    }
}

/// For code that wants a standard error: `HandlerError` itself cannot implement
/// `std::error::Error`, since every `std::error::Error` converts into it with `?` (the same
/// trade-off as `anyhow::Error`).
///
/// ```
/// let err = nats_actors::HandlerError::with_code(404, "no such order");
/// let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
/// assert_eq!(boxed.to_string(), "no such order (code 404)");
/// ```
impl From<HandlerError> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(err: HandlerError) -> Self {
        Box::new(StdHandlerError(err))
    }
}

/// [`HandlerError`] as a `std::error::Error`, with its source.
struct StdHandlerError(HandlerError);

impl std::fmt::Display for StdHandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Debug for StdHandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for StdHandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.0.description, self.0.code)
    }
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerError")
            .field("code", &self.0.code)
            .field("description", &self.0.description)
            .field("source", &self.0.source)
            .finish()
    }
}
