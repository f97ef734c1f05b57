//! Arguments and return values are recognised by their types' traits, not their names.
use nats_actors::prelude::*;
use nats_actors::{Param as P, Subject as Subj};

/// A payload type named like an extractor.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    text: String,
}

/// A user-written extractor.
struct Tenant(String);

impl<'a> FromContext<'a> for Tenant {
    type Rejection = HandlerError;
    fn from_context(ctx: &'a Context) -> Result<Self, HandlerError> {
        ctx.header("Tenant")
            .map(|t| Tenant(t.to_string()))
            .ok_or_else(|| HandlerError::with_code(401, "no tenant"))
    }
}

type Res<T> = Result<T, HandlerError>;

#[derive(Actor)]
struct A;

#[handlers(client)]
impl A {
    #[subscribe("orders.{id}")]
    async fn renamed(&self, id: P<u32>, subject: Subj, message: Message, tenant: Tenant) {
        let _ = (id, subject, message, tenant.0);
    }

    /// A payload named like an extractor, marked so that the client sends it.
    #[request("orders.message")]
    async fn message(&self, #[payload] message: Message) -> Result<u32, HandlerError> {
        Ok(message.text.len() as u32)
    }

    #[request("orders.{id}.tenant")]
    async fn tenant(&self, id: P<u32>, #[extract] tenant: Tenant, order: String) -> Result<String, HandlerError> {
        Ok(format!("{}{}{}", *id, tenant.0, order))
    }
}

#[derive(Actor)]
struct B;

/// Without a generated client, an alias of `Result` is fine.
#[handlers]
impl B {
    #[request("orders.alias")]
    async fn alias(&self, message: Message) -> Res<u32> {
        Ok(message.text.len() as u32)
    }

    #[request("orders.echo")]
    async fn echo(&self, message: Message, subject: Subj) -> Message {
        let _ = subject;
        message
    }
}

async fn call(client: &nats_actors::Client) -> Result<String, nats_actors::RequestError> {
    // The client takes the parameter and the payload, not the extractor.
    AClient::new(client).tenant(7, &"x".to_string()).await
}

fn main() {
    let _ = call;
}
