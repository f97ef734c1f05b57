use nats_actors::prelude::*;

#[derive(Actor)]
#[actor(compress = "lz4")]
struct UnknownEncoding;

#[handlers]
impl UnknownEncoding {
    #[subscribe("a")]
    async fn a(&self) {}
}

#[derive(Actor)]
struct Handlers;

#[handlers]
impl Handlers {
    #[subscribe("b", compress_min = 512)]
    async fn min_without_compress(&self) {}

    #[request("c", compress = "none", compress_min = 512)]
    async fn min_with_none(&self) -> u32 {
        1
    }

    #[consumer(stream = "S", durable = "d", compress = 1)]
    async fn not_a_string(&self) {}
}

fn main() {}
