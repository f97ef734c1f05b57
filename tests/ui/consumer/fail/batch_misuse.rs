use nats_actors::jetstream::Batch;
use nats_actors::prelude::*;

#[derive(Actor)]
struct Misuse;

#[handlers]
impl Misuse {
    #[subscribe("a")]
    async fn not_a_consumer(&self, _batch: Batch<u64>) {}

    #[consumer(stream = "S", durable = "b", batch_wait = "50ms")]
    async fn wait_without_batch(&self, _n: u64) {}

    #[consumer(stream = "S", ordered = true)]
    async fn ordered(&self, _batch: Batch<u64>) {}

    #[consumer(stream = "S", durable = "c", idempotent = true)]
    async fn idempotent(&self, _batch: Batch<u64>) {}

    #[consumer(stream = "S", durable = "d")]
    async fn with_payload(&self, _batch: Batch<u64>, _n: u64) {}
}

fn main() {}
