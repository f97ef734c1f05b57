//! Object stores declared on the builder: created when missing, updated where they differ, and
//! a change the server refuses is a start-up error naming the settings.

use async_nats::jetstream::object_store::Config;
use async_nats::jetstream::stream::{Compression, Config as StreamConfig};
use async_nats::jetstream::Context;

use crate::error::Error;

pub(crate) async fn declare(js: &Context, config: &Config) -> Result<(), Error> {
    let refused = |reason: String| Error::JetStream {
        what: format!("object store {}", config.bucket),
        reason,
    };
    let mut current = match js.get_stream(format!("OBJ_{}", config.bucket)).await {
        Ok(stream) => stream.cached_info().config.clone(),
        Err(_) => {
            // Missing (or unreadable: then creating it says why).
            js.create_object_store(config.clone())
                .await
                .map_err(|e| refused(e.to_string()))?;
            tracing::info!(bucket = %config.bucket, "object store created");
            return Ok(());
        }
    };
    let fields = differences(&current, config);
    if fields.is_empty() {
        return Ok(());
    }
    let named = crate::jetstream::named(&fields);
    current.description = config.description.clone();
    current.max_age = config.max_age;
    current.max_bytes = config.max_bytes;
    current.storage = config.storage;
    current.num_replicas = config.num_replicas;
    current.compression = compression(config);
    js.update_stream(&current)
        .await
        .map_err(|e| refused(format!("the server refused to change {named}: {e}")))?;
    tracing::info!(bucket = %config.bucket, fields = %named, "object store updated");
    Ok(())
}

fn compression(config: &Config) -> Option<Compression> {
    config.compression.then_some(Compression::S2)
}

/// The declared settings that differ from the bucket's stream, by their
/// `ObjectStoreConfig` names.
fn differences(current: &StreamConfig, wanted: &Config) -> Vec<&'static str> {
    let unlimited = |v: i64| if v <= 0 { -1 } else { v };
    let mut fields = Vec::new();
    if current.description != wanted.description {
        fields.push("description");
    }
    if current.max_age != wanted.max_age {
        fields.push("max_age");
    }
    if unlimited(current.max_bytes) != unlimited(wanted.max_bytes) {
        fields.push("max_bytes");
    }
    if current.storage != wanted.storage {
        fields.push("storage");
    }
    if current.num_replicas.max(1) != wanted.num_replicas.max(1) {
        fields.push("num_replicas");
    }
    let compressed = !matches!(current.compression, None | Some(Compression::None));
    if compressed != wanted.compression {
        fields.push("compression");
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
            max_bytes: -1,
            num_replicas: 1,
            ..Default::default()
        };
        let same = Config {
            bucket: "b".into(),
            ..Default::default()
        };
        assert!(differences(&current, &same).is_empty());
        let other = Config {
            compression: true,
            storage: StorageType::Memory,
            ..same
        };
        assert_eq!(differences(&current, &other), ["storage", "compression"]);
    }
}
