//! Object stores against a real server: a bucket declared on the builder, objects put from an
//! `AsyncRead` and read back as chunks and as an `AsyncRead`, their info, list, metadata and
//! headers, links, deletes, progress; and reads of objects that are no longer whole (chunks
//! removed under them, an info whose digest does not match) failing with their error, never
//! with silent data or a hang.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use nats_actors::objects::{ObjectError, ObjectMetadata, ObjectStoreConfig};
use nats_actors::prelude::*;
use nats_actors_suite::{connect, logs, nats, server, NatsServer};
use std::time::Instant;
use tokio::io::AsyncReadExt;

/// Bytes `0, 1, 2, ...` (mod 251: no period that lines up with a chunk).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn runtime(server: &NatsServer) -> Runtime {
    Runtime::builder()
        .connect(connect(server))
        .object_store(ObjectStoreConfig {
            bucket: "files".into(),
            ..Default::default()
        })
        .start()
        .await
        .expect("start with an object store")
}

/// Object metadata with a small chunk size, so that a few hundred KiB is many chunks.
fn chunked(name: &str, chunk_size: usize) -> ObjectMetadata {
    ObjectMetadata {
        name: name.into(),
        chunk_size: Some(chunk_size),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_go_in_and_out_whole_with_their_info_metadata_links_and_deletes() {
    logs();
    let server = server();
    let runtime = runtime(&server).await;
    let files = runtime.client().objects("files").await.unwrap();

    // 300 KiB in 10 KiB chunks, with progress after each acked chunk.
    let data = pattern(300 * 1024);
    let mut progress = Vec::new();
    let info = files
        .put_with_progress(chunked("a.bin", 10 * 1024), &mut data.as_slice(), |n| {
            progress.push(n)
        })
        .await
        .unwrap();
    assert_eq!((info.size, info.chunks), (data.len(), 30));
    assert_eq!(progress.len(), 30, "progress after every chunk");
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*progress.last().unwrap(), data.len() as u64);

    // As chunks, and as an AsyncRead.
    let object = files.get("a.bin").await.unwrap();
    let chunks: Vec<bytes::Bytes> = object.try_collect().await.unwrap();
    assert_eq!(chunks.len(), 30);
    assert_eq!(chunks.concat(), data);
    let mut read = Vec::new();
    files
        .get("a.bin")
        .await
        .unwrap()
        .into_async_read()
        .read_to_end(&mut read)
        .await
        .unwrap();
    assert_eq!(read, data);

    // Readable by async-nats itself (same chunks, same digest).
    let raw = jetstream::new(nats(&server).await)
        .get_object_store("files")
        .await
        .unwrap();
    let mut by_raw = Vec::new();
    raw.get("a.bin")
        .await
        .unwrap()
        .read_to_end(&mut by_raw)
        .await
        .unwrap();
    assert_eq!(by_raw, data, "async-nats reads what nats-actors put");

    // Metadata and headers; an empty object.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Origin", "scanner-3");
    let meta = ObjectMetadata {
        name: "empty".into(),
        description: Some("nothing".into()),
        metadata: HashMap::from([("owner".to_string(), "ops".to_string())]),
        headers: Some(headers),
        ..Default::default()
    };
    files.put(meta, &mut tokio::io::empty()).await.unwrap();
    let empty = files.info("empty").await.unwrap();
    assert_eq!((empty.size, empty.chunks), (0, 0));
    assert_eq!(empty.description.as_deref(), Some("nothing"));
    assert_eq!(empty.metadata["owner"], "ops");
    let origin = empty.headers.as_ref().and_then(|h| h.get("X-Origin"));
    assert_eq!(origin.map(|v| v.as_str()), Some("scanner-3"));
    let none: Vec<bytes::Bytes> = files
        .get("empty")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());

    // A put replaces the object (and its old chunks go).
    let smaller = pattern(1000);
    files.put("a.bin", &mut smaller.as_slice()).await.unwrap();
    let again: Vec<bytes::Bytes> = files
        .get("a.bin")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(again.concat(), smaller);
    let js = jetstream::new(nats(&server).await);
    let stream = js
        .get_stream("OBJ_files")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        stream.state.messages,
        1 + 2,
        "one chunk and two infos are left"
    );

    // A link reads its target.
    let target = files.info("a.bin").await.unwrap();
    files.link("latest", &target).await.unwrap();
    let via_link: Vec<bytes::Bytes> = files
        .get("latest")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(via_link.concat(), smaller);

    // Renamed with new metadata; the data stays.
    let renamed = ObjectMetadata {
        name: "b.bin".into(),
        description: Some("renamed".into()),
        ..Default::default()
    };
    files.update_metadata("a.bin", renamed).await.unwrap();
    assert!(matches!(
        files.info("a.bin").await,
        Err(ObjectError::NotFound { .. })
    ));
    assert_eq!(files.info("b.bin").await.unwrap().size, smaller.len());

    // Listed; deleted ones are gone from the list and from get.
    let mut names: Vec<String> = files
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    assert_eq!(names, ["b.bin", "empty", "latest"]);
    files.delete("empty").await.unwrap();
    assert!(matches!(
        files.get("empty").await,
        Err(ObjectError::NotFound { .. })
    ));
    assert!(matches!(
        files.delete("empty").await,
        Err(ObjectError::NotFound { .. })
    ));
    assert_eq!(files.list().await.unwrap().len(), 2);

    // Bad input: an empty name, an unknown bucket.
    assert!(matches!(
        files.put("", &mut tokio::io::empty()).await,
        Err(ObjectError::InvalidName { .. })
    ));
    let unknown = runtime.client().objects("nope").await.unwrap_err();
    assert!(unknown.to_string().contains("object_store"), "{unknown}");
    runtime.shutdown().await;
}

/// The stream sequences of the chunks of `name`, in order.
async fn chunk_sequences(js: &jetstream::Context, nuid: &str) -> Vec<u64> {
    let stream = js.get_stream("OBJ_files").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: format!("$O.files.C.{nuid}"),
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let total = consumer.cached_info().num_pending as usize;
    let mut messages = consumer
        .fetch()
        .max_messages(total)
        .messages()
        .await
        .unwrap();
    let mut sequences = Vec::new();
    while let Some(m) = messages.try_next().await.unwrap() {
        sequences.push(m.info().unwrap().stream_sequence);
    }
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_is_not_whole_fails_its_read_and_never_hangs() {
    logs();
    let server = server();
    let runtime = runtime(&server).await;
    let files = runtime.client().objects("files").await.unwrap();
    let js = jetstream::new(nats(&server).await);
    let data = pattern(80 * 1024);
    let within = Duration::from_secs(10);

    // A chunk in the middle removed: the get itself fails (the consumer holds too few).
    let info = files
        .put(chunked("mid", 8 * 1024), &mut data.as_slice())
        .await
        .unwrap();
    let sequences = chunk_sequences(&js, &info.nuid).await;
    assert_eq!(sequences.len(), 10);
    let stream = js.get_stream("OBJ_files").await.unwrap();
    stream.delete_message(sequences[4]).await.unwrap();
    let got = tokio::time::timeout(within, files.get("mid"))
        .await
        .expect("no hang");
    match got {
        Err(ObjectError::Truncated {
            chunks: 10,
            found: 9,
            ..
        }) => {}
        other => panic!("a removed chunk: {other:?}"),
    }

    // Every chunk removed: an error, not a read that waits for ever.
    let info = files
        .put(chunked("all", 8 * 1024), &mut data.as_slice())
        .await
        .unwrap();
    stream
        .purge()
        .filter(format!("$O.files.C.{}", info.nuid))
        .await
        .unwrap();
    let got = tokio::time::timeout(within, files.get("all"))
        .await
        .expect("no hang");
    assert!(
        matches!(got, Err(ObjectError::Truncated { found: 0, .. })),
        "{got:?}"
    );

    // An info whose digest is not the data's (a corrupt object): the last chunk is an error,
    // and as an AsyncRead it is InvalidData.
    let mut info = files
        .put(chunked("bad", 8 * 1024), &mut data.as_slice())
        .await
        .unwrap();
    info.digest = Some("SHA-256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let subject = format!("$O.files.M.{}", base64_name("bad"));
    js.publish_with_headers(subject, headers, serde_json::to_vec(&info).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let object = files.get("bad").await.unwrap();
    let read: Vec<Result<bytes::Bytes, ObjectError>> = futures::StreamExt::collect(object).await;
    assert_eq!(read.len(), 10);
    assert!(
        read[..9].iter().all(Result::is_ok),
        "the chunks before the last are given"
    );
    assert!(
        matches!(read[9], Err(ObjectError::Corrupt { .. })),
        "{:?}",
        read[9]
    );
    let mut sink = Vec::new();
    let as_read = files
        .get("bad")
        .await
        .unwrap()
        .into_async_read()
        .read_to_end(&mut sink)
        .await;
    assert_eq!(as_read.unwrap_err().kind(), std::io::ErrorKind::InvalidData);

    // The runtime goes on: a new object reads whole.
    files.put("fine", &mut data.as_slice()).await.unwrap();
    let fine: Vec<bytes::Bytes> = files
        .get("fine")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fine.concat(), data);
    runtime.shutdown().await;
}

fn base64_name(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_whole_through_a_server_restart() {
    logs();
    let mut server = server();
    let runtime = runtime(&server).await;
    let files = runtime.client().objects("files").await.unwrap();
    // 8 MiB in 128 chunks of 64 KiB: far more than one pull asks for.
    let data = pattern(8 << 20);
    files
        .put(chunked("long.bin", 64 * 1024), &mut data.as_slice())
        .await
        .unwrap();
    let mut object = files.get("long.bin").await.unwrap();
    let mut read = Vec::new();
    for _ in 0..3 {
        read.extend_from_slice(&object.try_next().await.unwrap().expect("a chunk"));
    }
    // The read's consumer (in memory, on the server) is gone with the restart.
    tokio::task::block_in_place(|| server.restart()).expect("restart nats-server");
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = object.try_next().await? {
            read.extend_from_slice(&chunk);
        }
        Ok::<_, ObjectError>(())
    })
    .await
    .expect("the read goes on within 30 s");
    rest.expect("every chunk, and the digest, after the restart");
    assert_eq!(read.len(), data.len());
    assert!(read == data, "the data read is the data put");
    println!(
        "read on through a restart, whole after {:?}",
        started.elapsed()
    );
    runtime.shutdown().await;
}
