//! The spans of the messaging semantic conventions (v1.44): `process` (CONSUMER) around every
//! handled message, `send` (PRODUCER) for every publish and reply, and a CLIENT span for every
//! request. Each is built only when it will be recorded.

use async_nats::{HeaderMap, Message};
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::KeyValue;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::propagation;
use super::sampling::Decision;

/// What a handler's process spans share, computed once per handler.
#[derive(Debug)]
pub(crate) struct ProcessMeta {
    pub name: String,
    pub template: &'static str,
    pub queue: Option<&'static str>,
    pub server: Server,
}

/// Where the client is connected, for `server.address` and `server.port`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Server {
    pub address: String,
    pub port: u16,
}

impl Server {
    pub(crate) fn of(nats: &async_nats::Client) -> Self {
        let info = nats.server_info();
        Self {
            address: info.host,
            port: info.port,
        }
    }
}

/// The process span of `msg`, its parent taken from the message's trace headers
/// (core NATS and request/reply: one message, one parent). `Span::none()` when not recorded.
pub(crate) fn process(meta: &ProcessMeta, msg: &Message) -> Span {
    let Some(sampling) = super::sampling() else {
        return tracing::debug_span!(target: "nats_actors", "process", handler = meta.template, subject = %msg.subject);
    };
    let parent = propagation::extract(msg.headers.as_ref());
    if sampling.decide(parent.span().span_context()) == Decision::Drop {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: "nats_actors",
        "process",
        otel.name = meta.name.as_str(),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.name = "process",
        messaging.operation.type = "process",
        messaging.destination.name = msg.subject.as_str(),
        messaging.destination.template = meta.template,
        messaging.consumer.group.name = tracing::field::Empty,
        messaging.message.id = tracing::field::Empty,
        messaging.message.body.size = msg.payload.len(),
        server.address = meta.server.address.as_str(),
        server.port = i64::from(meta.server.port),
    );
    if let Some(queue) = meta.queue {
        span.record("messaging.consumer.group.name", queue);
    }
    if let Some(id) = msg
        .headers
        .as_ref()
        .and_then(|h| crate::headers::get(h, "Nats-Msg-Id"))
    {
        span.record("messaging.message.id", id);
    }
    let _ = span.set_parent(parent);
    span
}

/// What a send span is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendKind {
    Publish,
    Request,
    Reply,
}

/// A span for sending to `subject`, when it will be recorded. `parent` is the process span of the
/// handler sending (`None` outside handlers: the current span, or a new trace). A handler whose
/// process span is not recorded records no send span either: the incoming trace headers are
/// passed on unchanged, so an unsampled trace stays one trace, unsampled.
pub(crate) fn send(
    parent: Option<&Span>,
    what: SendKind,
    subject: &str,
    body_size: usize,
    server: &Server,
) -> Span {
    let Some(sampling) = super::sampling() else {
        return Span::none();
    };
    let current;
    let parent = match parent {
        Some(p) if p.is_disabled() => return Span::none(),
        Some(p) => p,
        None => {
            current = Span::current();
            &current
        }
    };
    let parent_cx = if parent.is_disabled() {
        None
    } else {
        Some(parent.context())
    };
    let decision = match &parent_cx {
        Some(cx) => sampling.decide(cx.span().span_context()),
        None => sampling.decide(&opentelemetry::trace::SpanContext::empty_context()),
    };
    if decision == Decision::Drop {
        return Span::none();
    }
    let (name, kind, operation) = match what {
        SendKind::Publish => (format!("send {subject}"), "producer", "send"),
        SendKind::Request => (format!("request {subject}"), "client", "request"),
        // Reply subjects are inboxes: no destination in the name.
        SendKind::Reply => ("send".to_string(), "producer", "send"),
    };
    let parent_id = if parent_cx.is_some() {
        parent.id()
    } else {
        None
    };
    let span = tracing::info_span!(
        target: "nats_actors",
        parent: parent_id,
        "send",
        otel.name = name.as_str(),
        otel.kind = kind,
        messaging.system = "nats",
        messaging.operation.name = operation,
        messaging.operation.type = "send",
        messaging.destination.name = tracing::field::Empty,
        messaging.message.body.size = body_size,
        server.address = server.address.as_str(),
        server.port = i64::from(server.port),
    );
    if what != SendKind::Reply {
        span.record("messaging.destination.name", subject);
    }
    span
}

/// Writes the context of `span` into `headers`.
pub(crate) fn inject(span: &Span, headers: &mut HeaderMap) {
    propagation::inject(&span.context(), headers);
}

/// Marks `span` failed: `error.type`, error status, and an `exception` event.
pub(crate) fn fail(span: &Span, error_type: &str, description: &str) {
    if span.is_disabled() {
        return;
    }
    span.set_attribute("error.type", error_type.to_string());
    span.set_status(Status::error(description.to_string()));
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", error_type.to_string()),
            KeyValue::new("exception.message", description.to_string()),
        ],
    );
}
