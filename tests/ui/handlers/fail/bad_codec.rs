#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders", codec = "xml")]
    async fn h(&self) {}
}

fn main() {}
