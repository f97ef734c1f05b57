//! Metrics against a real server, recorded by an in-memory exporter: messages consumed and sent,
//! processing durations by outcome, and handler errors.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::recorded::telemetry;
use nats_actors_suite::{connect, eventually, server};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

#[derive(Actor)]
struct Metered;

#[handlers]
impl Metered {
    #[subscribe("metered")]
    async fn on(&self, n: u32) -> Result<(), HandlerError> {
        if n.is_multiple_of(3) {
            return Err(HandlerError::new("every third fails"));
        }
        Ok(())
    }
}

fn sum_u64(name: &str, template: &str) -> u64 {
    let mut total = 0;
    for rm in telemetry().metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                    for p in sum.data_points() {
                        if p.attributes().any(|kv| kv.value.as_str() == template) {
                            total = total.max(p.value());
                        }
                    }
                }
            }
        }
    }
    total
}

fn histogram_count(name: &str, template: &str, error: Option<&str>) -> u64 {
    let mut total = 0;
    for rm in telemetry().metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                    for p in h.data_points() {
                        let of_template = p.attributes().any(|kv| kv.value.as_str() == template);
                        let e = p
                            .attributes()
                            .find(|kv| kv.key.as_str() == "error.type")
                            .map(|kv| kv.value.as_str().into_owned());
                        if of_template && e.as_deref() == error {
                            total = total.max(p.count());
                        }
                    }
                }
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_messages_and_failures() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Metered)
        .start()
        .await
        .unwrap();
    const N: u32 = 30;
    for n in 1..=N {
        runtime.client().publish("metered", &n).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            {
                let s = runtime.stats().handler("Metered::on").unwrap();
                s.handled + s.failed == N as u64
            }
        })
        .await
    );
    let failures = (1..=N).filter(|n| n.is_multiple_of(3)).count() as u64;
    telemetry().guard.flush();
    assert_eq!(
        sum_u64("messaging.client.consumed.messages", "metered"),
        N as u64
    );
    assert_eq!(
        histogram_count("messaging.process.duration", "metered", None),
        N as u64 - failures
    );
    assert_eq!(
        histogram_count("messaging.process.duration", "metered", Some("handler")),
        failures
    );
    assert_eq!(sum_u64("nats_actors.handler.errors", "metered"), failures);
    // Sends are counted by operation (attribute `messaging.operation.name = send`).
    assert!(sum_u64("messaging.client.sent.messages", "send") >= N as u64);
    runtime.shutdown().await;
}

fn gauge_u64(name: &str, attribute: &str) -> Option<u64> {
    let mut last = None;
    for rm in telemetry().metrics.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::U64(MetricData::Gauge(g)) = m.data() {
                    for p in g.data_points() {
                        if p.attributes().any(|kv| kv.value.as_str() == attribute) {
                            last = Some(p.value());
                        }
                    }
                }
            }
        }
    }
    last
}

/// A keyed actor, for its metrics.
#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "tallied.{id}")]
struct Tallied {
    n: u32,
}

#[handlers]
impl Tallied {
    #[command("tallied.{id}.add")]
    async fn add(&mut self, n: u32) {
        self.n += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_actors_report_activations_active_actors_partitions_and_turn_durations() {
    telemetry();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Tallied::default())
        .start()
        .await
        .unwrap();
    let keys: Vec<TalliedRef> = (0..5)
        .map(|k| TalliedRef::new(runtime.client(), k).unwrap())
        .collect();
    for n in 1..=2 {
        for k in &keys {
            k.add(&n).await.unwrap();
        }
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            runtime.stats().handler("Tallied::add").unwrap().handled == 10
        })
        .await
    );
    let stats = runtime.stats().keyed.into_iter().next().unwrap();
    assert_eq!(
        (
            stats.actor.as_str(),
            stats.activations,
            stats.active,
            stats.conflicts
        ),
        ("Tallied", 5, 5, 0)
    );
    assert!(!stats.partitions.is_empty(), "{stats:?}");
    assert_eq!(
        runtime.health().partitions.get("Tallied"),
        Some(&stats.partitions)
    );
    telemetry().guard.flush();
    assert_eq!(sum_u64("nats_actors.actors.activations", "Tallied"), 5);
    assert_eq!(sum_u64("nats_actors.actors.conflicts", "Tallied"), 0);
    assert_eq!(gauge_u64("nats_actors.actors.active", "Tallied"), Some(5));
    assert_eq!(
        gauge_u64("nats_actors.actors.partitions", "Tallied"),
        Some(stats.partitions.len() as u64)
    );
    // A turn's duration is its handler's process duration.
    assert_eq!(
        histogram_count("messaging.process.duration", "tallied.{id}.add", None),
        10
    );
    runtime.shutdown().await;
}

#[test]
fn a_second_installation_is_a_telemetry_error_not_a_configuration_one() {
    let _ = telemetry();
    let Err(err) = nats_actors::telemetry::TelemetryBuilder::new("second").install() else {
        panic!("telemetry is installed once per process");
    };
    assert!(
        matches!(
            err,
            nats_actors::Error::Telemetry {
                what: "a second time",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cannot install telemetry (a second time): it is already installed in this process"
    );
}
