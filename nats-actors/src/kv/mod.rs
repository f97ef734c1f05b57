//! Key-value buckets: declared in code ([`RuntimeBuilder::kv`](crate::RuntimeBuilder::kv)),
//! created or updated at start like streams, and used through a typed [`Kv`] handle whose
//! values go through the codecs and whose compare-and-set conflicts say the current revision.
//!
//! ```no_run
//! use std::time::Duration;
//! use nats_actors::kv::KvConfig;
//! use nats_actors::prelude::*;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder()
//!     .kv(KvConfig {
//!         bucket: "sessions".into(),
//!         history: 5,
//!         max_age: Duration::from_secs(3600),
//!         ..Default::default()
//!     })
//!     .start()
//!     .await?;
//! let sessions = runtime.client().kv::<String>("sessions").await?;
//! sessions.put("u-7", &"eu-west".to_string()).await?;
//! assert_eq!(sessions.get("u-7").await?.as_deref(), Some("eu-west"));
//! # Ok(()) }
//! ```

mod declare;
mod error;
mod handle;
pub(crate) mod watch;

pub use async_nats::jetstream::kv::Config as KvConfig;
pub use error::KvError;
pub use handle::{Kv, KvEntry, KvOperation};

pub(crate) use declare::declare;
