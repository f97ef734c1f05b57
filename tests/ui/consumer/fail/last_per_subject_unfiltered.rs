#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[consumer(stream = "S", durable = "d", deliver_policy = "last_per_subject")]
    async fn h(&self, n: u32) {}
}

fn main() {}
