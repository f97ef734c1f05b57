//! Prints the trace of one order in console mode (telemetry on, no OTLP endpoint), for the
//! console test: `console-trace <nats url>`. The order handler asks for a price and publishes
//! the bill; the trace tree is printed to stdout at shutdown.

use std::time::Duration;

use nats_actors::prelude::*;

#[derive(Serialize, Deserialize)]
struct Order {
    qty: u64,
}

#[derive(Actor)]
struct Shop;

#[handlers]
impl Shop {
    #[subscribe("ct.order")]
    async fn order(&self, order: Order, ctx: &Context) -> Result<(), HandlerError> {
        let price: u64 = ctx.request("ct.price", &order).await?;
        ctx.publish("ct.billed", &price).await?;
        Ok(())
    }

    #[request("ct.price")]
    async fn price(&self, order: Order) -> u64 {
        order.qty * 3
    }

    #[subscribe("ct.billed")]
    async fn billed(&self, _price: u64) {}
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .expect("usage: console-trace <nats url>");
    let telemetry = nats_actors::telemetry::init("console-trace")?;
    let runtime = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new([url]))
        .actor(Shop)
        .start()
        .await?;
    runtime
        .client()
        .publish("ct.order", &Order { qty: 2 })
        .await?;
    let billed = || {
        runtime
            .stats()
            .handler("Shop::billed")
            .map_or(0, |h| h.handled)
    };
    for _ in 0..100 {
        if billed() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if billed() != 1 {
        return Err("the bill was not handled within 5 s".into());
    }
    runtime.shutdown().await;
    telemetry.shutdown();
    Ok(())
}
