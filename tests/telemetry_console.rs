//! Console mode, as a user first meets telemetry: `telemetry::init` with no OTLP endpoint
//! prints each finished trace as an indented tree. A separate process (`console-trace`) handles
//! one order across three handlers; its stdout must show the one trace, each span under its
//! parent, children in start order.

use std::process::Command;

use nats_actors_suite::server;

/// `(depth, name, kind)` of each span line of `out`, and the trace ids it printed.
fn tree(out: &str) -> (Vec<(usize, String, String)>, Vec<String>) {
    let mut spans = Vec::new();
    let mut traces = Vec::new();
    for line in out.lines() {
        if let Some(id) = line.strip_prefix("trace ") {
            traces.push(id.to_string());
            continue;
        }
        let depth = (line.len() - line.trim_start().len()) / 2;
        let Some((name, rest)) = line.trim_start().split_once(" [") else {
            continue;
        };
        let kind = rest.split(']').next().unwrap_or_default().to_string();
        spans.push((depth, name.to_string(), kind));
    }
    (spans, traces)
}

#[test]
fn a_trace_prints_as_a_tree_of_its_spans() {
    let server = server();
    let out = Command::new(env!("CARGO_BIN_EXE_console-trace"))
        .arg(server.url())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_TRACES_SAMPLER")
        .output()
        .expect("run console-trace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (spans, traces) = tree(&stdout);
    assert_eq!(traces.len(), 1, "{stdout}");
    assert_eq!(traces[0].len(), 32, "{stdout}");
    let got: Vec<(usize, &str, &str)> = spans
        .iter()
        .map(|(d, n, k)| (*d, n.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "send ct.order", "producer"),
            (2, "process ct.order", "consumer"),
            (3, "request ct.price", "client"),
            (4, "process ct.price", "consumer"),
            (5, "send", "producer"),
            (3, "send ct.billed", "producer"),
            (4, "process ct.billed", "consumer"),
        ],
        "{stdout}"
    );
    // Each line says how long the span took.
    assert!(
        stdout.lines().skip(1).all(|l| l.contains(" ms")),
        "{stdout}"
    );
}
