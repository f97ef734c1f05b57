use nats_actors::prelude::*;

#[derive(Actor)]
#[actor(partitions = 8)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self) {}
}

fn main() {}
