//! Trace context through KV and object stores, recorded by in-memory exporters: a put made
//! inside a handler carries the handler's trace, and the `#[kv_watch]` or `#[object_watch]`
//! handler that sees the change continues it; a read is a request span.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use nats_actors::kv::{KvConfig, KvEntry};
use nats_actors::objects::{ObjectInfo, ObjectStoreConfig};
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

#[derive(Actor)]
struct Uploader;

#[handlers]
impl Uploader {
    #[subscribe("objtrace.in")]
    async fn upload(&self, body: String, ctx: &Context) -> Result<(), HandlerError> {
        let store = ctx.objects("traced-files").await?;
        store.put("report", &mut body.as_bytes()).await?;
        Ok(())
    }
}

#[derive(Actor, Clone, Default)]
struct Uploads {
    sizes: Arc<AtomicU32>,
}

#[handlers]
impl Uploads {
    #[object_watch(bucket = "traced-files", from = "new")]
    async fn uploaded(&self, object: ObjectInfo) {
        self.sizes.fetch_add(object.size as u32, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_put_inside_a_handler_carries_its_trace_to_the_object_watch_handler() {
    telemetry();
    let server = server();
    let uploads = Uploads::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .object_store(ObjectStoreConfig {
            bucket: "traced-files".into(),
            ..Default::default()
        })
        .actor(Uploader)
        .actor(uploads.clone())
        .start()
        .await
        .unwrap();
    let trace = "5cf92f3577b34da6a3ce929d0e0e4737";
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").as_str(),
    );
    let outside = nats(&server).await;
    outside
        .publish_with_headers("objtrace.in", headers, "\"twelve bytes\"".into())
        .await
        .unwrap();
    outside.flush().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            uploads.sizes.load(SeqCst) == 12
        })
        .await,
        "the watcher did not see the put: {:?}",
        runtime.stats()
    );
    let trace = TraceId::from_hex(trace).unwrap();
    // The info's subject: the name in url-safe base64 ("report" is "cmVwb3J0"); the watch
    // handler's span is named after what it watches.
    let meta = "$O.traced-files.M.cmVwb3J0";
    let watching = "process $O.traced-files.M.>";
    let complete = eventually(Duration::from_secs(10), || async {
        trace_spans(trace).iter().any(|s| s.name == watching)
    })
    .await;
    let all = trace_spans(trace);
    let names = all.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert!(complete, "{names:?}");
    let named = |name: String| {
        all.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name:?} in {names:?}"))
    };
    let upload = named("process objtrace.in".into());
    let put = named(format!("send {meta}"));
    let watched = named(watching.into());
    assert_eq!(put.parent_span_id, upload.span_context.span_id());
    assert_eq!(watched.parent_span_id, put.span_context.span_id());
    runtime.shutdown().await;
}
