//! `#[handlers(client)]`: a typed client generated from an actor's `#[request]` handlers,
//! against a real server.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::RequestError;
use nats_actors_suite::{connect, logs, server};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Check {
    sku: String,
    wanted: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Level {
    sku: String,
    enough: bool,
}

#[derive(Actor)]
#[actor(codec = "msgpack")]
struct Inventory;

#[handlers(client)]
impl Inventory {
    #[request("inv.check")]
    async fn check(&self, q: Check) -> Result<Level, HandlerError> {
        if q.sku == "missing" {
            return Err(HandlerError::with_code(404, "no such sku"));
        }
        Ok(Level {
            enough: q.wanted <= 10,
            sku: q.sku,
        })
    }

    #[request("inv.{sku}.{warehouse}.level", codec = "json")]
    async fn level(&self, sku: Param<String>, warehouse: Param<u8>) -> u32 {
        sku.len() as u32 * 100 + u32::from(*warehouse)
    }

    #[request("inv.slow")]
    async fn slow(&self) -> std::io::Result<u32> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(1)
    }

    #[subscribe("inv.events")]
    async fn not_in_the_client(&self, _n: u32) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_calls_every_request_handler_with_types() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Inventory)
        .start()
        .await
        .unwrap();
    let inventory = InventoryClient::new(runtime.client());

    let level = inventory
        .check(&Check {
            sku: "apple".into(),
            wanted: 3,
        })
        .await
        .unwrap();
    assert_eq!(
        level,
        Level {
            sku: "apple".into(),
            enough: true
        }
    );
    assert_eq!(inventory.level("pear", 7).await.unwrap(), 407);

    let err = inventory
        .check(&Check {
            sku: "missing".into(),
            wanted: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 404, description } if description == "no such sku"),
        "{err:?}"
    );

    let err = inventory.level("a.b", 1).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::InvalidSubject { .. }),
        "a parameter with a dot is refused: {err:?}"
    );
    let err = inventory.level("*", 1).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::InvalidSubject { .. }),
        "{err:?}"
    );

    let err = inventory
        .with_timeout(Duration::from_millis(50))
        .slow()
        .await
        .unwrap_err();
    assert!(matches!(&err, RequestError::Timeout { .. }), "{err:?}");
    assert_eq!(inventory.slow().await.unwrap(), 1);

    let stats = runtime.stats();
    assert_eq!(
        stats.handler("Inventory::level").unwrap().rejected,
        0,
        "the invalid subjects were never sent"
    );
    let client = runtime.client().clone();
    runtime.shutdown().await;
    // The runtime closed its connection: the client reports it, distinctly.
    let err = InventoryClient::new(&client)
        .check(&Check {
            sku: "a".into(),
            wanted: 1,
        })
        .await
        .unwrap_err();
    assert!(
        !matches!(
            err,
            RequestError::Service { .. } | RequestError::Timeout { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_is_distinct() {
    logs();
    let server = server();
    let client = nats_actors::Client::new(nats_actors_suite::nats(&server).await);
    let err = InventoryClient::new(&client)
        .check(&Check {
            sku: "a".into(),
            wanted: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::NoResponders { subject } if subject == "inv.check"),
        "{err:?}"
    );
}
