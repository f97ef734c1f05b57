use nats_actors::prelude::*;

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "account.*")]
struct Account {
    balance: i64,
}

#[handlers]
impl Account {
    #[command("account.{id}.deposit")]
    async fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }
}

fn main() {}
