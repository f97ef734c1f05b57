#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers(client = "public")]
impl A {}

fn main() {}
