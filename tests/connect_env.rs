//! `connect_from_env` against servers that require what the environment gives: NATS_URL with
//! NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_NKEY (a seed file), NATS_CA with NATS_CERT and
//! NATS_KEY (mutual TLS); and clear start errors for a missing credentials or seed file. Alone
//! in its binary, one test: it changes the process environment.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::Error;
use nats_actors_suite::{logs, NatsServer};

#[path = "common/credentials.rs"]
mod credentials;
use credentials::{NKEY_PUBLIC, NKEY_SEED};
#[path = "common/otlp_tls.rs"]
mod certificates;
use certificates::pki;

const AUTH_VARS: &[&str] = &[
    "NATS_URL",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "NATS_NKEY",
    "NATS_CREDS",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
];

/// Sets exactly `vars` of the connection variables (the others removed).
fn environment(vars: &[(&str, String)]) {
    for name in AUTH_VARS {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
}

fn server_with(config: &str) -> NatsServer {
    NatsServer::builder()
        .jetstream(false)
        .config(config)
        .start()
        .unwrap()
}

/// Starts from the environment and answers one request; the start's error otherwise (bounded).
async fn from_env() -> Result<u32, Error> {
    let started = tokio::time::timeout(
        Duration::from_secs(10),
        Runtime::builder().connect_from_env().actor(Echo).start(),
    )
    .await
    .expect("a start from the environment does not hang");
    let runtime = started?;
    let n: u32 = runtime.client().request("echo.env", &41).await.unwrap();
    runtime.shutdown().await;
    Ok(n)
}

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

    // NATS_TOKEN; a wrong one is refused.
    let server = server_with("authorization { token: \"env-t0ken\" }");
    environment(&[
        ("NATS_URL", server.url()),
        ("NATS_TOKEN", "env-t0ken".into()),
    ]);
    assert_eq!(from_env().await.unwrap(), 42);
    environment(&[("NATS_URL", server.url()), ("NATS_TOKEN", "wrong".into())]);
    assert!(matches!(from_env().await, Err(Error::Connect(_))));

    // NATS_NKEY: a file holding the seed; a missing file is a clear error naming it.
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, format!("{NKEY_SEED}\n")).unwrap();
    let server = server_with(&format!(
        "authorization {{ users: [ {{ nkey: \"{NKEY_PUBLIC}\" }} ] }}"
    ));
    environment(&[
        ("NATS_URL", server.url()),
        ("NATS_NKEY", seed.display().to_string()),
    ]);
    assert_eq!(from_env().await.unwrap(), 42);
    environment(&[
        ("NATS_URL", server.url()),
        ("NATS_NKEY", "/nonexistent/user.nk".into()),
    ]);
    let err = from_env().await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/user.nk"), "{err}");

    // NATS_CREDS naming a missing file: an error at start, not a panic or a hang.
    environment(&[
        ("NATS_URL", server.url()),
        ("NATS_CREDS", "/nonexistent/user.creds".into()),
    ]);
    let err = from_env().await.unwrap_err();
    assert!(err.to_string().contains("user.creds"), "{err}");

    // NATS_CA with NATS_CERT and NATS_KEY: a server that verifies client certificates.
    let tls = pki(dir.path(), "nats-actors test CA");
    let server = server_with(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
        tls.server_cert.display(),
        tls.server_key.display(),
        tls.ca.display()
    ));
    let url = format!("tls://127.0.0.1:{}", server.port());
    environment(&[
        ("NATS_URL", url.clone()),
        ("NATS_CA", tls.ca.display().to_string()),
        ("NATS_CERT", tls.client_cert.display().to_string()),
        ("NATS_KEY", tls.client_key.display().to_string()),
    ]);
    assert_eq!(from_env().await.unwrap(), 42);
    // Without the client certificate the server refuses the connection.
    environment(&[("NATS_URL", url), ("NATS_CA", tls.ca.display().to_string())]);
    assert!(
        from_env().await.is_err(),
        "no client certificate, no connection"
    );
    environment(&[]);
}
