use nats_actors::prelude::*;

#[derive(Serialize, Deserialize)]
struct GetUser {
    id: u64,
}

#[derive(Service)]
#[service(version = "1.0.0")]
struct S;

#[endpoints]
impl S {
    #[endpoint(subject = "users.get")]
    async fn get(&self, req: GetUser) -> Result<u64, HandlerError> {
        Ok(req.id)
    }
}

fn main() {}
