use nats_actors::jetstream::Delivery;
use nats_actors::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: String,
}

#[derive(Actor)]
struct Orders;

#[handlers]
impl Orders {
    #[consumer(stream = "ORDERS", durable = "orders", filter = "orders.{region}.created",
               ack_wait = "30s", max_deliver = 5, backoff = "1s, 5s, 30s", max_ack_pending = 100,
               deliver_policy = "new", concurrency = 4, codec = "msgpack",
               dead_letter = "ORDERS_DLQ", idempotent = true, idempotency_ttl = "1h",
               double_ack = true, batch = 50)]
    async fn created(
        &self,
        region: Param<String>,
        order: Order,
        delivery: Delivery,
        ctx: &Context,
    ) -> Result<(), HandlerError> {
        ctx.js_publish("audit.orders", &order.id).await?;
        Ok(())
    }

    #[consumer(stream = "ORDERS", filters = "orders.*.created, orders.*.cancelled", ordered = true)]
    async fn replay(&self, raw: nats_actors::Bytes, delivery: Delivery) {}

    #[consumer(stream = "ORDERS", durable = "audit", dead_letter = false)]
    async fn audit(&self, order: Order) {}
}

fn main() {
    let _ = Runtime::builder().actor(Orders);
}
