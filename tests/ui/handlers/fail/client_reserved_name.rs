#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers(client)]
impl A {
    #[request("a.new")]
    async fn new(&self) -> u32 {
        1
    }
}

fn main() {}
