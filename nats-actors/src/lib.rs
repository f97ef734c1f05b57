//! # nats-actors
//!
//! Build NATS services by annotating plain Rust types. `#[derive(Actor)]` on a struct and
//! `#[handlers]` on its `impl` block turn `#[subscribe("subject")]` and `#[request("subject")]`
//! methods into subscriptions with typed payloads, subject parameters, queue groups and replies;
//! the [`Runtime`] starts them, supervises them and shuts down without losing in-flight work.
//!
//! ```no_run
//! use nats_actors::prelude::*;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct OrderCreated { order_id: String, amount_cents: u64 }
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct StockLevel { sku: String, available: u32 }
//!
//! #[derive(Actor, Default)]
//! #[actor(queue = "inventory")]                  // default queue group of its handlers
//! struct Inventory { stock: DashMap<String, u32> }
//!
//! #[handlers]
//! impl Inventory {
//!     #[subscribe("orders.created")]              // typed payload, JSON unless Content-Type says
//!     async fn on_created(&self, order: OrderCreated) -> Result<(), HandlerError> {
//!         println!("order {} for {} cents", order.order_id, order.amount_cents);
//!         Ok(())
//!     }
//!
//!     #[subscribe("orders.{region}.updated")]     // subscribes orders.*.updated
//!     async fn on_updated(&self, region: Param<String>, ctx: &Context) -> Result<(), HandlerError> {
//!         ctx.publish("audit.order", &format!("updated in {}", *region)).await?;
//!         Ok(())
//!     }
//!
//!     #[request("inventory.{sku}.level")]         // the return value is the reply
//!     async fn level(&self, sku: Param<String>) -> Result<StockLevel, HandlerError> {
//!         let available = *self.stock.get(sku.as_str()).ok_or_else(|| HandlerError::with_code(404, "unknown sku"))?;
//!         Ok(StockLevel { sku: sku.into_inner(), available })
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), nats_actors::Error> {
//!     Runtime::builder()
//!         .connect_from_env()                     // NATS_URL, credentials, TLS
//!         .actor(Inventory::default())
//!         .run_until_shutdown_signal()            // SIGINT/SIGTERM: drain, finish, flush
//!         .await
//! }
//! ```
//!
//! ## Semantics
//! - A handler takes one message at a time, in arrival order, unless it says
//!   `concurrency = N`. `&mut self` handlers of an actor run one at a time against each other;
//!   `&self` handlers may run side by side.
//! - Arguments are extracted by the traits of their types, never their names: the payload (any
//!   `serde::Deserialize` type), [`Param<T>`] named after a `{name}` of the subject, and the
//!   [`FromContext`] extractors: `&`[`Context`], [`HeaderMap`], [`Message`], [`Bytes`],
//!   [`Subject`], `Delivery` and your own.
//! - A payload that cannot be decoded, or a parameter that does not parse, never reaches the
//!   handler: a request gets an error reply with code 400, a subscription logs and counts it.
//! - A handler error on a request becomes an error reply (`Nats-Service-Error`,
//!   `Nats-Service-Error-Code`); a panic is caught, counted, and answered with code 500.
//! - While a handler is busy its messages wait in its [`Buffer`]; past it, a new message is
//!   dropped, counted exactly ([`HandlerStats::dropped`]) and logged: never silent.
//!
//! ## Cargo features
//! `jetstream` (`#[consumer]`, declared streams, `js_publish`, dead letters), `service` (the
//! NATS Service API: `#[derive(Service)]`, `#[endpoints]`), `telemetry` (OpenTelemetry spans,
//! metrics and OTLP export), `compression` (gzip and zstd payloads, see [`compression`]) and
//! `websockets` are on by default; with `default-features = false` the build has core pub/sub
//! and request/reply only. `testing` starts real `nats-server` processes for tests; `health`
//! serves `/livez`, `/readyz` and `/metrics`.

pub use async_nats::{HeaderMap, Message, Subject};
pub use bytes::Bytes;
pub use nats_actors_macros::{endpoints, handlers, Actor, Service};

#[doc(hidden)]
pub mod __private;
mod actor;
pub mod asyncapi;
mod buffer;
mod cell;
mod client;
mod clock;
mod codec;
pub mod compression;
mod context;
mod error;
mod extract;
mod handler;
mod headers;
#[cfg(feature = "jetstream")]
pub mod jetstream;
#[cfg(feature = "jetstream")]
pub mod keyed;
#[cfg(feature = "jetstream")]
pub mod kv;
#[cfg(feature = "jetstream")]
pub mod objects;
mod origin;
mod outcome;
mod runtime;
mod send;
#[cfg(feature = "service")]
pub mod service;
mod stats;
mod supervision;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(not(feature = "telemetry"))]
#[path = "telemetry_off.rs"]
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use actor::Actor;
pub use buffer::{Buffer, BufferError};
pub use client::{Client, DEFAULT_REQUEST_TIMEOUT};
pub use codec::{Codec, CONTENT_TYPE};
#[cfg(feature = "compression")]
pub use compression::Compression;
pub use context::Context;
pub use error::{DecodeError, EncodeError, Error, HandlerError, PublishError, RequestError};
pub use extract::{FromContext, Param};
pub use runtime::connect::{ConnectOptions, DEFAULT_URL};
pub use runtime::health::{ConnectionHealth, HandlerHealth, HandlerState, Health};
pub use runtime::{
    Runtime, RuntimeBuilder, ShutdownHandle, ShutdownReport, DEFAULT_SHUTDOWN_TIMEOUT,
};
/// JSON Schemas of endpoint payloads and replies: `#[derive(JsonSchema)]`.
#[cfg(feature = "service")]
pub use schemars::{self, JsonSchema};
#[cfg(feature = "compression")]
pub use send::Compressed;
pub use send::Sender;
#[cfg(feature = "service")]
pub use service::Service;
pub use stats::{HandlerStats, KeyedStats, Outage, Stats};

/// The names a handler module needs: `use nats_actors::prelude::*;`.
///
/// ```
/// use nats_actors::prelude::*;
/// let _ = HandlerError::bad_request("missing field");
/// ```
pub mod prelude {
    // The built-in extractors among them (`Bytes`, `HeaderMap`, `Message`, `Subject`, and
    // `Delivery` with JetStream); a type of your own with one of these names takes precedence.
    #[cfg(feature = "jetstream")]
    pub use crate::jetstream::Delivery;
    pub use crate::{
        endpoints, handlers, Actor, Bytes, Client, Codec, Context, FromContext, HandlerError,
        HeaderMap, Message, Param, Runtime, Subject,
    };
    // In scope for `ctx.publish`, `client.request`, ... under any name of the user's own.
    pub use crate::Sender as _;
    #[cfg(feature = "service")]
    pub use crate::Service;
    pub use dashmap::DashMap;
    #[cfg(feature = "service")]
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[doc = include_str!("../../docs/guide.md")]
pub mod guide {}
