#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[consumer(stream = "S", durable = "d", backoff = "1s, soon")]
    async fn h(&self, n: u32) {}
}

fn main() {}
