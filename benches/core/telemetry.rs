//! Case 4, telemetry: pub/sub (and drain) again in child processes of this bench, each configured
//! by the `OTEL_*` environment (telemetry is process-wide), exporting to an in-process receiver.

use crate::drain::drain_rounds;
use crate::pubsub::pubsub_rounds;
use crate::{
    event_128, selected, Ratios, DRAIN_MESSAGES, DRAIN_ROUNDS, PUBSUB_MESSAGES, PUBSUB_ROUNDS,
};

/// Telemetry installs process-wide: (b) and (c) each run in a child process of this bench, raw
/// async-nats measured in the same child, against the same server.
pub fn telemetry_children(url: &str, summary: &mut Vec<(String, Ratios)>) {
    println!();
    for mode in [
        "unsampled-tracing-only",
        "unsampled",
        "sampled",
        "sampled-http",
        "sampled-https",
        "sampled-https-http",
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            // The child runs the cases named on this command line (pub/sub when none is).
            .args(std::env::args().skip(1))
            .env(MODE_VAR, mode)
            .env("BENCH_NATS_URL", url)
            // A queue that holds a round's spans, so that the export is measured, not dropped;
            // exports start within a round. Batches of the default 512 spans.
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "262144")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run the telemetry bench child");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        for line in text.lines().filter_map(|l| l.strip_prefix("RATIO ")) {
            let (label, values) = line.split_once('=').unwrap_or((mode, ""));
            let mut v = values.split(',').map(|v| v.parse::<f64>().unwrap_or(0.0));
            let same_decode = v.next().unwrap_or(0.0);
            let no_decode = v.next().unwrap_or(0.0);
            summary.push((
                label.to_string(),
                Ratios {
                    same_decode,
                    no_decode,
                },
            ));
        }
    }
}

pub const MODE_VAR: &str = "NATS_ACTORS_BENCH_MODE";

/// The telemetry of a (b) or (c) child, flushed at the end of each nats-actors round.
pub static TELEMETRY: std::sync::OnceLock<nats_actors::telemetry::TelemetryGuard> =
    std::sync::OnceLock::new();

/// (b) telemetry installed, nothing sampled; (c) every message sampled and exported in batches
/// over OTLP/gRPC to an in-process receiver. Metrics are exported to the same receiver in both.
pub async fn telemetry_child(mode: &str) {
    use nats_actors::telemetry::{Sampling, TelemetryBuilder};
    let url = std::env::var("BENCH_NATS_URL").expect("BENCH_NATS_URL");
    let payload = event_128();
    let protocol = if mode.ends_with("-http") {
        "http/protobuf"
    } else {
        "grpc"
    };
    // The https cases: a receiver whose certificate is signed by a CA of the bench's own,
    // trusted through OTEL_EXPORTER_OTLP_CERTIFICATE, as a deployment with a private CA does.
    let dir = tempfile::tempdir().expect("a temporary directory for the certificates");
    let tls = mode.contains("https").then(|| {
        let (ca, server) = private_ca(dir.path());
        std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", ca);
        server
    });
    // The receiver stands in for a collector, which runs in a process of its own: it gets a
    // thread and a runtime of its own here, so that it does not queue behind the handler and
    // the publisher on this runtime's two workers (its CPU is still this process's).
    let (tx, rx) = std::sync::mpsc::channel();
    let grpc = protocol == "grpc";
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let receiver = match grpc {
                true => nats_actors_suite::otlp::OtlpReceiver::grpc_counting_with(tls).await,
                false => nats_actors_suite::otlp::OtlpReceiver::http_counting_with(tls).await,
            };
            let _ = tx.send(receiver);
            // Serves until the process exits.
            std::future::pending::<()>().await
        })
    });
    let receiver = rx.recv().expect("the OTLP receiver thread started");
    let (label, sampling) = match mode {
        "sampled" => (
            "(c) every message sampled, OTLP/gRPC export",
            Sampling::always_on(),
        ),
        "sampled-http" => (
            "(c) every message sampled, OTLP/HTTP export",
            Sampling::always_on(),
        ),
        "sampled-https" => (
            "(c) every message sampled, OTLP/gRPC export over TLS",
            Sampling::always_on(),
        ),
        "sampled-https-http" => (
            "(c) every message sampled, OTLP/HTTP export over TLS",
            Sampling::always_on(),
        ),
        "unsampled-tracing-only" => (
            "(b) tracing installed, not sampled",
            Sampling::ratio(0.0).parent_based(),
        ),
        _ => (
            "(b+) same, with metrics exported",
            Sampling::ratio(0.0).parent_based(),
        ),
    };
    // Configured as a deployment would: the standard environment, OTLP over gRPC.
    let endpoint = if mode == "unsampled-tracing-only" {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    } else {
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    };
    std::env::set_var(endpoint, receiver.endpoint());
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "1000");
    let builder = TelemetryBuilder::new("nats-actors-bench")
        .from_env()
        .unwrap()
        .sampling(sampling)
        .logs(false);
    let guard = builder.install().unwrap();
    // Sampled rounds flush the spans they made (see `framework_pubsub`).
    let owned = match mode.starts_with("sampled") {
        true => {
            let _ = TELEMETRY.set(guard);
            None
        }
        false => Some(guard),
    };
    let drain = selected("drain").then_some(());
    let mut ratios = vec![];
    if drain.is_some() {
        let ratio = drain_rounds(&url, &payload, label).await;
        ratios.push((format!("{label}, drain"), ratio));
    }
    if drain.is_none() || selected("pubsub") {
        ratios.push((
            label.to_string(),
            pubsub_rounds(&url, &payload, label).await,
        ));
    }
    tokio::task::spawn_blocking(move || match owned {
        Some(guard) => guard.shutdown(),
        None => TELEMETRY.get().map_or((), |guard| guard.flush()),
    })
    .await
    .unwrap();
    let expected = match mode.starts_with("sampled") {
        false => 0,
        true => {
            let pubsub = ratios.iter().any(|(l, _)| l == label) as u64;
            let drain = drain.is_some() as u64;
            // Each round and each warm-up round: every message, and in a drain the held one.
            pubsub * *PUBSUB_MESSAGES * (*PUBSUB_ROUNDS + 1)
                + drain * (*DRAIN_MESSAGES + 1) * (*DRAIN_ROUNDS + 1)
        }
    };
    println!(
        "{label}: spans received by the OTLP receiver {} (expected {expected}, malformed {}), metric exports {}",
        receiver.span_count(),
        receiver.malformed_spans(),
        receiver.metric_exports()
    );
    for (label, ratio) in ratios {
        println!("RATIO {label}={},{}", ratio.same_decode, ratio.no_decode);
    }
}

/// A CA and a receiver certificate for 127.0.0.1 signed by it: the CA's PEM file (written
/// under `dir`) and the receiver's TLS settings.
fn private_ca(dir: &std::path::Path) -> (std::path::PathBuf, nats_actors_suite::otlp::ReceiverTls) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nats-actors bench CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    let tls = nats_actors_suite::otlp::ReceiverTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        client_ca_pem: None,
    };
    (path, tls)
}
