use nats_actors::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: String,
}

#[derive(Actor)]
struct Orders;

#[handlers(client = "pub(crate)")]
impl Orders {
    #[request("orders.{region}.get")]
    async fn get(&self, region: Param<String>, order: Order) -> Result<Order, HandlerError> {
        let _ = region;
        Ok(order)
    }

    #[request("orders.{payload}.echo")]
    async fn echo(&self, payload: Param<String>, order: Order) -> Result<Order, HandlerError> {
        let _ = payload;
        Ok(order)
    }

    #[request("orders.count")]
    async fn count(&self) -> u64 {
        1
    }
}

async fn call(client: &nats_actors::Client) -> Result<(), nats_actors::RequestError> {
    let orders = OrdersClient::new(client);
    let _: Order = orders.get("eu", &Order { id: "1".into() }).await?;
    let _: u64 = orders.count().await?;
    let _: Order = orders.echo("x", &Order { id: "2".into() }).await?;
    Ok(())
}

fn main() {
    let _ = call;
}
