//! Case 3, request/reply: sequential p50 and throughput with requests in flight, the typed
//! `#[request]` handler vs raw async-nats responders that do the same work or echo the bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nats_actors::prelude::*;
use nats_actors::ConnectOptions;

use crate::common::{cpu_time, median};
use crate::{Counter, Event, IN_FLIGHT, PARALLEL_REQUESTS, REQUEST_ROUNDS, SEQUENTIAL_REQUESTS};

/// Requests in a row to one side before the next side takes over, in the sequential phase.
const BLOCK: usize = 50;

/// Sequential requests to every one of `subjects`, `SEQUENTIAL_REQUESTS` each, the sides taking
/// turns every [`BLOCK`] requests (so that they share the machine's state, which drifts within
/// a round); returns the p50 latency of each.
async fn sequential_p50s(
    requester: &async_nats::Client,
    subjects: &[&str],
    payload: &Bytes,
) -> Vec<Duration> {
    let n = *SEQUENTIAL_REQUESTS as usize;
    let mut lat: Vec<Vec<Duration>> = subjects.iter().map(|_| Vec::with_capacity(n)).collect();
    for start in (0..n).step_by(BLOCK) {
        for (side, subject) in subjects.iter().enumerate() {
            for _ in start..(start + BLOCK).min(n) {
                let t = Instant::now();
                let reply = requester
                    .request(subject.to_string(), payload.clone())
                    .await
                    .unwrap();
                lat[side].push(t.elapsed());
                assert!(!reply.payload.is_empty());
            }
        }
    }
    lat.into_iter()
        .map(|mut l| {
            l.sort();
            l[l.len() / 2]
        })
        .collect()
}

async fn parallel_rate(
    requester: &async_nats::Client,
    subject: &str,
    payload: &Bytes,
) -> (f64, usize, f64) {
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let per_task = *PARALLEL_REQUESTS as usize / IN_FLIGHT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (c, s, p) = (requester.clone(), subject.to_string(), payload.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..per_task {
                    if c.request(s.clone(), p.clone()).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    let cpu_us = (cpu_time() - cpu0).as_secs_f64() * 1e6 / ok.max(1) as f64;
    (ok as f64 / t0.elapsed().as_secs_f64(), ok, cpu_us)
}

/// A raw async-nats responder on `subject`. With `same_work`, it does what the typed handler
/// does: decodes the request into `Event`, encodes the reply and sends it with its
/// `Content-Type` header; without, it echoes the bytes.
async fn raw_responder(url: &str, subject: &str, same_work: bool) -> tokio::task::JoinHandle<()> {
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let Some(reply) = m.reply else { continue };
            if !same_work {
                let _ = client.publish(reply, m.payload).await;
                continue;
            }
            let event: Event = rmp_serde::from_slice(&m.payload).unwrap();
            let body = Bytes::from(rmp_serde::to_vec_named(&event).unwrap());
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/msgpack");
            let _ = client.publish_with_headers(reply, headers, body).await;
        }
    })
}

pub async fn request_reply(url: &str, payload: &Bytes) {
    let echo = raw_responder(url, "bench.raw.echo", false).await;
    let typed = raw_responder(url, "bench.raw.typed", true).await;
    let counter = Counter {
        got: Arc::default(),
        expect: Arc::default(),
        done: Arc::default(),
    };
    let runtime = Runtime::builder()
        .connect(ConnectOptions::new([url]))
        .actor(counter)
        .start()
        .await
        .unwrap();
    let requester = async_nats::connect(url).await.unwrap();
    // Sequential p50, in-flight rate and CPU of: raw echo, raw doing the same work, nats-actors.
    let subjects = ["bench.raw.echo", "bench.raw.typed", "bench.fw.echo"];
    let names = ["echo", "same", "fw"];
    let chosen = std::env::var("BENCH_RESPONDERS").unwrap_or_else(|_| names.join(","));
    let sides: Vec<usize> = (0..3)
        .filter(|&i| chosen.split(',').any(|c| c == names[i]))
        .collect();
    let (mut p50, mut par, mut cpu) = (
        [vec![], vec![], vec![]],
        [vec![], vec![], vec![]],
        [vec![], vec![], vec![]],
    );
    for round in 0..*REQUEST_ROUNDS as usize {
        let mut line = format!("round {round}:");
        // Each side goes first, second and third in turn: no side always follows the same one.
        let order: Vec<usize> = (0..sides.len())
            .map(|k| sides[(round + k) % sides.len()])
            .collect();
        let chosen: Vec<&str> = order.iter().map(|&i| subjects[i]).collect();
        let latencies = sequential_p50s(&requester, &chosen, payload).await;
        for (&i, lat) in order.iter().zip(latencies) {
            let subject = subjects[i];
            let (rate, ok, cpu_us) = parallel_rate(&requester, subject, payload).await;
            line += &format!(
                " {subject}: p50 {:.1} us, {IN_FLIGHT} in flight {rate:.0}/s (ok {ok}, {cpu_us:.2} us cpu/req) |",
                lat.as_secs_f64() * 1e6
            );
            p50[i].push(lat.as_secs_f64() * 1e6);
            par[i].push(rate);
            cpu[i].push(cpu_us);
        }
        println!("{line}");
    }
    if sides.len() == 3 {
        let per_round = |v: &[Vec<f64>; 3], base: usize| {
            median(v[2].iter().zip(&v[base]).map(|(f, b)| f / b).collect())
        };
        println!(
            "request/reply 128 B msgpack, medians: sequential p50 raw echo {:.1} us, raw same work {:.1} us, nats-actors {:.1} us; {IN_FLIGHT} in flight raw echo {:.0}/s, raw same work {:.0}/s, nats-actors {:.0}/s; cpu/request (requester + responder) raw echo {:.2} us, raw same work {:.2} us, nats-actors {:.2} us",
            median(p50[0].clone()),
            median(p50[1].clone()),
            median(p50[2].clone()),
            median(par[0].clone()),
            median(par[1].clone()),
            median(par[2].clone()),
            median(cpu[0].clone()),
            median(cpu[1].clone()),
            median(cpu[2].clone()),
        );
        let cpu_over = median(cpu[2].iter().zip(&cpu[1]).map(|(f, b)| f - b).collect());
        println!(
            "  ratios (median of per-round ratios): p50 latency vs raw same work {:.3}, vs raw echo {:.3}; {IN_FLIGHT} in flight vs raw same work {:.3}, vs raw echo {:.3}; cpu/request over raw same work's (median of per-round differences) {cpu_over:+.2} us",
            per_round(&p50, 1),
            per_round(&p50, 0),
            per_round(&par, 1),
            per_round(&par, 0),
        );
    }
    runtime.shutdown().await;
    echo.abort();
    typed.abort();
}
