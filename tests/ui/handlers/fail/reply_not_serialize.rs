#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[request("orders")]
    async fn h(&self) -> std::time::Instant { std::time::Instant::now() }
}

fn main() {}
