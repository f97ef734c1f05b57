use nats_actors::prelude::*;

#[derive(Actor, Default)]
#[actor(restart = "restore")]
struct UnknownPolicy;

#[derive(Actor, Default)]
#[actor(restart_window = "10s")]
struct WindowWithoutLimit;

#[derive(Actor, Default)]
#[actor(max_restarts = 3, on_limit = "restart")]
struct UnknownOnLimit;

#[derive(Actor, Default)]
#[actor(on_limit = "stop_actor")]
struct OnLimitWithoutLimit;

#[derive(Actor)]
#[actor(restart = "reset")]
struct ResetWithoutDefault;

#[handlers]
impl ResetWithoutDefault {
    #[subscribe("x")]
    async fn h(&mut self) {}
}

fn main() {}
