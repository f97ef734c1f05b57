//! A collector whose certificate is not trusted (signed by a CA that is not given): handlers
//! answer as usual, shutdown stays bounded, no span arrives, and the failure is visible: the
//! exporter warns that the export failed, naming the certificate. Each case runs in a child
//! process (this test binary again, its environment set there), so that its stderr, where
//! telemetry logs, can be read, and its OTEL_* environment is its own.

#[path = "common/collector_trouble.rs"]
mod common;
#[path = "common/otlp_tls.rs"]
mod tls;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nats_actors_suite::otlp::OtlpReceiver;

/// Set in the child: the protocol of its case.
const CHILD: &str = "NATS_ACTORS_UNTRUSTED_CHILD";

/// Runs the `child` test in a child process for `protocol`, waiting 60 s at most, and checks
/// what it logged.
fn in_child(protocol: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, protocol)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child ({protocol}) did not end in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child ({protocol}) failed:\n{stdout}\n{stderr}"
    );
    let warned = stderr
        .lines()
        .find(|l| l.contains("OTLP span export failed"))
        .unwrap_or_else(|| panic!("no export failure logged ({protocol}):\n{stderr}"));
    assert!(
        warned.to_ascii_lowercase().contains("certificate"),
        "the warning says why: {warned}"
    );
    assert!(
        stderr.contains("OTLP spans lost"),
        "shutdown reports the lost spans ({protocol}):\n{stderr}"
    );
}

#[test]
fn an_untrusted_grpc_collector_fails_visibly_and_holds_nothing_up() {
    in_child("grpc");
}

#[test]
fn an_untrusted_http_collector_fails_visibly_and_holds_nothing_up() {
    in_child("http/protobuf");
}

/// One case; run only by the tests above, in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by the tests of this file"]
async fn child() {
    let Ok(protocol) = std::env::var(CHILD) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::pki(dir.path(), "a CA nobody trusts");
    let receiver = if protocol == "grpc" {
        OtlpReceiver::grpc_with(Some(pki.server.clone())).await
    } else {
        OtlpReceiver::http_with(Some(pki.server.clone())).await
    };
    common::handling_and_shutdown_go_on(common::Trouble {
        endpoint: receiver.endpoint(),
        protocol: if protocol == "grpc" {
            "grpc"
        } else {
            "http/protobuf"
        },
        export_timeout_ms: Some(1000),
        shutdown_timeout: None,
        bound: Duration::from_secs(8),
    })
    .await;
    assert_eq!(
        receiver.span_count(),
        0,
        "no span reaches an untrusted collector"
    );
    assert!(
        receiver.tls_failures() >= 1,
        "the exporter tried TLS and gave up"
    );
}
