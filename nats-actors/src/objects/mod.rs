//! Object stores: buckets of large objects declared in code
//! ([`RuntimeBuilder::object_store`](crate::RuntimeBuilder::object_store)), created or updated
//! at start like streams, and used through an [`ObjectStore`] handle that streams data in and
//! out a chunk at a time, checks every read against the object's SHA-256 digest, and whose
//! puts continue the trace of the handler that makes them. `#[object_watch(bucket = "...")]`
//! handlers see every put and delete ([`ObjectInfo`]).
//!
//! ```no_run
//! use nats_actors::objects::ObjectStoreConfig;
//! use nats_actors::prelude::*;
//! use tokio::io::AsyncReadExt;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder()
//!     .object_store(ObjectStoreConfig { bucket: "uploads".into(), ..Default::default() })
//!     .start()
//!     .await?;
//! let uploads = runtime.client().objects("uploads").await?;
//! let mut file = tokio::fs::File::open("/etc/hostname").await?;
//! let info = uploads.put("hostname", &mut file).await?;
//! let mut copy = String::new();
//! uploads.get("hostname").await?.into_async_read().read_to_string(&mut copy).await?;
//! assert_eq!(copy.len(), info.size);
//! # Ok(()) }
//! ```

mod declare;
mod error;
mod handle;
mod put;
mod read;
pub(crate) mod watch;

pub use async_nats::jetstream::object_store::{
    Config as ObjectStoreConfig, ObjectInfo, ObjectLink, ObjectMetadata,
};
pub use error::ObjectError;
pub use handle::ObjectStore;
pub use read::ObjectReader;

pub(crate) use declare::declare;
