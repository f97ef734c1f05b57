//! [`ObjectStore`]: a handle on an object store bucket. Puts stream their data in chunks
//! (`put.rs`), gets stream it out with the digest checked (`read.rs`); infos, lists, links and
//! deletes go through async-nats, reads under a request span and the request metrics.

use async_nats::jetstream::object_store::{self as nats_objects, ObjectInfo, ObjectMetadata};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use futures::TryStreamExt;
use tokio::io::AsyncRead;

use super::{ObjectError, ObjectReader};
use crate::client::Client;

/// A handle on an object store bucket; cheap to clone. Get one with [`Client::objects`] (or
/// [`Context::objects`](crate::Context::objects) in a handler, whose puts continue its
/// trace).
///
/// ```no_run
/// # async fn demo(client: nats_actors::Client) -> Result<(), nats_actors::objects::ObjectError> {
/// use futures::TryStreamExt;
///
/// let uploads = client.objects("uploads").await?;
/// let mut data: &[u8] = b"hello";
/// let info = uploads.put("greeting.txt", &mut data).await?;
/// assert_eq!((info.size, info.chunks), (5, 1));
/// // The chunks as they arrive; the digest is checked before the last one is given.
/// let chunks: Vec<bytes::Bytes> = uploads.get("greeting.txt").await?.try_collect().await?;
/// assert_eq!(chunks.concat(), b"hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ObjectStore {
    pub(super) store: nats_objects::ObjectStore,
    pub(super) stream: Stream,
    pub(super) client: Client,
    bucket: String,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl ObjectStore {
    /// Looks the bucket up (its stream `OBJ_<bucket>`).
    pub(crate) async fn open(js: &Context, bucket: &str) -> Result<Bucket, ObjectError> {
        let unusable = |e: &dyn std::fmt::Display| ObjectError::Bucket {
            bucket: bucket.into(),
            reason: format!("{e}; declare it with RuntimeBuilder::object_store"),
        };
        let store = js
            .get_object_store(bucket)
            .await
            .map_err(|e| unusable(&e))?;
        let stream = js
            .get_stream(format!("OBJ_{bucket}"))
            .await
            .map_err(|e| unusable(&e))?;
        Ok(Bucket { store, stream })
    }

    pub(crate) fn new(bucket: &Bucket, client: Client) -> Self {
        Self {
            store: bucket.store.clone(),
            stream: bucket.stream.clone(),
            client,
            bucket: bucket.stream.cached_info().config.name["OBJ_".len()..].to_string(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Puts the data of `data` under `meta`'s name (a `&str` is a name alone; an
    /// [`ObjectMetadata`] adds a description, metadata, headers and the chunk size), replacing
    /// the object of that name; returns its info. See
    /// [`put_with_progress`](Self::put_with_progress).
    pub async fn put(
        &self,
        meta: impl Into<ObjectMetadata>,
        data: &mut (impl AsyncRead + Unpin),
    ) -> Result<ObjectInfo, ObjectError> {
        self.put_with_progress(meta, data, |_| {}).await
    }

    /// The object `name`, to read as a stream of chunks or (with
    /// [`ObjectReader::into_async_read`]) as an `AsyncRead`; a link is followed.
    pub async fn get(&self, name: &str) -> Result<ObjectReader, ObjectError> {
        let mut info = self.info(name).await?;
        if let Some(link) = info.options.as_ref().and_then(|o| o.link.clone()) {
            let Some(target) = link.name else {
                return Err(ObjectError::nats(
                    "get",
                    name,
                    "a link to a whole bucket has no data",
                ));
            };
            let store = match link.bucket == self.bucket {
                true => self.clone(),
                false => self.client.objects(&link.bucket).await?,
            };
            info = store.info(&target).await?;
            return ObjectReader::open(store, info).await;
        }
        ObjectReader::open(self.clone(), info).await
    }

    /// The info of `name`; [`ObjectError::NotFound`] when there is none or it was deleted.
    pub async fn info(&self, name: &str) -> Result<ObjectInfo, ObjectError> {
        self.find(name).await?.ok_or_else(|| ObjectError::NotFound {
            bucket: self.bucket.clone(),
            name: name.into(),
        })
    }

    /// The info of every object (deleted ones left out), in the order they were last put.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, ObjectError> {
        let listed = async {
            let list = self
                .store
                .list()
                .await
                .map_err(|e| ObjectError::nats("list", "", e))?;
            list.try_collect()
                .await
                .map_err(|e| ObjectError::nats("list", "", e))
        };
        self.traced(&format!("$O.{}.M.>", self.bucket), listed)
            .await
    }

    /// Deletes `name`: its info becomes a delete marker (seen by `#[object_watch]` handlers)
    /// and its chunks are purged. Deleting what does not exist is [`ObjectError::NotFound`].
    pub async fn delete(&self, name: &str) -> Result<(), ObjectError> {
        let mut info = self.info(name).await?;
        let nuid = std::mem::take(&mut info.nuid);
        info.deleted = true;
        info.size = 0;
        info.chunks = 0;
        info.digest = None;
        info.modified = Some(time::OffsetDateTime::now_utc());
        self.publish_info(&info).await?;
        self.purge_chunks(&nuid).await;
        Ok(())
    }

    /// Makes `name` a link to the object `target` (of this bucket or another): a
    /// [`get`](Self::get) of `name` reads `target`.
    pub async fn link(&self, name: &str, target: &ObjectInfo) -> Result<ObjectInfo, ObjectError> {
        valid(name)?;
        self.store
            .add_link(name, target)
            .await
            .map_err(|e| ObjectError::nats("link", name, e))
    }

    /// Replaces the description, metadata and headers of `name` with those of `meta` (and
    /// renames it, if `meta` names another); the data stays.
    pub async fn update_metadata(
        &self,
        name: &str,
        meta: ObjectMetadata,
    ) -> Result<ObjectInfo, ObjectError> {
        valid(&meta.name)?;
        let update = nats_objects::UpdateMetadata {
            name: meta.name,
            description: meta.description,
            metadata: meta.metadata,
            headers: meta.headers,
        };
        self.store
            .update_metadata(name, update)
            .await
            .map_err(|e| ObjectError::nats("update", name, e))
    }

    /// The current info of `name`, `None` when there is none or it was deleted.
    pub(super) async fn find(&self, name: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        valid(name)?;
        let found = self
            .traced(&self.meta_subject(name), self.store.info(name))
            .await;
        match found {
            Ok(info) if info.deleted => Ok(None),
            Ok(info) => Ok(Some(info)),
            Err(e) if e.kind() == nats_objects::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(ObjectError::nats("info", name, e)),
        }
    }

    /// The subject of `name`'s info: `$O.<bucket>.M.<name in url-safe base64>`.
    pub(super) fn meta_subject(&self, name: &str) -> String {
        format!("$O.{}.M.{}", self.bucket, URL_SAFE.encode(name))
    }

    /// Runs the read `op` under a request span on `subject` and the request metrics.
    async fn traced<R, E: std::fmt::Display>(
        &self,
        subject: &str,
        op: impl std::future::Future<Output = Result<R, E>>,
    ) -> Result<R, E> {
        self.client.traced_read(subject, "object_store", op).await
    }
}

/// What a connection keeps of a bucket it looked up (without a client: no cycle).
pub(crate) struct Bucket {
    store: nats_objects::ObjectStore,
    stream: Stream,
}

/// An object name: anything but empty.
pub(super) fn valid(name: &str) -> Result<(), ObjectError> {
    match name.is_empty() {
        true => Err(ObjectError::InvalidName {
            name: name.into(),
            reason: "empty",
        }),
        false => Ok(()),
    }
}
