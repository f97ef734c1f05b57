//! The OTLP export test shared by `otlp_grpc.rs`, `otlp_http.rs`, and the TLS and gzip ones
//! (one process each, since telemetry is installed process-wide).

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::otlp::OtlpReceiver;
use nats_actors_suite::{eventually, server, start};

#[derive(Actor)]
struct Echo;

#[handlers]
impl Echo {
    #[request("otlp.echo")]
    async fn echo(&self, n: u32) -> Result<u32, HandlerError> {
        if n == 99 {
            return Err(HandlerError::new("no 99s"));
        }
        tracing::info!(n, "echoing");
        Ok(n)
    }
}

/// Installs telemetry from the environment, runs requests, and checks what the receiver got.
#[allow(dead_code)] // Not used by every test that includes this file.
pub async fn export_over(protocol: &str) {
    let receiver = if protocol == "grpc" {
        OtlpReceiver::grpc().await
    } else {
        OtlpReceiver::http().await
    };
    export_to(&receiver, protocol).await;
}

/// [`export_over`] with `receiver` (plain or TLS, its endpoint `http://` or `https://`); the
/// caller may set more of the environment first (certificates, compression).
pub async fn export_to(receiver: &OtlpReceiver, protocol: &str) {
    // The environment is the only configuration: this is what a deployment does.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    std::env::set_var("OTEL_SERVICE_NAME", "otlp-echo-svc");
    std::env::set_var("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test");
    std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
    // Percent-encoded, as the specification has it.
    std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "X-Tenant=blue%20team");
    let guard =
        nats_actors::telemetry::init("ignored-name").expect("telemetry from the environment");

    let server = server();
    let runtime = start(&server, Echo).await;
    for n in 0..5u32 {
        let back: u32 = runtime.client().request("otlp.echo", &n).await.unwrap();
        assert_eq!(back, n);
    }
    let refused = runtime
        .client()
        .request::<u32, _>("otlp.echo", &99u32)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    runtime.shutdown().await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    assert!(
        eventually(Duration::from_secs(10), || async {
            receiver.span_count() >= 18
        })
        .await,
        "spans: {:?}",
        receiver.spans()
    );
    let spans = receiver.spans();
    // A failed request: error status, error.type and an exception event, on the wire too.
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "process otlp.echo" && s.status == 2)
        .collect();
    assert_eq!(failed.len(), 1, "{spans:?}");
    assert_eq!(failed[0].attr("error.type"), Some("handler"));
    assert!(
        failed[0].events.contains(&"exception".to_string()),
        "{failed:?}"
    );
    let failed_trace = failed[0].trace_id.clone();
    let spans: Vec<_> = spans
        .into_iter()
        .filter(|s| s.trace_id != failed_trace)
        .collect();
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
    // What the wire carries: kinds, parents, attributes and the handler's event.
    for request in spans.iter().filter(|s| s.name == "request otlp.echo") {
        assert_eq!(request.kind, 3, "CLIENT: {request:?}");
        assert_eq!(request.attr("messaging.operation.name"), Some("request"));
        let process = spans
            .iter()
            .find(|s| s.name == "process otlp.echo" && s.parent_span_id == request.span_id)
            .unwrap_or_else(|| panic!("a process span under {request:?} in {spans:?}"));
        assert_eq!(process.trace_id, request.trace_id);
        assert_eq!(process.kind, 5, "CONSUMER: {process:?}");
        assert_eq!(process.status, 0);
        for (k, v) in [
            ("messaging.system", "nats"),
            ("messaging.operation.type", "process"),
            ("messaging.destination.name", "otlp.echo"),
            ("messaging.destination.template", "otlp.echo"),
        ] {
            assert_eq!(process.attr(k), Some(v), "{k} in {process:?}");
        }
        assert!(process.attr("server.port").is_some(), "{process:?}");
        assert_eq!(process.events, vec!["echoing".to_string()], "{process:?}");
        let reply = spans
            .iter()
            .find(|s| s.name == "send" && s.parent_span_id == process.span_id)
            .unwrap_or_else(|| panic!("a reply span under {process:?} in {spans:?}"));
        assert_eq!(reply.kind, 4, "PRODUCER: {reply:?}");
        assert_eq!(reply.attr("messaging.destination.name"), None);
    }
    assert_eq!(
        receiver.tenant().as_deref(),
        Some("blue team"),
        "OTEL_EXPORTER_OTLP_HEADERS are sent with the spans"
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
