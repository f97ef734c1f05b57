//! The span of a batch handler against a real server, recorded by an in-memory exporter: a
//! child of its first message's producer, linked to every other message's producer, with the
//! batch's size.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::jetstream::{Batch, StreamConfig};
use nats_actors::prelude::*;
use nats_actors::Sender;
use nats_actors_suite::recorded::{attr_str, telemetry};
use nats_actors_suite::{connect, eventually, server};
use opentelemetry::trace::SpanKind;

#[derive(Actor, Clone, Default)]
struct Loader {
    calls: Arc<AtomicUsize>,
}

#[handlers]
impl Loader {
    #[consumer(stream = "BTEL", durable = "loader", batch = 10, batch_wait = "300ms")]
    async fn load(&self, batch: Batch<u64>) {
        assert_eq!(batch.len(), 5);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_span_is_the_first_producers_child_and_links_the_others() {
    let recorded = telemetry();
    let server = server();
    let stream = StreamConfig {
        name: "BTEL".into(),
        subjects: vec!["btel.>".into()],
        ..Default::default()
    };
    let setup = Runtime::builder()
        .connect(connect(&server))
        .stream(stream.clone())
        .start()
        .await
        .unwrap();
    // Five publishes, each the root of a trace of its own.
    for i in 0..5u64 {
        setup.client().js_publish("btel.in", &i).await.unwrap();
    }
    setup.shutdown().await;
    let sends: Vec<_> = recorded
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| {
            s.span_kind == SpanKind::Producer
                && attr_str(s, "messaging.destination.name").as_deref() == Some("btel.in")
        })
        .collect();
    assert_eq!(sends.len(), 5, "one send span per publish");

    let loader = Loader::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(stream)
        .actor(loader.clone())
        .start()
        .await
        .unwrap();
    let called = || async { loader.calls.load(Ordering::Relaxed) == 1 };
    assert!(eventually(Duration::from_secs(10), called).await);
    runtime.shutdown().await;

    let batch_span = || {
        recorded
            .spans
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| {
                s.span_kind == SpanKind::Consumer
                    && attr_str(s, "messaging.batch.message_count").is_some()
            })
    };
    let found = eventually(Duration::from_secs(10), || async { batch_span().is_some() }).await;
    assert!(found, "the batch's process span");
    let span = batch_span().unwrap();
    assert_eq!(
        attr_str(&span, "messaging.batch.message_count").as_deref(),
        Some("5")
    );
    let first = &sends[0].span_context;
    assert_eq!(span.span_context.trace_id(), first.trace_id());
    assert_eq!(span.parent_span_id, first.span_id());
    let linked: Vec<_> = span
        .links
        .iter()
        .map(|l| l.span_context.span_id())
        .collect();
    let others: Vec<_> = sends[1..]
        .iter()
        .map(|s| s.span_context.span_id())
        .collect();
    assert_eq!(
        linked, others,
        "linked to the other four producers, in stream order"
    );
}
