use nats_actors::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Deposit {
    amount: i64,
}

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "shop.{region}.account.{id}", codec = "msgpack", partitions = 8, idle = "1m",
        max_active = 100, replicas = 1, attempts = 3)]
struct Account {
    balance: i64,
}

#[handlers]
impl Account {
    #[command("shop.{region}.account.{id}.deposit")]
    async fn deposit(&mut self, d: Deposit, id: Param<String>) -> Result<(), HandlerError> {
        let _ = id;
        self.balance += d.amount;
        Ok(())
    }

    #[ask("shop.{region}.account.{id}.balance", codec = "json")]
    async fn balance(&self) -> i64 {
        self.balance
    }
}

async fn _use(client: Client) -> Result<(), nats_actors::RequestError> {
    let account = AccountRef::new(&client, "eu.42")?;
    let _stored: nats_actors::jetstream::Published = account.deposit(&Deposit { amount: 1 }).await?;
    let _balance: i64 = account.balance().await?;
    Ok(())
}

fn main() {}
