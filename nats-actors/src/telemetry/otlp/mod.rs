//! The built-in OTLP span exporter: the spans nats-actors records are encoded straight from their
//! records to OTLP protobuf and sent in batches over gRPC or HTTP/protobuf, from a thread of its
//! own. No `SpanData`, no intermediate protobuf structs: a recorded span costs two small
//! allocations on the message path (its record and its OpenTelemetry context) and a few hundred
//! bytes of encoding on the export thread.
//!
//! Configured from the standard environment (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `_PROTOCOL`, `_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, `_CERTIFICATE`, `_CLIENT_CERTIFICATE`,
//! `_CLIENT_KEY`, and the `OTEL_BSP_*` batch settings).
//!
//! - `config`: what the environment asks for;
//! - `export`: the queue the message path pushes to, and the export thread that drains it;
//! - `encode`: records to an `ExportTraceServiceRequest`;
//! - `wire`: protobuf wire-format primitives;
//! - `compress`: gzip of a request;
//! - `tls`: rustls (ring) configuration from the environment, also used for the SDK's
//!   exporters;
//! - `transport`: one request over gRPC or HTTP, plain or TLS.

#[cfg(feature = "__bench")]
pub mod bench;
mod compress;
mod config;
#[cfg(test)]
mod decode_tests;
mod encode;
mod export;
pub(crate) mod tls;
mod transport;
mod wire;

pub(crate) use compress::Compression;
pub(crate) use config::{export_timeout, Config, NotServed};
pub(crate) use export::Exporter;
