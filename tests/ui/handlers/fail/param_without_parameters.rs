#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.updated")]
    async fn h(&self, region: Param<String>) {}
}

fn main() {}
