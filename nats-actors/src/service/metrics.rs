//! Service stats as OpenTelemetry metrics: observable counters read from the endpoints'
//! counters at export time, so a request costs nothing more.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use opentelemetry::metrics::{ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;

use super::discovery::{Endpoint, Instance};

/// The instruments of one instance; they report while this value lives.
pub(crate) struct Instruments {
    _counters: Vec<ObservableCounter<u64>>,
    _processing: ObservableCounter<f64>,
    _up: ObservableGauge<u64>,
}

fn attributes(instance: &Instance, e: &Endpoint) -> [KeyValue; 5] {
    [
        KeyValue::new("nats_actors.service.name", instance.name),
        KeyValue::new("nats_actors.service.id", instance.id.clone()),
        KeyValue::new("nats_actors.service.endpoint", e.name),
        KeyValue::new("messaging.destination.name", e.subject),
        KeyValue::new("messaging.consumer.group.name", e.queue_group),
    ]
}

/// `nats_actors.service.requests`, `.errors`, `.processing_time` per endpoint, and
/// `nats_actors.service.up` per instance; `None` when metrics are not installed.
pub(crate) fn observe(instance: Arc<Instance>) -> Option<Instruments> {
    if !crate::telemetry::metrics_enabled() {
        return None;
    }
    let meter = crate::telemetry::metrics::meter();
    type Read = fn(&Endpoint) -> u64;
    let counters: [(&'static str, &'static str, Read); 2] = [
        (
            "nats_actors.service.requests",
            "Requests an endpoint received (num_requests of STATS)",
            |e| e.counters.received.load(Relaxed),
        ),
        (
            "nats_actors.service.errors",
            "Requests an endpoint answered with an error (num_errors of STATS)",
            |e| e.counters.errors(),
        ),
    ];
    let counters = counters
        .into_iter()
        .map(|(name, description, read)| {
            let instance = instance.clone();
            meter
                .u64_observable_counter(name)
                .with_unit("{request}")
                .with_description(description)
                .with_callback(move |o| {
                    for e in &instance.endpoints {
                        o.observe(read(e), &attributes(&instance, e));
                    }
                })
                .build()
        })
        .collect();
    let i = instance.clone();
    let processing = meter
        .f64_observable_counter("nats_actors.service.processing_time")
        .with_unit("s")
        .with_description("Time an endpoint spent processing (processing_time of STATS)")
        .with_callback(move |o| {
            for e in &i.endpoints {
                let ns = e.counters.processing_ns.load(Relaxed);
                o.observe(ns as f64 / 1e9, &attributes(&i, e));
            }
        })
        .build();
    let up = meter
        .u64_observable_gauge("nats_actors.service.up")
        .with_description("1 while a service instance answers discovery")
        .with_callback(move |o| {
            o.observe(
                1,
                &[
                    KeyValue::new("nats_actors.service.name", instance.name),
                    KeyValue::new("nats_actors.service.id", instance.id.clone()),
                    KeyValue::new("nats_actors.service.version", instance.version),
                ],
            )
        })
        .build();
    Some(Instruments {
        _counters: counters,
        _processing: processing,
        _up: up,
    })
}
