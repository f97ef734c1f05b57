//! Every option of #[service] and #[endpoint], a generated client with a visibility, and the
//! extractors an endpoint shares with request handlers.
use nats_actors::prelude::*;
use nats_actors::{HeaderMap, Subject};

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct GetUser {
    id: u64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct User {
    id: u64,
    name: String,
}

#[derive(Service)]
#[service(
    name = "user-accounts_2",
    version = "2.0.0-beta.1+build.7",
    description = "User accounts",
    metadata(owner = "accounts", "tier.level" = "gold"),
    queue_group = "users"
)]
struct Users {
    prefix: String,
}

#[endpoints(client = "pub(crate)")]
impl Users {
    #[endpoint(subject = "users.get", name = "get-user", group = "v1.api",
               queue_group = "readers", metadata(access = "read"), codec = "msgpack",
               concurrency = 4)]
    async fn get(&self, req: GetUser, ctx: &Context) -> Result<User, HandlerError> {
        let _ = ctx.subject();
        Ok(User { id: req.id, name: self.prefix.clone() })
    }

    #[endpoint(subject = "users.{id}.name")]
    async fn name(&self, id: Param<u64>, _headers: HeaderMap, _subject: Subject) -> String {
        format!("{}{}", self.prefix, *id)
    }

    #[endpoint]
    async fn count(&mut self) -> u64 {
        0
    }

    /// Not an endpoint: a plain method stays as written.
    fn helper(&self) -> usize {
        self.prefix.len()
    }
}

#[allow(dead_code)]
async fn calls(client: &nats_actors::Client) -> Result<(), nats_actors::RequestError> {
    let users = UsersClient::new(client).with_timeout(std::time::Duration::from_secs(1));
    let _: User = users.get(&GetUser { id: 1 }).await?;
    let _: String = users.name(7).await?;
    let _: u64 = users.count().await?;
    Ok(())
}

fn main() {
    let users = Users { prefix: String::new() };
    let _ = users.helper();
    let _ = Runtime::builder().service(users);
}
