//! Shared helpers of the integration tests, examples and benches: a real server, a client, and
//! bounded waiting.

use std::future::Future;
use std::time::{Duration, Instant};

pub use nats_actors::testing::{NatsCluster, NatsServer};

/// Starts a real nats-server (JetStream on) for one test.
pub fn server() -> NatsServer {
    NatsServer::start().expect("start nats-server")
}

/// A plain async-nats client on `server`.
pub async fn nats(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url())
        .await
        .expect("connect to the test server")
}

/// Connect options for the runtime, pointing at `server`.
pub fn connect(server: &NatsServer) -> nats_actors::ConnectOptions {
    nats_actors::ConnectOptions::new([server.url()])
}

/// A runtime on `server` with one actor, started.
pub async fn start<A: nats_actors::Actor>(server: &NatsServer, actor: A) -> nats_actors::Runtime {
    nats_actors::Runtime::builder()
        .connect(connect(server))
        .actor(actor)
        .start()
        .await
        .expect("start the runtime")
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Logs to stderr at `RUST_LOG` (default `warn`), once per process; [`logged`] searches what
/// was logged.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(false)
        .with_writer(|| Tee)
        .try_init();
}

/// Every line logged in this process since [`logs`], in order.
static LOGGED: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// The lines logged so far (after [`logs`]) that contain `needle`.
pub fn logged(needle: &str) -> Vec<String> {
    let all = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    all.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Writes a log line to the test's captured stderr and to [`LOGGED`].
struct Tee;

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        eprint!("{text}");
        LOGGED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
pub mod http;
pub mod ledger;
pub mod otlp;
pub mod proxy;
pub mod recorded;

pub use proxy::FaultProxy;

/// Where an example connects: the server `NATS_URL` names (with the rest of the `NATS_*`
/// environment), else a throwaway local nats-server (JetStream on or off), stopped when the
/// returned server is dropped.
pub fn example_server(
    jetstream: bool,
) -> Result<(Option<NatsServer>, nats_actors::ConnectOptions), Box<dyn std::error::Error>> {
    if std::env::var_os("NATS_URL").is_some() {
        return Ok((None, nats_actors::ConnectOptions::from_env()?));
    }
    let server = NatsServer::builder().jetstream(jetstream).start()?;
    let what = if jetstream { " with JetStream" } else { "" };
    println!("started a local nats-server{what} at {}", server.url());
    let options = nats_actors::ConnectOptions::new([server.url()]);
    Ok((Some(server), options))
}

/// The Python of the virtualenv `make python-env` makes (nats-py, the OpenTelemetry SDK,
/// prometheus_client), for the cross-language tests.
pub fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make python-env` (make test does)",
        venv.display()
    );
    venv
}
