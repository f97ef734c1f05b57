use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[request("orders.get")]
    async fn get(&self) -> Result<u32, Vec<u8>> {
        Ok(1)
    }
}

fn main() {}
