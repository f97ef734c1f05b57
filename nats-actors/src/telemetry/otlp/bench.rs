//! Not public API: what `benches/otlp_encode.rs` measures, behind the hidden `__bench` feature.
//! The same batch of span records (as a handler's `process` spans are recorded) encoded to an
//! OTLP `ExportTraceServiceRequest` (a) by the hand-written encoder the exporter uses and (b) by
//! building opentelemetry-proto's generated (prost) structs and encoding them with prost.

use opentelemetry::trace::{SpanId, SpanKind, TraceFlags, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::Resource;
use prost::Message as _;

use super::encode::{Encoder, Head};
use crate::telemetry::record::{AttrSink, Attrs, Key, Name, ProcessMeta, Rec, Server, ShortStr};

/// A batch of span records and the resource they are exported with.
pub struct Batch {
    recs: Vec<Rec>,
    head: Head,
    resource: ProtoResource,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("spans", &self.recs.len())
            .finish()
    }
}

impl Batch {
    /// `n` records as the runtime records a handler's `process` spans: CONSUMER, the handler's
    /// shared name, a remote parent from the message's headers, the messaging attributes of a
    /// 128-byte message on `bench.fw` (server 127.0.0.1:4222, no queue group, no message id),
    /// no events, no failure; `service.name` and the SDK's default resource attributes.
    pub fn process_spans(n: usize) -> Self {
        let server: &'static Server = Box::leak(Box::new(Server {
            address: "127.0.0.1".into(),
            port: 4222,
            encoded: Default::default(),
        }));
        let meta = ProcessMeta::of("bench.fw", None, server);
        let name: &'static str = Box::leak(meta.name.clone().into_boxed_str());
        let start = 1_750_000_000_000_000_000u64;
        let recs = (0..n as u64)
            .map(|i| Rec {
                trace_id: TraceId::from(
                    0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128 + u128::from(i),
                ),
                span_id: SpanId::from(0x00f0_67aa_0ba9_02b7 + i),
                parent: Some(SpanId::from(0x0b7a_d6b7_1690_3331 + i)),
                parent_remote: true,
                flags: TraceFlags::SAMPLED,
                kind: SpanKind::Consumer,
                trace_state: None,
                name: Name::Shared(name),
                start: start + i * 1_000,
                end: start + i * 1_000 + 850,
                attrs: Attrs::Process {
                    meta,
                    subject: ShortStr::new("bench.fw"),
                    message_id: None,
                    body_size: 128,
                },
                extra: None,
            })
            .collect();
        let resource = Resource::builder()
            .with_service_name("nats-actors-bench")
            .build();
        let proto_resource = ProtoResource {
            attributes: resource
                .iter()
                .map(|(k, v)| kv(k.as_str(), any_str(v.to_string())))
                .collect(),
            ..Default::default()
        };
        Self {
            recs,
            head: Head::new(&resource),
            resource: proto_resource,
        }
    }

    /// How many spans the batch holds.
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// (a) The request as the exporter encodes it (an HTTP body); its length.
    pub fn hand_written(&self, encoder: &mut HandEncoder) -> usize {
        encoder.0.request(&self.head, &self.recs, false).len()
    }

    /// (b) The request built from the generated types and encoded with prost (an HTTP body);
    /// its length.
    pub fn generated(&self) -> usize {
        self.request().encode_to_vec().len()
    }

    /// (b) split: the generated structs built once, for [`Prebuilt::encode`] to measure prost's
    /// encoding alone.
    pub fn prebuilt(&self) -> Prebuilt {
        Prebuilt(self.request())
    }

    /// Whether (a) and (b) encode the same request (decoded, the same message).
    pub fn agree(&self) -> bool {
        let mut encoder = HandEncoder::default();
        let a = encoder.0.request(&self.head, &self.recs, false);
        ExportTraceServiceRequest::decode(&a[..]).is_ok_and(|a| a == self.request())
    }

    /// The batch as generated structs: the records converted, the resource cloned (converted
    /// once, as the hand-written encoder encodes it once).
    fn request(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "nats-actors".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans: self.recs.iter().map(span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

/// A request already built from the generated types.
#[derive(Debug)]
pub struct Prebuilt(ExportTraceServiceRequest);

impl Prebuilt {
    /// The request encoded with prost (an HTTP body); its length.
    pub fn encode(&self) -> usize {
        self.0.encode_to_vec().len()
    }
}

/// The hand-written encoder (it keeps its buffers and its size estimate across requests, as
/// on the export thread).
#[derive(Default)]
pub struct HandEncoder(Encoder);

impl std::fmt::Debug for HandEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandEncoder")
    }
}

fn any_str(s: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}

/// Collects a record's attributes as generated `KeyValue`s.
struct Collect(Vec<KeyValue>);

impl AttrSink for Collect {
    fn fixed(&mut self, key: Key, value: &'static str) {
        self.str(key, value);
    }

    fn str(&mut self, key: Key, value: &str) {
        self.0.push(kv(key.name(), any_str(value.to_string())));
    }

    fn int(&mut self, key: Key, value: i64) {
        self.0.push(kv(
            key.name(),
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
        ));
    }
}

/// A record as a generated `Span` (no events or failure: the batch has none).
fn span(rec: &Rec) -> Span {
    let mut attributes = Collect(Vec::with_capacity(8));
    rec.attrs.visit(&mut attributes);
    let remote = if rec.parent.is_some() && rec.parent_remote {
        0x200
    } else {
        0
    };
    Span {
        trace_id: rec.trace_id.to_bytes().to_vec(),
        span_id: rec.span_id.to_bytes().to_vec(),
        trace_state: rec.trace_state.as_deref().unwrap_or_default().to_string(),
        parent_span_id: rec
            .parent
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default(),
        flags: u32::from(rec.flags.to_u8()) | 0x100 | remote,
        name: rec.name.as_str().to_string(),
        kind: match rec.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        },
        start_time_unix_nano: rec.start,
        end_time_unix_nano: rec.end,
        attributes: attributes.0,
        ..Default::default()
    }
}
