#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[request("stock.check")]
    async fn h(&self, q: String) {}
}

fn main() {}
