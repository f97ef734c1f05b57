//! Every `#[kv_watch]` option, with a `Param` from the key and other extractors.
use nats_actors::kv::KvEntry;
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[kv_watch(bucket = "config", key = "services.{name}.>", from = "last_per_key")]
    async fn each(&self, name: Param<String>, entry: KvEntry<u32>, ctx: &Context) {
        let _ = (name, entry.revision, ctx.subject());
    }

    #[kv_watch(bucket = "config", from = "new", codec = "msgpack")]
    async fn new(&self, entry: KvEntry<Vec<u8>>) -> Result<(), HandlerError> {
        let _ = entry.value;
        Ok(())
    }

    #[kv_watch(bucket = "config", key = "flags.*", from = "all_history")]
    async fn history(&self, entry: KvEntry<bool>) {
        let _ = entry.operation;
    }
}

fn main() {}
