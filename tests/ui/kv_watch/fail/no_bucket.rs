#![allow(unused_variables)]
use nats_actors::kv::KvEntry;
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[kv_watch(key = "services.>")]
    async fn h(&self, entry: KvEntry<u32>) {}
}

fn main() {}
