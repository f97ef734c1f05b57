#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[consumer(durable = "d")]
    async fn h(&self, n: u32) {}
}

fn main() {}
