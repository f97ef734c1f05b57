//! NATS services (the Service API of ADR-32): discoverable, monitored request/reply endpoints
//! declared with `#[derive(Service)]` and `#[endpoints]`.
//!
//! Endpoints are request handlers run by the same workers as `#[request]` handlers: the same
//! extractors, codecs, spans, metrics, concurrency, panic handling and two-phase graceful drain.
//! The runtime answers discovery itself, on `$SRV.{PING,INFO,STATS}`, `$SRV.{verb}.{name}` and
//! `$SRV.{verb}.{name}.{id}`, with the `io.nats.micro.v1.*_response` documents every NATS client
//! and the `nats micro` CLI understand.
//!
//! ```no_run
//! use nats_actors::prelude::*;
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! struct GetUser { id: u64 }
//!
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! struct User { id: u64, name: String }
//!
//! #[derive(Service)]
//! #[service(name = "users", version = "1.2.0", description = "User accounts",
//!           metadata(owner = "accounts-team"))]
//! struct Users;
//!
//! #[endpoints]
//! impl Users {
//!     #[endpoint(subject = "users.get", group = "v1")]   // answers v1.users.get, queue group q
//!     async fn get(&self, req: GetUser) -> Result<User, HandlerError> {
//!         match req.id {
//!             1 => Ok(User { id: 1, name: "Ada".into() }),
//!             _ => Err(HandlerError::with_code(404, "no such user")),
//!         }
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder().connect_from_env().service(Users).start().await?;
//! // The same declaration generated a typed client:
//! let user = UsersClient::new(runtime.client()).get(&GetUser { id: 1 }).await?;
//! assert_eq!(user.name, "Ada");
//! # Ok(()) }
//! ```

mod discovery;
#[cfg(feature = "telemetry")]
mod metrics;
mod start;

pub(crate) use start::ServiceStarter;

use std::borrow::Cow;

use crate::actor::Actor;

/// A NATS service: implemented by `#[derive(Service)]` together with `#[endpoints]` on its
/// `impl` block; run it with [`RuntimeBuilder::service`](crate::RuntimeBuilder::service).
///
/// - `#[service(version = "1.2.0", name = "users", description = "...", metadata(k = "v"),
///   queue_group = "...")]`: the version (SemVer) is required; the name (`[A-Za-z0-9_-]+`)
///   defaults to the type name; both are checked at compile time. Endpoints share the queue
///   group `q` unless the service or the endpoint names another.
/// - `#[endpoint(subject = "...", name = "...", group = "...", queue_group = "...",
///   metadata(k = "v"), codec = "msgpack", concurrency = N)]`: every option may be left out; the
///   name defaults to the method name, the subject to the name, and the group prefixes it.
/// - An endpoint method is a `#[request]` handler: arguments are extracted by type, the return
///   value is the reply, an error is a [`HandlerError`](crate::HandlerError) (its code and description become the
///   `Nats-Service-Error-Code` and `Nats-Service-Error` headers and count in the endpoint's
///   `num_errors` and `last_error`), a payload that does not decode is
///   answered with code 400 and a panic with code 500.
/// - The payload and reply types implement [`schemars::JsonSchema`]: INFO lists them in the
///   endpoint metadata as `request_type`, `request_schema`, `response_type` and
///   `response_schema` (the schemas as JSON text), so a caller can see what to send.
/// - `#[endpoints]` also generates `{Type}Client`, one method per endpoint.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Service)]
/// #[service(version = "0.1.0")]
/// struct Echo;
///
/// #[endpoints]
/// impl Echo {
///     #[endpoint]                       // name and subject `echo`, queue group `q`
///     async fn echo(&self, text: String) -> String {
///         text
///     }
/// }
///
/// # async fn run() -> Result<(), nats_actors::Error> {
/// Runtime::builder().connect_from_env().service(Echo).run_until_shutdown_signal().await
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a service",
    label = "add #[derive(Service)] to its struct and #[endpoints] to its impl block"
)]
pub trait Service: Actor {
    #[doc(hidden)]
    fn info() -> ServiceInfo;
    #[doc(hidden)]
    fn endpoints() -> Vec<EndpointSpec>;
}

/// The options of `#[service(...)]`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ServiceInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub metadata: &'static [(&'static str, &'static str)],
}

/// What `#[endpoint(...)]` adds to a request handler.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EndpointSpec {
    /// The handler method.
    pub method: &'static str,
    pub name: &'static str,
    pub metadata: &'static [(&'static str, &'static str)],
    pub request: Option<fn() -> TypeSchema>,
    pub response: Option<fn() -> TypeSchema>,
}

/// Implemented by `#[endpoints]` for the type of its impl block.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no endpoints",
    label = "add #[endpoints] to an impl block of `{Self}` with #[endpoint] methods"
)]
pub trait Endpoints: crate::handler::Handlers + Sized {
    fn endpoints() -> Vec<EndpointSpec>;

    /// The endpoints' request handlers, reached through this trait so that a service without
    /// `#[endpoints]` gets one error.
    fn endpoint_handlers() -> Vec<crate::handler::HandlerSpec<Self>> {
        <Self as crate::handler::Handlers>::handlers()
    }
}

/// A type's name and JSON Schema (as JSON text).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct TypeSchema {
    pub name: Cow<'static, str>,
    pub schema: String,
}

/// A payload or reply type of an endpoint.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema, which endpoint payloads and replies need",
    label = "add #[derive(JsonSchema)] to this type",
    note = "discovery (INFO) publishes the schema of every endpoint's payload and reply; schemars::JsonSchema provides it"
)]
pub trait EndpointType {
    fn type_schema() -> TypeSchema;
}

impl<T: schemars::JsonSchema + ?Sized> EndpointType for T {
    fn type_schema() -> TypeSchema {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
        TypeSchema {
            name: T::schema_name(),
            schema: serde_json::to_string(&schema).unwrap_or_default(),
        }
    }
}
