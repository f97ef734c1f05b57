use nats_actors::prelude::*;

#[derive(Actor, Default)]
#[actor(restart = "restore")]
struct UnknownPolicy;

#[derive(Actor, Default)]
#[actor(restart_window = "10s")]
struct WindowWithoutLimit;

#[derive(Actor)]
#[actor(restart = "reset")]
struct ResetWithoutDefault;

#[handlers]
impl ResetWithoutDefault {
    #[subscribe("x")]
    async fn h(&mut self) {}
}

fn main() {}
