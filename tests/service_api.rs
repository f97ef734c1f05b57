//! The Service API (ADR-32) from `#[derive(Service)]` and `#[endpoints]`, against a real server:
//! discovery answers, stats, load balancing across instances, the generated typed client and
//! its errors, and a Python client reading an error reply.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::RequestError;
use nats_actors_suite::{connect, logs, nats, server};
use serde_json::Value;

/// A user id: 0 is not one. It serializes as any number, so a typed caller can send 0 and the
/// endpoint's decoding refuses it (a decode failure, answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "u64")]
struct UserId(u64);

impl TryFrom<u64> for UserId {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if v == 0 {
            return Err("0 is not a user id".into());
        }
        Ok(UserId(v))
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct GetUser {
    id: UserId,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct User {
    id: u64,
    name: String,
}

#[derive(Service)]
#[service(
    name = "users",
    version = "1.2.0",
    description = "User accounts",
    metadata(owner = "accounts", "tier.level" = "gold")
)]
struct Users {
    /// Which instance answered, for the load-balancing test.
    instance: u32,
}

#[endpoints]
impl Users {
    #[endpoint(subject = "users.get", group = "v1", metadata(access = "read"))]
    async fn get(&self, req: GetUser) -> Result<User, HandlerError> {
        match req.id.0 {
            1 => Ok(User {
                id: 1,
                name: "Ada".into(),
            }),
            _ => Err(HandlerError::with_code(404, "no such user")),
        }
    }

    #[endpoint(name = "who", subject = "users.who", queue_group = "who-q")]
    async fn whoami(&self) -> u32 {
        self.instance
    }

    #[endpoint(subject = "users.boom")]
    async fn boom(&self, _req: GetUser) -> Result<User, HandlerError> {
        panic!("the endpoint broke")
    }

    #[endpoint(subject = "users.slow")]
    async fn slow(&self) -> u32 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        7
    }

    /// One at a time, 100 ms each: requests queue up behind it.
    #[endpoint(subject = "users.nap")]
    async fn nap(&self, n: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        n
    }
}

async fn start(server: &nats_actors::testing::NatsServer, instance: u32) -> Runtime {
    Runtime::builder()
        .connect(connect(server))
        .service(Users { instance })
        .shutdown_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("the service starts")
}

/// Sends one discovery request and collects the answers until `want` arrived or 2 s passed.
async fn discover(nats: &async_nats::Client, subject: &str, want: usize) -> Vec<Value> {
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await.unwrap();
    nats.publish_with_reply(subject.to_string(), inbox, "".into())
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while out.len() < want {
        match tokio::time::timeout_at(deadline, replies.next()).await {
            // A no-responders status (empty body) means nobody answers.
            Ok(Some(msg)) if msg.payload.is_empty() => break,
            Ok(Some(msg)) => out.push(serde_json::from_slice(&msg.payload).unwrap()),
            _ => break,
        }
    }
    out
}

async fn one(nats: &async_nats::Client, subject: &str) -> Value {
    let mut all = discover(nats, subject, 1).await;
    assert_eq!(all.len(), 1, "one answer to {subject}");
    all.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_info_and_stats_answer_in_the_adr32_shapes() {
    logs();
    let server = server();
    let runtime = start(&server, 1).await;
    let nats = nats(&server).await;

    // PING, on all three subjects.
    let ping = one(&nats, "$SRV.PING").await;
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    assert_eq!(ping["name"], "users");
    assert_eq!(ping["version"], "1.2.0");
    assert_eq!(ping["metadata"]["owner"], "accounts");
    assert_eq!(ping["metadata"]["tier.level"], "gold");
    let id = ping["id"].as_str().unwrap().to_string();
    assert!(id.len() >= 16, "a unique instance id: {id}");
    assert_eq!(one(&nats, "$SRV.PING.users").await["id"], id.as_str());
    assert_eq!(
        one(&nats, &format!("$SRV.PING.users.{id}")).await["id"],
        id.as_str()
    );
    assert!(discover(&nats, "$SRV.PING.other", 1).await.is_empty());
    // The same document as async-nats' own type reads it.
    let typed: async_nats::service::PingResponse =
        serde_json::from_value(one(&nats, "$SRV.PING.users").await).unwrap();
    assert_eq!(
        (typed.kind.as_str(), typed.id.as_str()),
        ("io.nats.micro.v1.ping_response", id.as_str())
    );

    // INFO: endpoints with subject, queue group, metadata and the schemas of their types.
    let info = one(&nats, "$SRV.INFO.users").await;
    assert_eq!(info["type"], "io.nats.micro.v1.info_response");
    assert_eq!(info["description"], "User accounts");
    assert_eq!(info["id"], id.as_str());
    let endpoints = info["endpoints"].as_array().unwrap();
    let endpoint = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("endpoint {name} in {info}"))
            .clone()
    };
    let get = endpoint("get");
    assert_eq!(get["subject"], "v1.users.get");
    assert_eq!(get["queue_group"], "q");
    assert_eq!(get["metadata"]["access"], "read");
    assert_eq!(get["metadata"]["request_type"], "GetUser");
    assert_eq!(get["metadata"]["response_type"], "User");
    let request: Value =
        serde_json::from_str(get["metadata"]["request_schema"].as_str().unwrap()).unwrap();
    assert_eq!(request["title"], "GetUser");
    assert!(request["properties"]["id"].is_object(), "{request}");
    let response: Value =
        serde_json::from_str(get["metadata"]["response_schema"].as_str().unwrap()).unwrap();
    assert_eq!(response["properties"]["name"]["type"], "string");
    let who = endpoint("who");
    assert_eq!(
        (&who["subject"], &who["queue_group"]),
        (&"users.who".into(), &"who-q".into())
    );
    assert!(
        who["metadata"].get("request_type").is_none(),
        "no payload, no request schema"
    );
    assert_eq!(endpoints.len(), 5);
    let typed: async_nats::service::Info = serde_json::from_value(info.clone()).unwrap();
    assert_eq!(typed.endpoints.len(), 5);

    // STATS after N = 3 good requests and M = 2 errors on `get`, 1 panic on `boom`.
    let client = UsersClient::new(runtime.client());
    for _ in 0..3 {
        client.get(&GetUser { id: UserId(1) }).await.unwrap();
    }
    client.get(&GetUser { id: UserId(9) }).await.unwrap_err();
    client.get(&GetUser { id: UserId(0) }).await.unwrap_err();
    client.boom(&GetUser { id: UserId(1) }).await.unwrap_err();
    let stats = one(&nats, &format!("$SRV.STATS.users.{id}")).await;
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
    assert_eq!(
        (&stats["name"], &stats["version"]),
        (&"users".into(), &"1.2.0".into())
    );
    assert!(stats["started"].as_str().unwrap().ends_with('Z'), "{stats}");
    let stat = |name: &str| {
        stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    let get = stat("get");
    assert_eq!(get["subject"], "v1.users.get");
    assert_eq!(get["queue_group"], "q");
    assert_eq!(get["num_requests"], 5);
    assert_eq!(get["num_errors"], 2);
    let last = get["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("400:"),
        "the decode failure came last: {last}"
    );
    let total = get["processing_time"].as_u64().unwrap();
    let average = get["average_processing_time"].as_u64().unwrap();
    assert!(total > 0 && average == total / 5, "{get}");
    let boom = stat("boom");
    assert_eq!(
        (boom["num_requests"].as_u64(), boom["num_errors"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        boom["last_error"].as_str().unwrap().starts_with("500:"),
        "{boom}"
    );
    assert_eq!(stat("who")["num_requests"], 0);
    assert_eq!(stat("who")["last_error"], "");
    // async-nats reads it too, `last_error` as code and status.
    let typed: async_nats::service::Stats = serde_json::from_value(stats.clone()).unwrap();
    let get = typed.endpoints.iter().find(|e| e.name == "get").unwrap();
    assert_eq!((get.requests, get.errors), (5, 2));
    assert_eq!(get.last_error.as_ref().map(|e| e.code), Some(400));

    let report = runtime.shutdown().await;
    assert_eq!(report.aborted, 0);
    // Discovery stopped with the endpoints.
    assert!(discover(&nats, "$SRV.PING.users", 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_both_answer_ping_and_share_the_requests() {
    logs();
    let server = server();
    let (a, b) = (start(&server, 1).await, start(&server, 2).await);
    let nats = nats(&server).await;

    let pings = discover(&nats, "$SRV.PING.users", 2).await;
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert_ne!(
        pings[0]["id"], pings[1]["id"],
        "each instance has its own id"
    );

    let client = UsersClient::new(&nats_actors::Client::new(nats.clone()));
    let mut answered = [0u32; 2];
    for _ in 0..40 {
        let who = client.whoami().await.unwrap();
        answered[who as usize - 1] += 1;
    }
    assert!(
        answered[0] > 0 && answered[1] > 0,
        "the queue group spreads requests over both instances: {answered:?}"
    );
    // Each instance counts only what it handled.
    let mut handled = 0;
    for ping in &pings {
        let id = ping["id"].as_str().unwrap();
        let stats = one(&nats, &format!("$SRV.STATS.users.{id}")).await;
        let who = stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "who")
            .unwrap()["num_requests"]
            .as_u64()
            .unwrap();
        assert!(who > 0);
        handled += who;
    }
    assert_eq!(handled, 40);
    a.shutdown().await;
    assert_eq!(discover(&nats, "$SRV.PING.users", 2).await.len(), 1);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_maps_every_outcome() {
    logs();
    let server = server();
    let runtime = start(&server, 1).await;
    let client = UsersClient::new(runtime.client());

    let user = client.get(&GetUser { id: UserId(1) }).await.unwrap();
    assert_eq!(
        user,
        User {
            id: 1,
            name: "Ada".into()
        }
    );
    assert_eq!(client.whoami().await.unwrap(), 1);

    let err = client.get(&GetUser { id: UserId(2) }).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 404, description } if description == "no such user"),
        "{err:?}"
    );
    let err = client.get(&GetUser { id: UserId(0) }).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 400, description } if description.contains("0 is not a user id")),
        "a decode failure: {err:?}"
    );
    let err = client.boom(&GetUser { id: UserId(1) }).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Service { code: 500, description } if description.contains("the endpoint broke")),
        "a panic: {err:?}"
    );
    let err = client
        .with_timeout(Duration::from_millis(50))
        .slow()
        .await
        .unwrap_err();
    assert!(matches!(&err, RequestError::Timeout { .. }), "{err:?}");
    assert_eq!(
        client.slow().await.unwrap(),
        7,
        "the default timeout is longer"
    );

    // Nobody serves the endpoints once the runtime stopped.
    let other = nats_actors::Client::new(nats(&server).await);
    runtime.shutdown().await;
    let err = UsersClient::new(&other)
        .get(&GetUser { id: UserId(1) })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::NoResponders { subject } if subject == "v1.users.get"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_reads_the_400_of_a_bad_payload() {
    logs();
    let server = server();
    let runtime = start(&server, 1).await;
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make python-env` (make test does)",
        python.display()
    );
    let script = format!(
        "{}/tests/python/service_bad_payload.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let url = server.url();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            Command::new(python)
                .args([script, url, "v1.users.get".into(), "users".into()])
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("python finished in time")
    .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["code"], "400", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("JSON"),
        "{answer}"
    );
    assert_eq!(answer["body"], "");
    assert_eq!(answer["info_type"], "io.nats.micro.v1.info_response");
    assert!(answer["subjects"]
        .as_array()
        .unwrap()
        .contains(&"v1.users.get".into()));
    assert_eq!(runtime.stats().handler("users::get").unwrap().rejected, 1);
    assert_eq!(runtime.shutdown().await.aborted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_requests_already_delivered() {
    logs();
    let server = server();
    let runtime = start(&server, 1).await;
    let client = UsersClient::new(&nats_actors::Client::new(nats(&server).await))
        .with_timeout(Duration::from_secs(5));
    let calls: Vec<_> = (0..5u32)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.nap(&n).await })
        })
        .collect();
    // The first is running; the others were sent with it and wait in the subscription's buffer
    // (the endpoint takes one at a time, 100 ms each) when the shutdown starts.
    let started = nats_actors_suite::eventually(Duration::from_secs(5), || async {
        runtime.stats().handler("users::nap").unwrap().received >= 1
    })
    .await;
    assert!(started);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let taken = runtime.stats().handler("users::nap").unwrap().received;
    assert!(
        taken < 5,
        "requests are still queued at shutdown ({taken} taken)"
    );
    let report = runtime.shutdown().await;
    assert_eq!(report.aborted, 0);
    for (n, call) in calls.into_iter().enumerate() {
        let reply = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(
            reply.unwrap(),
            n as u32,
            "request {n} was answered, not dropped"
        );
    }
}
