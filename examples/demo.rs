//! `make demo`: three actors exchange events and a request/reply over a real NATS server.
//!
//! A customer places orders on `orders.{region}.placed`. `Inventory` (two instances in a queue
//! group) asks `Pricing` for a quote by request/reply, reserves stock, and publishes
//! `inventory.reserved.{region}` or `orders.{region}.rejected`; `Notifier` tells the customer.
//!
//! Run against your own server with `NATS_URL=nats://host:4222 cargo run --example demo`;
//! without `NATS_URL` it starts a throwaway local nats-server and stops it at the end.
//! Traces print as trees at the end unless `OTEL_EXPORTER_OTLP_ENDPOINT` sends them to a collector.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    sku: String,
    qty: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct QuoteRequest {
    sku: String,
    qty: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    total_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reserved {
    order_id: String,
    sku: String,
    qty: u32,
    total_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Rejected {
    order_id: String,
    reason: String,
}

/// Answers price quotes; an unknown SKU is a typed 404 error reply.
#[derive(Actor)]
struct Pricing;

#[handlers]
impl Pricing {
    #[request("pricing.quote")]
    async fn quote(&self, q: QuoteRequest) -> Result<Quote, HandlerError> {
        let unit = match q.sku.as_str() {
            "apple" => 120,
            "pear" => 90,
            "plum" => 300,
            other => {
                return Err(HandlerError::with_code(
                    404,
                    format!("no price for `{other}`"),
                ))
            }
        };
        println!(
            "  [pricing]   quote {} x {} = {} cents",
            q.qty,
            q.sku,
            unit * q.qty as u64
        );
        Ok(Quote {
            total_cents: unit * q.qty as u64,
        })
    }
}

/// Reserves stock for placed orders; two instances share the work in the `inventory` queue group.
#[derive(Actor, Clone)]
#[actor(queue = "inventory", instances = 2, codec = "msgpack")]
struct Inventory {
    stock: Arc<DashMap<String, u32>>,
}

#[handlers]
impl Inventory {
    #[subscribe("orders.{region}.placed")]
    async fn on_placed(
        &self,
        region: Param<String>,
        order: OrderPlaced,
        ctx: &Context,
    ) -> Result<(), HandlerError> {
        println!(
            "  [inventory] order {} in {}: {} x {}",
            order.order_id, *region, order.qty, order.sku
        );
        let query = QuoteRequest {
            sku: order.sku.clone(),
            qty: order.qty,
        };
        let quote: Quote = match ctx.request("pricing.quote", &query).await {
            Ok(q) => q,
            Err(e) => {
                let reason = format!("cannot price it: {e}");
                let rejected = Rejected {
                    order_id: order.order_id,
                    reason,
                };
                ctx.publish(&format!("orders.{}.rejected", *region), &rejected)
                    .await?;
                return Ok(());
            }
        };
        let reserved = {
            let mut left = self.stock.entry(order.sku.clone()).or_insert(0);
            if *left >= order.qty {
                *left -= order.qty;
                true
            } else {
                false
            }
        };
        if reserved {
            let event = Reserved {
                order_id: order.order_id,
                sku: order.sku,
                qty: order.qty,
                total_cents: quote.total_cents,
            };
            ctx.publish(&format!("inventory.reserved.{}", *region), &event)
                .await?;
        } else {
            let reason = format!(
                "only {} {} left",
                self.stock.get(&order.sku).map_or(0, |v| *v),
                order.sku
            );
            let rejected = Rejected {
                order_id: order.order_id,
                reason,
            };
            ctx.publish(&format!("orders.{}.rejected", *region), &rejected)
                .await?;
        }
        Ok(())
    }
}

/// Tells customers what happened to their orders.
#[derive(Actor, Clone, Default)]
struct Notifier {
    told: Arc<AtomicUsize>,
}

#[handlers]
impl Notifier {
    #[subscribe("inventory.reserved.{region}")]
    async fn on_reserved(&self, region: Param<String>, r: Reserved) {
        println!(
            "  [notifier]  {}: order {} confirmed, {} x {} for {:.2} EUR",
            *region,
            r.order_id,
            r.qty,
            r.sku,
            r.total_cents as f64 / 100.0
        );
        self.told.fetch_add(1, Ordering::SeqCst);
    }

    #[subscribe("orders.*.rejected")]
    async fn on_rejected(&self, r: Rejected, ctx: &Context) {
        println!(
            "  [notifier]  {}: order {} rejected: {}",
            ctx.subject(),
            r.order_id,
            r.reason
        );
        self.told.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans for every publish, request, reply and handled message. With no
    // OTEL_EXPORTER_OTLP_ENDPOINT set, each finished trace prints below as an indented tree.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let telemetry = nats_actors::telemetry::init("nats-actors-demo")?;

    // A throwaway server unless NATS_URL points at one; stopped when `_server` drops.
    let (_server, options) = nats_actors_suite::example_server(false)?;

    let stock = Arc::new(DashMap::new());
    stock.insert("apple".to_string(), 10);
    stock.insert("pear".to_string(), 2);
    let notifier = Notifier::default();
    let runtime = Runtime::builder()
        .connect(options.name("nats-actors-demo"))
        .actor(Pricing)
        .actor(Inventory {
            stock: stock.clone(),
        })
        .actor(notifier.clone())
        .start()
        .await?;
    println!("runtime started: Pricing, Inventory x2 (queue group), Notifier\n");

    let customer = runtime.client().with_codec(Codec::MsgPack);
    let orders = [
        ("eu", "o-1", "apple", 3),
        ("us", "o-2", "pear", 1),
        ("eu", "o-3", "pear", 5),   // not enough stock
        ("ap", "o-4", "durian", 1), // no price: the request fails with a 404
        ("us", "o-5", "apple", 2),
    ];
    for (region, id, sku, qty) in orders {
        println!("customer places {id}: {qty} x {sku} ({region})");
        let order = OrderPlaced {
            order_id: id.into(),
            sku: sku.into(),
            qty,
        };
        customer
            .publish(&format!("orders.{region}.placed"), &order)
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A direct typed request from outside any actor.
    let quote: Quote = customer
        .request(
            "pricing.quote",
            &QuoteRequest {
                sku: "plum".into(),
                qty: 2,
            },
        )
        .await?;
    println!(
        "customer asks for a quote directly: 2 x plum = {} cents",
        quote.total_cents
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while notifier.told.load(Ordering::SeqCst) < orders.len()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let told = notifier.told.load(Ordering::SeqCst);

    println!("\nhandler counters:");
    for h in runtime.stats().handlers {
        println!(
            "  {:<24} #{} {:<28} received {:>2}  handled {:>2}  failed {}  rejected {}  panics {}",
            h.handler, h.instance, h.subject, h.received, h.handled, h.failed, h.rejected, h.panics
        );
    }
    let report = runtime.shutdown().await;
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    println!(
        "\nshut down gracefully ({} handlers aborted); {told} of {} orders answered",
        report.aborted,
        orders.len()
    );
    if told != orders.len() {
        return Err(format!("only {told} of {} orders were answered", orders.len()).into());
    }
    Ok(())
}
