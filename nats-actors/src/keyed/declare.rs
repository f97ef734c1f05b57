//! What a keyed actor needs on the server, made (or brought up to date) at start: its stream
//! (a work queue that stores each key's subjects under the key's partition), its state bucket,
//! and one pinned pull consumer per partition.

use async_nats::jetstream::consumer::{pull, AckPolicy, PriorityPolicy};
use async_nats::jetstream::kv::{self, Store};
use async_nats::jetstream::stream::{self, Stream, SubjectTransform};

use super::layout::Layout;
use super::pull::{GROUP, PIN_TIMEOUT};
use super::spec::KeyedOptions;
use crate::client::Client;
use crate::error::Error;

/// How long the server waits for an ack before it gives a message out again. Held messages get
/// in-progress acks every third of it; a process that dies leaves its messages to come out again within
/// this, to whoever is pinned then (which is how a partition whose unacked messages reached
/// `MAX_ACK_PENDING` moves on at all).
pub(super) const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(4);
/// Messages one partition may have delivered and not acked.
const MAX_ACK_PENDING: i64 = 256;

/// Declares the stream, the bucket and the partition consumers of `layout`.
pub(super) async fn declare(
    client: &Client,
    layout: &Layout,
    options: &KeyedOptions,
) -> Result<(Stream, Store), Error> {
    let js = client.jetstream();
    let config = stream::Config {
        name: layout.stream.clone(),
        subjects: layout.stream_subjects(),
        subject_transform: Some(SubjectTransform {
            source: layout.subjects(),
            destination: layout.transform(),
        }),
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        duplicate_window: std::time::Duration::from_secs(120),
        // A takeover reads what the previous owner left with batched direct gets.
        allow_direct: true,
        // Reminders are the server's own scheduled messages (nats-server 2.12+).
        allow_message_schedules: true,
        description: Some(format!(
            "commands and asks of keyed actor {} (nats-actors)",
            layout.actor
        )),
        ..Default::default()
    };
    crate::jetstream::declare(js, &config).await.map_err(|e| match e {
        Error::JetStream { what, reason } => Error::JetStream {
            what,
            reason: format!("{reason} (a new partition count needs an empty stream: stop every process of {}, let it drain, delete the stream)", layout.actor),
        },
        other => other,
    })?;
    let what = |thing: &str| format!("{thing} of keyed actor {}", layout.actor);
    let fail = |thing: &str, e: &dyn std::fmt::Display| Error::JetStream {
        what: what(thing),
        reason: e.to_string(),
    };
    let stream = js
        .get_stream(&layout.stream)
        .await
        .map_err(|e| fail("stream", &e))?;
    // A new bucket gets the stream's replicas, whoever set them.
    let replicas = stream.cached_info().config.num_replicas.max(1);
    let store = match js.get_key_value(&layout.bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: layout.bucket.clone(),
                description: format!("state of keyed actor {} (nats-actors)", layout.actor),
                history: 1,
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| fail("state bucket", &e))?,
    };
    for p in 0..layout.partitions {
        let config = pull::Config {
            durable_name: Some(layout.consumer(p)),
            description: Some(format!(
                "partition {p} of keyed actor {} (nats-actors)",
                layout.actor
            )),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            filter_subject: layout.partition_filter(p),
            priority_policy: PriorityPolicy::PinnedClient,
            priority_groups: vec![GROUP.to_string()],
            priority_timeout: PIN_TIMEOUT,
            ..Default::default()
        };
        stream
            .create_consumer(config)
            .await
            .map_err(|e| fail(&format!("consumer of partition {p}"), &e))?;
    }
    Ok((stream, store))
}
