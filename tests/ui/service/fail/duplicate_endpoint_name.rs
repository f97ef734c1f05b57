use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.get")]
    async fn get(&self, id: u64) -> u64 {
        id
    }

    #[endpoint(name = "get", subject = "users.get2")]
    async fn get2(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
