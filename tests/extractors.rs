//! Handler arguments and return values recognised by trait, against a real server: a
//! user-written extractor in every handler kind (a missing tenant header refused with 401),
//! renamed extractors, a payload type named like an extractor, and an alias of `Result`.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_actors::jetstream::{self, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::HeaderMap;
use nats_actors::{RequestError, Subject as Subj};
use nats_actors_suite::{connect, eventually, logs, server};

/// The caller's tenant, from the `Tenant` header; a message without one is refused with 401.
struct Tenant(String);

impl<'a> FromContext<'a> for Tenant {
    type Rejection = HandlerError;
    fn from_context(ctx: &'a Context) -> Result<Self, HandlerError> {
        match ctx.header("Tenant") {
            Some(t) if !t.is_empty() => Ok(Tenant(t.to_string())),
            _ => Err(HandlerError::with_code(401, "no Tenant header")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Order {
    id: u32,
}

/// A payload type that happens to share an extractor's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Message {
    text: String,
}

type Res<T> = Result<T, HandlerError>;

#[derive(Actor, Clone, Default)]
struct Shop {
    seen: Arc<Mutex<Vec<String>>>,
    consumed: Arc<AtomicU64>,
}

#[handlers]
impl Shop {
    #[subscribe("shop.seen")]
    async fn seen(&self, tenant: Tenant, order: Order, subject: Subj) {
        let line = format!("{} {} {}", tenant.0, order.id, subject.as_str());
        self.seen.lock().unwrap().push(line);
    }

    #[request("shop.count")]
    async fn count(&self, tenant: Tenant, order: Order) -> Res<String> {
        if order.id == 0 {
            return Err(HandlerError::with_code(404, "no order 0"));
        }
        Ok(format!("{}:{}", tenant.0, order.id))
    }

    #[request("shop.echo")]
    async fn echo(&self, message: Message) -> Message {
        message
    }

    #[request("shop.maybe")]
    async fn maybe(&self, tenant: Option<Tenant>) -> String {
        tenant.map_or_else(|| "anonymous".to_string(), |t| t.0)
    }

    #[consumer(stream = "SHOP", durable = "shop", dead_letter = "SHOP_DLQ")]
    async fn consume(&self, tenant: Tenant, order: Order) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("js {} {}", tenant.0, order.id));
        self.consumed.fetch_add(1, SeqCst);
    }
}

#[derive(Service)]
#[service(name = "orders", version = "1.0.0")]
struct Orders;

#[endpoints]
impl Orders {
    #[endpoint(subject = "orders.get")]
    async fn get(&self, #[extract] tenant: Tenant, order: Order) -> Result<Order, HandlerError> {
        Ok(Order {
            id: order.id + tenant.0.len() as u32,
        })
    }
}

/// A runtime with `shop`, the service and the SHOP stream its consumer reads.
async fn start(server: &nats_actors_suite::NatsServer, shop: Shop) -> Runtime {
    Runtime::builder()
        .connect(connect(server))
        .stream(StreamConfig {
            name: "SHOP".into(),
            subjects: vec!["shop.js.>".into()],
            ..Default::default()
        })
        .actor(shop)
        .service(Orders)
        .start()
        .await
        .unwrap()
}

fn tenant(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Tenant", t);
    h.insert("Content-Type", "application/json");
    h
}

fn json<T: Serialize>(v: &T) -> bytes::Bytes {
    serde_json::to_vec(v).unwrap().into()
}

/// The error code of a failed request.
fn code(e: RequestError) -> u16 {
    match e {
        RequestError::Service { code, .. } => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_extractor_works_in_every_handler_kind_and_its_rejection_is_the_reply() {
    logs();
    let server = server();
    let shop = Shop::default();
    let runtime = start(&server, shop.clone()).await;
    let client = runtime.client();

    // Request: the tenant reaches the handler; without it, a 401 error reply.
    let reply = client
        .request_bytes("shop.count", tenant("acme"), json(&Order { id: 7 }))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<String>(&reply.payload).unwrap(),
        "acme:7"
    );
    let refused = client
        .request::<String, _>("shop.count", &Order { id: 7 })
        .await
        .unwrap_err();
    assert_eq!(code(refused), 401);
    assert_eq!(runtime.stats().handler("Shop::count").unwrap().rejected, 1);

    // Option<extractor>: a rejection is None.
    let anon: String = client.request("shop.maybe", &()).await.unwrap();
    assert_eq!(anon, "anonymous");
    let named = client
        .request_bytes("shop.maybe", tenant("zeta"), json(&()))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<String>(&named.payload).unwrap(),
        "zeta"
    );

    // Service endpoint: the same extractor; the payload is what the typed client sends.
    let got = OrdersClient::new(client).get(&Order { id: 1 }).await;
    assert_eq!(code(got.unwrap_err()), 401);
    let reply = client
        .request_bytes("orders.get", tenant("abc"), json(&Order { id: 1 }))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Order>(&reply.payload).unwrap(),
        Order { id: 4 }
    );

    // Subscription: refused messages are counted and never reach the handler.
    client
        .publish_bytes("shop.seen", tenant("acme"), json(&Order { id: 1 }))
        .await
        .unwrap();
    client.publish("shop.seen", &Order { id: 2 }).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            let s = runtime.stats();
            let h = s.handler("Shop::seen").unwrap();
            h.handled + h.rejected == 2
        })
        .await
    );
    assert_eq!(runtime.stats().handler("Shop::seen").unwrap().rejected, 1);

    // JetStream consumer: accepted and acked with the tenant, dead-lettered without it.
    let js = client.jetstream();
    js.publish_with_headers("shop.js.a", tenant("acme"), json(&Order { id: 3 }))
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("shop.js.b", json(&Order { id: 4 }))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            runtime
                .stats()
                .handler("Shop::consume")
                .unwrap()
                .dead_lettered
                == 1
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            shop.consumed.load(SeqCst) == 1
        })
        .await
    );
    let letters = jetstream::dead_letters(client, "SHOP_DLQ", 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject, "shop.js.b");
    assert_eq!(letters[0].error, "no Tenant header");

    let seen = shop.seen.lock().unwrap().clone();
    assert_eq!(seen, ["acme 1 shop.seen", "js acme 3"]);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_names_do_not_change_what_an_argument_or_a_return_value_is() {
    logs();
    let server = server();
    let runtime = start(&server, Shop::default()).await;
    let client = runtime.client();

    // A payload struct named `Message` is the payload, not the NATS message.
    let m = Message {
        text: "hello".into(),
    };
    let back: Message = client.request("shop.echo", &m).await.unwrap();
    assert_eq!(back, m);

    // `Res<T>` (an alias of Result) replies with the value, not `{"Ok": ...}`, and an `Err`
    // is an error reply with its code.
    let reply = client
        .request_bytes("shop.count", tenant("t"), json(&Order { id: 5 }))
        .await
        .unwrap();
    assert_eq!(reply.payload.as_ref(), br#""t:5""#);
    let err = client
        .request_bytes("shop.count", tenant("t"), json(&Order { id: 0 }))
        .await
        .unwrap_err();
    assert_eq!(code(err), 404);
    runtime.shutdown().await;
}
