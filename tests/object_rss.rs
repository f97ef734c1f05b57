//! A 256 MiB object streamed into an object store and out again: the test process's peak
//! resident memory (`VmHWM`) grows by less than 64 MiB, the data read is the data put, and the
//! digest is checked. Alone in its binary, so that no other test's memory counts.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::StreamExt;
use nats_actors::objects::ObjectStoreConfig;
use nats_actors::prelude::*;
use nats_actors_suite::{connect, logs, server};
use tokio::io::{AsyncRead, ReadBuf};

const SIZE: u64 = 256 << 20;
const EXTRA: u64 = 64 << 20;

/// `len` bytes of a pattern with a period of 251, made as they are read.
struct Pattern {
    at: u64,
    len: u64,
}

fn byte(at: u64) -> u8 {
    (at % 251) as u8
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.len - self.at) as usize;
        let start = self.at;
        let out = buf.initialize_unfilled_to(n);
        for (i, b) in out.iter_mut().enumerate() {
            *b = byte(start + i as u64);
        }
        buf.advance(n);
        self.at += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// The process's peak resident set, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_object_goes_in_and_out_in_less_than_64_mib_of_memory() {
    logs();
    let server = server();
    let runtime = Runtime::builder()
        .connect(connect(&server))
        .object_store(ObjectStoreConfig {
            bucket: "big".into(),
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let store = runtime.client().objects("big").await.unwrap();
    let before = peak_rss();

    let started = Instant::now();
    let mut data = Pattern { at: 0, len: SIZE };
    let info = store.put("big.bin", &mut data).await.unwrap();
    let put = started.elapsed();
    assert_eq!(info.size as u64, SIZE);
    let after_put = peak_rss();

    let started = Instant::now();
    let mut object = store.get("big.bin").await.unwrap();
    let mut read = 0u64;
    // Bounded by the object's chunks (2,048 of 128 KiB).
    while let Some(chunk) = object.next().await {
        let chunk = chunk.expect("every chunk, and the digest, check out");
        for (i, b) in chunk.iter().enumerate().step_by(4093) {
            assert_eq!(*b, byte(read + i as u64), "byte {}", read + i as u64);
        }
        read += chunk.len() as u64;
    }
    let get = started.elapsed();
    assert_eq!(read, SIZE);
    let after_get = peak_rss();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "256 MiB: put {put:?} ({:.0} MiB/s), get {get:?} ({:.0} MiB/s); peak RSS {:.1} MiB before, +{:.1} MiB after the put, +{:.1} MiB after the get",
        256.0 / put.as_secs_f64(),
        256.0 / get.as_secs_f64(),
        mib(before),
        mib(after_put - before),
        mib(after_get - before),
    );
    assert!(
        after_get - before < EXTRA,
        "peak RSS grew by {:.1} MiB",
        mib(after_get - before)
    );
    runtime.shutdown().await;
}
