//! The built-in OTLP span exporter: the spans nats-actors records are encoded straight from their
//! records to OTLP protobuf and sent in batches over gRPC or HTTP/protobuf, from a thread of its
//! own. No `SpanData`, no intermediate protobuf structs: a recorded span costs two small
//! allocations on the message path (its record and its OpenTelemetry context) and a few hundred
//! bytes of encoding on the export thread.
//!
//! Configured from the standard environment (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `_PROTOCOL`, `_HEADERS`, `_TIMEOUT`, and the `OTEL_BSP_*` batch settings).
//!
//! - `config`: what the environment asks for;
//! - `export`: the queue the message path pushes to, and the export thread that drains it;
//! - `encode`: records to an `ExportTraceServiceRequest`;
//! - `wire`: protobuf wire-format primitives;
//! - `transport`: one request over gRPC or HTTP.

mod config;
#[cfg(test)]
mod decode_tests;
mod encode;
mod export;
mod transport;
mod wire;

pub(crate) use config::{export_timeout, Config};
pub(crate) use export::Exporter;
