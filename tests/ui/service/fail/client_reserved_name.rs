use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.new")]
    async fn new(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
