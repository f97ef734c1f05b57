//! The encoder's requests, decoded with prost (the generated OTLP types), match the records
//! field by field, over many varied records: with and without parent, trace state, failure and
//! events, and with strings whose lengths cross the varint length boundaries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
use opentelemetry::KeyValue as SdkKeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::Resource;
use prost::Message as _;

use super::encode::{Encoder, Head};
use crate::telemetry::record::{
    Attrs, Ev, EvValue, Failure, Name, ProcessMeta, Rec, Server, ShortStr, State,
};

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len() as u64) as usize]
    }

    /// A string whose length is often on either side of a varint length boundary (1 and 2
    /// bytes), with a multi-byte character now and then.
    fn text(&mut self) -> String {
        let len = self.pick(&[0, 1, 5, 55, 56, 57, 126, 127, 128, 129, 300, 16_383, 16_384]);
        let mut s: String = (0..len)
            .map(|i| (b'a' + ((i as u64 + self.0) % 26) as u8) as char)
            .collect();
        if len > 2 && self.chance(4) {
            s.truncate(len - 2);
            s.push('é');
        }
        s
    }

    fn time(&mut self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.below(1 << 62))
    }
}

fn leak<T>(t: T) -> &'static T {
    Box::leak(Box::new(t))
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn record(rng: &mut Rng, servers: &[&'static Server]) -> Rec {
    let server = rng.pick(servers);
    let attrs = if rng.chance(2) {
        let queue = rng.chance(2).then(|| leak_str(rng.text()));
        Attrs::Process {
            meta: ProcessMeta::of(leak_str(format!("t.{}", rng.text())), queue, server),
            subject: ShortStr::new(&rng.text()),
            message_id: rng.chance(3).then(|| rng.text().into()),
            body_size: rng.pick(&[0, 1, 127, 128, 16_384, u32::MAX as usize]),
        }
    } else {
        Attrs::Send {
            operation: rng.pick(&["send", "request"]),
            subject: rng.chance(4).then(|| rng.text()),
            body_size: rng.below(1 << 40) as usize,
            server,
        }
    };
    let failure = rng.chance(3).then(|| Failure {
        error_type: rng.pick(&["handler", "decode", "timeout"]),
        description: rng.text(),
        at: rng.time(),
    });
    let events: Vec<Ev> = (0..rng.pick(&[0, 0, 1, 3, 40]))
        .map(|_| Ev {
            name: rng.text().into(),
            at: rng.time(),
            attrs: (0..rng.below(5))
                .map(|i| {
                    let v = match rng.below(4) {
                        0 => EvValue::Str(rng.text().into()),
                        1 => EvValue::I64(rng.next() as i64),
                        2 => EvValue::F64(f64::from_bits(rng.next() >> 2)),
                        _ => EvValue::Bool(rng.chance(2)),
                    };
                    (format!("k{i}.{}", rng.text()).into(), v)
                })
                .collect(),
        })
        .collect();
    let set: Vec<(&'static str, String)> = (0..rng.pick(&[0, 0, 1, 2]))
        .map(|i| (leak_str(format!("set{i}.{}", rng.text())), rng.text()))
        .collect();
    let links: Vec<SpanContext> = (0..rng.pick(&[0, 0, 0, 1, 3]))
        .map(|_| {
            let state = match rng.chance(2) {
                true => TraceState::from_key_value([("vendor", "v1")]).unwrap(),
                false => TraceState::default(),
            };
            SpanContext::new(
                TraceId::from(u128::from(rng.next()) << 64 | u128::from(rng.next() | 1)),
                SpanId::from(rng.next() | 1),
                rng.pick(&[TraceFlags::SAMPLED, TraceFlags::default()]),
                true,
                state,
            )
        })
        .collect();
    let extra = (failure.is_some() || !events.is_empty() || !set.is_empty() || !links.is_empty())
        .then(|| {
            Box::new(State {
                failure,
                events,
                attrs: set,
                links,
            })
        });
    let start = rng.below(1 << 62);
    Rec {
        trace_id: TraceId::from(u128::from(rng.next()) << 64 | u128::from(rng.next())),
        span_id: SpanId::from(rng.next() | 1),
        parent: rng.chance(2).then(|| SpanId::from(rng.next() | 1)),
        parent_remote: rng.chance(2),
        flags: rng.pick(&[TraceFlags::SAMPLED, TraceFlags::new(0x03)]),
        kind: kind_of(rng.pick(&[0, 1, 2, 3, 4])),
        trace_state: rng
            .chance(3)
            .then(|| format!("vendor={}", rng.text()).into()),
        name: if rng.chance(2) {
            Name::Shared(leak_str(rng.text()))
        } else {
            Name::Owned(rng.text())
        },
        start,
        end: start + rng.below(1 << 40),
        attrs,
        extra,
    }
}

fn kind_of(i: u8) -> SpanKind {
    [
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ][usize::from(i)]
    .clone()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_string())
}

/// The attributes `rec` must have, written out here rather than taken from `Attrs`, sorted by
/// key (the order is not part of OTLP).
fn expected_attributes(rec: &Rec) -> Vec<KeyValue> {
    let mut a = vec![kv("messaging.system", s("nats"))];
    match &rec.attrs {
        Attrs::Process {
            meta,
            subject,
            message_id,
            body_size,
        } => {
            a.push(kv("messaging.operation.name", s("process")));
            a.push(kv("messaging.operation.type", s("process")));
            a.push(kv("messaging.destination.name", s(subject.as_str())));
            a.push(kv("messaging.destination.template", s(meta.template)));
            if let Some(q) = meta.queue {
                a.push(kv("messaging.consumer.group.name", s(q)));
            }
            if let Some(id) = message_id {
                a.push(kv("messaging.message.id", s(id)));
            }
            a.push(kv(
                "messaging.message.body.size",
                Value::IntValue(*body_size as i64),
            ));
            a.push(kv("server.address", s(&meta.server.address)));
            a.push(kv("server.port", Value::IntValue(meta.server.port.into())));
        }
        Attrs::Send {
            operation,
            subject,
            body_size,
            server,
        } => {
            a.push(kv("messaging.operation.name", s(operation)));
            a.push(kv("messaging.operation.type", s("send")));
            if let Some(d) = subject {
                a.push(kv("messaging.destination.name", s(d)));
            }
            a.push(kv(
                "messaging.message.body.size",
                Value::IntValue(*body_size as i64),
            ));
            a.push(kv("server.address", s(&server.address)));
            a.push(kv("server.port", Value::IntValue(server.port.into())));
        }
    }
    if let Some(f) = rec.extra.as_ref().and_then(|e| e.failure.as_ref()) {
        a.push(kv("error.type", s(f.error_type)));
    }
    for (key, value) in rec.extra.iter().flat_map(|e| &e.attrs) {
        a.push(kv(key, s(value)));
    }
    a.sort_by(|x, y| x.key.cmp(&y.key));
    a
}

fn check_span(span: &Span, rec: &Rec, what: &str) {
    assert_eq!(span.trace_id, rec.trace_id.to_bytes(), "{what}: trace id");
    assert_eq!(span.span_id, rec.span_id.to_bytes(), "{what}: span id");
    let parent = rec
        .parent
        .map(|p| p.to_bytes().to_vec())
        .unwrap_or_default();
    assert_eq!(span.parent_span_id, parent, "{what}: parent");
    assert_eq!(span.name, rec.name.as_str(), "{what}: name");
    // SPAN_KIND_INTERNAL = 1 .. SPAN_KIND_CONSUMER = 5
    let kind = match rec.kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    assert_eq!(span.kind, kind, "{what}: kind");
    assert_eq!(span.start_time_unix_nano, rec.start, "{what}: start");
    assert_eq!(span.end_time_unix_nano, rec.end, "{what}: end");
    let remote = if rec.parent.is_some() && rec.parent_remote {
        0x200
    } else {
        0
    };
    let flags = u32::from(rec.flags.to_u8()) | 0x100 | remote;
    assert_eq!(span.flags, flags, "{what}: flags");
    assert_eq!(
        span.trace_state,
        rec.trace_state.as_deref().unwrap_or(""),
        "{what}: trace state"
    );

    let mut attributes = span.attributes.clone();
    attributes.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(attributes, expected_attributes(rec), "{what}: attributes");
    let mut keys: Vec<_> = attributes.iter().map(|a| &a.key).collect();
    keys.dedup();
    assert_eq!(keys.len(), attributes.len(), "{what}: one value per key");

    let (failure, events) = match rec.extra.as_deref() {
        Some(e) => (e.failure.as_ref(), &e.events[..]),
        None => (None, &[][..]),
    };
    let exception = usize::from(failure.is_some());
    assert_eq!(
        span.events.len(),
        events.len() + exception,
        "{what}: events"
    );
    for (got, ev) in span.events.iter().zip(events) {
        assert_eq!(got.name, ev.name, "{what}: event name");
        assert_eq!(got.time_unix_nano, nanos(ev.at), "{what}: event time");
        let want: Vec<KeyValue> = ev
            .attrs
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    EvValue::Str(x) => s(x),
                    EvValue::I64(n) => Value::IntValue(*n),
                    EvValue::F64(f) => Value::DoubleValue(*f),
                    EvValue::Bool(b) => Value::BoolValue(*b),
                };
                kv(k, v)
            })
            .collect();
        assert_eq!(got.attributes, want, "{what}: event attributes");
        assert_eq!(
            got.dropped_attributes_count, 0,
            "{what}: event dropped attributes"
        );
    }
    match failure {
        Some(f) => {
            let ex = span.events.last().unwrap();
            assert_eq!(ex.name, "exception", "{what}: exception event");
            assert_eq!(ex.time_unix_nano, nanos(f.at), "{what}: exception time");
            assert_eq!(
                ex.attributes,
                vec![
                    kv("exception.type", s(f.error_type)),
                    kv("exception.message", s(&f.description)),
                ],
                "{what}: exception attributes"
            );
            let status = span.status.as_ref().expect("a failed span has a status");
            assert_eq!(status.code, 2, "{what}: status code ERROR");
            assert_eq!(status.message, f.description, "{what}: status message");
        }
        None => assert!(
            span.status.as_ref().is_none_or(|s| s.code == 0),
            "{what}: no status"
        ),
    }
    assert_eq!(
        span.dropped_attributes_count, 0,
        "{what}: dropped attributes"
    );
    assert_eq!(span.dropped_events_count, 0, "{what}: dropped events");
    assert_eq!(span.dropped_links_count, 0, "{what}: dropped links");
    let links = rec.extra.as_ref().map_or(&[][..], |e| e.links.as_slice());
    assert_eq!(span.links.len(), links.len(), "{what}: links");
    for (got, want) in span.links.iter().zip(links) {
        assert_eq!(
            got.trace_id,
            want.trace_id().to_bytes(),
            "{what}: link trace id"
        );
        assert_eq!(
            got.span_id,
            want.span_id().to_bytes(),
            "{what}: link span id"
        );
        assert_eq!(
            got.trace_state,
            want.trace_state().header(),
            "{what}: link trace state"
        );
        let flags = u32::from(want.trace_flags().to_u8()) | 0x300;
        assert_eq!(got.flags, flags, "{what}: link flags");
    }
}

fn check_request(body: &[u8], grpc: bool, resource: &[KeyValue], recs: &[Rec], what: &str) {
    let body = if grpc {
        assert_eq!(body[0], 0, "{what}: not compressed");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, body.len() - 5, "{what}: gRPC frame length");
        &body[5..]
    } else {
        body
    };
    let req = ExportTraceServiceRequest::decode(body).expect("a valid request");
    assert_eq!(req.resource_spans.len(), 1, "{what}");
    let rs = &req.resource_spans[0];
    let res = rs.resource.as_ref().expect("a resource");
    assert_eq!(res.attributes, resource, "{what}: resource");
    assert_eq!(res.dropped_attributes_count, 0, "{what}: resource dropped");
    assert_eq!(rs.scope_spans.len(), 1, "{what}");
    let ss = &rs.scope_spans[0];
    let scope = ss.scope.as_ref().expect("a scope");
    assert_eq!(scope.name, "nats-actors", "{what}: scope name");
    assert_eq!(
        scope.version,
        env!("CARGO_PKG_VERSION"),
        "{what}: scope version"
    );
    assert!(scope.attributes.is_empty(), "{what}: scope attributes");
    assert_eq!(ss.spans.len(), recs.len(), "{what}: spans");
    for (i, (span, rec)) in ss.spans.iter().zip(recs).enumerate() {
        check_span(span, rec, &format!("{what}, span {i}"));
    }
}

#[test]
fn requests_decode_to_what_was_recorded() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let servers: Vec<&'static Server> = [("127.0.0.1", 4222), ("nats.example", 0), ("::1", 65535)]
        .into_iter()
        .map(|(a, p)| {
            leak(Server {
                address: a.into(),
                port: p,
                encoded: Default::default(),
            })
        })
        .collect();
    let resources = [
        Resource::builder_empty().build(),
        Resource::builder_empty()
            .with_service_name("orders")
            .with_attributes([
                SdkKeyValue::new("deployment.environment", "x".repeat(200)),
                SdkKeyValue::new("host.cpus", 8_i64),
                SdkKeyValue::new("ratio", 0.25),
                SdkKeyValue::new("canary", true),
            ])
            .build(),
    ];
    let mut spans = 0;
    for (r, resource) in resources.iter().enumerate() {
        let want = resource_attributes(resource);
        assert_eq!(want.len(), r * 5, "the test's resource");
        let head = Head::new(resource);
        // One encoder for every request, as on the export thread (it sizes each from the last).
        let mut encoder = Encoder::default();
        for round in 0..60 {
            let recs: Vec<Rec> = (0..1 + rng.below(12))
                .map(|_| record(&mut rng, &servers))
                .collect();
            let grpc = rng.chance(2);
            let body = encoder.request(&head, &recs, grpc);
            check_request(
                &body,
                grpc,
                &want,
                &recs,
                &format!("resource {r}, round {round}"),
            );
            spans += recs.len();
        }
    }
    assert!(spans > 500, "{spans} spans checked");
}

/// The resource's attributes, in its own order (the encoder's).
fn resource_attributes(resource: &Resource) -> Vec<KeyValue> {
    resource
        .iter()
        .map(|(k, v)| {
            let v = match v {
                opentelemetry::Value::Bool(b) => Value::BoolValue(*b),
                opentelemetry::Value::I64(n) => Value::IntValue(*n),
                opentelemetry::Value::F64(f) => Value::DoubleValue(*f),
                opentelemetry::Value::String(x) => s(x.as_str()),
                other => s(&other.to_string()),
            };
            kv(k.as_str(), v)
        })
        .collect()
}
