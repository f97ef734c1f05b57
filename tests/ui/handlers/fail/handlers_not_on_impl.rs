#![allow(unused_variables)]
use nats_actors::prelude::*;

#[handlers]
fn not_an_impl() {}

fn main() {}
