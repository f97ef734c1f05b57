//! Spans against a real server, recorded by in-memory exporters: one trace across actors, a
//! request and its reply and a queue group, with the attributes of each span; and the status,
//! error type and exception event of handlers that fail or panic.

use std::collections::HashMap;
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::recorded::{attr, attr_str, span_named, telemetry, trace_spans};
use nats_actors_suite::{connect, eventually, server};
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
}

#[derive(Actor)]
struct FlowA;

#[handlers]
impl FlowA {
    #[subscribe("flow.start")]
    async fn start(&self, order: Order, ctx: &Context) -> Result<(), HandlerError> {
        tracing::info!(order = order.id, "user event inside the handler");
        // A span the user opens is a child of the process span, and sees its OpenTelemetry
        // context as the current one.
        use tracing::Instrument as _;
        async {
            let cx = opentelemetry::Context::current();
            use opentelemetry::trace::TraceContextExt as _;
            assert!(
                cx.span().span_context().is_valid(),
                "current context in a user span"
            );
        }
        .instrument(tracing::info_span!("user work"))
        .await;
        let price: u32 = ctx.request("flow.price", &order).await?;
        ctx.publish("flow.priced", &price).await?;
        Ok(())
    }
}

#[derive(Actor)]
struct FlowB;

#[handlers]
impl FlowB {
    #[request("flow.price")]
    async fn price(&self, order: Order) -> u32 {
        order.id * 100
    }
}

#[derive(Actor)]
#[actor(queue = "billing")]
struct FlowC;

#[handlers]
impl FlowC {
    #[subscribe("flow.priced")]
    async fn priced(&self, _price: u32) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_publish_request_reply_and_publish() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(FlowA)
        .actor(FlowB)
        .actor(FlowC)
        .start()
        .await
        .unwrap();
    runtime
        .client()
        .publish("flow.start", &Order { id: 7 })
        .await
        .unwrap();
    let last = span_named("process flow.priced").await;
    let trace = last.span_context.trace_id();
    // Every span of the flow ends up in this one trace.
    assert!(
        eventually(Duration::from_secs(5), || async {
            trace_spans(trace).len() >= 8
        })
        .await
    );
    let spans = trace_spans(trace);
    let by_name: HashMap<&str, &SpanData> = spans.iter().map(|s| (s.name.as_ref(), s)).collect();
    let get = |n: &str| {
        *by_name
            .get(n)
            .unwrap_or_else(|| panic!("span {n:?} missing from {:?}", by_name.keys()))
    };
    let (send_start, process_start) = (get("send flow.start"), get("process flow.start"));
    let (request, process_price, reply) = (
        get("request flow.price"),
        get("process flow.price"),
        get("send"),
    );
    let (send_priced, process_priced) = (get("send flow.priced"), get("process flow.priced"));
    let id = |s: &SpanData| s.span_context.span_id();
    assert_eq!(
        get("user work").parent_span_id,
        id(process_start),
        "a span opened in the handler is a child of its process span"
    );
    assert_eq!(
        send_start.parent_span_id,
        SpanId::INVALID,
        "the first publish starts the trace"
    );
    assert_eq!(process_start.parent_span_id, id(send_start));
    assert_eq!(request.parent_span_id, id(process_start));
    assert_eq!(
        process_price.parent_span_id,
        id(request),
        "the responder's process span is a child of the request"
    );
    assert_eq!(reply.parent_span_id, id(process_price));
    assert_eq!(send_priced.parent_span_id, id(process_start));
    assert_eq!(process_priced.parent_span_id, id(send_priced));
    for (span, kind) in [
        (send_start, SpanKind::Producer),
        (process_start, SpanKind::Consumer),
        (request, SpanKind::Client),
        (process_price, SpanKind::Consumer),
        (reply, SpanKind::Producer),
    ] {
        assert_eq!(span.span_kind, kind, "{}", span.name);
        assert_eq!(attr_str(span, "messaging.system").as_deref(), Some("nats"));
        assert_eq!(
            attr(span, "server.port"),
            Some(&Value::I64(server.port() as i64)),
            "{}",
            span.name
        );
        assert!(attr_str(span, "server.address").is_some());
        assert!(attr(span, "messaging.message.body.size").is_some());
        assert_eq!(span.status, Status::Unset, "{}", span.name);
    }
    for (span, key, want) in [
        (process_start, "messaging.operation.name", Some("process")),
        (process_start, "messaging.operation.type", Some("process")),
        (
            process_start,
            "messaging.destination.name",
            Some("flow.start"),
        ),
        (
            process_start,
            "messaging.destination.template",
            Some("flow.start"),
        ),
        (send_start, "messaging.operation.type", Some("send")),
        (
            process_priced,
            "messaging.consumer.group.name",
            Some("billing"),
        ),
        // Reply subjects are inboxes: no destination.
        (reply, "messaging.destination.name", None),
    ] {
        assert_eq!(attr_str(span, key).as_deref(), want, "{} {key}", span.name);
    }
    assert!(
        process_start
            .events
            .iter()
            .any(|e| e.name == "user event inside the handler"),
        "tracing events in the handler attach to its process span"
    );
    runtime.shutdown().await;
}

#[derive(Actor)]
struct Faulty;

#[handlers]
impl Faulty {
    #[request("faulty.{mode}")]
    async fn run(&self, mode: Param<String>) -> Result<u32, HandlerError> {
        match mode.as_str() {
            "error" => Err(HandlerError::with_code(409, "conflict")),
            "panic" => panic!("boom"),
            _ => Ok(1),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_set_status_error_type_and_an_exception() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Faulty)
        .start()
        .await
        .unwrap();
    for (mode, error_type) in [("error", "handler"), ("panic", "panic")] {
        let err = runtime
            .client()
            .request::<u32, _>(&format!("faulty.{mode}"), &())
            .await
            .unwrap_err();
        assert!(err.code().is_some());
        let request = span_named(&format!("request faulty.{mode}")).await;
        assert_eq!(
            attr_str(&request, "error.type").as_deref(),
            Some("service_error")
        );
        let process = trace_spans(request.span_context.trace_id())
            .into_iter()
            .find(|s| s.name == "process faulty.{mode}")
            .expect("the process span");
        assert_eq!(process.parent_span_id, request.span_context.span_id());
        assert_eq!(
            attr_str(&process, "error.type").as_deref(),
            Some(error_type)
        );
        assert!(
            matches!(process.status, Status::Error { .. }),
            "{mode}: {:?}",
            process.status
        );
        let exception = process
            .events
            .iter()
            .find(|e| e.name == "exception")
            .expect("an exception event");
        let message = exception
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "exception.message")
            .unwrap();
        assert!(message
            .value
            .as_str()
            .contains(if mode == "error" { "conflict" } else { "boom" }));
    }
    runtime.shutdown().await;
}

/// A keyed actor: its process spans carry the key.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "traced.{id}")]
struct Traced {
    seen: u32,
}

#[handlers]
impl Traced {
    #[command("traced.{id}.add")]
    async fn add(&mut self, n: u32) {
        self.seen += n;
    }

    #[ask("traced.{id}.seen")]
    async fn seen(&self) -> u32 {
        self.seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_actors_process_spans_carry_its_key() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Traced::default())
        .start()
        .await
        .unwrap();
    let traced = TracedRef::new(runtime.client(), "k-9").unwrap();
    traced.add(&2).await.unwrap();
    assert_eq!(traced.seen().await.unwrap(), 2);
    let keyed = || {
        telemetry()
            .spans
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| attr_str(s, "nats_actors.key").as_deref() == Some("k-9"))
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(5), || async { keyed().len() >= 2 }).await,
        "spans with the key: {:?}",
        keyed()
    );
    let names = keyed();
    assert!(
        names.iter().any(|n| n.contains("traced.{id}.add"))
            && names.iter().any(|n| n.contains("traced.{id}.seen")),
        "{names:?}"
    );
    runtime.shutdown().await;
}
