#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    #[request("orders")]
    async fn h(&self) -> u32 { 1 }
}

fn main() {}
