#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
#[actor(instances = 3)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self) {}
}

fn main() {}
