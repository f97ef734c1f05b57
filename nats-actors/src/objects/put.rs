//! Putting an object: its data read chunk by chunk from any `AsyncRead` and published with a
//! bounded window of acks outstanding (never the whole object in memory), its SHA-256 digest
//! computed on the way, then its info published (with the trace context) to replace the old
//! version, whose chunks are purged.

use async_nats::jetstream::object_store::{ObjectInfo, ObjectMetadata, ObjectOptions};
use async_nats::HeaderMap;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use bytes::BytesMut;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::handle::ObjectStore;
use super::ObjectError;
use crate::codec::Codec;
use crate::jetstream::JsPublish;
use crate::origin::Origin;

/// Chunks of this size unless the metadata says otherwise (as async-nats and the Go client).
pub(super) const CHUNK_SIZE: usize = 128 * 1024;
/// At most this many bytes of chunks are sent and not yet acked.
const IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// `SHA-256=<url-safe base64>`, the form object infos carry.
pub(super) fn digest_text(digest: ring::digest::Digest) -> String {
    format!("SHA-256={}", URL_SAFE.encode(digest.as_ref()))
}

impl ObjectStore {
    /// Puts the data of `data` under `meta`'s name (a `&str` is a name alone), replacing the
    /// object of that name; returns its info. The data is read a chunk at a time; `progress`
    /// is told the bytes stored so far after each chunk the server acked.
    ///
    /// ```no_run
    /// # async fn demo(store: nats_actors::objects::ObjectStore) -> Result<(), nats_actors::objects::ObjectError> {
    /// let mut file = tokio::io::repeat(7).take(10 << 20); // 10 MiB
    /// # use tokio::io::AsyncReadExt;
    /// let info = store
    ///     .put_with_progress("big.bin", &mut file, |stored| println!("{stored} bytes stored"))
    ///     .await?;
    /// assert_eq!(info.size, 10 << 20);
    /// # Ok(()) }
    /// ```
    pub async fn put_with_progress(
        &self,
        meta: impl Into<ObjectMetadata>,
        data: &mut (impl AsyncRead + Unpin),
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<ObjectInfo, ObjectError> {
        let meta: ObjectMetadata = meta.into();
        let name = meta.name.clone();
        super::handle::valid(&name)?;
        let failed = |source: String| ObjectError::nats("put", &name, source);
        let old = self.find(&name).await?;
        let nuid = nuid::next().to_string();
        let chunk_subject = format!("$O.{}.C.{nuid}", self.bucket());
        let chunk_size = meta.chunk_size.unwrap_or(CHUNK_SIZE).max(1);
        let window = (IN_FLIGHT_BYTES / chunk_size).max(1);
        let js = self.client.jetstream();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut acks = FuturesOrdered::new();
        let (mut size, mut chunks, mut stored) = (0usize, 0usize, 0u64);
        let sent: Result<(), ObjectError> = async {
            loop {
                let chunk =
                    read_chunk(data, chunk_size)
                        .await
                        .map_err(|source| ObjectError::Read {
                            name: name.clone(),
                            source,
                        })?;
                if chunk.is_empty() {
                    break;
                }
                digest.update(&chunk);
                size += chunk.len();
                chunks += 1;
                let len = chunk.len() as u64;
                let ack = js
                    .publish(chunk_subject.clone(), chunk.freeze())
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                acks.push_back(async move { ack.await.map(|_| len) });
                if acks.len() >= window {
                    stored += next_ack(&mut acks).await.map_err(failed)?;
                    progress(stored);
                }
            }
            while !acks.is_empty() {
                stored += next_ack(&mut acks).await.map_err(failed)?;
                progress(stored);
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent {
            self.purge_chunks(&nuid).await;
            return Err(e);
        }
        let info = ObjectInfo {
            name: meta.name,
            description: meta.description,
            metadata: meta.metadata,
            headers: meta.headers,
            options: Some(ObjectOptions {
                link: None,
                max_chunk_size: Some(chunk_size),
            }),
            bucket: self.bucket().to_string(),
            nuid: nuid.clone(),
            size,
            chunks,
            modified: Some(time::OffsetDateTime::now_utc()),
            digest: Some(digest_text(digest.finish())),
            deleted: false,
        };
        if let Err(e) = self.publish_info(&info).await {
            self.purge_chunks(&nuid).await;
            return Err(e);
        }
        if let Some(old) = old {
            self.purge_chunks(&old.nuid).await;
        }
        Ok(info)
    }

    /// Publishes `info` as the object's current version (rolling up the older ones), under a
    /// send span whose context goes in the headers.
    pub(super) async fn publish_info(&self, info: &ObjectInfo) -> Result<(), ObjectError> {
        let subject = self.meta_subject(&info.name);
        let body = serde_json::to_vec(info).map_err(|e| ObjectError::nats("put", &info.name, e))?;
        let mut headers: HeaderMap = Origin::client(&self.client, Codec::Json).headers();
        headers.insert("Nats-Rollup", "sub");
        self.client
            .js_send(
                None,
                &subject,
                headers,
                body.into(),
                &JsPublish::new().attempts(1),
                usize::MAX,
            )
            .await
            .map(drop)
            .map_err(|e| ObjectError::nats("put", &info.name, e))
    }

    /// Removes the chunks of version `nuid`; a failure is logged (they are garbage, not data).
    pub(super) async fn purge_chunks(&self, nuid: &str) {
        let subject = format!("$O.{}.C.{nuid}", self.bucket());
        if let Err(e) = self.stream.purge().filter(&subject).await {
            tracing::warn!(bucket = self.bucket(), %subject, error = %e, "cannot purge old chunks");
        }
    }
}

/// Reads until `size` bytes or the end of `data` (an empty chunk: the end).
async fn read_chunk(data: &mut (impl AsyncRead + Unpin), size: usize) -> std::io::Result<BytesMut> {
    let mut chunk = BytesMut::with_capacity(size);
    while chunk.len() < size {
        let mut limited = (&mut *data).take((size - chunk.len()) as u64);
        if limited.read_buf(&mut chunk).await? == 0 {
            break;
        }
    }
    Ok(chunk)
}

async fn next_ack<F, E>(acks: &mut FuturesOrdered<F>) -> Result<u64, String>
where
    F: std::future::Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    match acks.next().await {
        Some(Ok(len)) => Ok(len),
        Some(Err(e)) => Err(format!("a chunk was not stored: {e}")),
        None => Ok(0),
    }
}
