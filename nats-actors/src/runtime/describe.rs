//! The AsyncAPI document of a runtime's actors (see [`crate::asyncapi`]), before and after it
//! starts, and its printing when `NATS_ACTORS_ASYNCAPI` asks for it.

use serde_json::Value;

use super::{Runtime, RuntimeBuilder};
use crate::asyncapi::{self, About, Declared};

/// The handlers of `actors`; when `NATS_ACTORS_ASYNCAPI` is set, prints their document to
/// stdout and exits the process with status 0 instead.
pub(super) fn print_if_asked(builder: &RuntimeBuilder) -> Vec<Declared> {
    let declared = declared(builder);
    if std::env::var_os(asyncapi::PRINT_VAR).is_some() {
        let doc = asyncapi::document(&About::of_process(), &declared);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        std::process::exit(0);
    }
    declared
}

fn declared(builder: &RuntimeBuilder) -> Vec<Declared> {
    let mut out = Vec::new();
    for actor in &builder.actors {
        actor.declare(&mut out);
    }
    out.extend(builder.published.iter().cloned());
    out
}

impl RuntimeBuilder {
    /// The [AsyncAPI 3.0](crate::asyncapi) document of the actors added so far, without
    /// connecting. `info.title` is `OTEL_SERVICE_NAME`, else the executable's name;
    /// `info.version` is `0.0.0`: set your own on the value.
    ///
    /// ```
    /// use nats_actors::prelude::*;
    ///
    /// #[derive(Actor)]
    /// struct Orders;
    ///
    /// #[handlers]
    /// impl Orders {
    ///     #[subscribe("orders.{region}.created", queue = "orders")]
    ///     async fn created(&self, id: u64) {}
    /// }
    ///
    /// let mut doc = Runtime::builder().actor(Orders).asyncapi();
    /// doc["info"]["version"] = "1.4.0".into();
    /// assert_eq!(doc["asyncapi"], "3.0.0");
    /// let channel = &doc["channels"]["orders.region.created"];
    /// assert_eq!(channel["address"], "orders.{region}.created");
    /// assert!(channel["parameters"]["region"].is_object());
    /// let op = &doc["operations"]["Orders.created"];
    /// assert_eq!(op["action"], "receive");
    /// assert_eq!(op["bindings"]["nats"]["queue"], "orders");
    /// ```
    pub fn asyncapi(&self) -> Value {
        asyncapi::document(&About::of_process(), &declared(self))
    }

    /// Declares that the service publishes `T` (JSON) on `subject`, for the AsyncAPI document:
    /// a `send` operation with `T`'s schema. What handlers publish through their `Context` is
    /// known only when they run, so the document lists it only once declared here. Feature
    /// `service` (for `schemars`).
    ///
    /// ```
    /// use nats_actors::prelude::*;
    ///
    /// #[derive(Serialize, JsonSchema)]
    /// struct Shipped { order: u64 }
    ///
    /// let doc = Runtime::builder()
    ///     .publishes::<Shipped>("orders.{id}.shipped")
    ///     .asyncapi();
    /// let op = &doc["operations"]["publish.orders.id.shipped"];
    /// assert_eq!(op["action"], "send");
    /// assert_eq!(doc["channels"]["orders.id.shipped"]["address"], "orders.{id}.shipped");
    /// ```
    #[cfg(feature = "service")]
    pub fn publishes<T: schemars::JsonSchema>(mut self, subject: &'static str) -> Self {
        self.published.push(Declared {
            actor: "publish",
            method: subject,
            attribute: "publish",
            address: Some(subject),
            replies: false,
            queue: None,
            codec: crate::codec::Codec::Json,
            payload: Some(asyncapi::schema_of::<T>),
            reply: None,
            jetstream: None,
        });
        self
    }
}

impl Runtime {
    /// The [AsyncAPI 3.0](crate::asyncapi) document of this runtime's actors, with the server
    /// it is connected to. As [`RuntimeBuilder::asyncapi`] otherwise.
    ///
    /// ```no_run
    /// # async fn demo(runtime: nats_actors::Runtime) {
    /// let doc = runtime.asyncapi();
    /// std::fs::write("asyncapi.json", doc.to_string()).unwrap();
    /// # }
    /// ```
    pub fn asyncapi(&self) -> Value {
        let info = self.client.nats().server_info();
        let about = About {
            server: Some(format!("{}:{}", info.host, info.port)),
            ..About::of_process()
        };
        asyncapi::document(&about, &self.declared)
    }
}
