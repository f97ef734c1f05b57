//! [`Client`]: typed publish and request for code outside handlers (and under [`Context`]).
//!
//! [`Context`]: crate::Context

#[cfg(feature = "jetstream")]
use std::any::Any;
#[cfg(feature = "jetstream")]
use std::collections::HashMap;
use std::sync::Arc;
#[cfg(feature = "jetstream")]
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;

use crate::codec::Codec;
use crate::error::{PublishError, RequestError};
use crate::headers;
use crate::telemetry::metrics::{ClientMetrics, Operation};
use crate::telemetry::spans::{self, Frame, SendKind, Server};
use std::time::Instant;

/// Default timeout of a request ([`Sender::request`](crate::Sender::request)).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A typed handle on a NATS connection; cheap to clone. Its typed sends are those of
/// [`Sender`](crate::Sender), each starting a trace of its own.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use nats_actors::{Client, Codec, Sender};
/// let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let client = Client::new(nats).with_codec(Codec::MsgPack);
/// client.publish("orders.created", &("o-1", 250)).await?;
/// let total: u64 = client.request("orders.total", &"o-1").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    nats: async_nats::Client,
    codec: Codec,
    timeout: Duration,
    /// What is sent is compressed past a size (`None`: never).
    #[cfg(feature = "compression")]
    compression: Option<crate::compression::Compression>,
    server: &'static Server,
    /// Made on first use: it spawns the task that collects publish acks.
    #[cfg(feature = "jetstream")]
    jetstream: Arc<OnceLock<async_nats::jetstream::Context>>,
    /// KV buckets and object stores looked up so far, by kind and name (shared by the
    /// clients of one connection).
    #[cfg(feature = "jetstream")]
    buckets: Arc<Mutex<HashMap<(&'static str, String), Handle>>>,
    /// In a pool of connections: all of them, for what this client sends.
    peers: Option<Arc<Peers>>,
}

/// The connections of a pool, shared by its clients: what is sent to a subject goes through
/// the connection the subject hashes to, so that order per subject holds.
struct Peers {
    nats: Vec<async_nats::Client>,
    #[cfg(feature = "jetstream")]
    jetstream: Vec<OnceLock<async_nats::jetstream::Context>>,
}

/// The connection of `n` that `subject` goes through: FNV-1a of its bytes.
#[inline]
fn slot(subject: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subject.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// A bucket handle a connection keeps (a KV store, an object store's parts).
#[cfg(feature = "jetstream")]
type Handle = Arc<dyn Any + Send + Sync>;

impl Client {
    /// Wraps an async-nats client; JSON and a 5 s request timeout by default.
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                server: Server::of(&nats),
                nats,
                codec: Codec::Json,
                timeout: DEFAULT_REQUEST_TIMEOUT,
                #[cfg(feature = "compression")]
                compression: None,
                #[cfg(feature = "jetstream")]
                jetstream: Arc::default(),
                #[cfg(feature = "jetstream")]
                buckets: Arc::default(),
                peers: None,
            }),
        }
    }

    /// One client per connection of a pool: each subscribes on its own connection, and sends
    /// through the connection its subject hashes to.
    pub(crate) fn pool(connections: &[async_nats::Client]) -> Vec<Client> {
        let peers = Arc::new(Peers {
            nats: connections.to_vec(),
            #[cfg(feature = "jetstream")]
            jetstream: connections.iter().map(|_| OnceLock::new()).collect(),
        });
        connections
            .iter()
            .map(|nats| Client::new(nats.clone()).with(|i| i.peers = Some(peers.clone())))
            .collect()
    }

    /// The connection what is sent to `subject` goes through.
    #[inline]
    pub(crate) fn route(&self, subject: &str) -> &async_nats::Client {
        self.route_slot(subject).1
    }

    /// [`Client::route`], with the connection's place in the pool (0 without a pool).
    #[inline]
    pub(crate) fn route_slot(&self, subject: &str) -> (usize, &async_nats::Client) {
        match &self.inner.peers {
            None => (0, &self.inner.nats),
            Some(p) => {
                let i = slot(subject, p.nats.len());
                (i, &p.nats[i])
            }
        }
    }

    /// The JetStream context on the connection what is published to `subject` goes through.
    #[cfg(feature = "jetstream")]
    pub(crate) fn jetstream_for(&self, subject: &str) -> &async_nats::jetstream::Context {
        match &self.inner.peers {
            None => self.jetstream(),
            Some(p) => {
                let i = slot(subject, p.nats.len());
                p.jetstream[i].get_or_init(|| async_nats::jetstream::new(p.nats[i].clone()))
            }
        }
    }

    /// Flushes every connection this client sends through.
    pub(crate) async fn flush_all(&self) -> Result<(), async_nats::client::FlushError> {
        match &self.inner.peers {
            None => self.inner.nats.flush().await,
            Some(p) => {
                for nats in &p.nats {
                    nats.flush().await?;
                }
                Ok(())
            }
        }
    }

    /// The same connection, encoding with `codec`.
    pub fn with_codec(&self, codec: Codec) -> Self {
        self.with(|i| i.codec = codec)
    }

    /// The same connection, with another timeout for requests and for the ack of a JetStream
    /// publish (5 s by default; async-nats waits 5 s at most for the ack of a single
    /// `js_publish`).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// The same connection, compressing what it publishes, requests and replies once it is
    /// at least the threshold's size (see [`compression`](crate::compression)).
    ///
    /// ```no_run
    /// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::PublishError> {
    /// use nats_actors::Sender;
    /// let packed = client.with_compression(nats_actors::Compression::zstd());
    /// packed.publish("reports.daily", &vec![0u64; 10_000]).await?; // sent with Content-Encoding: zstd
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "compression")]
    pub fn with_compression(&self, compression: crate::compression::Compression) -> Self {
        self.with(|i| i.compression = Some(compression))
    }

    /// The same connection, compressing as a handler's `compress = ...` says.
    pub(crate) fn with_packing(&self, packing: crate::compression::Packing) -> Self {
        #[cfg(feature = "compression")]
        return self.with(|i| {
            i.compression = match packing {
                crate::compression::Packing::Off => None,
                crate::compression::Packing::On(c) => Some(c),
            }
        });
        #[cfg(not(feature = "compression"))]
        return match packing {
            crate::compression::Packing::Off => self.clone(),
        };
    }

    fn with(&self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner::clone(&self.inner);
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// `payload` compressed as the client says, with its `Content-Encoding` in `headers`.
    #[inline]
    pub(crate) fn pack(&self, headers: &mut HeaderMap, payload: Bytes) -> Bytes {
        #[cfg(feature = "compression")]
        if let Some(c) = &self.inner.compression {
            if headers
                .get(crate::compression::CONTENT_ENCODING_NAME)
                .is_none()
            {
                let (payload, encoding) = c.apply(payload);
                if let Some(e) = encoding {
                    headers.insert(crate::compression::CONTENT_ENCODING_NAME, e);
                }
                return payload;
            }
        }
        let _ = headers;
        payload
    }

    /// The underlying async-nats client.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// A JetStream context on the same connection (for what nats-actors does not wrap: stream
    /// administration, KV, object store).
    ///
    /// ```no_run
    /// # async fn demo(client: nats_actors::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let info = client.jetstream().get_stream("ORDERS").await?.get_info().await?;
    /// println!("{} messages", info.state.messages);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        self.inner
            .jetstream
            .get_or_init(|| async_nats::jetstream::new(self.inner.nats.clone()))
    }

    /// The codec used to encode.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// A typed handle on KV bucket `bucket`, with this client's codec. The bucket is looked up
    /// once per connection; declare it with [`RuntimeBuilder::kv`](crate::RuntimeBuilder::kv).
    ///
    /// ```no_run
    /// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::kv::KvError> {
    /// let flags = client.kv::<bool>("flags").await?;
    /// flags.put("new-checkout", &true).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn kv<T>(&self, bucket: &str) -> Result<crate::kv::Kv<T>, crate::kv::KvError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let open = async {
            self.jetstream()
                .get_key_value(bucket)
                .await
                .map_err(|e| crate::kv::KvError::Bucket {
                    bucket: bucket.into(),
                    reason: format!("{e}; declare it with RuntimeBuilder::kv"),
                })
        };
        let store = self.bucket("kv", bucket, open).await?;
        Ok(crate::kv::Kv::new(store, self.clone()))
    }

    /// A handle on object store `bucket`. The bucket is looked up once per connection;
    /// declare it with [`RuntimeBuilder::object_store`](crate::RuntimeBuilder::object_store).
    ///
    /// ```no_run
    /// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::objects::ObjectError> {
    /// let uploads = client.objects("uploads").await?;
    /// for object in uploads.list().await? {
    ///     println!("{}: {} bytes", object.name, object.size);
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn objects(
        &self,
        bucket: &str,
    ) -> Result<crate::objects::ObjectStore, crate::objects::ObjectError> {
        let open = crate::objects::ObjectStore::open(self.jetstream(), bucket);
        let parts = self.bucket("objects", bucket, open).await?;
        Ok(crate::objects::ObjectStore::new(&parts, self.clone()))
    }

    /// The handle `open` gives for the bucket `name` of `kind`, made once per connection.
    #[cfg(feature = "jetstream")]
    async fn bucket<T: Send + Sync + 'static, E>(
        &self,
        kind: &'static str,
        name: &str,
        open: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<Arc<T>, E> {
        let key = (kind, name.to_string());
        let buckets = || self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let known = buckets().get(&key).cloned();
        if let Some(handle) = known.and_then(|h| h.downcast::<T>().ok()) {
            return Ok(handle);
        }
        let handle = Arc::new(open.await?);
        buckets().insert(key, handle.clone());
        Ok(handle)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Publishes raw bytes with the given headers, untouched.
    pub async fn publish_bytes(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        self.send(None, SendKind::Publish, subject.into(), headers, payload)
            .await
    }

    /// Sends raw bytes as a request and returns the reply message, mapping error headers,
    /// no responders and timeouts to [`RequestError`].
    pub async fn request_bytes(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Message, RequestError> {
        self.request_message(None, subject, headers, payload).await
    }

    /// Publishes under a send span (child of `parent`) whose context goes into the headers.
    /// async-nats checks the size (headers and payload) before it sends, as the server would.
    pub(crate) async fn send(
        &self,
        parent: Option<&Frame>,
        what: SendKind,
        subject: Subject,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let payload = self.pack(&mut headers, payload);
        let (span, started) = self.begin(parent, what, &subject, payload.len(), &mut headers);
        let result = match self
            .route(&subject)
            .publish_with_headers(subject.clone(), headers, payload)
            .await
        {
            Ok(()) => Ok(()),
            Err(source) => Err(match source.kind() {
                async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                    self.oversize(&subject, &source)
                }
                _ => PublishError::Nats {
                    subject: subject.to_string(),
                    source,
                },
            }),
        };
        let error_type = result.as_ref().err().map(|e| match e {
            PublishError::MaxPayload { .. } => "max_payload",
            _ => "publish",
        });
        finish(&span, started, Operation::Send, &result, error_type);
        result
    }

    /// Sends a request under a CLIENT span (child of `parent`) whose context goes into the
    /// headers, so that the responder's process span is its child.
    pub(crate) async fn request_message(
        &self,
        parent: Option<&Frame>,
        subject: &str,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Message, RequestError> {
        let timeout = self.inner.timeout;
        let payload = self.pack(&mut headers, payload);
        let (span, started) = self.begin(
            parent,
            SendKind::Request,
            subject,
            payload.len(),
            &mut headers,
        );
        let result = self
            .request_untraced(subject, headers, payload, timeout)
            .await;
        let error_type = result.as_ref().err().map(|e| match e {
            RequestError::NoResponders { .. } => "no_responders",
            RequestError::Timeout { .. } => "timeout",
            RequestError::Service { .. } => "service_error",
            RequestError::Publish(PublishError::MaxPayload { .. }) => "max_payload",
            _ => "request",
        });
        finish(&span, started, Operation::Request, &result, error_type);
        result
    }

    async fn request_untraced(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let request = async_nats::Request::new()
            .payload(payload)
            .headers(headers)
            .timeout(Some(timeout));
        let reply = self
            .route(subject)
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|source| match source.kind() {
                async_nats::RequestErrorKind::NoResponders => RequestError::NoResponders {
                    subject: subject.into(),
                },
                async_nats::RequestErrorKind::TimedOut => RequestError::Timeout {
                    subject: subject.into(),
                    timeout,
                },
                async_nats::RequestErrorKind::MaxPayloadExceeded => {
                    RequestError::Publish(self.oversize(subject, &source))
                }
                _ => RequestError::Nats {
                    subject: subject.into(),
                    source,
                },
            })?;
        if let Some(err) = service_error(reply.headers.as_ref()) {
            return Err(err);
        }
        Ok(reply)
    }

    /// The span of a send or request (its context injected into `headers`, except for replies),
    /// and the start of its duration metric.
    pub(crate) fn begin(
        &self,
        parent: Option<&Frame>,
        what: SendKind,
        subject: &str,
        body_size: usize,
        headers: &mut HeaderMap,
    ) -> (Frame, Started) {
        let span = spans::send(parent, what, subject, body_size, self.inner.server);
        if what != SendKind::Reply {
            spans::inject(&span, headers);
        }
        (span, ClientMetrics::get().map(|m| (m, Instant::now())))
    }

    /// Runs the read `op` (of a KV bucket or object store) under a request span on `subject`
    /// and the request metrics; a failure is of `error_type`.
    #[cfg(feature = "jetstream")]
    pub(crate) async fn traced_read<R, E: std::fmt::Display>(
        &self,
        subject: &str,
        error_type: &'static str,
        op: impl std::future::Future<Output = Result<R, E>>,
    ) -> Result<R, E> {
        let (span, started) =
            self.begin(None, SendKind::Request, subject, 0, &mut HeaderMap::new());
        let result = op.await;
        let failed = result.as_ref().err().map(|_| error_type);
        finish(&span, started, Operation::Request, &result, failed);
        result
    }

    /// [`PublishError::MaxPayload`] from async-nats' own check, whose message names the
    /// limit and the size (`... limit of 1048576 exceeded by message size of 1048600`).
    pub(crate) fn oversize(&self, subject: &str, source: &impl std::fmt::Display) -> PublishError {
        let message = source.to_string();
        let after = |key: &str| -> Option<usize> {
            let digits = message.split(key).nth(1)?;
            digits
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        PublishError::MaxPayload {
            subject: subject.into(),
            size: after("size of ").unwrap_or(0),
            max: after("limit of ").unwrap_or_else(|| self.inner.nats.max_payload()),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("codec", &self.inner.codec)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// The service error a reply carries in its headers, if any.
pub(crate) fn service_error(headers: Option<&HeaderMap>) -> Option<RequestError> {
    let headers = headers?;
    let code = headers::get(headers, headers::SERVICE_ERROR_CODE)?;
    let description = headers::get(headers, headers::SERVICE_ERROR)
        .unwrap_or_default()
        .to_string();
    let code = code.trim().parse::<u16>().unwrap_or(500);
    Some(RequestError::Service { code, description })
}

pub(crate) type Started = Option<(&'static ClientMetrics, Instant)>;

/// Marks the span failed and records the operation's metric.
pub(crate) fn finish<T, E: std::fmt::Display>(
    span: &Frame,
    started: Started,
    op: Operation,
    result: &Result<T, E>,
    error_type: Option<&'static str>,
) {
    if let (Some(t), Err(e)) = (error_type, result) {
        span.fail(t, &e.to_string());
    }
    if let Some((m, started)) = started {
        m.record(op, started, error_type);
    }
}
