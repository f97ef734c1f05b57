//! Connection options against real servers that require them: token, user and password, nkey;
//! and a clear, bounded failure when the credentials are wrong.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::{ConnectOptions, Error};
use nats_actors_suite::{logs, NatsServer};

// A test nkey pair (public values from the NATS documentation, never used elsewhere).
const NKEY_SEED: &str = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";
const NKEY_PUBLIC: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";

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

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files.
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nats-actors test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path());
    let server = server_with(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        cert.display(),
        key.display()
    ));
    let url = format!("tls://127.0.0.1:{}", server.port());
    let ok = ConnectOptions::new([url.clone()]).root_certificate(&ca);
    assert_eq!(round_trip(ok).await.unwrap(), "hi");
    // Without the CA the server's certificate is not trusted: a clear, fast error.
    refused(ConnectOptions::new([url]).require_tls(true)).await;
}
