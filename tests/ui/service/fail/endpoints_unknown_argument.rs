use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints(clients)]
impl S {
    #[endpoint(subject = "users.get")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
