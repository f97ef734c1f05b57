//! Span records to an OTLP `ExportTraceServiceRequest`, in a gRPC frame or as an HTTP body.

use bytes::Bytes;
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use opentelemetry_sdk::Resource;

use super::wire::{
    bytes_field, field_len, fixed64, key, kv, nested, span_attr_int, span_attr_str, varint, AnyRef,
    I32, LEN, VARINT,
};
use crate::telemetry::metrics::unix_nanos;
use crate::telemetry::record::{AttrSink, Attrs, Ev, EvValue, Key, Rec, ShortStr};

/// The start of a `KeyValue` whose key is known: the key field and the value field's key.
/// `messaging.destination.name` and `messaging.message.body.size`, on every span.
const DESTINATION_NAME: &[u8] = b"\x0a\x1amessaging.destination.name\x12";
const BODY_SIZE: &[u8] = b"\x0a\x1bmessaging.message.body.size\x12";

/// The resource and scope, encoded once.
pub(super) struct Head {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Head {
    pub(super) fn new(resource: &Resource) -> Self {
        let mut r = Vec::new();
        for (k, v) in resource.iter() {
            let text;
            let v = match v {
                Value::Bool(b) => AnyRef::Bool(*b),
                Value::I64(n) => AnyRef::I64(*n),
                Value::F64(f) => AnyRef::F64(*f),
                Value::String(s) => AnyRef::Str(s.as_str()),
                other => {
                    text = other.to_string();
                    AnyRef::Str(&text)
                }
            };
            kv(&mut r, 1, k.as_str(), v);
        }
        let mut scope = Vec::new();
        bytes_field(&mut scope, 1, b"nats-actors");
        bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
        Self { resource: r, scope }
    }
}

/// The gRPC message frame's prefix: a compression flag and the length.
const GRPC_PREFIX: usize = 5;

#[derive(Default)]
pub(super) struct Encoder {
    envelope: Vec<u8>,
    event: Vec<u8>,
    /// Bytes per span in the last request, to size the next one.
    per_span: usize,
}

impl Encoder {
    /// An `ExportTraceServiceRequest` with one resource and one scope holding `recs`, in a gRPC
    /// message frame if `grpc`. The spans are written once, behind a gap that the envelope
    /// (whose lengths depend on them) fills afterwards; the request is that buffer from where
    /// its envelope starts, sent as it is.
    pub(super) fn request(&mut self, head: &Head, recs: &[Rec], grpc: bool) -> Bytes {
        let gap = GRPC_PREFIX
            + 2 * (1 + 10)
            + field_len(head.resource.len())
            + field_len(head.scope.len());
        let mut out = Vec::with_capacity(gap + recs.len() * (self.per_span.max(64) + 16));
        out.resize(gap, 0);
        for rec in recs {
            nested(&mut out, 2, |out| encode_span(out, &mut self.event, rec));
        }
        let spans_len = out.len() - gap;
        self.per_span = spans_len / recs.len().max(1);
        let scope_spans_len = field_len(head.scope.len()) + spans_len;
        let resource_spans_len = field_len(head.resource.len()) + field_len(scope_spans_len);
        let env = &mut self.envelope;
        env.clear();
        key(env, 1, LEN);
        varint(env, resource_spans_len as u64);
        bytes_field(env, 1, &head.resource);
        key(env, 2, LEN);
        varint(env, scope_spans_len as u64);
        bytes_field(env, 1, &head.scope);
        let mut from = gap - env.len();
        out[from..gap].copy_from_slice(env);
        if grpc {
            // Length-Prefixed-Message: not compressed, then the length (big-endian u32).
            let len = u32::try_from(out.len() - from).unwrap_or(u32::MAX);
            from -= GRPC_PREFIX;
            out[from] = 0;
            out[from + 1..from + GRPC_PREFIX].copy_from_slice(&len.to_be_bytes());
        }
        Bytes::from(out).slice(from..)
    }
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn encode_span(out: &mut Vec<u8>, scratch: &mut Vec<u8>, rec: &Rec) {
    bytes_field(out, 1, &rec.trace_id.to_bytes());
    bytes_field(out, 2, &rec.span_id.to_bytes());
    if let Some(state) = &rec.trace_state {
        bytes_field(out, 3, state.as_bytes());
    }
    if let Some(p) = &rec.parent {
        bytes_field(out, 4, &p.to_bytes());
    }
    bytes_field(out, 5, rec.name.as_str().as_bytes());
    key(out, 6, VARINT);
    varint(out, kind(&rec.kind));
    fixed64(out, 7, rec.start);
    fixed64(out, 8, rec.end);
    // The attributes a handler's (or a server's) spans share are encoded once.
    let shared = match &rec.attrs {
        Attrs::Process { meta, .. } => &meta.encoded,
        Attrs::Send {
            operation, server, ..
        } => &server.encoded[usize::from(*operation == "request")],
    };
    out.extend_from_slice(shared.get_or_init(|| {
        let mut a = Vec::new();
        rec.attrs.shared(&mut SpanAttrs(&mut a));
        a
    }));
    rec.attrs.own(&mut SpanAttrs(out));
    let (failure, events) = match rec.extra.as_deref() {
        Some(extra) => (extra.failure.as_ref(), extra.events.as_slice()),
        None => (None, &[][..]),
    };
    if let Some(f) = failure {
        kv(out, 9, Key::ErrorType.name(), AnyRef::Str(f.error_type));
    }
    for (key, value) in rec.extra.iter().flat_map(|e| &e.attrs) {
        kv(out, 9, key, AnyRef::Str(value));
    }
    for ev in events {
        scratch.clear();
        encode_event(scratch, ev);
        bytes_field(out, 11, scratch);
    }
    for link in rec.extra.iter().flat_map(|e| &e.links) {
        // Link { trace_id = 1, span_id = 2, trace_state = 3, flags = 6 }
        scratch.clear();
        bytes_field(scratch, 1, &link.trace_id().to_bytes());
        bytes_field(scratch, 2, &link.span_id().to_bytes());
        let trace_state = link.trace_state().header();
        if !trace_state.is_empty() {
            bytes_field(scratch, 3, trace_state.as_bytes());
        }
        // The W3C flags, and a remote span (HAS_IS_REMOTE | IS_REMOTE).
        key(scratch, 6, I32);
        let flags = u32::from(link.trace_flags().to_u8()) | 0x300;
        scratch.extend_from_slice(&flags.to_le_bytes());
        bytes_field(out, 13, scratch);
    }
    if let Some(f) = failure {
        scratch.clear();
        fixed64(scratch, 1, unix_nanos(f.at));
        bytes_field(scratch, 2, b"exception");
        kv(scratch, 3, "exception.type", AnyRef::Str(f.error_type));
        kv(scratch, 3, "exception.message", AnyRef::Str(&f.description));
        bytes_field(out, 11, scratch);
        // Status { message = 2, code = 3 (ERROR = 2) }
        let status_len = field_len(f.description.len()) + 2;
        key(out, 15, LEN);
        varint(out, status_len as u64);
        bytes_field(out, 2, f.description.as_bytes());
        key(out, 3, VARINT);
        out.push(2);
    }
    // flags: the W3C trace flags, and whether the parent is remote (HAS_IS_REMOTE | IS_REMOTE).
    let mut flags = u32::from(rec.flags.to_u8()) | 0x100;
    if rec.parent.is_some() && rec.parent_remote {
        flags |= 0x200;
    }
    key(out, 16, I32);
    out.extend_from_slice(&flags.to_le_bytes());
}

/// Span attributes (field 9) as the encoder writes them; the keys every span has are written
/// from their constant encodings.
struct SpanAttrs<'a>(&'a mut Vec<u8>);

impl AttrSink for SpanAttrs<'_> {
    #[inline]
    fn fixed(&mut self, key: Key, value: &'static str) {
        self.str(key, value);
    }

    #[inline]
    fn str(&mut self, key: Key, value: &str) {
        match key {
            Key::DestinationName => span_attr_str(self.0, DESTINATION_NAME, value.as_bytes()),
            _ => kv(self.0, 9, key.name(), AnyRef::Str(value)),
        }
    }

    #[inline]
    fn short(&mut self, key: Key, value: &ShortStr) {
        match key {
            Key::DestinationName => span_attr_str(self.0, DESTINATION_NAME, value.as_bytes()),
            _ => self.str(key, value.as_str()),
        }
    }

    #[inline]
    fn int(&mut self, key: Key, value: i64) {
        match key {
            Key::BodySize => span_attr_int(self.0, BODY_SIZE, value as u64),
            _ => kv(self.0, 9, key.name(), AnyRef::I64(value)),
        }
    }
}

fn encode_event(out: &mut Vec<u8>, ev: &Ev) {
    fixed64(out, 1, unix_nanos(ev.at));
    bytes_field(out, 2, ev.name.as_bytes());
    for (k, v) in &ev.attrs {
        let v = match v {
            EvValue::Str(s) => AnyRef::Str(s),
            EvValue::I64(n) => AnyRef::I64(*n),
            EvValue::F64(f) => AnyRef::F64(*f),
            EvValue::Bool(b) => AnyRef::Bool(*b),
        };
        kv(out, 3, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_encoded_as_any_key_is() {
        for (part, key) in [
            (DESTINATION_NAME, Key::DestinationName.name()),
            (BODY_SIZE, Key::BodySize.name()),
        ] {
            for s in ["", "orders.eu.created", &"x".repeat(300)] {
                let (mut fast, mut slow) = (vec![], vec![]);
                span_attr_str(&mut fast, part, s.as_bytes());
                kv(&mut slow, 9, key, AnyRef::Str(s));
                assert_eq!(fast, slow, "{key} = {s:?}");
            }
            for n in [0, 1, 127, 128, 4096, u64::from(u32::MAX)] {
                let (mut fast, mut slow) = (vec![], vec![]);
                span_attr_int(&mut fast, part, n);
                kv(&mut slow, 9, key, AnyRef::I64(n as i64));
                assert_eq!(fast, slow, "{key} = {n}");
            }
        }
    }
}
