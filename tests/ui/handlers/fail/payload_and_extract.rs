#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self, #[payload] #[extract] order: String) {}
}

fn main() {}
