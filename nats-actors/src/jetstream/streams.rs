//! Streams declared in code: created when missing, updated when they differ, and a change the
//! server cannot apply reported with the fields that differ.

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::Config;
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use serde_json::Value;

use crate::error::Error;

/// Creates `config`'s stream, or brings an existing one to `config`.
pub(crate) async fn declare(js: &Context, config: &Config) -> Result<(), Error> {
    let what = || format!("stream {}", config.name);
    let current = match js.get_stream(&config.name).await {
        Ok(stream) => stream.cached_info().config.clone(),
        Err(e) if is_not_found(e.kind()) => {
            js.create_stream(config.clone())
                .await
                .map_err(|e| Error::JetStream {
                    what: what(),
                    reason: e.to_string(),
                })?;
            tracing::info!(stream = %config.name, "stream created");
            return Ok(());
        }
        Err(e) => {
            return Err(Error::JetStream {
                what: what(),
                reason: e.to_string(),
            })
        }
    };
    let fields = differences(&current, config);
    if fields.is_empty() {
        return Ok(());
    }
    // Only what the declaration sets is changed: settings made elsewhere (replicas, limits,
    // metadata) are kept.
    let merged = merge(&current, config).unwrap_or_else(|| config.clone());
    match js.update_stream(merged).await {
        Ok(_) => {
            tracing::info!(stream = %config.name, fields = %fields.join(", "), "stream updated");
            Ok(())
        }
        Err(e) => Err(Error::JetStream {
            what: what(),
            reason: format!("the server refused to change {}: {e}", named(&fields)),
        }),
    }
}

/// Declared settings that differ, as a start error names them: `` `history`, `storage` ``.
pub(crate) fn named(fields: &[impl std::fmt::Display]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The declared fields (those that differ from the default, and the storage and retention) put
/// over the server's configuration.
fn merge(current: &Config, wanted: &Config) -> Option<Config> {
    let default = Config {
        name: wanted.name.clone(),
        ..Config::default()
    };
    let (Value::Object(mut cur), Value::Object(want), Value::Object(def)) = (
        serde_json::to_value(current).ok()?,
        serde_json::to_value(wanted).ok()?,
        serde_json::to_value(&default).ok()?,
    ) else {
        return None;
    };
    for (k, v) in want {
        if def.get(&k) != Some(&v) || matches!(k.as_str(), "storage" | "retention") {
            cur.insert(k, v);
        }
    }
    serde_json::from_value(Value::Object(cur)).ok()
}

/// The fields the declaration sets (differs from the default) that differ from the server's
/// stream, with their values: `storage (file -> memory)`.
fn differences(current: &Config, wanted: &Config) -> Vec<String> {
    let default = Config {
        name: wanted.name.clone(),
        ..Config::default()
    };
    let (Ok(Value::Object(cur)), Ok(Value::Object(want)), Ok(Value::Object(def))) = (
        serde_json::to_value(current),
        serde_json::to_value(wanted),
        serde_json::to_value(&default),
    ) else {
        return Vec::new();
    };
    want.iter()
        .filter(|(k, v)| def.get(*k) != Some(v) || matches!(k.as_str(), "storage" | "retention"))
        .filter(|(k, v)| cur.get(*k).unwrap_or(&Value::Null) != *v)
        .map(|(k, v)| {
            let was = cur.get(k).map_or("unset".to_string(), Value::to_string);
            format!("{k} ({was} -> {v})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::StorageType;

    #[test]
    fn names_the_fields_that_differ() {
        let current = Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..Default::default()
        };
        let wanted = Config {
            storage: StorageType::Memory,
            ..current.clone()
        };
        let diff = differences(&current, &wanted);
        assert_eq!(diff, ["storage (\"file\" -> \"memory\")"]);
        assert!(differences(&current, &current).is_empty());
    }

    #[test]
    fn a_change_keeps_what_the_declaration_does_not_set() {
        let current = Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            num_replicas: 3,
            max_messages: 10,
            ..Default::default()
        };
        let wanted = Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            max_messages: 20,
            ..Default::default()
        };
        let merged = merge(&current, &wanted).unwrap();
        assert_eq!((merged.max_messages, merged.num_replicas), (20, 3));
    }
}
