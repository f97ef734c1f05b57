//! Service telemetry, recorded by in-memory exporters: the stats of every endpoint as
//! OpenTelemetry metrics, and one trace from the typed client's request to the endpoint.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{connect, eventually, server};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::InMemoryMetricExporter;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Order {
    id: u32,
}

#[derive(Service)]
#[service(name = "orders", version = "0.3.0")]
struct Orders;

#[endpoints]
impl Orders {
    #[endpoint(subject = "orders.check", group = "v2")]
    async fn check(&self, order: Order) -> Result<bool, HandlerError> {
        if order.id == 0 {
            return Err(HandlerError::with_code(422, "order 0 is reserved"));
        }
        Ok(order.id.is_multiple_of(2))
    }
}

/// The value of counter `name` for endpoint `endpoint` (the largest cumulative point).
fn counter(metrics: &InMemoryMetricExporter, name: &str, endpoint: &str) -> Option<u64> {
    let mut out = None;
    for rm in metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                    for p in sum.data_points() {
                        let of_endpoint = p.attributes().any(|kv| {
                            kv.key.as_str() == "nats_actors.service.endpoint"
                                && kv.value.as_str() == endpoint
                        });
                        let of_service = p.attributes().any(|kv| {
                            kv.key.as_str() == "nats_actors.service.name"
                                && kv.value.as_str() == "orders"
                        });
                        if of_endpoint && of_service {
                            out = Some(out.unwrap_or(0).max(p.value()));
                        }
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_stats_are_metrics_and_the_client_request_is_the_parent_span() {
    let recorded = nats_actors_suite::recorded::telemetry();
    let (spans, metrics, guard) = (&recorded.spans, &recorded.metrics, &recorded.guard);
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .service(Orders)
        .start()
        .await
        .unwrap();
    let client = OrdersClient::new(runtime.client());
    for id in 1..=4 {
        client.check(&Order { id }).await.unwrap();
    }
    let err = client.check(&Order { id: 0 }).await.unwrap_err();
    assert_eq!(err.code(), Some(422));

    guard.flush();
    assert_eq!(
        counter(metrics, "nats_actors.service.requests", "check"),
        Some(5)
    );
    assert_eq!(
        counter(metrics, "nats_actors.service.errors", "check"),
        Some(1)
    );

    // The typed client's request span is the parent of the endpoint's process span. A process
    // span ends just after its reply is sent: wait for all five.
    let all_ended = eventually(Duration::from_secs(10), || async {
        let done = spans.get_finished_spans().unwrap();
        done.iter()
            .filter(|s| s.name == "process v2.orders.check")
            .count()
            == 5
    })
    .await;
    assert!(all_ended, "five process spans");
    let finished = spans.get_finished_spans().unwrap();
    let requests: Vec<_> = finished
        .iter()
        .filter(|s| s.name == "request v2.orders.check" && s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(requests.len(), 5, "one client span per call");
    for request in requests {
        let process = finished
            .iter()
            .find(|s| {
                s.name == "process v2.orders.check"
                    && s.parent_span_id == request.span_context.span_id()
            })
            .expect("the endpoint's span continues the caller's trace");
        assert_eq!(
            process.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(process.span_kind, SpanKind::Consumer);
    }
    runtime.shutdown().await;
}
