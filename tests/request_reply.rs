//! Request/reply against a real server: typed round trips, error replies, timeouts, no
//! responders, codecs chosen by Content-Type, and every kind of bad input.

use std::time::Duration;

use bytes::Bytes;
use nats_actors::prelude::*;
use nats_actors::{HeaderMap, PublishError, RequestError};
use nats_actors_suite::{connect, eventually, logs, nats, server};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Check {
    sku: String,
    wanted: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Level {
    sku: String,
    available: u32,
    enough: bool,
}

#[derive(Actor)]
struct Stock;

#[handlers]
impl Stock {
    #[request("stock.check")]
    async fn check(&self, q: Check) -> Result<Level, HandlerError> {
        if q.sku == "missing" {
            return Err(HandlerError::with_code(404, format!("no sku {}", q.sku)));
        }
        Ok(Level {
            enough: q.wanted <= 10,
            sku: q.sku,
            available: 10,
        })
    }

    #[request("stock.{sku}.level")]
    async fn level(&self, sku: Param<u32>) -> u32 {
        *sku * 2
    }

    #[request("stock.slow")]
    async fn slow(&self, _q: Check) -> Result<u32, HandlerError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(1)
    }

    #[request("stock.panic")]
    async fn panics(&self, q: Check) -> Result<u32, HandlerError> {
        if q.wanted > 0 {
            panic!("wanted {} of {}", q.wanted, q.sku);
        }
        Ok(0)
    }

    #[request("stock.io")]
    async fn io(&self, _q: Check) -> Result<u32, std::io::Error> {
        Err(std::io::Error::other("disk on fire"))
    }

    #[request("stock.raw", codec = "msgpack")]
    async fn raw(
        &self,
        payload: Bytes,
        headers: HeaderMap,
    ) -> Result<(usize, usize), HandlerError> {
        Ok((payload.len(), headers.len()))
    }
}

async fn start() -> (nats_actors_suite::NatsServer, Runtime) {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Stock)
        .start()
        .await
        .unwrap();
    (server, runtime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_round_trip_and_typed_error_reply() {
    let (_server, runtime) = start().await;
    let client = runtime.client();
    let level: Level = client
        .request(
            "stock.check",
            &Check {
                sku: "apple".into(),
                wanted: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        level,
        Level {
            sku: "apple".into(),
            available: 10,
            enough: true
        }
    );
    let two: u32 = client.request("stock.21.level", &()).await.unwrap();
    assert_eq!(two, 42);

    let err = client
        .request::<Level, _>(
            "stock.check",
            &Check {
                sku: "missing".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap_err();
    match err {
        RequestError::Service { code, description } => {
            assert_eq!(code, 404);
            assert_eq!(description, "no sku missing");
        }
        other => panic!("expected a service error, got {other:?}"),
    }
    let err = client
        .request::<u32, _>(
            "stock.io",
            &Check {
                sku: "a".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 500, description } if description == "disk on fire"),
        "{err:?}"
    );
    let stats = runtime.stats().handler("Stock::check").unwrap();
    assert_eq!((stats.handled, stats.failed), (1, 1));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_no_responders_are_distinct_errors() {
    let (_server, runtime) = start().await;
    let client = runtime.client().with_timeout(Duration::from_millis(100));
    let err = client
        .request::<u32, _>(
            "stock.slow",
            &Check {
                sku: "a".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Timeout { subject, timeout } if subject == "stock.slow" && *timeout == Duration::from_millis(100)),
        "{err:?}"
    );
    let err = client
        .request::<u32, _>("nobody.home", &())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::NoResponders { subject } if subject == "nobody.home"),
        "{err:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_becomes_a_500_and_the_actor_goes_on() {
    let (_server, runtime) = start().await;
    let client = runtime.client();
    let err = client
        .request::<u32, _>(
            "stock.panic",
            &Check {
                sku: "a".into(),
                wanted: 2,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 500, description } if description.contains("wanted 2 of a")),
        "{err:?}"
    );
    let ok: u32 = client
        .request(
            "stock.panic",
            &Check {
                sku: "a".into(),
                wanted: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(ok, 0);
    assert_eq!(runtime.stats().handler("Stock::panics").unwrap().panics, 1);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_follows_content_type_and_the_reply_uses_the_request_codec() {
    let (server, runtime) = start().await;
    let nats = nats(&server).await;
    let q = Check {
        sku: "pear".into(),
        wanted: 20,
    };
    for (content_type, payload) in [
        (
            "application/msgpack",
            Bytes::from(rmp_serde::to_vec_named(&q).unwrap()),
        ),
        (
            "application/json; charset=utf-8",
            Bytes::from(serde_json::to_vec(&q).unwrap()),
        ),
    ] {
        let mut h = HeaderMap::new();
        h.insert("Content-Type", content_type);
        let reply = nats
            .request_with_headers("stock.check", h, payload)
            .await
            .unwrap();
        let reply_type = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.to_string());
        let level: Level = if content_type.contains("msgpack") {
            assert_eq!(reply_type.as_deref(), Some("application/msgpack"));
            rmp_serde::from_slice(&reply.payload).unwrap()
        } else {
            assert_eq!(reply_type.as_deref(), Some("application/json"));
            serde_json::from_slice(&reply.payload).unwrap()
        };
        assert_eq!(
            level,
            Level {
                sku: "pear".into(),
                available: 10,
                enough: false
            }
        );
    }
    // No Content-Type: the handler's default (msgpack here); raw bytes pass untouched.
    let reply = nats
        .request("stock.raw", Bytes::from_static(b"\x00\x01\xff"))
        .await
        .unwrap();
    let (len, headers): (usize, usize) = rmp_serde::from_slice(&reply.payload).unwrap();
    assert_eq!((len, headers), (3, 0));
    // A MessagePack client talks to the JSON-default handler.
    let level: Level = runtime
        .client()
        .with_codec(Codec::MsgPack)
        .request("stock.check", &q)
        .await
        .unwrap();
    assert!(!level.enough);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_400_reply_and_never_reaches_the_handler() {
    let (server, runtime) = start().await;
    let nats = nats(&server).await;
    let json = {
        let mut h = HeaderMap::new();
        h.insert("Content-Type", "application/json");
        h
    };
    let unknown = {
        let mut h = HeaderMap::new();
        h.insert("Content-Type", "text/csv");
        h
    };
    let cases: Vec<(&str, HeaderMap, Bytes, &str)> = vec![
        (
            "stock.check",
            json.clone(),
            Bytes::from_static(b"{\"sku\": 1"),
            "invalid JSON",
        ),
        (
            "stock.check",
            json.clone(),
            Bytes::from_static(b"{\"sku\": \"a\"}"),
            "missing field `wanted`",
        ),
        ("stock.check", json.clone(), Bytes::new(), "empty payload"),
        (
            "stock.check",
            HeaderMap::new(),
            Bytes::from_static(b"\xc1\xc1"),
            "invalid JSON",
        ),
        (
            "stock.check",
            unknown,
            Bytes::from_static(b"a,b"),
            "unknown Content-Type `text/csv`",
        ),
        (
            "stock.abc.level",
            HeaderMap::new(),
            Bytes::new(),
            "subject parameter `sku`: invalid value `abc`",
        ),
    ];
    let n = cases.len() as u64;
    for (subject, headers, payload, expected) in cases {
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            nats.request_with_headers(subject, headers, payload),
        )
        .await
        .expect("a reply, not a hang")
        .unwrap();
        let h = reply.headers.expect("error headers");
        assert_eq!(
            h.get("Nats-Service-Error-Code").map(|v| v.as_str()),
            Some("400")
        );
        let description = h
            .get("Nats-Service-Error")
            .map(|v| v.to_string())
            .unwrap_or_default();
        assert!(
            description.contains(expected),
            "{description:?} should mention {expected:?}"
        );
        assert!(reply.payload.is_empty());
    }
    let stats = runtime.stats();
    assert_eq!(
        stats.handler("Stock::check").unwrap().rejected
            + stats.handler("Stock::level").unwrap().rejected,
        n
    );
    assert_eq!(
        stats.handler("Stock::check").unwrap().handled,
        0,
        "the handler was never called"
    );
    // Still serving.
    let level: Level = runtime
        .client()
        .request(
            "stock.check",
            &Check {
                sku: "a".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap();
    assert!(level.enough);
    runtime.shutdown().await;
}

#[derive(Actor, Default)]
struct Sink {
    got: std::sync::atomic::AtomicU64,
}

#[handlers]
impl Sink {
    #[subscribe("sink")]
    async fn sink(&self, q: Check) {
        assert!(!q.sku.is_empty());
        self.got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_a_subscription_is_counted_and_the_actor_goes_on() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Sink::default())
        .start()
        .await
        .unwrap();
    let nats = nats(&server).await;
    for payload in [&b""[..], b"not json", b"{\"sku\":\"x\"}", b"\x92\xa1a\x01"] {
        nats.publish("sink", Bytes::copy_from_slice(payload))
            .await
            .unwrap();
    }
    let mut h = HeaderMap::new();
    h.insert("Content-Type", "application/xml");
    nats.publish_with_headers("sink", h, Bytes::from_static(b"<a/>"))
        .await
        .unwrap();
    runtime
        .client()
        .publish(
            "sink",
            &Check {
                sku: "ok".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            {
                let s = runtime.stats().handler("Sink::sink").unwrap();
                s.rejected + s.handled == 6
            }
        })
        .await
    );
    let s = runtime.stats().handler("Sink::sink").unwrap();
    assert_eq!((s.rejected, s.handled), (5, 1));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_over_max_payload_fails_before_sending() {
    logs();
    let server = nats_actors_suite::NatsServer::builder()
        .jetstream(false)
        .config("max_payload: 4096")
        .start()
        .unwrap();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .actor(Sink::default())
        .start()
        .await
        .unwrap();
    let big = Check {
        sku: "x".repeat(5000),
        wanted: 1,
    };
    let err = runtime.client().publish("sink", &big).await.unwrap_err();
    assert!(
        matches!(&err, PublishError::MaxPayload { max: 4096, size, .. } if *size > 5000),
        "{err:?}"
    );
    let err = runtime
        .client()
        .request::<u32, _>("stock.check", &big)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Publish(PublishError::MaxPayload { .. })),
        "{err:?}"
    );
    // The connection is still fine.
    runtime
        .client()
        .publish(
            "sink",
            &Check {
                sku: "ok".into(),
                wanted: 1,
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            runtime.stats().handler("Sink::sink").unwrap().handled == 1
        })
        .await
    );
    runtime.shutdown().await;
}
