//! What a recorded span is, shared by the code that records spans ([`super::spans`],
//! [`super::events`]) and the built-in exporter that encodes them ([`super::otlp`]). It uses
//! none of them.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, TraceFlags, TraceId};

/// The `tracing` target of the span handlers run in, for log layers (log lines show the handler
/// and subject). The OpenTelemetry layers never see it: the process span is recorded by
/// nats-actors.
pub(crate) const PROCESS_TARGET: &str = "nats_actors_span";

/// What a handler's process spans share, computed once per handler and interned ([`intern`]).
#[derive(Debug)]
pub(crate) struct ProcessMeta {
    pub name: String,
    pub template: &'static str,
    pub queue: Option<&'static str>,
    pub server: &'static Server,
    /// The attributes every process span of this handler shares, OTLP-encoded on first export.
    pub encoded: std::sync::OnceLock<Vec<u8>>,
}

impl ProcessMeta {
    /// The interned description of a handler's process spans.
    pub(crate) fn of(
        template: &'static str,
        queue: Option<&'static str>,
        server: &'static Server,
    ) -> &'static Self {
        static POOL: Mutex<Vec<&'static ProcessMeta>> = Mutex::new(Vec::new());
        intern(
            &POOL,
            |m| m.template == template && m.queue == queue && std::ptr::eq(m.server, server),
            || Self {
                name: format!("process {template}"),
                template,
                queue,
                server,
                encoded: Default::default(),
            },
        )
    }
}

/// Where the client is connected, for `server.address` and `server.port`; interned.
#[derive(Debug)]
pub(crate) struct Server {
    pub address: String,
    pub port: u16,
    /// The attributes every send (`[0]`) and request (`[1]`) span shares, OTLP-encoded on first
    /// export.
    pub encoded: [std::sync::OnceLock<Vec<u8>>; 2],
}

impl Server {
    pub(crate) fn of(nats: &async_nats::Client) -> &'static Self {
        static POOL: Mutex<Vec<&'static Server>> = Mutex::new(Vec::new());
        let info = nats.server_info();
        intern(
            &POOL,
            |s| s.address == info.host && s.port == info.port,
            || Self {
                address: info.host.clone(),
                port: info.port,
                encoded: Default::default(),
            },
        )
    }
}

/// The value in `pool` that `is` accepts, or `make()` added to it: one copy of each for the
/// life of the process. A recorded span refers to its handler's description by a plain
/// reference: a reference count would be touched by the handler's thread when the span starts
/// and by the export thread when it is encoded, a cache-line transfer between cores per span.
/// Bounded: handlers' subject templates and queue groups are compile-time strings, and servers
/// are the few a process connects to.
fn intern<T: Sync + 'static>(
    pool: &Mutex<Vec<&'static T>>,
    is: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> &'static T {
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = pool.iter().find(|t| is(t)) {
        return found;
    }
    let made: &'static T = Box::leak(Box::new(make()));
    pool.push(made);
    made
}

/// The attributes of a recorded span, kept in their source form until export.
pub(crate) enum Attrs {
    Process {
        meta: &'static ProcessMeta,
        /// Copied: holding the message's `Subject` until export would pin async-nats' read
        /// buffer.
        subject: ShortStr,
        message_id: Option<Box<str>>,
        body_size: usize,
    },
    Send {
        operation: &'static str,
        /// `None` for replies (inbox subjects are not destinations).
        subject: Option<String>,
        body_size: usize,
        server: &'static Server,
    },
}

/// The attribute keys of the spans nats-actors records (messaging semantic conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    System,
    OperationName,
    OperationType,
    DestinationName,
    DestinationTemplate,
    ConsumerGroup,
    MessageId,
    BodySize,
    ServerAddress,
    ServerPort,
    ErrorType,
}

impl Key {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Key::System => "messaging.system",
            Key::OperationName => "messaging.operation.name",
            Key::OperationType => "messaging.operation.type",
            Key::DestinationName => "messaging.destination.name",
            Key::DestinationTemplate => "messaging.destination.template",
            Key::ConsumerGroup => "messaging.consumer.group.name",
            Key::MessageId => "messaging.message.id",
            Key::BodySize => "messaging.message.body.size",
            Key::ServerAddress => "server.address",
            Key::ServerPort => "server.port",
            Key::ErrorType => "error.type",
        }
    }
}

/// What takes a span's attributes: the SDK span's attribute list or the OTLP encoder.
pub(crate) trait AttrSink {
    /// A value that lives as long as the process (no copy needed).
    fn fixed(&mut self, key: Key, value: &'static str);
    fn str(&mut self, key: Key, value: &str);
    /// A subject kept in the record; the encoder takes its bytes as they are.
    fn short(&mut self, key: Key, value: &ShortStr) {
        self.str(key, value.as_str());
    }
    fn int(&mut self, key: Key, value: i64);
}

impl Attrs {
    /// Every attribute: [`Attrs::shared`], then [`Attrs::own`].
    pub(crate) fn visit(&self, sink: &mut impl AttrSink) {
        self.shared(sink);
        self.own(sink);
    }

    /// The attributes all spans of a handler (process) or of a server and operation (send)
    /// share: the OTLP encoder encodes them once (`ProcessMeta::encoded`, `Server::encoded`).
    #[inline]
    pub(crate) fn shared(&self, sink: &mut impl AttrSink) {
        sink.fixed(Key::System, "nats");
        match *self {
            Attrs::Process { meta, .. } => {
                sink.fixed(Key::OperationName, "process");
                sink.fixed(Key::OperationType, "process");
                sink.fixed(Key::DestinationTemplate, meta.template);
                if let Some(q) = meta.queue {
                    sink.fixed(Key::ConsumerGroup, q);
                }
                sink.fixed(Key::ServerAddress, &meta.server.address);
                sink.int(Key::ServerPort, i64::from(meta.server.port));
            }
            Attrs::Send {
                operation, server, ..
            } => {
                sink.fixed(Key::OperationName, operation);
                sink.fixed(Key::OperationType, "send");
                sink.fixed(Key::ServerAddress, &server.address);
                sink.int(Key::ServerPort, i64::from(server.port));
            }
        }
    }

    /// The attributes of this span alone.
    #[inline]
    pub(crate) fn own(&self, sink: &mut impl AttrSink) {
        match self {
            Attrs::Process {
                subject,
                message_id,
                body_size,
                ..
            } => {
                sink.short(Key::DestinationName, subject);
                if let Some(id) = message_id {
                    sink.str(Key::MessageId, id);
                }
                sink.int(Key::BodySize, *body_size as i64);
            }
            Attrs::Send {
                subject, body_size, ..
            } => {
                if let Some(s) = subject {
                    sink.str(Key::DestinationName, s);
                }
                sink.int(Key::BodySize, *body_size as i64);
            }
        }
    }
}

/// A string kept inline when short (subjects usually are), else on the heap.
pub(crate) enum ShortStr {
    Inline([u8; 56], u8),
    Heap(String),
}

impl ShortStr {
    pub(crate) fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= 56 {
            let mut a = [0u8; 56];
            a[..b.len()].copy_from_slice(b);
            Self::Inline(a, b.len() as u8)
        } else {
            Self::Heap(s.to_string())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Copied from a `&str` whole: always valid UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The string's bytes, not validated again (the OTLP encoder writes bytes).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline(a, n) => &a[..usize::from(*n)],
            Self::Heap(s) => s.as_bytes(),
        }
    }
}

/// A failed span: `error.type`, the status description, and an `exception` event.
pub(crate) struct Failure {
    pub error_type: &'static str,
    pub description: String,
    pub at: SystemTime,
}

/// A span recorded by nats-actors for the built-in OTLP exporter: what the encoder needs and
/// nothing else, kept small (about 200 bytes) because every span is written by a handler's
/// thread and read by the export thread.
pub(crate) struct Rec {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The parent's span id, when there is a parent (in the same trace).
    pub parent: Option<SpanId>,
    pub parent_remote: bool,
    pub flags: TraceFlags,
    pub kind: SpanKind,
    /// The W3C `tracestate`, when not empty.
    pub trace_state: Option<Box<str>>,
    pub name: Name,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    pub attrs: Attrs,
    /// Failure and events: most spans have neither.
    pub extra: Option<Box<State>>,
}

/// A span name: a handler's, shared by its spans, or one of its own.
pub(crate) enum Name {
    Shared(&'static str),
    Owned(String),
}

impl Name {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Name::Shared(s) => s,
            Name::Owned(s) => s,
        }
    }
}

/// What changes while the span is open.
#[derive(Default)]
pub(crate) struct State {
    pub failure: Option<Failure>,
    pub events: Vec<Ev>,
    /// Attributes set while the span is open (a keyed actor's key).
    pub attrs: Vec<(&'static str, String)>,
    /// Links to other spans (the producers of a batch's other messages).
    pub links: Vec<opentelemetry::trace::SpanContext>,
}

/// An attribute value of an event.
pub(crate) enum EvValue {
    Str(Cow<'static, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// One event of a span.
pub(crate) struct Ev {
    pub name: Cow<'static, str>,
    pub at: SystemTime,
    pub attrs: Vec<(Cow<'static, str>, EvValue)>,
}

#[cfg(test)]
mod tests {
    /// Every recorded span is written by a handler's thread and read by the export thread: the
    /// record is kept within four cache lines.
    #[test]
    fn a_span_record_fits_in_four_cache_lines() {
        assert!(std::mem::size_of::<super::Rec>() <= 256);
    }

    #[test]
    fn handler_descriptions_are_interned_by_what_they_describe() {
        use super::{ProcessMeta, Server};
        let server = || Server {
            address: "127.0.0.1".into(),
            port: 4222,
            encoded: Default::default(),
        };
        let pool = std::sync::Mutex::new(Vec::new());
        let a = super::intern(&pool, |s: &Server| s.port == 4222, server);
        let b = super::intern(&pool, |s: &Server| s.port == 4222, server);
        assert!(std::ptr::eq(a, b), "the same server, one copy");
        let m1 = ProcessMeta::of("intern.{x}", Some("q"), a);
        let m2 = ProcessMeta::of("intern.{x}", Some("q"), a);
        let m3 = ProcessMeta::of("intern.{x}", None, a);
        assert!(std::ptr::eq(m1, m2), "the same handler, one copy");
        assert!(
            !std::ptr::eq(m1, m3),
            "another queue group, another description"
        );
        assert_eq!(m1.name, "process intern.{x}");
    }
}
