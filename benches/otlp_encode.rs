//! The hand-written OTLP encoder against the generated types: the same batch of 512 span records
//! (as a handler's `process` spans are recorded) encoded to an `ExportTraceServiceRequest`
//! (a) by the encoder the built-in exporter uses, (b) by building opentelemetry-proto's prost
//! structs from the records and encoding them with prost. Reports ns per span (median of
//! rounds, a and b alternating) and heap allocations per span (count and bytes, from a counting
//! global allocator, installed for every case alike), and checks first that both encode the
//! same request. (b) is also split: prost's encoding of structs built beforehand, alone.
//!
//! Run: `cargo bench --bench otlp_encode --features nats-actors/__bench`
//! (`BENCH_ENCODE_ROUNDS`, default 15; `BENCH_ENCODE_BATCHES` per round, default 400).

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use nats_actors::telemetry::__bench::{Batch, HandEncoder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SPANS: usize = 512;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds per span over `batches` encodings.
fn time(batches: usize, mut encode: impl FnMut() -> usize) -> f64 {
    let t0 = Instant::now();
    for _ in 0..batches {
        black_box(encode());
    }
    t0.elapsed().as_nanos() as f64 / (batches * SPANS) as f64
}

/// (allocations, bytes allocated) per span of one encoding, after warm-up.
fn allocations(mut encode: impl FnMut() -> usize) -> (f64, f64) {
    for _ in 0..3 {
        black_box(encode());
    }
    let region = Region::new(GLOBAL);
    black_box(encode());
    let c = region.change();
    (
        c.allocations as f64 / SPANS as f64,
        c.bytes_allocated as f64 / SPANS as f64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds = env_or("BENCH_ENCODE_ROUNDS", 15).max(1);
    let batches = env_or("BENCH_ENCODE_BATCHES", 400).max(1);
    let batch = Batch::process_spans(SPANS);
    assert!(batch.agree(), "(a) and (b) must encode the same request");
    let mut encoder = HandEncoder::default();
    let request_bytes = (batch.hand_written(&mut encoder), batch.generated());

    let (alloc_a, bytes_a) = allocations(|| batch.hand_written(&mut encoder));
    let (alloc_b, bytes_b) = allocations(|| batch.generated());
    let prebuilt = batch.prebuilt();
    let (alloc_p, bytes_p) = allocations(|| prebuilt.encode());

    // One unmeasured round each, then rounds alternating a and b.
    time(batches, || batch.hand_written(&mut encoder));
    time(batches, || batch.generated());
    let (mut a, mut b, mut p, mut ratios) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let ta = time(batches, || batch.hand_written(&mut encoder));
        let tb = time(batches, || batch.generated());
        p.push(time(batches, || prebuilt.encode()));
        a.push(ta);
        b.push(tb);
        ratios.push(tb / ta);
    }
    let (ta, tb, tp) = (median(a), median(b), median(p));
    println!(
        "OTLP encoding of {SPANS}-span batches of process spans ({rounds} rounds x {batches} batches):"
    );
    println!(
        "  (a) hand-written encoder: {ta:>7.1} ns/span, {alloc_a:.3} allocations/span, {bytes_a:>6.1} B allocated/span, request {} B",
        request_bytes.0
    );
    println!(
        "  (b) generated + prost:    {tb:>7.1} ns/span, {alloc_b:.3} allocations/span, {bytes_b:>6.1} B allocated/span, request {} B",
        request_bytes.1
    );
    println!(
        "      of which prost's encoding of the built structs: {tp:>7.1} ns/span, {alloc_p:.3} allocations/span, {bytes_p:>6.1} B allocated/span"
    );
    println!(
        "  (b)/(a): time {:.2}x (median of per-round ratios {:.2}x), allocations {:.1}x, bytes allocated {:.2}x",
        tb / ta,
        median(ratios),
        alloc_b / alloc_a.max(f64::MIN_POSITIVE),
        bytes_b / bytes_a.max(f64::MIN_POSITIVE)
    );
}
