//! A distributed task queue on JetStream: a producer, three workers sharing one durable consumer
//! of a work-queue stream, random failures that are retried with backoff, poison tasks that end
//! in the dead-letter stream with their reason, and a summary at the end.
//!
//! `cargo run --example task_queue` starts a throwaway nats-server (JetStream in a temp dir)
//! unless `NATS_URL` points at one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_actors::jetstream::{self, Delivery, JsPublish, RetentionPolicy, StreamConfig};
use nats_actors::prelude::*;

const TASKS: u64 = 300;

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    id: u64,
    /// A poison task fails every time: bad data, not bad luck.
    poison: bool,
}

/// One of three workers in the `workers` consumer: each task goes to exactly one of them.
#[derive(Actor, Clone, Default)]
#[actor(instances = 3)]
struct Worker {
    done: Arc<AtomicU64>,
}

#[handlers]
impl Worker {
    #[consumer(
        stream = "TASKS",
        durable = "workers",
        max_deliver = 4,
        backoff = "20ms, 50ms, 100ms",
        dead_letter = "TASKS_DLQ",
        concurrency = 8
    )]
    async fn run(&self, task: Task, delivery: Delivery) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(2)).await; // the work
        if task.poison {
            return Err(HandlerError::fatal(format!(
                "task {} has invalid input",
                task.id
            )));
        }
        // One attempt in four fails for a passing reason (a flaky dependency, say).
        if unlucky(task.id, delivery.delivered) {
            return Err(HandlerError::new(format!(
                "dependency timed out (task {}, attempt {})",
                task.id, delivery.delivered
            )));
        }
        self.done.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// A deterministic 1-in-4 coin per task and attempt.
fn unlucky(id: u64, attempt: u64) -> bool {
    let mut x =
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ attempt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x.is_multiple_of(4)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, options) = nats_actors_suite::example_server(true)?;

    let worker = Worker::default();
    let runtime = Runtime::builder()
        .connect(options.name("task-queue"))
        .stream(StreamConfig {
            name: "TASKS".into(),
            subjects: vec!["tasks.>".into()],
            retention: RetentionPolicy::WorkQueue, // a task leaves the stream once done
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .actor(worker.clone())
        .start()
        .await?;

    // The producer: pipelined, 64 acks in flight, each task with its own message id.
    let started = Instant::now();
    let tasks = (0..TASKS).map(|id| {
        (
            "tasks.resize",
            Task {
                id,
                poison: id % 50 == 7,
            },
        )
    });
    let results = runtime
        .client()
        .js_publish_pipelined(tasks, 64, &JsPublish::new().msg_id("resize-batch-1"))
        .await;
    let stored = results.iter().filter(|r| r.is_ok()).count();
    println!("published {stored} of {TASKS} tasks");

    // Wait (bounded) until every task is done or dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = runtime
            .stats()
            .handler("Worker::run")
            .expect("Worker::run runs");
        if s.handled + s.dead_lettered >= TASKS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = runtime
        .stats()
        .handler("Worker::run")
        .expect("Worker::run runs");
    println!("\nin {:?}:", started.elapsed());
    println!("  done           {:>4}", worker.done.load(Relaxed));
    println!("  retried        {:>4}  (nak with backoff)", s.retried);
    println!("  dead-lettered  {:>4}", s.dead_lettered);
    println!("  deliveries     {:>4}", s.received);
    for instance in runtime
        .stats()
        .handlers
        .iter()
        .filter(|h| h.handler == "Worker::run")
    {
        println!(
            "  worker {} handled {}",
            instance.instance, instance.handled
        );
    }
    println!("\ndead letters (TASKS_DLQ):");
    for letter in jetstream::dead_letters(runtime.client(), "TASKS_DLQ", 10).await? {
        println!(
            "  {}#{} after {} deliveries: {}",
            letter.stream, letter.stream_sequence, letter.deliveries, letter.error
        );
    }
    let left = runtime
        .client()
        .jetstream()
        .get_stream("TASKS")
        .await?
        .get_info()
        .await?;
    println!("tasks left in the work queue: {}", left.state.messages);
    runtime.shutdown().await;
    if s.handled + s.dead_lettered < TASKS {
        return Err(format!(
            "only {} of {TASKS} tasks settled",
            s.handled + s.dead_lettered
        )
        .into());
    }
    Ok(())
}
