//! An event-driven system persisted through JetStream: orders are stored in the ORDERS stream;
//! `Inventory` and `Notifications` each have their own durable consumer, so each sees every
//! order even if it was down when the order came in. Inventory records its decision in the
//! INVENTORY stream (with a message id derived from the content, so a redelivered order cannot
//! record it twice), and Notifications tells the customer about both.
//!
//! `cargo run --example event_driven` starts a throwaway nats-server (JetStream in a temp dir)
//! unless `NATS_URL` points at one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::jetstream::{JsPublish, StreamConfig};
use nats_actors::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct OrderCreated {
    order_id: String,
    sku: String,
    qty: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct StockDecision {
    order_id: String,
    reserved: bool,
}

#[derive(Actor)]
struct Inventory {
    stock: DashMap<String, u32>,
}

#[handlers]
impl Inventory {
    #[consumer(
        stream = "ORDERS",
        durable = "inventory",
        filter = "orders.{region}.created"
    )]
    async fn on_created(
        &self,
        region: Param<String>,
        order: OrderCreated,
        ctx: &Context,
    ) -> Result<(), HandlerError> {
        let reserved = match self.stock.get_mut(&order.sku) {
            Some(mut left) if *left >= order.qty => {
                *left -= order.qty;
                true
            }
            _ => false,
        };
        println!(
            "inventory: order {} ({}) {} x {} -> {}",
            order.order_id,
            region.as_str(),
            order.qty,
            order.sku,
            if reserved { "reserved" } else { "out of stock" }
        );
        let decision = StockDecision {
            order_id: order.order_id,
            reserved,
        };
        let opts = JsPublish::new().derive_msg_id();
        ctx.js_publish_with("inventory.decided", &decision, &opts)
            .await?;
        Ok(())
    }
}

#[derive(Actor, Default)]
struct Notifications {
    sent: Arc<DashMap<String, Vec<String>>>,
}

#[handlers]
impl Notifications {
    #[consumer(
        stream = "ORDERS",
        durable = "notifications",
        filter = "orders.*.created"
    )]
    async fn order_received(&self, order: OrderCreated) {
        self.note(&order.order_id, "we got your order");
    }

    #[consumer(stream = "INVENTORY", durable = "notifications")]
    async fn stock_decided(&self, decision: StockDecision) {
        let text = if decision.reserved {
            "your items are on their way"
        } else {
            "sorry, out of stock"
        };
        self.note(&decision.order_id, text);
    }
}

impl Notifications {
    fn note(&self, order: &str, text: &str) {
        println!("notifications: to the customer of {order}: {text}");
        self.sent
            .entry(order.to_string())
            .or_default()
            .push(text.to_string());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, options) = nats_actors_suite::example_server(true)?;
    let stream = |name: &str, subjects: &str| StreamConfig {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    };
    let stock = DashMap::new();
    stock.insert("apple".to_string(), 5);
    let notifications = Notifications::default();
    let sent = notifications.sent.clone();
    let runtime = Runtime::builder()
        .connect(options.name("event-driven"))
        .stream(stream("ORDERS", "orders.>"))
        .stream(stream("INVENTORY", "inventory.>"))
        .actor(Inventory { stock })
        .actor(notifications)
        .start()
        .await?;

    let orders = [("eu", "o-1", 2), ("us", "o-2", 2), ("eu", "o-3", 4)];
    for (region, id, qty) in orders {
        let order = OrderCreated {
            order_id: id.into(),
            sku: "apple".into(),
            qty,
        };
        let ack = runtime
            .client()
            .js_publish(&format!("orders.{region}.created"), &order)
            .await?;
        println!("customer: order {id} stored as ORDERS#{}", ack.sequence);
    }

    // Every order gets two notifications: received, and the stock decision (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.iter().filter(|e| e.value().len() == 2).count() < orders.len() {
        if Instant::now() > deadline {
            return Err("not every order was notified twice in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.shutdown().await;
    println!(
        "done: {} orders, each stored, reserved or refused, and notified",
        orders.len()
    );
    Ok(())
}
