use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.get")]
    #[endpoint(subject = "users.fetch")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
