#![allow(unused_variables)]
use nats_actors::objects::ObjectInfo;
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[object_watch(bucket = "uploads", from = "last_per_key")]
    async fn from_of_kv(&self, object: ObjectInfo) {}

    #[object_watch(bucket = "uploads", key = "a.b")]
    async fn with_a_key(&self, object: ObjectInfo) {}

    #[object_watch]
    async fn no_bucket(&self, object: ObjectInfo) {}
}

fn main() {}
