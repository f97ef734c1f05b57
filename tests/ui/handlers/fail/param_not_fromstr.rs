#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders.{region}")]
    async fn h(&self, region: Param<Vec<u8>>) {}
}

fn main() {}
