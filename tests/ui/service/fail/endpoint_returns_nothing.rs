use nats_actors::prelude::*;

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.touch")]
    async fn touch(&self, _id: u64) {}
}

fn main() {}
