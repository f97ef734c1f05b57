#![allow(unused_variables)]
use nats_actors::prelude::*;

#[derive(Actor)]
struct A {
    shared: std::rc::Rc<u32>,
}

#[handlers]
impl A {}

fn main() {}
