//! The OTLP export test shared by `otlp_grpc.rs` and `otlp_http.rs` (one process each, since
//! telemetry is installed process-wide).

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::otlp::OtlpReceiver;
use nats_actors_suite::{connect, eventually, server};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("otlp.echo")]
    async fn echo(&self, n: u32) -> u32 {
        n
    }
}

/// Installs telemetry from the environment, runs requests, and checks what the receiver got.
pub async fn export_over(protocol: &str) {
    let receiver = if protocol == "grpc" {
        OtlpReceiver::grpc().await
    } else {
        OtlpReceiver::http().await
    };
    // The environment is the only configuration: this is what a deployment does.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    std::env::set_var("OTEL_SERVICE_NAME", "otlp-echo-svc");
    std::env::set_var("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    let guard =
        nats_actors::telemetry::init("ignored-name").expect("telemetry from the environment");

    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Echo)
        .start()
        .await
        .unwrap();
    for n in 0..5u32 {
        let back: u32 = runtime.client().request("otlp.echo", &n).await.unwrap();
        assert_eq!(back, n);
    }
    runtime.shutdown().await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    assert!(
        eventually(Duration::from_secs(10), || async {
            receiver.span_count() >= 15
        })
        .await,
        "spans: {:?}",
        receiver.spans()
    );
    let spans = receiver.spans();
    for name in ["request otlp.echo", "process otlp.echo", "send"] {
        assert_eq!(
            spans.iter().filter(|s| s.name == name).count(),
            5,
            "five {name:?} spans in {spans:?}"
        );
    }
    let exporter_noise = spans
        .iter()
        .filter(|s| !["request otlp.echo", "process otlp.echo", "send"].contains(&s.name.as_str()))
        .count();
    assert_eq!(
        exporter_noise, 0,
        "the exporter's own HTTP/gRPC spans are filtered out: {spans:?}"
    );
    let resource = &spans[0].resource;
    assert!(
        resource.contains(&("service.name".into(), "otlp-echo-svc".into())),
        "{resource:?}"
    );
    assert!(
        resource.contains(&("deployment.environment".into(), "test".into())),
        "{resource:?}"
    );
    assert!(
        receiver.metric_exports() >= 1,
        "metrics are exported at shutdown"
    );
}
