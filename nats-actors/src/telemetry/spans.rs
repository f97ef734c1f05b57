//! The spans of the messaging semantic conventions (v1.44): `process` (CONSUMER) around every
//! handled message, `send` (PRODUCER) for every publish and reply, and a CLIENT span for every
//! request.
//!
//! These spans are recorded by nats-actors itself, not through `tracing-opentelemetry`: a
//! [`Frame`] is built only when the span will be recorded, and it is either a compact record that
//! the built-in OTLP exporter encodes straight to protobuf ([`super::otlp`]), or, with any other
//! exporter, an OpenTelemetry SDK span. The handler runs inside the span's OpenTelemetry context
//! (so spans the user opens are its children), and `tracing` events in user code become its
//! events ([`super::events`]).

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use async_nats::{HeaderMap, Message};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer};

use super::propagation;
use super::record::{AttrSink, Attrs, Ev, EvValue, Failure, Key, Name, Rec, ShortStr, State};
pub(crate) use super::record::{ProcessMeta, Server, PROCESS_TARGET};
use super::sampling::Decision;

/// Where recorded spans go.
pub(crate) enum Sink {
    /// The built-in OTLP exporter: records encoded straight to protobuf.
    Otlp(super::otlp::Exporter),
    /// Any other exporter (console, in-memory, user-provided): SDK spans.
    Sdk(SdkTracer),
}

/// A recorded span and what changes while it is open, in one allocation (so that a [`Frame`],
/// which every handler context holds, is two words whether or not it records).
struct Open<T> {
    span: T,
    state: Mutex<State>,
}

/// A span recorded for the built-in exporter, while open: the record, and the parent's
/// context with this span's context in it (injected into headers, attached while the handler
/// runs).
struct Own {
    cx: opentelemetry::Context,
    rec: Rec,
}

enum Inner {
    Own(Box<Open<Own>>),
    Sdk(Box<Open<opentelemetry::Context>>),
}

/// A span being recorded (or not: [`Frame::none`]). It ends when dropped.
pub(crate) struct Frame(Option<Inner>);

impl Frame {
    pub(crate) const fn none() -> Self {
        Self(None)
    }

    /// This span's OpenTelemetry context (with the parent's baggage), when recorded.
    pub(crate) fn context(&self) -> Option<&opentelemetry::Context> {
        match self.0.as_ref()? {
            Inner::Own(own) => Some(&own.span.cx),
            Inner::Sdk(sdk) => Some(&sdk.span),
        }
    }

    fn state(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        let state = match self.0.as_ref()? {
            Inner::Own(own) => &own.state,
            Inner::Sdk(sdk) => &sdk.state,
        };
        Some(state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds events (of `tracing` events in the handler).
    pub(crate) fn add_events(&self, events: Vec<Ev>) {
        if let Some(mut state) = self.state() {
            state.events.extend(events);
        }
    }

    /// Sets an attribute (once per key: the caller sets each at most once).
    pub(crate) fn set(&self, key: &'static str, value: String) {
        if let Some(mut state) = self.state() {
            state.attrs.push((key, value));
        }
    }

    /// Links the span to the producer of each of `messages` whose headers carry a trace
    /// context (a batch handler's span: its parent is the first message's producer).
    pub(crate) fn link_producers<'m>(&self, messages: impl Iterator<Item = &'m Message>) {
        let Some(mut state) = self.state() else {
            return;
        };
        for m in messages {
            let cx = propagation::extract(m.headers.as_ref());
            let sc = cx.span().span_context().clone();
            if sc.is_valid() {
                state.links.push(sc);
            }
        }
    }

    /// Marks the span failed: `error.type`, error status, and an `exception` event.
    pub(crate) fn fail(&self, error_type: &'static str, description: &str) {
        if let Some(mut state) = self.state() {
            state.failure = Some(Failure {
                error_type,
                description: description.to_string(),
                at: super::metrics::wall_now(),
            });
        }
    }
}

impl Drop for Frame {
    /// Inlined: a frame that records nothing (every message when nothing is sampled) costs a
    /// test, not a call.
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            end(inner);
        }
    }
}

/// Ends a recorded span: to the built-in exporter, or ended on the SDK span.
#[inline(never)]
fn end(inner: Inner) {
    let end = super::metrics::wall_nanos();
    match inner {
        Inner::Own(own) => {
            let Open {
                span: Own { cx, mut rec },
                state,
            } = *own;
            // Freed here, by the thread that made it, not by the export thread.
            drop(cx);
            let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
            if state.failure.is_some()
                || !state.events.is_empty()
                || !state.attrs.is_empty()
                || !state.links.is_empty()
            {
                rec.extra = Some(Box::new(state));
            }
            rec.end = end.max(rec.start);
            if let Some(Sink::Otlp(exporter)) = super::sink() {
                exporter.push(rec);
            }
        }
        Inner::Sdk(sdk) => {
            let Open { span: cx, state } = *sdk;
            let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
            let s = cx.span();
            for (key, value) in state.attrs {
                s.set_attribute(KeyValue::new(key, value));
            }
            for link in state.links {
                s.add_link(link, Vec::new());
            }
            for ev in state.events {
                s.add_event_with_timestamp(ev.name, ev.at, ev.attrs.into_iter().map(kv).collect());
            }
            if let Some(f) = state.failure {
                s.set_attribute(KeyValue::new(Key::ErrorType.name(), f.error_type));
                s.add_event_with_timestamp(
                    "exception",
                    f.at,
                    vec![
                        KeyValue::new("exception.type", f.error_type),
                        KeyValue::new("exception.message", f.description.clone()),
                    ],
                );
                s.set_status(Status::error(f.description));
            }
            s.end_with_timestamp(UNIX_EPOCH + Duration::from_nanos(end));
        }
    }
}

fn kv((key, value): (Cow<'static, str>, EvValue)) -> KeyValue {
    match value {
        EvValue::Str(s) => KeyValue::new(key, s),
        EvValue::I64(n) => KeyValue::new(key, n),
        EvValue::F64(n) => KeyValue::new(key, n),
        EvValue::Bool(b) => KeyValue::new(key, b),
    }
}

/// Whether to record a span whose parent is `parent`, and in which trace.
fn decide(parent: &SpanContext) -> Option<(TraceId, TraceFlags)> {
    let sampling = super::sampling()?;
    let decision = sampling.decide(parent);
    if decision == Decision::Drop {
        return None;
    }
    let trace_id = if parent.is_valid() {
        parent.trace_id()
    } else {
        RandomIdGenerator::default().new_trace_id()
    };
    if decision == Decision::Ask && !sampling.ratio_samples(trace_id) {
        return None;
    }
    Some((trace_id, parent.trace_flags().with_sampled(true)))
}

/// Starts a span under `parent_cx` (whose span, if valid, is the parent), in the trace and with
/// the flags [`decide`] gave. The callers decide first, so that nothing is built for a span that
/// will not be recorded.
fn start(
    parent_cx: opentelemetry::Context,
    (trace_id, flags): (TraceId, TraceFlags),
    kind: SpanKind,
    name: Name,
    attrs: Attrs,
) -> Frame {
    let parent_sc = parent_cx.span().span_context().clone();
    let start = super::metrics::wall_nanos();
    match super::sink() {
        None => Frame::none(),
        Some(Sink::Otlp(_)) => {
            let span_id = RandomIdGenerator::default().new_span_id();
            let trace_state = parent_sc.trace_state();
            let rec = Rec {
                trace_id,
                span_id,
                parent: parent_sc.is_valid().then(|| parent_sc.span_id()),
                parent_remote: parent_sc.is_remote(),
                flags,
                kind,
                trace_state: (*trace_state != TraceState::NONE)
                    .then(|| trace_state.header().into_boxed_str()),
                name,
                start,
                end: start,
                attrs,
                extra: None,
            };
            let sc = SpanContext::new(trace_id, span_id, flags, false, trace_state.clone());
            let cx = parent_cx.with_remote_span_context(sc);
            Frame(Some(Inner::Own(Box::new(Open {
                span: Own { cx, rec },
                state: Mutex::default(),
            }))))
        }
        Some(Sink::Sdk(tracer)) => {
            let builder = tracer
                .span_builder(name.as_str().to_string())
                .with_kind(kind)
                .with_start_time(UNIX_EPOCH + Duration::from_nanos(start))
                .with_attributes(attributes(&attrs));
            let sdk_span = tracer.build_with_context(builder, &parent_cx);
            let cx = parent_cx.with_span(sdk_span);
            Frame(Some(Inner::Sdk(Box::new(Open {
                span: cx,
                state: Mutex::default(),
            }))))
        }
    }
}

/// The OpenTelemetry attributes of `attrs`, for SDK spans.
fn attributes(attrs: &Attrs) -> Vec<KeyValue> {
    let mut out = SdkAttrs(Vec::with_capacity(10));
    attrs.visit(&mut out);
    out.0
}

struct SdkAttrs(Vec<KeyValue>);

impl AttrSink for SdkAttrs {
    fn fixed(&mut self, key: Key, value: &'static str) {
        self.0.push(KeyValue::new(key.name(), value));
    }

    fn str(&mut self, key: Key, value: &str) {
        self.0.push(KeyValue::new(key.name(), value.to_string()));
    }

    fn int(&mut self, key: Key, value: i64) {
        self.0.push(KeyValue::new(key.name(), value));
    }
}

/// The process span of `msg`, the parent taken from the message's trace headers (core NATS and
/// request/reply: one message, one parent), and the `tracing` span the handler runs in.
///
/// The `tracing` span is for log layers only (log lines in the handler show its handler and
/// subject): at `debug` level and under its own target, so that it is not even built unless a
/// log filter asks for it (`RUST_LOG=info,nats_actors_span=debug`). The OpenTelemetry layer
/// never sees it; the process span is the [`Frame`], `Frame::none()` when not recorded.
#[inline(always)]
pub(crate) fn process(meta: &'static ProcessMeta, msg: &Message) -> (tracing::Span, Frame) {
    let span = tracing::debug_span!(target: PROCESS_TARGET, "process", handler = meta.template, subject = %msg.subject);
    match super::sampling() {
        None => (span, Frame::none()),
        // No trace headers and new traces are not sampled: nothing to extract or decide.
        Some(s) if msg.headers.is_none() && s.drops_new_traces() => (span, Frame::none()),
        Some(_) => (span, process_frame(meta, msg)),
    }
}

/// The process span of `msg` when tracing is installed: [`Frame::none`] unless it is sampled.
fn process_frame(meta: &'static ProcessMeta, msg: &Message) -> Frame {
    let parent = propagation::extract(msg.headers.as_ref());
    let Some(decided) = decide(parent.span().span_context()) else {
        return Frame::none();
    };
    let message_id = msg
        .headers
        .as_ref()
        .and_then(|h| crate::headers::get(h, "Nats-Msg-Id"))
        .map(Box::from);
    let attrs = Attrs::Process {
        meta,
        subject: ShortStr::new(msg.subject.as_str()),
        message_id,
        body_size: msg.payload.len(),
    };
    start(
        parent,
        decided,
        SpanKind::Consumer,
        Name::Shared(&meta.name),
        attrs,
    )
}

/// What a send span is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendKind {
    Publish,
    Request,
    Reply,
}

/// A span for sending to `subject`, when it will be recorded. `parent` is the process span of the
/// handler sending (`None` outside handlers: the current OpenTelemetry context, or a new trace).
/// A handler whose process span is not recorded records no send span either: the incoming trace
/// headers are passed on unchanged, so an unsampled trace stays one trace, unsampled.
pub(crate) fn send(
    parent: Option<&Frame>,
    what: SendKind,
    subject: &str,
    body_size: usize,
    server: &'static Server,
) -> Frame {
    if super::sampling().is_none() {
        return Frame::none();
    }
    let parent_cx = match parent {
        Some(p) => match p.context() {
            Some(cx) => cx.clone(),
            None => return Frame::none(),
        },
        None => opentelemetry::Context::current(),
    };
    let Some(decided) = decide(parent_cx.span().span_context()) else {
        return Frame::none();
    };
    let (name, kind, operation) = match what {
        SendKind::Publish => (format!("send {subject}"), SpanKind::Producer, "send"),
        SendKind::Request => (format!("request {subject}"), SpanKind::Client, "request"),
        // Reply subjects are inboxes: no destination in the name.
        SendKind::Reply => ("send".to_string(), SpanKind::Producer, "send"),
    };
    let attrs = Attrs::Send {
        operation,
        subject: (what != SendKind::Reply).then(|| subject.to_string()),
        body_size,
        server,
    };
    start(parent_cx, decided, kind, Name::Owned(name), attrs)
}

/// Writes the context of `frame` into `headers`.
pub(crate) fn inject(frame: &Frame, headers: &mut HeaderMap) {
    if let Some(cx) = frame.context() {
        propagation::inject(cx, headers);
    }
}
