//! Compressed payloads against a real server: gzip from nats-py and zstd from async-nats taken
//! by a subscribe, a request and a JetStream consumer handler; a decompression bomb answered
//! 413 (a request) or dead-lettered with the reason (JetStream), an unknown encoding 415, the
//! runtime serving afterwards; what a runtime with `compression` sends, read by nats-py; and
//! the `compress` options of actors, handlers, consumers and service endpoints, and per send,
//! with JSON and MessagePack.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nats_actors::prelude::*;
use nats_actors::{Compression, HeaderMap};
use nats_actors_suite::{connect, eventually, logs, python, server};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Note {
    id: u64,
    note: String,
}

#[derive(Actor, Clone, Default)]
struct Inbox {
    seen: Arc<Mutex<Vec<Note>>>,
}

#[handlers]
impl Inbox {
    #[subscribe("cz.note")]
    async fn note(&self, note: Note) {
        self.seen.lock().unwrap().push(note);
    }

    #[request("cz.echo")]
    async fn echo(&self, note: Note) -> Note {
        Note {
            id: note.id + 1,
            note: note.note,
        }
    }

    #[consumer(stream = "CZ", durable = "cz")]
    async fn stored(&self, note: Note) {
        self.seen.lock().unwrap().push(note);
    }
}

fn script() -> String {
    format!("{}/tests/python/compressed.py", env!("CARGO_MANIFEST_DIR"))
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    Bytes::from(e.finish().unwrap())
}

fn packed_note(json: &[u8]) -> Bytes {
    zstd::bulk::compress(json, 3).unwrap().into()
}

fn encoded(encoding: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Content-Encoding", encoding);
    h
}

fn cz_stream() -> nats_actors::jetstream::StreamConfig {
    nats_actors::jetstream::StreamConfig {
        name: "CZ".into(),
        subjects: vec!["cz.stored".into()],
        ..Default::default()
    }
}

/// A gzip bomb: 64 MiB of zeros in about 64 KiB, four times the bound (16 x max_payload).
fn bomb() -> Bytes {
    gzip(&vec![0u8; 64 << 20])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_payloads_are_taken_and_bombs_and_unknown_encodings_refused() {
    logs();
    let server = server();
    let inbox = Inbox::default();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(cz_stream())
        .actor(inbox.clone())
        .start()
        .await
        .unwrap();
    let nats = runtime.client().nats().clone();
    let bomb = bomb();

    // gzip from nats-py: a publish and a request.
    let (url, script) = (server.url(), script());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .args([script.as_str(), url.as_str(), "send", "cz.note", "cz.echo"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["id"], 8, "{reply}");
    assert_eq!(reply["note"].as_str().unwrap().len(), 4096);

    // zstd from async-nats.
    let note = Note {
        id: 1,
        note: "z".repeat(10_000),
    };
    let packed = zstd::bulk::compress(&serde_json::to_vec(&note).unwrap(), 3).unwrap();
    assert!(packed.len() < 200);
    nats.publish_with_headers("cz.note", encoded("zstd"), packed.clone().into())
        .await
        .unwrap();
    let seen = || async { inbox.seen.lock().unwrap().len() == 2 };
    assert!(eventually(Duration::from_secs(10), seen).await);
    {
        let seen = inbox.seen.lock().unwrap();
        assert_eq!(seen[0].id, 7);
        assert_eq!(seen[0].note.len(), 4096);
        assert_eq!(seen[1], note);
    }

    // A bomb and an unknown encoding: error replies with their codes, nothing decoded.
    let refused = |reply: async_nats::Message| {
        let h = reply.headers.unwrap_or_default();
        let code = h.get("Nats-Service-Error-Code").map(|v| v.to_string());
        let text = h.get("Nats-Service-Error").map(|v| v.to_string());
        (code.unwrap_or_default(), text.unwrap_or_default())
    };
    let reply = nats
        .request_with_headers("cz.echo", encoded("gzip"), bomb.clone())
        .await
        .unwrap();
    let (code, text) = refused(reply);
    assert_eq!(code, "413", "{text}");
    assert!(text.contains("inflates past 16777216 bytes"), "{text}");
    let reply = nats
        .request_with_headers("cz.echo", encoded("br"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let (code, text) = refused(reply);
    assert_eq!(code, "415", "{text}");
    assert!(text.contains("`br`"), "{text}");
    let stats = runtime.stats().handler("Inbox::echo").unwrap();
    assert_eq!((stats.handled, stats.rejected), (1, 2));

    // JetStream: a zstd message is handled, a bomb goes to the dead letters with the reason.
    let js = runtime.client().jetstream();
    js.publish_with_headers("cz.stored", encoded("zstd"), packed.into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish_with_headers("cz.stored", encoded("gzip"), bomb)
        .await
        .unwrap()
        .await
        .unwrap();
    let settled = || async {
        let s = runtime.stats().handler("Inbox::stored").unwrap();
        s.handled == 1 && s.dead_lettered == 1
    };
    assert!(
        eventually(Duration::from_secs(15), settled).await,
        "{:?}",
        runtime.stats().handler("Inbox::stored")
    );
    assert_eq!(inbox.seen.lock().unwrap().last(), Some(&note));
    let letters = nats_actors::jetstream::dead_letters(runtime.client(), "CZ_DLQ", 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].error.contains("inflates past"),
        "{}",
        letters[0].error
    );

    // And the runtime goes on serving.
    let back: Note = runtime.client().request("cz.echo", &note).await.unwrap();
    assert_eq!(back.id, 2);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_with_compression_sends_gzip_that_python_reads() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .compression(Compression::gzip().min_size(1024))
        .stream(cz_stream())
        .actor(Inbox::default())
        .start()
        .await
        .unwrap();
    let mut python = Command::new(python())
        .args([script(), server.url(), "receive".into(), "cz.out".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let first = lines.next().and_then(Result::ok);
        (first, lines)
    });
    let (first, mut lines) = tokio::time::timeout(Duration::from_secs(20), ready)
        .await
        .expect("python subscribes in time")
        .unwrap();
    assert_eq!(first.as_deref(), Some("ready"));
    let note = Note {
        id: 3,
        note: "n".repeat(16 * 1024),
    };
    let json_len = serde_json::to_vec(&note).unwrap().len();
    runtime.client().publish("cz.out", &note).await.unwrap();
    let got = tokio::task::spawn_blocking(move || lines.next().and_then(Result::ok))
        .await
        .unwrap()
        .expect("python printed the message");
    let status = python.wait().unwrap();
    assert!(status.success());
    let got: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["encoding"], "gzip", "{got}");
    assert!(
        got["wire"].as_u64().unwrap() < json_len as u64 / 10,
        "{got}"
    );
    assert_eq!(got["value"]["note"].as_str().unwrap().len(), 16 * 1024);

    // A reply is compressed too, and the typed client takes it back transparently.
    let back: Note = runtime.client().request("cz.echo", &note).await.unwrap();
    assert_eq!(back.note, note.note);
    // Small payloads go as they are.
    let small = Note {
        id: 1,
        note: "s".into(),
    };
    let raw = runtime
        .client()
        .nats()
        .request("cz.echo", serde_json::to_vec(&small).unwrap().into())
        .await
        .unwrap();
    assert!(raw.headers.unwrap().get("Content-Encoding").is_none());
    runtime.shutdown().await;
}

/// An actor whose sends are zstd past 100 bytes, with one handler that sends uncompressed and
/// one that sends gzip.
#[derive(Actor, Clone, Default)]
#[actor(compress = "zstd", compress_min = 100)]
struct Packer;

#[handlers]
impl Packer {
    /// Inherits the actor's zstd, for its publish and its reply.
    #[request("pk.zstd")]
    async fn zstd(&self, note: Note, ctx: &Context) -> Result<Note, HandlerError> {
        ctx.publish("pk.out.zstd", &note).await?;
        // Per publish: this one goes as it is, and this one with gzip.
        ctx.uncompressed().publish("pk.out.plain", &note).await?;
        ctx.compressed(Compression::gzip())
            .js_publish("pk.stored.gzip", &note)
            .await?;
        Ok(note)
    }

    /// MessagePack both ways, compressed both ways.
    #[request("pk.msgpack", codec = "msgpack")]
    async fn msgpack(&self, note: Note) -> Note {
        note
    }

    #[request("pk.none", compress = "none")]
    async fn none(&self, note: Note) -> Note {
        note
    }

    #[consumer(
        stream = "PK",
        durable = "pk",
        filter = "pk.stored.in",
        compress = "gzip"
    )]
    async fn stored(&self, note: Note, ctx: &Context) -> Result<(), HandlerError> {
        ctx.publish("pk.out.gzip", &note).await?;
        Ok(())
    }
}

/// A service endpoint that answers with gzip past 100 bytes.
#[derive(Service)]
#[service(name = "packsvc", version = "1.0.0")]
struct PackService;

#[endpoints]
impl PackService {
    #[endpoint(subject = "pk.svc", compress = "gzip", compress_min = 100)]
    async fn echo(&self, note: Note) -> Note {
        note
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_options_of_actor_handler_and_publish_choose_the_encoding() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .stream(nats_actors::jetstream::StreamConfig {
            name: "PK".into(),
            subjects: vec!["pk.stored.>".into()],
            ..Default::default()
        })
        .actor(Packer)
        .service(PackService)
        .start()
        .await
        .unwrap();
    let nats = runtime.client().nats().clone();
    let mut out = nats.subscribe("pk.out.>").await.unwrap();
    nats.flush().await.unwrap();
    let encoding = |m: &async_nats::Message| {
        m.headers
            .as_ref()
            .and_then(|h| h.get("Content-Encoding"))
            .map(|v| v.to_string())
    };
    let note = Note {
        id: 5,
        note: "p".repeat(4096),
    };
    let body = serde_json::to_vec(&note).unwrap();

    // A small value is under compress_min: as it is (and so are its publishes).
    let small = serde_json::to_vec(&Note {
        id: 1,
        note: "s".into(),
    })
    .unwrap();
    let reply = nats.request("pk.zstd", small.into()).await.unwrap();
    assert_eq!(encoding(&reply), None);
    let reply = nats.request("pk.zstd", body.clone().into()).await.unwrap();
    assert_eq!(encoding(&reply).as_deref(), Some("zstd"));
    assert!(reply.payload.len() < body.len() / 10);
    let back: Note = runtime.client().request("pk.zstd", &note).await.unwrap();
    assert_eq!(back, note);
    // MessagePack: a gzip request, a zstd reply, both taken.
    let mp = runtime.client().with_codec(nats_actors::Codec::MsgPack);
    let back: Note = mp
        .compressed(Compression::gzip())
        .request("pk.msgpack", &note)
        .await
        .unwrap();
    assert_eq!(back, note);
    let packed = rmp_serde::to_vec_named(&note).unwrap();
    let mut h = encoded("gzip");
    h.insert("Content-Type", "application/msgpack");
    let reply = nats
        .request_with_headers("pk.msgpack", h, gzip(&packed))
        .await
        .unwrap();
    assert_eq!(encoding(&reply).as_deref(), Some("zstd"));
    let inflated = zstd::stream::decode_all(&reply.payload[..]).unwrap();
    assert_eq!(rmp_serde::from_slice::<Note>(&inflated).unwrap(), note);
    // A service endpoint: a zstd request taken, a gzip reply that the typed client reads.
    let reply = nats
        .request_with_headers("pk.svc", encoded("zstd"), packed_note(&body))
        .await
        .unwrap();
    assert_eq!(encoding(&reply).as_deref(), Some("gzip"));
    let back: Note = runtime.client().request("pk.svc", &note).await.unwrap();
    assert_eq!(back, note);
    // The handler's `compress = "none"` wins over the actor's zstd.
    let reply = nats.request("pk.none", body.clone().into()).await.unwrap();
    assert_eq!((encoding(&reply), reply.payload.len()), (None, body.len()));

    // What the first handler published, in order: for the small note both as they are; for
    // the large one (twice) zstd, and as it is.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let m = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut out))
            .await
            .expect("the handler's publishes arrive")
            .unwrap();
        seen.push((m.subject.to_string(), encoding(&m)));
    }
    let (zstd, plain) = ("pk.out.zstd".to_string(), "pk.out.plain".to_string());
    let z = Some("zstd".to_string());
    assert_eq!(
        seen,
        [
            (zstd.clone(), None),
            (plain.clone(), None),
            (zstd.clone(), z.clone()),
            (plain.clone(), None),
            (zstd, z),
            (plain, None)
        ]
    );
    // Its JetStream publish with gzip is stored compressed.
    let js = runtime.client().jetstream();
    let stream = js.get_stream("PK").await.unwrap();
    let stored = stream
        .get_last_raw_message_by_subject("pk.stored.gzip")
        .await
        .unwrap();
    let gz = stored
        .headers
        .get("Content-Encoding")
        .map(|v| v.to_string());
    assert_eq!(gz.as_deref(), Some("gzip"));
    assert!(stored.payload.len() < body.len() / 10);

    // A consumer with `compress = "gzip"` takes a zstd message and publishes gzip.
    runtime
        .client()
        .compressed(Compression::zstd())
        .js_publish("pk.stored.in", &note)
        .await
        .unwrap();
    let stored = stream
        .get_last_raw_message_by_subject("pk.stored.in")
        .await
        .unwrap();
    let zs = stored
        .headers
        .get("Content-Encoding")
        .map(|v| v.to_string());
    assert_eq!(zs.as_deref(), Some("zstd"));
    let m = loop {
        let m = tokio::time::timeout(Duration::from_secs(15), futures::StreamExt::next(&mut out))
            .await
            .expect("the consumer publishes")
            .unwrap();
        if m.subject.as_str() == "pk.out.gzip" {
            break m;
        }
    };
    assert_eq!(encoding(&m).as_deref(), Some("gzip"));
    let stats = runtime.stats().handler("Packer::stored").unwrap();
    assert_eq!((stats.handled, stats.failed), (1, 0));
    runtime.shutdown().await;
}
