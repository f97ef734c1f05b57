#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.{id}")]
    async fn h(&self, id: u32) {}
}

fn main() {}
