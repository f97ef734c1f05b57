//! Buckets declared on the builder: created when missing, updated where they differ, and a
//! change the server refuses is a start-up error naming the settings.

use async_nats::jetstream::kv::Config;
use async_nats::jetstream::stream::Config as StreamConfig;
use async_nats::jetstream::Context;

use crate::error::Error;

pub(crate) async fn declare(js: &Context, config: &Config) -> Result<(), Error> {
    let what = || format!("KV bucket {}", config.bucket);
    let refused = |reason: String| Error::JetStream {
        what: what(),
        reason,
    };
    let current = match js.get_key_value(&config.bucket).await {
        Ok(store) => store.stream.cached_info().config.clone(),
        Err(_) => {
            // Missing (or unreadable: then creating it says why).
            js.create_key_value(config.clone())
                .await
                .map_err(|e| refused(e.to_string()))?;
            tracing::info!(bucket = %config.bucket, "KV bucket created");
            return Ok(());
        }
    };
    let fields = differences(&current, config);
    if fields.is_empty() {
        return Ok(());
    }
    let named = crate::jetstream::named(&fields);
    js.update_key_value(config.clone())
        .await
        .map_err(|e| refused(format!("the server refused to change {named}: {e}")))?;
    tracing::info!(bucket = %config.bucket, fields = %named, "KV bucket updated");
    Ok(())
}

/// The declared settings that differ from the bucket's stream, by their `KvConfig` names.
fn differences(current: &StreamConfig, wanted: &Config) -> Vec<&'static str> {
    // What async-nats makes of the declared values when it creates the bucket.
    let unlimited = |v: i64| if v <= 0 { -1 } else { v };
    let mut fields = Vec::new();
    if current.max_messages_per_subject != wanted.history.max(1) {
        fields.push("history");
    }
    if current.max_age != wanted.max_age {
        fields.push("max_age");
    }
    if unlimited(current.max_bytes) != unlimited(wanted.max_bytes) {
        fields.push("max_bytes");
    }
    if unlimited(i64::from(current.max_message_size)) != unlimited(i64::from(wanted.max_value_size))
    {
        fields.push("max_value_size");
    }
    if current.storage != wanted.storage {
        fields.push("storage");
    }
    if current.num_replicas.max(1) != wanted.num_replicas.max(1) {
        fields.push("num_replicas");
    }
    if current.description.as_deref().unwrap_or_default() != wanted.description {
        fields.push("description");
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::StorageType;

    #[test]
    fn only_declared_differences_are_named() {
        let current = StreamConfig {
            max_messages_per_subject: 1,
            max_bytes: -1,
            max_message_size: -1,
            num_replicas: 1,
            ..Default::default()
        };
        let same = Config {
            bucket: "b".into(),
            ..Default::default()
        };
        assert!(differences(&current, &same).is_empty());
        let other = Config {
            history: 5,
            storage: StorageType::Memory,
            ..same
        };
        assert_eq!(differences(&current, &other), ["history", "storage"]);
    }
}
