use nats_actors::prelude::*;

#[derive(Actor, Clone)]
#[actor(name = "inventory", queue = "inv", codec = "msgpack", instances = 3, concurrency = 2, buffer = "16MiB")]
struct A {
    n: u32,
}

#[handlers]
impl A {
    #[subscribe("orders")]
    async fn h(&self) {
        let _ = self.n;
    }

    #[request("orders.count", buffer = 10_000)]
    async fn count(&self) -> u32 {
        self.n
    }
}

#[derive(Actor)]
struct Generic<T: Send + Sync + 'static> {
    t: T,
}

#[handlers]
impl<T: Send + Sync + 'static> Generic<T> {
    #[subscribe("generic")]
    async fn h(&mut self) {
        let _ = &self.t;
    }
}

#[derive(Actor, Default)]
#[actor(
    restart = "reset",
    max_restarts = 3,
    restart_window = "1m",
    on_limit = "stop_actor"
)]
struct Supervised {
    n: u32,
}

#[handlers]
impl Supervised {
    #[subscribe("supervised")]
    async fn h(&mut self) {
        self.n += 1;
    }
}

fn main() {
    let _ = Runtime::builder()
        .actor(A { n: 1 })
        .actor(Generic { t: 1u8 })
        .actor(Supervised::default());
}
