#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders", concurrency = 0)]
    async fn h(&self) {}
}

fn main() {}
