//! The AsyncAPI document of a runtime's actors (see [`crate::asyncapi`]), before and after it
//! starts, and its printing when `NATS_ACTORS_ASYNCAPI` asks for it.

use serde_json::Value;

use super::start::Starter;
use super::{Runtime, RuntimeBuilder};
use crate::asyncapi::{self, About, Declared};

/// The handlers of `actors`; when `NATS_ACTORS_ASYNCAPI` is set, prints their document to
/// stdout and exits the process with status 0 instead.
pub(super) fn print_if_asked(actors: &[Box<dyn Starter>]) -> Vec<Declared> {
    let declared = declared(actors);
    if std::env::var_os(asyncapi::PRINT_VAR).is_some() {
        let doc = asyncapi::document(&About::of_process(), &declared);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        std::process::exit(0);
    }
    declared
}

fn declared(actors: &[Box<dyn Starter>]) -> Vec<Declared> {
    let mut out = Vec::new();
    for actor in actors {
        actor.declare(&mut out);
    }
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
        asyncapi::document(&About::of_process(), &declared(&self.actors))
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
