use nats_actors::prelude::*;

#[derive(Actor)]
struct A;

#[handlers]
impl A {
    #[request("a")]
    async fn a(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Runtime::builder().service(A);
}
