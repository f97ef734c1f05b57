use nats_actors::prelude::*;

#[derive(Actor)]
struct Sink;

#[handlers]
impl Sink {
    #[subscribe("a", buffer = "8 parsecs")]
    async fn a(&self, _n: u32) {}
}

fn main() {}
