//! A process that hosts the test ledger (`tests/support/ledger.rs`), for the virtual-actor
//! tests that kill processes: `keyed-host <nats url>`. Prints `ready` once started; stops at
//! SIGTERM or SIGINT, or when its stdin closes (the test that started it is gone).

use nats_actors::prelude::*;
use nats_actors_suite::ledger::Account;
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), nats_actors::Error> {
    let url = std::env::args()
        .nth(1)
        .expect("usage: keyed-host <nats url>");
    // Logs go to stderr: stdout is the test's line to this process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = Runtime::builder()
        .connect(nats_actors::ConnectOptions::new([url]))
        .shutdown_timeout(std::time::Duration::from_secs(5))
        .actor(Account::default())
        .start()
        .await?;
    println!("ready");
    let stdin_closed = async {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin_closed => {}
    }
    runtime.shutdown().await;
    Ok(())
}
