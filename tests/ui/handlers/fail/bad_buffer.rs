use nats_actors::prelude::*;

#[derive(Actor)]
struct Sink;

#[handlers]
impl Sink {
    #[subscribe("b", buffer = 0)]
    async fn b(&self, _n: u32) {}
}

fn main() {}
