use nats_actors::prelude::*;

type Res<T> = Result<T, HandlerError>;

#[derive(Actor)]
struct A;

#[handlers(client)]
impl A {
    #[request("orders.get")]
    async fn get(&self) -> Res<u32> {
        Ok(1)
    }
}

fn main() {}
