//! `/metrics` against a real server: the runtime's instruments as Prometheus text on the health
//! listener, read fresh at each scrape, and parsed by the Prometheus project's own parser
//! (`prometheus_client`, installed by `make python-env`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors::telemetry::TelemetryBuilder;
use nats_actors_suite::http::get;
use nats_actors_suite::{connect, eventually, python, server};
use serde_json::Value;

#[derive(Actor)]
struct Metered;

#[handlers]
impl Metered {
    #[subscribe("prom.metered")]
    async fn on(&self, n: u32) -> Result<(), HandlerError> {
        if n.is_multiple_of(3) {
            return Err(HandlerError::new("every third fails"));
        }
        Ok(())
    }

    #[request("prom.double")]
    async fn double(&self, n: u32) -> u32 {
        n * 2
    }
}

/// `text` parsed by prometheus_client: its families by name.
fn parse(text: &str) -> serde_json::Map<String, Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/parse_prometheus.py"
    );
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(families) => families,
        other => panic!("{other}"),
    }
}

/// The value of the sample `sample` of `family` whose labels include all of `labels`.
fn value(
    families: &serde_json::Map<String, Value>,
    family: &str,
    sample: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let samples = families.get(family)?["samples"].as_array()?;
    samples.iter().find_map(|s| {
        let matches = s[0] == sample
            && labels
                .iter()
                .all(|(k, v)| s[1].get(*k).and_then(Value::as_str) == Some(*v));
        matches.then(|| s[2].as_f64()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text_read_at_each_scrape() {
    let _telemetry = TelemetryBuilder::new("prom-svc")
        .no_traces()
        .logs(false)
        .prometheus()
        .install()
        .unwrap();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .health_listener("127.0.0.1:0")
        .actor(Metered)
        .start()
        .await
        .unwrap();
    let addr = runtime.health_addr().unwrap();
    let client = runtime.client();
    for n in 1..=9u32 {
        client.publish("prom.metered", &n).await.unwrap();
    }
    for n in 1..=4u32 {
        let doubled: u32 = client.request("prom.double", &n).await.unwrap();
        assert_eq!(doubled, n * 2);
    }
    let counted = eventually(Duration::from_secs(10), || async {
        runtime
            .stats()
            .handler("Metered::on")
            .is_some_and(|h| h.handled + h.failed == 9)
    })
    .await;
    assert!(counted, "the handler took all 9");

    let scraped = get(addr, "/metrics").await.expect("the listener answers");
    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert!(
        scraped
            .headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        scraped.headers
    );
    let families = parse(&scraped.body);
    println!("{}", scraped.body);
    let on = [("messaging_destination_template", "prom.metered")];
    assert_eq!(
        value(
            &families,
            "target_info",
            "target_info",
            &[("service_name", "prom-svc")]
        ),
        Some(1.0),
        "{}",
        scraped.body
    );
    assert_eq!(
        families["messaging_client_consumed_messages"]["type"],
        "counter"
    );
    assert_eq!(
        value(
            &families,
            "messaging_client_consumed_messages",
            "messaging_client_consumed_messages_total",
            &on
        ),
        Some(9.0),
        "{}",
        scraped.body
    );
    let duration = "messaging_process_duration_seconds";
    assert_eq!(families[duration]["type"], "histogram");
    let failed = [
        ("messaging_destination_template", "prom.metered"),
        ("error_type", "handler"),
    ];
    let failed_count = value(&families, duration, &format!("{duration}_count"), &failed);
    assert_eq!(failed_count, Some(3.0), "{}", scraped.body);
    let inf = value(
        &families,
        duration,
        &format!("{duration}_bucket"),
        &[
            ("messaging_destination_template", "prom.double"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(inf, Some(4.0), "{}", scraped.body);
    assert!(scraped.body.contains("otel_scope_name=\"nats-actors\""));

    // Read fresh at the next scrape: no export interval in between.
    for n in 10..=12u32 {
        client.publish("prom.metered", &n).await.unwrap();
    }
    let counted = eventually(Duration::from_secs(10), || async {
        runtime
            .stats()
            .handler("Metered::on")
            .is_some_and(|h| h.handled + h.failed == 12)
    })
    .await;
    assert!(counted, "the handler took all 12");
    let again = parse(&get(addr, "/metrics").await.unwrap().body);
    assert_eq!(
        value(
            &again,
            "messaging_client_consumed_messages",
            "messaging_client_consumed_messages_total",
            &on
        ),
        Some(12.0)
    );
    runtime.shutdown().await;
}
