//! Metrics of the messaging conventions, recorded through bound instruments (no per-message
//! attribute hashing), and the runtime's own counters, observed from its atomics at export time.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::metrics::{
    BoundCounter, BoundHistogram, Histogram, Meter, ObservableCounter, ObservableGauge,
};
use opentelemetry::KeyValue;

use crate::stats::Counters;

use crate::clock::clock;

thread_local! {
    /// A recent OS wall-clock reading (Unix nanoseconds) and the TSC reading taken with it.
    static ANCHOR: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Wall-clock time for span timestamps, in Unix nanoseconds: the OS clock is read at most every
/// 10 ms per thread, the TSC in between (a few nanoseconds instead of a few tens, twice per
/// recorded span).
pub(crate) fn wall_nanos() -> u64 {
    let clock = clock();
    let raw = clock.raw();
    ANCHOR.with(|anchor| {
        let (at, wall) = anchor.get();
        let ns = clock.delta_as_nanos(at, raw);
        if at == 0 || raw < at || ns > 10_000_000 {
            let now = unix_nanos(std::time::SystemTime::now());
            anchor.set((raw, now));
            now
        } else {
            wall + ns
        }
    })
}

/// [`wall_nanos`] as a `SystemTime`.
pub(crate) fn wall_now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(wall_nanos())
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn meter() -> Meter {
    opentelemetry::global::meter("nats-actors")
}

/// The instruments of one handler. `messaging.client.consumed.messages` is observed from the
/// runtime's own counters (see [`observe_runtime`]), so the hot path records one histogram point.
pub(crate) struct HandlerMetrics {
    ok: BoundHistogram<f64>,
    duration: Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HandlerMetrics {
    /// `None` when telemetry with metrics is not installed.
    pub(crate) fn new(template: &'static str, queue: Option<&'static str>) -> Option<Self> {
        if !super::metrics_enabled() {
            return None;
        }
        let meter = meter();
        let mut attributes = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.template", template),
        ];
        if let Some(q) = queue {
            attributes.push(KeyValue::new("messaging.consumer.group.name", q));
        }
        let duration = meter
            .f64_histogram("messaging.process.duration")
            .with_unit("s")
            .with_description("Time a handler took to process a message")
            .build();
        Some(Self {
            ok: duration.bind(&attributes),
            duration,
            attributes,
        })
    }

    /// Records one processed message that took `seconds`.
    pub(crate) fn record(&self, seconds: f64, error_type: Option<&'static str>) {
        match error_type {
            None => self.ok.record(seconds),
            Some(e) => {
                let mut attributes = self.attributes.clone();
                attributes.push(KeyValue::new("error.type", e));
                self.duration.record(seconds, &attributes);
            }
        }
    }
}

/// Instruments for sends and requests made through a client.
pub(crate) struct ClientMetrics {
    sent: [BoundCounter<u64>; 2],
    duration: [BoundHistogram<f64>; 2],
    failed: Histogram<f64>,
}

/// The operation a client metric is about.
#[derive(Clone, Copy)]
pub(crate) enum Operation {
    Send = 0,
    Request = 1,
}

const OPERATIONS: [&str; 2] = ["send", "request"];

impl ClientMetrics {
    /// The process-wide instruments; `None` when metrics are not installed.
    pub(crate) fn get() -> Option<&'static ClientMetrics> {
        // Checked first, so that a send made before telemetry is installed does not turn the
        // client metrics off for good.
        if !super::metrics_enabled() {
            return None;
        }
        static METRICS: OnceLock<ClientMetrics> = OnceLock::new();
        Some(METRICS.get_or_init(|| {
            let meter = meter();
            let sent = meter
                .u64_counter("messaging.client.sent.messages")
                .with_unit("{message}")
                .with_description("Messages sent")
                .build();
            let duration = meter
                .f64_histogram("messaging.client.operation.duration")
                .with_unit("s")
                .with_description("Duration of a send or a request")
                .build();
            let attrs = |op: &'static str| {
                [
                    KeyValue::new("messaging.system", "nats"),
                    KeyValue::new("messaging.operation.name", op),
                ]
            };
            ClientMetrics {
                sent: OPERATIONS.map(|op| sent.bind(&attrs(op))),
                duration: OPERATIONS.map(|op| duration.bind(&attrs(op))),
                failed: duration,
            }
        }))
    }

    pub(crate) fn record(&self, op: Operation, started: Instant, error_type: Option<&'static str>) {
        let seconds = started.elapsed().as_secs_f64();
        let i = op as usize;
        match error_type {
            None => {
                self.sent[i].add(1);
                self.duration[i].record(seconds);
            }
            Some(e) => self.failed.record(
                seconds,
                &[
                    KeyValue::new("messaging.system", "nats"),
                    KeyValue::new("messaging.operation.name", OPERATIONS[i]),
                    KeyValue::new("error.type", e),
                ],
            ),
        }
    }
}

/// What keeps the runtime's observable instruments registered.
pub(crate) type RuntimeObservers = (Vec<ObservableCounter<u64>>, Vec<ObservableGauge<u64>>);

/// The runtime's own counters as observable instruments; keep the handles as long as the runtime.
pub(crate) fn observe_runtime(counters: Arc<Counters>) -> RuntimeObservers {
    if !super::metrics_enabled() {
        return Default::default();
    }
    let meter = meter();
    type Read = fn(&crate::stats::HandlerCounters) -> u64;
    let per_handler: [(&'static str, &'static str, Read); 4] = [
        ("nats_actors.handler.errors", "Handler errors", |c| {
            c.failed.load(Relaxed)
        }),
        ("nats_actors.handler.panics", "Handler panics caught", |c| {
            c.panics.load(Relaxed)
        }),
        (
            "nats_actors.messages.rejected",
            "Messages rejected before the handler: decode failures, bad parameters",
            |c| c.rejected.load(Relaxed),
        ),
        (
            "nats_actors.handler.dropped",
            "Messages dropped because the handler's buffer was full",
            |c| c.dropped.load(Relaxed),
        ),
    ];
    let mut out: Vec<ObservableCounter<u64>> = Vec::new();
    let c = counters.clone();
    out.push(
        meter
            .u64_observable_counter("messaging.client.consumed.messages")
            .with_unit("{message}")
            .with_description("Messages delivered to a handler")
            .with_callback(move |o| {
                for h in c.handlers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    o.observe(
                        h.received.load(Relaxed),
                        &[
                            KeyValue::new("messaging.system", "nats"),
                            KeyValue::new("messaging.operation.name", "process"),
                            KeyValue::new("messaging.destination.template", h.template),
                            KeyValue::new(
                                "nats_actors.handler",
                                format!("{}::{}", h.actor, h.method),
                            ),
                            KeyValue::new("nats_actors.instance", h.instance as i64),
                        ],
                    );
                }
            })
            .build(),
    );
    for (name, description, read) in per_handler {
        let counters = counters.clone();
        out.push(
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| {
                    for c in counters
                        .handlers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                    {
                        let handler = format!("{}::{}", c.actor, c.method);
                        o.observe(
                            read(c),
                            &[
                                KeyValue::new("messaging.destination.template", c.template),
                                KeyValue::new("nats_actors.handler", handler),
                                KeyValue::new("nats_actors.instance", c.instance as i64),
                            ],
                        );
                    }
                })
                .build(),
        );
    }
    type ReadRuntime = fn(&Counters) -> u64;
    let runtime: [(&'static str, &'static str, ReadRuntime); 2] = [
        (
            "nats_actors.messages.dropped",
            "Messages dropped: handler buffers full, or async-nats' slow-consumer drops",
            |c| c.dropped(),
        ),
        (
            "nats_actors.connection.reconnects",
            "Reconnections to NATS",
            |c| c.reconnects.load(Relaxed),
        ),
    ];
    for (name, description, read) in runtime {
        let counters = counters.clone();
        out.push(
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| o.observe(read(&counters), &[]))
                .build(),
        );
    }
    let (keyed_counters, gauges) = observe_keyed(&meter, &counters);
    out.extend(keyed_counters);
    (out, gauges)
}

/// The keyed actors' counters and gauges, one series per actor type (`nats_actors.actor`).
fn observe_keyed(
    meter: &Meter,
    counters: &Arc<Counters>,
) -> (Vec<ObservableCounter<u64>>, Vec<ObservableGauge<u64>>) {
    type Read = fn(&crate::stats::KeyedStats) -> u64;
    let each = |counters: &Arc<Counters>, read: Read| {
        let counters = counters.clone();
        move |o: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
            for k in counters.keyed() {
                o.observe(
                    read(&k),
                    &[KeyValue::new("nats_actors.actor", k.actor.clone())],
                );
            }
        }
    };
    let sums: [(&'static str, &'static str, Read); 3] = [
        (
            "nats_actors.actors.activations",
            "Actors made from their saved state",
            |k| k.activations,
        ),
        (
            "nats_actors.actors.passivations",
            "Actors dropped: idle, or to make room under max_active",
            |k| k.passivations,
        ),
        (
            "nats_actors.actors.conflicts",
            "State saves that met a state written meanwhile",
            |k| k.conflicts,
        ),
    ];
    let levels: [(&'static str, &'static str, Read); 2] = [
        ("nats_actors.actors.active", "Actors in memory", |k| {
            k.active
        }),
        (
            "nats_actors.actors.partitions",
            "Partitions pinned to this process",
            |k| k.partitions.len() as u64,
        ),
    ];
    let sums = sums.into_iter().map(|(name, description, read)| {
        meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_callback(each(counters, read))
            .build()
    });
    let levels = levels.into_iter().map(|(name, description, read)| {
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(each(counters, read))
            .build()
    });
    (sums.collect(), levels.collect())
}
