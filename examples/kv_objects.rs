//! KV and object stores together: a configuration that reloads itself through a `#[kv_watch]`
//! handler, and an upload pipeline where an object put wakes an `#[object_watch]` handler that
//! reads the object back (its digest checked), counts its lines and stores the result in KV.
//!
//! `cargo run --example kv_objects` starts a throwaway nats-server (JetStream in a temp dir)
//! unless `NATS_URL` points at one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nats_actors::kv::{KvConfig, KvEntry, KvOperation};
use nats_actors::objects::{ObjectInfo, ObjectStoreConfig};
use nats_actors::prelude::*;
use tokio::io::AsyncReadExt;

/// A service's settings, kept in the `config` bucket under `services.<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    max_connections: u32,
    greeting: String,
}

/// Holds the live settings: every change to `services.api` replaces them, at once.
#[derive(Actor, Clone, Default)]
struct LiveConfig {
    current: Arc<Mutex<Option<Settings>>>,
}

#[handlers]
impl LiveConfig {
    #[kv_watch(bucket = "config", key = "services.{name}")]
    async fn reload(&self, name: Param<String>, change: KvEntry<Settings>) {
        match change.operation {
            KvOperation::Put => {
                println!(
                    "config: {} reloaded at revision {}: {:?}",
                    *name, change.revision, change.value
                );
                *self.current.lock().unwrap() = change.value;
            }
            _ => {
                println!("config: {} removed at revision {}", *name, change.revision);
                *self.current.lock().unwrap() = None;
            }
        }
    }
}

/// What the pipeline stores for each upload, in the `results` bucket.
#[derive(Debug, Serialize, Deserialize)]
struct Processed {
    bytes: usize,
    lines: usize,
}

/// Reads each upload as it lands and writes what it found to KV.
#[derive(Actor)]
struct Processor;

#[handlers]
impl Processor {
    #[object_watch(bucket = "uploads", from = "new")]
    async fn uploaded(&self, object: ObjectInfo, ctx: &Context) -> Result<(), HandlerError> {
        if object.deleted {
            println!("pipeline: {} deleted", object.name);
            return Ok(());
        }
        let mut text = String::new();
        let uploads = ctx.objects("uploads").await?;
        uploads
            .get(&object.name)
            .await?
            .into_async_read()
            .read_to_string(&mut text)
            .await?;
        let result = Processed {
            bytes: text.len(),
            lines: text.lines().count(),
        };
        println!(
            "pipeline: {} ({} chunks) -> {result:?}",
            object.name, object.chunks
        );
        let key = object.name.replace(['/', ' '], "_");
        ctx.kv::<Processed>("results")
            .await?
            .put(&key, &result)
            .await?;
        Ok(())
    }
}

/// Waits (bounded) for `done`.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, options) = nats_actors_suite::example_server(true)?;
    let live = LiveConfig::default();
    let runtime = Runtime::builder()
        .connect(options.name("kv-objects"))
        .kv(KvConfig {
            bucket: "config".into(),
            history: 5,
            ..Default::default()
        })
        .kv(KvConfig {
            bucket: "results".into(),
            ..Default::default()
        })
        .object_store(ObjectStoreConfig {
            bucket: "uploads".into(),
            ..Default::default()
        })
        .actor(live.clone())
        .actor(Processor)
        .start()
        .await?;
    let client = runtime.client();

    // Hot reload: each write is seen by the watcher, in order.
    let config = client.kv::<Settings>("config").await?;
    for (max_connections, greeting) in [(100, "hello"), (250, "hi there")] {
        let settings = Settings {
            max_connections,
            greeting: greeting.into(),
        };
        config.put("services.api", &settings).await?;
        until("the reload", || {
            live.current.lock().unwrap().as_ref() == Some(&settings)
        })
        .await?;
    }
    config.delete("services.api").await?;
    until("the removal", || live.current.lock().unwrap().is_none()).await?;

    // Uploads: a small text, and one of 2 MiB in 16 chunks streamed from a reader.
    let uploads = client.objects("uploads").await?;
    uploads
        .put("notes.txt", &mut &b"one\ntwo\nthree\n"[..])
        .await?;
    let mut big = tokio::io::repeat(b'x').take(2 << 20);
    let info = uploads
        .put_with_progress("logs/big.log", &mut big, |stored| {
            if stored % (1 << 20) == 0 {
                println!("upload: {} MiB stored", stored >> 20);
            }
        })
        .await?;
    println!(
        "upload: {} is {} bytes in {} chunks, {}",
        info.name,
        info.size,
        info.chunks,
        info.digest.as_deref().unwrap_or("-")
    );

    let results = client.kv::<Processed>("results").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while results.keys().await?.len() < 2 {
        if Instant::now() > deadline {
            return Err("the pipeline did not process both uploads".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for key in results.keys().await? {
        println!("results: {key} = {:?}", results.get(&key).await?);
    }
    let notes = results
        .get("notes.txt")
        .await?
        .ok_or("no result for notes.txt")?;
    if notes.lines != 3 {
        return Err(format!("notes.txt has 3 lines, the pipeline says {}", notes.lines).into());
    }
    runtime.shutdown().await;
    Ok(())
}
