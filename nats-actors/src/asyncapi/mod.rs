//! An [AsyncAPI 3.0](https://www.asyncapi.com/docs/reference/specification/v3.0.0) document
//! of what a runtime's actors receive and answer, made from their declarations:
//! [`Runtime::asyncapi`](crate::Runtime::asyncapi) and
//! [`RuntimeBuilder::asyncapi`](crate::RuntimeBuilder::asyncapi).
//!
//! - Each subject template is a channel; its `{param}`s are the channel's parameters (`*` and
//!   `>` stay in the address, as NATS writes them).
//! - Each handler is a `receive` operation on its channel, and what
//!   [`RuntimeBuilder::publishes`](crate::RuntimeBuilder::publishes) declares a `send`. A
//!   queue group is its NATS binding; a JetStream consumer names its stream and durable in
//!   `x-nats-jetstream`.
//! - A handler that answers (`#[request]`, `#[ask]`, a service endpoint) has a reply, on a
//!   channel of its own with no address (NATS sends it to the requester's inbox).
//! - A payload or reply type that implements `schemars::JsonSchema` (feature `service`) is
//!   described by its schema, in `components.schemas`; any other is listed without one.
//! - The content type is the handler's codec (`application/json`, `application/msgpack`).
//!
//! KV and object-store watchers read buckets, not channels a client sends to: they are not in
//! the document.
//!
//! Setting `NATS_ACTORS_ASYNCAPI` (to any value) makes
//! [`RuntimeBuilder::start`](crate::RuntimeBuilder::start) print the document as JSON to
//! stdout and exit the process with status 0, before it connects: any nats-actors binary can
//! describe itself, `NATS_ACTORS_ASYNCAPI=1 ./my-service > asyncapi.json`.

mod schema;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

#[cfg(feature = "service")]
pub(crate) use schema::schema_of;
#[doc(hidden)]
pub use schema::{SchemaOf, Schemas};

use crate::codec::Codec;

/// The environment variable that makes `start` print the document and exit.
pub(crate) const PRINT_VAR: &str = "NATS_ACTORS_ASYNCAPI";

/// One handler as the document sees it.
#[derive(Clone, Debug)]
pub(crate) struct Declared {
    pub(crate) actor: &'static str,
    pub(crate) method: &'static str,
    /// The handler attribute: `subscribe`, `request`, `consumer`, `command`, `ask`; `publish`
    /// for what [`RuntimeBuilder::publishes`](crate::RuntimeBuilder::publishes) declared.
    pub(crate) attribute: &'static str,
    /// The subject template; `None` for a channel with no fixed address (a consumer reading a whole stream).
    pub(crate) address: Option<&'static str>,
    pub(crate) replies: bool,
    pub(crate) queue: Option<&'static str>,
    pub(crate) codec: Codec,
    pub(crate) payload: Option<SchemaOf>,
    pub(crate) reply: Option<SchemaOf>,
    /// A consumer's stream and durable name.
    pub(crate) jetstream: Option<(&'static str, Option<&'static str>)>,
}

/// The handler kinds the document lists (watchers read buckets, not channels).
pub(crate) fn listed(attribute: &str) -> bool {
    matches!(
        attribute,
        "subscribe" | "request" | "consumer" | "command" | "ask" | "publish"
    )
}

/// The document's `info` and, when connected, its server.
#[derive(Clone, Debug)]
pub(crate) struct About {
    pub(crate) title: String,
    pub(crate) version: String,
    /// `host:port` of the server connected to.
    pub(crate) server: Option<String>,
}

impl About {
    /// The program's name (`OTEL_SERVICE_NAME` if set, else the executable's), version 0.0.0.
    pub(crate) fn of_process() -> Self {
        let title = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                let exe = std::env::current_exe().ok()?;
                Some(exe.file_stem()?.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "nats-actors service".into());
        Self {
            title,
            version: "0.0.0".into(),
            server: None,
        }
    }
}

/// The AsyncAPI 3.0 document of `declared`.
pub(crate) fn document(about: &About, declared: &[Declared]) -> Value {
    let mut schemas = Schemas::new();
    let mut channels = BTreeMap::<String, Map<String, Value>>::new();
    let mut operations = Map::new();
    let mut ids = Ids::default();
    for d in declared.iter().filter(|d| listed(d.attribute)) {
        let channel_id = ids.channel(d.address);
        let channel = channels
            .entry(channel_id.clone())
            .or_insert_with(|| channel(d.address));
        let message_id = ident(&format!("{}.{}", d.actor, d.method));
        let sends = d.attribute == "publish";
        let (title, action, summary) = match sends {
            true => (
                format!("published on {}", d.method),
                "send",
                format!("publishes on {}", d.method),
            ),
            false => (
                format!("{}::{} payload", d.actor, d.method),
                "receive",
                format!("#[{}] {}::{}", d.attribute, d.actor, d.method),
            ),
        };
        let message = message_object(&title, d.codec, d.payload.map(|s| s(&mut schemas)));
        messages(channel).insert(message_id.clone(), message);
        let op_id = ids.operation(&message_id);
        let mut op = json!({
            "action": action,
            "summary": summary,
            "channel": { "$ref": format!("#/channels/{channel_id}") },
            "messages": [ { "$ref": format!("#/channels/{channel_id}/messages/{message_id}") } ],
        });
        if let Some(queue) = d.queue {
            op["bindings"] = json!({ "nats": { "queue": queue, "bindingVersion": "0.1.0" } });
        }
        if let Some((stream, durable)) = d.jetstream {
            op["x-nats-jetstream"] = json!({ "stream": stream, "durable": durable });
        }
        if d.replies {
            let reply_id = ids.channel_named(&format!("{op_id}_reply"));
            let mut reply = Map::new();
            reply.insert("address".into(), Value::Null);
            reply.insert(
                "description".into(),
                "The reply, sent to the requester's reply subject (an inbox).".into(),
            );
            let message = message_object(
                &format!("{}::{} reply", d.actor, d.method),
                d.codec,
                d.reply.map(|s| s(&mut schemas)),
            );
            messages(&mut reply).insert("reply".into(), message);
            channels.insert(reply_id.clone(), reply);
            op["reply"] = json!({
                "channel": { "$ref": format!("#/channels/{reply_id}") },
                "messages": [ { "$ref": format!("#/channels/{reply_id}/messages/reply") } ],
            });
        }
        operations.insert(op_id, op);
    }
    let mut doc = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": about.title,
            "version": about.version,
            "description": "What this service's nats-actors handlers receive and answer.",
        },
        "defaultContentType": Codec::Json.content_type(),
        "channels": channels,
        "operations": operations,
        "components": { "schemas": schemas.components() },
    });
    if let Some(server) = &about.server {
        doc["servers"] = json!({ "nats": { "host": server, "protocol": "nats" } });
    }
    doc
}

/// A channel at `address` (no fixed address: `None`), with its parameters.
fn channel(address: Option<&str>) -> Map<String, Value> {
    let mut channel = Map::new();
    channel.insert("address".into(), address.map_or(Value::Null, Value::from));
    let params: Map<String, Value> = address
        .map(parameters)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let description = format!("The `{p}` token of the subject.");
            (p, json!({ "description": description }))
        })
        .collect();
    if !params.is_empty() {
        channel.insert("parameters".into(), Value::Object(params));
    }
    channel.insert("messages".into(), Value::Object(Map::new()));
    channel
}

fn messages(channel: &mut Map<String, Value>) -> &mut Map<String, Value> {
    channel
        .entry("messages")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("messages is an object")
}

fn message_object(title: &str, codec: Codec, payload: Option<Value>) -> Value {
    let mut m = json!({ "title": title, "contentType": codec.content_type() });
    match payload {
        Some(schema) => m["payload"] = schema,
        None => {
            m["description"] =
                "Its type has no JSON Schema (derive schemars::JsonSchema to describe it).".into()
        }
    }
    m
}

/// The `{name}` tokens of a subject template, in order.
fn parameters(template: &str) -> Vec<String> {
    template
        .split('.')
        .filter_map(|t| t.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

/// An id AsyncAPI accepts (`[A-Za-z0-9_.-]`): braces are left out, other characters become `_`.
fn ident(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .collect()
}

/// Channel and operation ids, unique in the document.
#[derive(Default)]
struct Ids {
    /// Channel ids by address, so that handlers of one subject share its channel.
    by_address: BTreeMap<Option<&'static str>, String>,
    channels: BTreeSet<String>,
    operations: BTreeSet<String>,
}

impl Ids {
    fn channel(&mut self, address: Option<&'static str>) -> String {
        if let Some(id) = self.by_address.get(&address) {
            // A consumer without a fixed address gets a channel of its own each time.
            if address.is_some() {
                return id.clone();
            }
        }
        let base = match address {
            Some(a) => ident(a),
            None => "stream".into(),
        };
        let id = unique(&mut self.channels, base);
        self.by_address.insert(address, id.clone());
        id
    }

    fn channel_named(&mut self, name: &str) -> String {
        unique(&mut self.channels, ident(name))
    }

    fn operation(&mut self, name: &str) -> String {
        unique(&mut self.operations, ident(name))
    }
}

/// `base`, or `base_2`, `base_3`... the first not in `taken`, which it is added to.
fn unique(taken: &mut BTreeSet<String>, base: String) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}_{n}");
        n += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_from_the_template() {
        assert_eq!(parameters("orders.{region}.*.{id}"), ["region", "id"]);
        assert!(parameters("orders.>").is_empty());
    }

    #[test]
    fn ids_are_unique_and_shared_by_address() {
        let mut ids = Ids::default();
        assert_eq!(ids.channel(Some("orders.{id}")), "orders.id");
        assert_eq!(ids.channel(Some("orders.{id}")), "orders.id");
        assert_eq!(ids.channel(Some("orders.id")), "orders.id_2");
        assert_eq!(ids.channel(Some("a.*.>")), "a._._");
        assert_eq!(ids.channel(None), "stream");
        assert_eq!(ids.channel(None), "stream_2");
        assert_eq!(
            ids.operation("orders.id"),
            "orders.id",
            "a namespace of its own"
        );
    }
}
