#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
#[actor(codec = "json")]
#[actor(queue = "q")]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self) {}
}

fn main() {}
