use nats_actors::prelude::*;

#[endpoints]
fn get() {}

fn main() {}
