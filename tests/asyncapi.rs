//! The AsyncAPI 3.0 document of a runtime, validated by the AsyncAPI project's own parser
//! (`@asyncapi/parser`, installed by `make asyncapi-env`, which `make test` runs): channels with
//! the parameters of their subject templates, receive operations with queue-group bindings,
//! replies, JetStream consumers, keyed commands and asks, service endpoints, declared publishes,
//! and the payload schemas of types that have them. `NATS_ACTORS_ASYNCAPI` makes a binary print it and exit.

#[path = "common/jetstream.rs"]
#[allow(dead_code)]
mod jetstream;

use std::process::Command;

use nats_actors::prelude::*;
use nats_actors_suite::{connect, logs, server};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Order {
    id: u64,
    lines: Vec<Line>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Line {
    sku: String,
    qty: u32,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Quote {
    cents: u64,
}

/// No JSON Schema: listed without a payload schema.
#[derive(Debug, Serialize, Deserialize)]
struct Opaque {
    blob: Vec<u8>,
}

#[derive(Actor)]
#[actor(queue = "shop")]
struct Shop;

#[handlers]
impl Shop {
    #[subscribe("shop.{region}.orders.{id}")]
    async fn placed(&self, _order: Order) {}

    #[request("shop.quote")]
    async fn quote(&self, order: Order) -> Result<Quote, HandlerError> {
        Ok(Quote {
            cents: order.lines.len() as u64,
        })
    }

    #[subscribe("shop.audit.>", codec = "msgpack", queue = "auditors")]
    async fn audit(&self, _raw: Opaque) {}

    #[consumer(stream = "SHIP", durable = "shipper", filter = "ship.*")]
    async fn ship(&self, _order: Order) {}
}

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "cart.{id}")]
struct Cart {
    items: u32,
}

#[handlers]
impl Cart {
    #[command("cart.{id}.add")]
    async fn add(&mut self, line: Line) {
        self.items += line.qty;
    }

    #[ask("cart.{id}.count")]
    async fn count(&self) -> u32 {
        self.items
    }
}

#[derive(Service)]
#[service(name = "pricing", version = "2.0.0")]
struct Pricing;

#[endpoints]
impl Pricing {
    #[endpoint(subject = "pricing.lookup")]
    async fn lookup(&self, line: Line) -> Quote {
        Quote {
            cents: u64::from(line.qty) * 100,
        }
    }
}

/// `doc` validated by @asyncapi/parser: its report, which the test prints.
fn validate(doc: &Value) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/.tools/asyncapi/validate.mjs");
    assert!(
        std::path::Path::new(&script).exists(),
        "{script} is missing: run `make asyncapi-env` (make test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("asyncapi.json");
    std::fs::write(&file, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "@asyncapi/parser refused the document:\n{report}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        serde_json::to_string_pretty(doc).unwrap()
    );
    report
}

/// Published by `Shop`, declared for the document.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Shipped {
    order: u64,
}

fn builder() -> nats_actors::RuntimeBuilder {
    Runtime::builder()
        .publishes::<Shipped>("shop.{region}.shipped")
        .stream(jetstream::stream("SHIP", "ship.>"))
        .actor(Shop)
        .actor(Cart::default())
        .service(Pricing)
}

#[test]
fn the_document_lists_every_handler_and_the_parser_accepts_it() {
    let doc = builder().asyncapi();
    let report = validate(&doc);
    println!("{report}");
    assert!(report.contains("valid AsyncAPI 3.0.0"), "{report}");

    let channel = &doc["channels"]["shop.region.orders.id"];
    assert_eq!(channel["address"], "shop.{region}.orders.{id}");
    let params: Vec<&String> = channel["parameters"].as_object().unwrap().keys().collect();
    assert_eq!(params, ["id", "region"]);

    let placed = &doc["operations"]["Shop.placed"];
    assert_eq!(placed["action"], "receive");
    assert_eq!(placed["bindings"]["nats"]["queue"], "shop");
    let order = &channel["messages"]["Shop.placed"];
    assert_eq!(order["contentType"], "application/json");
    assert_eq!(order["payload"]["$ref"], "#/components/schemas/Order");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Order"]["properties"]["lines"]["items"]["$ref"],
        "#/components/schemas/Line"
    );
    assert!(
        schemas["Line"]["properties"]["sku"].is_object(),
        "{schemas}"
    );

    // A request answers on the requester's inbox: a reply channel without an address.
    let quote = &doc["operations"]["Shop.quote"];
    let reply_channel = quote["reply"]["channel"]["$ref"].as_str().unwrap();
    let reply_id = reply_channel.rsplit('/').next().unwrap();
    assert_eq!(doc["channels"][reply_id]["address"], Value::Null);
    assert_eq!(
        doc["channels"][reply_id]["messages"]["reply"]["payload"]["$ref"],
        "#/components/schemas/Quote"
    );

    // Its own queue group and codec; a type without a schema has no payload schema.
    let audit = &doc["operations"]["Shop.audit"];
    assert_eq!(audit["bindings"]["nats"]["queue"], "auditors");
    let opaque = &doc["channels"]["shop.audit._"]["messages"]["Shop.audit"];
    assert_eq!(opaque["contentType"], "application/msgpack");
    assert!(opaque.get("payload").is_none(), "{opaque}");

    let ship = &doc["operations"]["Shop.ship"];
    assert_eq!(ship["x-nats-jetstream"]["stream"], "SHIP");
    assert_eq!(ship["x-nats-jetstream"]["durable"], "shipper");
    assert_eq!(doc["channels"]["ship._"]["address"], "ship.*");

    // A keyed actor's command and ask, on the subjects its callers use.
    assert_eq!(doc["channels"]["cart.id.add"]["address"], "cart.{id}.add");
    assert!(doc["operations"]["Cart.add"].get("reply").is_none());
    let count = &doc["operations"]["Cart.count"];
    let reply_id = count["reply"]["channel"]["$ref"].as_str().unwrap();
    let reply_id = reply_id.rsplit('/').next().unwrap();
    assert_eq!(
        doc["channels"][reply_id]["messages"]["reply"]["payload"]["type"],
        "integer"
    );

    // A service endpoint is a request handler of its service.
    let lookup = &doc["operations"]["pricing.lookup"];
    assert_eq!(lookup["action"], "receive");
    assert!(lookup.get("reply").is_some(), "{lookup}");
    assert_eq!(
        doc["channels"]["pricing.lookup"]["address"],
        "pricing.lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_runtime_names_its_server() {
    logs();
    let server = server();
    let runtime = builder().connect(connect(&server)).start().await.unwrap();
    let doc = runtime.asyncapi();
    validate(&doc);
    let host = doc["servers"]["nats"]["host"].as_str().unwrap();
    assert!(host.ends_with(&format!(":{}", server.port())), "{host}");
    assert_eq!(doc["servers"]["nats"]["protocol"], "nats");
    assert_eq!(doc["operations"].as_object().unwrap().len(), 8);
    runtime.shutdown().await;
}

#[test]
fn the_environment_variable_prints_the_document_and_exits_before_connecting() {
    // Nothing listens on port 1: the binary would fail to connect.
    let out = Command::new(env!("CARGO_BIN_EXE_keyed-host"))
        .arg("nats://127.0.0.1:1")
        .env("NATS_ACTORS_ASYNCAPI", "1")
        .env("OTEL_SERVICE_NAME", "ledger")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is the document");
    assert_eq!(doc["info"]["title"], "ledger");
    assert!(doc["operations"]["Account.deposit"].is_object(), "{doc}");
    validate(&doc);
}
