use nats_actors::prelude::*;

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "account.{id}")]
struct Account {
    balance: i64,
}

#[handlers]
impl Account {
    #[ask("account.{id}.balance")]
    async fn balance(&self) {}
}

fn main() {}
