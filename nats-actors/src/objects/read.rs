//! [`ObjectReader`]: an object's data as it arrives, a chunk at a time, from an ephemeral pull
//! consumer on its chunks that asks for a few megabytes at a time (never the whole object in
//! memory). Before the first chunk the consumer must hold every chunk the info names; the
//! last chunk is given only once the size and SHA-256 digest match the info. A consumer lost
//! on the way (a reconnect, a server restart) is made again after the last chunk read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::object_store::ObjectInfo;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::io::AsyncRead;

use super::handle::ObjectStore;
use super::put::{digest_text, CHUNK_SIZE};
use super::ObjectError;

/// Bytes of chunks one pull asks for (a few chunks; at least one).
const PULL_BYTES: usize = 2 * 1024 * 1024;
/// A pull lasts this long; the server sends a heartbeat this often while it has nothing to
/// send, and two missed ones (a server restart, a lost consumer) make the consumer again.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A read with no chunk for this long makes its consumer again.
const STALL: Duration = Duration::from_secs(20);
/// Consumers made for one read, at most (a few reconnects).
const MAX_CONSUMERS: u32 = 8;

/// The data of one object, as a [`Stream`] of chunks; [`into_async_read`](Self::into_async_read)
/// makes it an `AsyncRead`. A truncated or corrupt object ends it with
/// [`ObjectError::Truncated`] or [`ObjectError::Corrupt`] in place of its last chunk, so that
/// what reads it whole never takes it for the real data.
///
/// ```no_run
/// # async fn demo(store: nats_actors::objects::ObjectStore) -> Result<(), Box<dyn std::error::Error>> {
/// let object = store.get("scan.tiff").await?;
/// println!("{} bytes in {} chunks", object.info().size, object.info().chunks);
/// let mut file = tokio::fs::File::create("/tmp/scan.tiff").await?;
/// tokio::io::copy(&mut object.into_async_read(), &mut file).await?;
/// # Ok(()) }
/// ```
pub struct ObjectReader {
    info: ObjectInfo,
    received: u64,
    chunks: BoxStream<'static, Result<Bytes, ObjectError>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("name", &self.info.name)
            .field("received", &self.received)
            .finish()
    }
}

impl ObjectReader {
    pub(super) async fn open(store: ObjectStore, info: ObjectInfo) -> Result<Self, ObjectError> {
        let mut reading = Reading {
            store,
            digest: Some(ring::digest::Context::new(&ring::digest::SHA256)),
            info: info.clone(),
            messages: None,
            consumers: 0,
            next_sequence: 0,
            chunks: 0,
            size: 0,
        };
        if info.chunks > 0 {
            // Made now, so that a missing object fails the get itself.
            reading.messages = Some(reading.pull().await?);
        }
        let chunks = futures::stream::unfold(reading, |mut r| async move {
            let item = r.next().await?;
            Some((item, r))
        });
        Ok(Self {
            info,
            received: 0,
            chunks: chunks.boxed(),
        })
    }

    /// The object's info (its size, chunks, digest, metadata and headers).
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// The bytes given so far: the progress of a long read.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The data as an `AsyncRead`; a truncated or corrupt object is an
    /// [`std::io::ErrorKind::InvalidData`] error whose inner error is the [`ObjectError`].
    pub fn into_async_read(self) -> impl AsyncRead + Send + Unpin {
        tokio_util::io::StreamReader::new(self)
    }
}

impl Stream for ObjectReader {
    type Item = Result<Bytes, ObjectError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.chunks.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            self.received += chunk.len() as u64;
        }
        next
    }
}

/// Where a read is: the consumer's messages, what was read, and the digest so far (`None`
/// once the read has ended).
struct Reading {
    store: ObjectStore,
    info: ObjectInfo,
    messages: Option<pull::Stream>,
    consumers: u32,
    /// The stream sequence to make a new consumer from (0: the first chunk).
    next_sequence: u64,
    chunks: usize,
    size: usize,
    digest: Option<ring::digest::Context>,
}

impl Reading {
    async fn next(&mut self) -> Option<Result<Bytes, ObjectError>> {
        self.digest.as_ref()?;
        if self.info.chunks == 0 {
            return self.verify().err().map(Err);
        }
        loop {
            let messages = match self.messages.as_mut() {
                Some(m) => m,
                None => match self.pull().await {
                    Ok(m) => self.messages.insert(m),
                    Err(e) => return Some(Err(self.end(e))),
                },
            };
            let message = match tokio::time::timeout(STALL, messages.next()).await {
                Ok(Some(Ok(m))) => m,
                // A missed heartbeat, a lost consumer, a stall: again after the last chunk.
                _ => {
                    self.messages = None;
                    continue;
                }
            };
            let (sequence, pending) = match message.info() {
                Ok(i) => (i.stream_sequence, i.pending),
                Err(e) => return Some(Err(self.end(ObjectError::nats("get", "", e.to_string())))),
            };
            self.next_sequence = sequence + 1;
            let chunk = message.message.payload;
            self.chunks += 1;
            self.size += chunk.len();
            if let Some(d) = self.digest.as_mut() {
                d.update(&chunk);
            }
            if self.chunks == self.info.chunks {
                return Some(self.verify().map(|()| chunk));
            }
            if pending == 0 {
                let truncated = self.truncated(self.chunks);
                return Some(Err(self.end(truncated)));
            }
            return Some(Ok(chunk));
        }
    }

    /// A consumer on the object's chunks from `next_sequence`, which must still hold every
    /// chunk not read yet.
    async fn pull(&mut self) -> Result<pull::Stream, ObjectError> {
        let name = self.info.name.clone();
        self.consumers += 1;
        if self.consumers > MAX_CONSUMERS {
            return Err(ObjectError::nats(
                "get",
                &name,
                format!("the read stopped {MAX_CONSUMERS} times"),
            ));
        }
        let deliver_policy = match self.next_sequence {
            0 => DeliverPolicy::All,
            start_sequence => DeliverPolicy::ByStartSequence { start_sequence },
        };
        let consumer = self
            .store
            .stream
            .create_consumer(pull::Config {
                filter_subject: format!("$O.{}.C.{}", self.info.bucket, self.info.nuid),
                deliver_policy,
                ack_policy: AckPolicy::None,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: Duration::from_secs(10),
                ..Default::default()
            })
            .await
            .map_err(|e| ObjectError::nats("get", &name, e))?;
        let held = consumer.cached_info().num_pending as usize;
        if held < self.info.chunks - self.chunks {
            return Err(self.truncated(self.chunks + held));
        }
        let chunk_size = self
            .info
            .options
            .as_ref()
            .and_then(|o| o.max_chunk_size)
            .unwrap_or(CHUNK_SIZE)
            .max(1);
        consumer
            .stream()
            .max_messages_per_batch((PULL_BYTES / chunk_size).max(1))
            .expires(PULL_EXPIRES)
            .heartbeat(HEARTBEAT)
            .messages()
            .await
            .map_err(|e| ObjectError::nats("get", &name, e))
    }

    /// Ends the read: the size and digest must be the info's.
    fn verify(&mut self) -> Result<(), ObjectError> {
        let Some(digest) = self.digest.take() else {
            return Ok(());
        };
        let corrupt = |what: String| ObjectError::Corrupt {
            name: self.info.name.clone(),
            what,
        };
        if self.size != self.info.size {
            return Err(corrupt(format!(
                "{} bytes read where its info says {}",
                self.size, self.info.size
            )));
        }
        let read = digest_text(digest.finish());
        match &self.info.digest {
            Some(expected) if *expected != read => Err(corrupt(format!(
                "digest {read} where its info says {expected}"
            ))),
            _ => Ok(()),
        }
    }

    fn truncated(&self, found: usize) -> ObjectError {
        ObjectError::Truncated {
            name: self.info.name.clone(),
            chunks: self.info.chunks,
            found,
        }
    }

    fn end(&mut self, error: ObjectError) -> ObjectError {
        self.digest = None;
        error
    }
}
