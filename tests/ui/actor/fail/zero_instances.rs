#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
#[actor(instances = 0)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self) {}
}

fn main() {}
