//! The answers to discovery, in the shapes of ADR-32 (field names as async-nats and the Go
//! client serialize them), and the task that gives them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_nats::Subscriber;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::stats::HandlerCounters;

/// The prefix of the discovery subjects.
pub(crate) const PREFIX: &str = "$SRV";

/// The verbs of discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    pub(crate) const ALL: [Verb; 3] = [Verb::Ping, Verb::Info, Verb::Stats];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }
}

/// One running service instance, as discovery describes it.
#[derive(Debug)]
pub(crate) struct Instance {
    pub name: &'static str,
    pub id: String,
    pub version: &'static str,
    pub description: &'static str,
    pub metadata: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub started: String,
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of an instance, with the counters of its handler.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub name: &'static str,
    pub subject: &'static str,
    pub queue_group: &'static str,
    pub metadata: BTreeMap<String, String>,
    pub counters: Arc<HandlerCounters>,
}

#[derive(Serialize)]
struct Ping<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    description: &'a str,
    metadata: &'a BTreeMap<String, String>,
    endpoints: Vec<EndpointInfo<'a>>,
}

#[derive(Serialize)]
struct EndpointInfo<'a> {
    name: &'a str,
    subject: &'a str,
    queue_group: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Stats<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
    started: &'a str,
    endpoints: Vec<EndpointStats<'a>>,
}

#[derive(Serialize)]
struct EndpointStats<'a> {
    name: &'a str,
    subject: &'a str,
    queue_group: &'a str,
    num_requests: u64,
    num_errors: u64,
    /// Nanoseconds.
    processing_time: u64,
    /// Nanoseconds.
    average_processing_time: u64,
    /// `code:description`, empty when there was none.
    last_error: String,
}

impl Instance {
    /// The answer to PING.
    pub(crate) fn ping(&self) -> Bytes {
        json(&Ping {
            kind: "io.nats.micro.v1.ping_response",
            name: self.name,
            id: &self.id,
            version: self.version,
            metadata: &self.metadata,
        })
    }

    /// The answer to INFO.
    pub(crate) fn info(&self) -> Bytes {
        json(&Info {
            kind: "io.nats.micro.v1.info_response",
            name: self.name,
            id: &self.id,
            version: self.version,
            description: self.description,
            metadata: &self.metadata,
            endpoints: self
                .endpoints
                .iter()
                .map(|e| EndpointInfo {
                    name: e.name,
                    subject: e.subject,
                    queue_group: e.queue_group,
                    metadata: &e.metadata,
                })
                .collect(),
        })
    }

    /// The answer to STATS: the counters as they are now.
    pub(crate) fn stats(&self) -> Bytes {
        json(&Stats {
            kind: "io.nats.micro.v1.stats_response",
            name: self.name,
            id: &self.id,
            version: self.version,
            metadata: &self.metadata,
            started: &self.started,
            endpoints: self
                .endpoints
                .iter()
                .map(|e| {
                    let c = &e.counters;
                    let requests = c.received.load(Relaxed);
                    let processing = c.processing_ns.load(Relaxed);
                    EndpointStats {
                        name: e.name,
                        subject: e.subject,
                        queue_group: e.queue_group,
                        num_requests: requests,
                        num_errors: c.errors(),
                        processing_time: processing,
                        average_processing_time: processing.checked_div(requests).unwrap_or(0),
                        last_error: c
                            .last_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone()
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        })
    }

    /// The nine discovery subjects: each verb alone, with the name, with the name and the id.
    pub(crate) fn subjects(&self) -> Vec<(Verb, String)> {
        Verb::ALL
            .iter()
            .flat_map(|v| {
                let verb = v.as_str();
                [
                    (*v, format!("{PREFIX}.{verb}")),
                    (*v, format!("{PREFIX}.{verb}.{}", self.name)),
                    (*v, format!("{PREFIX}.{verb}.{}.{}", self.name, self.id)),
                ]
            })
            .collect()
    }
}

fn json<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value)
        .expect("discovery documents are plain strings, numbers and maps")
        .into()
}

/// Answers discovery until the runtime stops its request handlers (`stop`), then unsubscribes:
/// the instance disappears from discovery when its endpoints stop taking requests. `_keep`
/// (the instance's metric instruments) lives as long as this task.
pub(crate) async fn respond<K: Send>(
    _keep: K,
    nats: async_nats::Client,
    instance: Arc<Instance>,
    subscriptions: Vec<(Verb, Subscriber)>,
    mut stop: watch::Receiver<bool>,
) {
    // Built once: PING and INFO do not change while the instance runs.
    let (ping, info) = (instance.ping(), instance.info());
    let mut requests = futures::stream::select_all(
        subscriptions
            .into_iter()
            .map(|(verb, sub)| sub.map(move |m| (verb, m))),
    );
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => if changed.is_err() { break },
            next = requests.next() => {
                let Some((verb, msg)) = next else { break };
                let Some(reply) = msg.reply else { continue };
                let answer = match verb {
                    Verb::Ping => ping.clone(),
                    Verb::Info => info.clone(),
                    Verb::Stats => instance.stats(),
                };
                if let Err(e) = nats.publish(reply, answer).await {
                    tracing::warn!(service = instance.name, verb = verb.as_str(), error = %e, "cannot answer discovery");
                }
            }
        }
    }
    // Dropping the subscriptions unsubscribes them.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> Instance {
        let counters = Arc::new(HandlerCounters::new("users", "get", "users.get", 0).timed(true));
        Instance {
            name: "users",
            id: "ID1".into(),
            version: "1.0.0",
            description: "d",
            metadata: BTreeMap::from([("k".into(), "v".into())]),
            started: "2026-01-01T00:00:00Z".into(),
            endpoints: vec![Endpoint {
                name: "get",
                subject: "users.get",
                queue_group: "q",
                metadata: BTreeMap::new(),
                counters,
            }],
        }
    }

    fn parse(b: Bytes) -> serde_json::Value {
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn an_idle_endpoint_has_zero_stats_and_an_empty_last_error() {
        let stats = parse(instance().stats());
        let e = &stats["endpoints"][0];
        assert_eq!(e["num_requests"], 0);
        assert_eq!(e["average_processing_time"], 0);
        assert_eq!(e["last_error"], "");
        assert_eq!(stats["metadata"]["k"], "v");
    }

    #[test]
    fn stats_average_the_processing_time_and_keep_the_last_error() {
        let i = instance();
        let c = &i.endpoints[0].counters;
        c.received.store(4, Relaxed);
        c.failed.store(1, Relaxed);
        c.panics.store(1, Relaxed);
        c.processing_ns.store(1000, Relaxed);
        *c.last_error.lock().unwrap() = Some("500:boom".into());
        let e = &parse(i.stats())["endpoints"][0];
        assert_eq!(
            (e["num_requests"].as_u64(), e["num_errors"].as_u64()),
            (Some(4), Some(2))
        );
        assert_eq!(e["average_processing_time"], 250);
        assert_eq!(e["last_error"], "500:boom");
    }

    #[test]
    fn nine_subjects_without_and_with_name_and_id() {
        let subjects: Vec<String> = instance().subjects().into_iter().map(|(_, s)| s).collect();
        assert_eq!(subjects.len(), 9);
        for s in ["$SRV.PING", "$SRV.INFO.users", "$SRV.STATS.users.ID1"] {
            assert!(subjects.iter().any(|x| x == s), "{s}");
        }
        assert_eq!(
            parse(instance().ping())["type"],
            "io.nats.micro.v1.ping_response"
        );
        assert_eq!(parse(instance().info())["endpoints"][0]["queue_group"], "q");
    }
}
