#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.{region}")]
    async fn h(&self, _: Param<String>) {}
}

fn main() {}
