use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.get", group = "v1.*")]
    async fn get(&self, id: u64) -> Result<u64, HandlerError> {
        Ok(id)
    }
}

fn main() {}
