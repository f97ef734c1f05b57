use nats_actors::prelude::*;

#[derive(Service)]

struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.get")]
    async fn get(&self, id: u64) -> Result<u64, HandlerError> {
        Ok(id)
    }
}

fn main() {}
