//! Connection options against real servers that require them: token, user and password, nkey;
//! and a clear, bounded failure when the credentials are wrong.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::{ConnectOptions, Error};
use nats_actors_suite::{logs, NatsServer};

#[path = "common/credentials.rs"]
mod credentials;
use credentials::{NKEY_PUBLIC, NKEY_SEED};
#[path = "common/otlp_tls.rs"]
mod certificates;
use certificates::pki;

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("echo")]
    async fn echo(&self, s: String) -> String {
        s
    }
}

fn server_with(config: &str) -> NatsServer {
    NatsServer::builder()
        .jetstream(false)
        .config(config)
        .start()
        .expect("start nats-server")
}

async fn round_trip(options: ConnectOptions) -> Result<String, Error> {
    let runtime = Runtime::builder()
        .connect(options)
        .actor(Echo)
        .start()
        .await?;
    let reply: String = runtime
        .client()
        .request("echo", &"hi")
        .await
        .expect("connected: the echo request is answered");
    runtime.shutdown().await;
    Ok(reply)
}

async fn refused(options: ConnectOptions) {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), round_trip(options)).await;
    let err = result
        .expect("a wrong credential fails fast, it does not hang")
        .unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_authentication() {
    logs();
    let server = server_with("authorization { token: \"s3cr3t\" }");
    let ok = ConnectOptions::new([server.url()])
        .name("token-test")
        .token("s3cr3t");
    assert_eq!(round_trip(ok).await.unwrap(), "hi");
    refused(ConnectOptions::new([server.url()]).token("wrong")).await;
    refused(ConnectOptions::new([server.url()])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_authentication() {
    logs();
    let server = server_with("authorization { user: \"svc\", password: \"pw\" }");
    let ok = ConnectOptions::new([server.url()]).user_and_password("svc", "pw");
    assert_eq!(round_trip(ok).await.unwrap(), "hi");
    refused(ConnectOptions::new([server.url()]).user_and_password("svc", "nope")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_authentication() {
    logs();
    let server = server_with(&format!(
        "authorization {{ users: [ {{ nkey: \"{NKEY_PUBLIC}\" }} ] }}"
    ));
    let ok = ConnectOptions::new([server.url()]).nkey_seed(NKEY_SEED);
    assert_eq!(round_trip(ok).await.unwrap(), "hi");
    refused(ConnectOptions::new([server.url()]).token("not-an-nkey")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_fails_fast_without_retry() {
    logs();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = ConnectOptions::new([format!("nats://127.0.0.1:{port}")])
        .connection_timeout(Duration::from_secs(1));
    refused(options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let files = pki(dir.path(), "nats-actors test CA");
    let ca = files.ca;
    let server = server_with(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        files.server_cert.display(),
        files.server_key.display()
    ));
    let url = format!("tls://127.0.0.1:{}", server.port());
    let ok = ConnectOptions::new([url.clone()]).root_certificate(&ca);
    assert_eq!(round_trip(ok).await.unwrap(), "hi");
    // Without the CA the server's certificate is not trusted: a clear, fast error.
    refused(ConnectOptions::new([url]).require_tls(true)).await;
}
