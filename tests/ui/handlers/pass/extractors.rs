use nats_actors::prelude::*;
use nats_actors::{Bytes, HeaderMap, Message, Subject};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: String,
}

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.{region}.{id}.>", queue = "q", codec = "json", concurrency = 8)]
    async fn all(
        &self,
        region: Param<String>,
        Param(id): Param<u64>,
        order: Order,
        ctx: &Context,
        headers: HeaderMap,
        message: Message,
        subject: Subject,
    ) -> Result<(), HandlerError> {
        let _ = (region, id, order, ctx.subject(), headers, message, subject);
        Ok(())
    }

    #[subscribe("raw")]
    async fn raw(&mut self, payload: Bytes) -> Result<(), std::io::Error> {
        let _ = payload;
        Ok(())
    }

    #[request("orders.get", codec = "msgpack")]
    async fn get(&self, order: Order) -> Result<Order, HandlerError> {
        Ok(order)
    }

    #[request("orders.count")]
    async fn count(&self) -> u64 {
        7
    }

    #[request("orders.io")]
    async fn io(&self) -> std::io::Result<Vec<String>> {
        Ok(vec![])
    }

    /// Compiled out: no subscription, no generated code calling it.
    #[cfg(any())]
    #[subscribe("never")]
    async fn never(&self) {}

    /// Plain methods are left alone.
    fn helper(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = A.helper();
}
