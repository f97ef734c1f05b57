#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.{region}.updated")]
    async fn h(&self, city: Param<String>) {}
}

fn main() {}
