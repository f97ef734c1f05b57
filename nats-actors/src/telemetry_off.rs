//! Without the `telemetry` feature: the interface the runtime uses of `telemetry/`, recording
//! nothing. Handlers still run in their `tracing` span (for log layers); there are no
//! OpenTelemetry spans, no metrics, no exporter.

/// Spans: none is ever recorded.
pub(crate) mod spans {
    use async_nats::{HeaderMap, Message};

    pub(crate) use super::record::{ProcessMeta, Server, PROCESS_TARGET};

    /// A span that records nothing.
    pub(crate) struct Frame;

    /// No OpenTelemetry context: the type has no value.
    pub(crate) enum NoContext {}

    impl Frame {
        pub(crate) const fn none() -> Self {
            Self
        }

        pub(crate) fn context(&self) -> Option<&NoContext> {
            None
        }

        pub(crate) fn fail(&self, _error_type: &'static str, _description: &str) {}

        #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
        pub(crate) fn set(&self, _key: &'static str, _value: String) {}

        #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
        pub(crate) fn link_producers<'m>(&self, _messages: impl Iterator<Item = &'m Message>) {}
    }

    /// What a send span is for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum SendKind {
        Publish,
        Request,
        Reply,
    }

    /// The `tracing` span a handler runs in (debug level, its own target, as with telemetry).
    #[inline(always)]
    pub(crate) fn process(meta: &'static ProcessMeta, msg: &Message) -> (tracing::Span, Frame) {
        let span = tracing::debug_span!(target: PROCESS_TARGET, "process", handler = meta.template, subject = %msg.subject);
        (span, Frame)
    }

    #[inline(always)]
    pub(crate) fn send(
        _parent: Option<&Frame>,
        _what: SendKind,
        _subject: &str,
        _body_size: usize,
        _server: &'static Server,
    ) -> Frame {
        Frame
    }

    #[inline(always)]
    pub(crate) fn inject(_frame: &Frame, _headers: &mut HeaderMap) {}
}

/// What the handlers and the client would describe in their spans.
mod record {
    /// The target of the `tracing` span handlers run in.
    pub(crate) const PROCESS_TARGET: &str = "nats_actors_span";

    /// A handler, as its spans would describe it.
    pub(crate) struct ProcessMeta {
        pub template: &'static str,
    }

    impl ProcessMeta {
        /// One per template for the life of the process, as with telemetry.
        pub(crate) fn of(
            template: &'static str,
            _queue: Option<&'static str>,
            _server: &'static Server,
        ) -> &'static Self {
            static POOL: std::sync::Mutex<Vec<&'static ProcessMeta>> =
                std::sync::Mutex::new(Vec::new());
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(meta) = pool.iter().find(|m| m.template == template) {
                return meta;
            }
            let meta: &'static Self = Box::leak(Box::new(Self { template }));
            pool.push(meta);
            meta
        }
    }

    /// The server, as spans would describe it.
    pub(crate) struct Server;

    impl Server {
        pub(crate) fn of(_nats: &async_nats::Client) -> &'static Self {
            static SERVER: Server = Server;
            &SERVER
        }
    }
}

/// Metrics: none is ever recorded.
pub(crate) mod metrics {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::stats::Counters;

    /// A handler's instruments: never made.
    pub(crate) enum HandlerMetrics {}

    impl HandlerMetrics {
        pub(crate) fn new(_template: &'static str, _queue: Option<&'static str>) -> Option<Self> {
            None
        }

        pub(crate) fn record(&self, _seconds: f64, _error_type: Option<&'static str>) {
            match *self {}
        }
    }

    /// The client's instruments: never made.
    pub(crate) enum ClientMetrics {}

    /// The operation a client metric is about.
    #[derive(Clone, Copy)]
    pub(crate) enum Operation {
        Send,
        Request,
    }

    impl ClientMetrics {
        pub(crate) fn get() -> Option<&'static ClientMetrics> {
            None
        }

        pub(crate) fn record(
            &self,
            _op: Operation,
            _started: Instant,
            _error: Option<&'static str>,
        ) {
            match *self {}
        }
    }

    /// Nothing to keep registered.
    pub(crate) type RuntimeObservers = ();

    pub(crate) fn observe_runtime(_counters: Arc<Counters>) -> RuntimeObservers {}
}

/// Nothing to flush.
pub(crate) async fn flush(_deadline: tokio::time::Instant) {}

/// No metrics without the `telemetry` feature.
#[cfg_attr(not(feature = "health"), allow(dead_code))]
pub(crate) fn prometheus_text() -> Option<Result<String, String>> {
    None
}
