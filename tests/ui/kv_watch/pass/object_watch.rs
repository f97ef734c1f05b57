use nats_actors::objects::ObjectInfo;
use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[object_watch(bucket = "uploads")]
    async fn current_then_changes(&self, object: ObjectInfo) {
        let _ = object.name;
    }

    #[object_watch(bucket = "uploads", from = "new")]
    async fn changes(&self, object: ObjectInfo, ctx: &Context) -> Result<(), HandlerError> {
        let _ = (object.size, ctx.subject());
        Ok(())
    }
}

fn main() {}
