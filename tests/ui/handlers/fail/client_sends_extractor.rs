use nats_actors::prelude::*;

struct Tenant;

impl<'a> FromContext<'a> for Tenant {
    type Rejection = HandlerError;
    fn from_context(_: &'a Context) -> Result<Self, HandlerError> {
        Ok(Tenant)
    }
}

#[derive(Actor)]
struct A;

#[handlers(client)]
impl A {
    #[request("orders.get")]
    async fn get(&self, tenant: Tenant) -> u32 {
        let _ = tenant;
        1
    }
}

fn main() {}
