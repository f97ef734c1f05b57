//! Trace context through KV, recorded by in-memory exporters: a put made inside a handler
//! carries the handler's trace, and the `#[kv_watch]` handler that sees the change continues it;
//! a read is a request span.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::kv::{KvConfig, KvEntry};
use nats_actors::prelude::*;
use nats_actors::HeaderMap;
use nats_actors_suite::recorded::{span_named, telemetry, trace_spans};
use nats_actors_suite::{connect, eventually, nats, server};
use opentelemetry::trace::{SpanKind, TraceId};

#[derive(Actor)]
struct Relay;

#[handlers]
impl Relay {
    #[subscribe("kvtrace.in")]
    async fn relay(&self, n: u32, ctx: &Context) -> Result<(), HandlerError> {
        ctx.kv::<u32>("traced").await?.put("k", &n).await?;
        Ok(())
    }
}

#[derive(Actor, Clone, Default)]
struct Watch {
    seen: Arc<AtomicU32>,
}

#[handlers]
impl Watch {
    #[kv_watch(bucket = "traced", key = "k", from = "new")]
    async fn changed(&self, entry: KvEntry<u32>) {
        self.seen.fetch_add(entry.value.unwrap_or(0), SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_inside_a_handler_carries_its_trace_to_the_watch_handler() {
    telemetry();
    let server = server();
    let watch = Watch::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .kv(KvConfig {
            bucket: "traced".into(),
            ..Default::default()
        })
        .actor(Relay)
        .actor(watch.clone())
        .start()
        .await
        .unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").as_str(),
    );
    let outside = nats(&server).await;
    outside
        .publish_with_headers("kvtrace.in", headers, "7".into())
        .await
        .unwrap();
    outside.flush().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            watch.seen.load(SeqCst) == 7
        })
        .await,
        "the watcher did not see the put: {:?}",
        runtime.stats()
    );
    let trace = TraceId::from_hex(trace).unwrap();
    let spans = eventually(Duration::from_secs(10), || async {
        trace_spans(trace).len() >= 3
    })
    .await;
    let all = trace_spans(trace);
    assert!(
        spans,
        "{:?}",
        all.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let named = |name: &str| {
        all.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no {name:?} in {:?}",
                all.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let relay = named("process kvtrace.in");
    let put = named("send $KV.traced.k");
    let watched = named("process $KV.traced.k");
    assert_eq!(put.parent_span_id, relay.span_context.span_id());
    assert_eq!(watched.parent_span_id, put.span_context.span_id());
    // A read is a request span of its own (a new trace outside handlers).
    let kv = runtime.client().kv::<u32>("traced").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), Some(7));
    let read = span_named("request $KV.traced.k").await;
    assert_eq!(read.span_kind, SpanKind::Client);
    assert_ne!(read.span_context.trace_id(), trace);
    runtime.shutdown().await;
}
