//! `connect_from_env`: NATS_URL, NATS_USER and NATS_PASSWORD against a server that requires them.
//! Alone in its binary: it changes the process environment.

use nats_actors::prelude::*;
use nats_actors_suite::{logs, NatsServer};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("echo.env")]
    async fn echo(&self, n: u32) -> u32 {
        n + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_configures_the_connection() {
    logs();
    let server = NatsServer::builder()
        .jetstream(false)
        .config("authorization { user: \"envuser\", password: \"envpw\" }")
        .start()
        .unwrap();
    std::env::set_var("NATS_URL", format!("{}, {}", server.url(), server.url()));
    std::env::set_var("NATS_USER", "envuser");
    std::env::set_var("NATS_PASSWORD", "envpw");
    let options = nats_actors::ConnectOptions::from_env().unwrap();
    assert_eq!(
        options.servers().len(),
        2,
        "NATS_URL takes a comma-separated list"
    );
    let runtime = Runtime::builder()
        .connect_from_env()
        .actor(Echo)
        .start()
        .await
        .unwrap();
    let n: u32 = runtime.client().request("echo.env", &41).await.unwrap();
    assert_eq!(n, 42);
    runtime.shutdown().await;

    std::env::set_var("NATS_CERT", "/nonexistent/cert.pem");
    let err = nats_actors::ConnectOptions::from_env().unwrap_err();
    assert!(err.to_string().contains("NATS_CERT and NATS_KEY"), "{err}");
}
