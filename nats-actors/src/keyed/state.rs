//! A keyed actor's stored state: the struct with the stream sequence of the last command
//! applied to it, one KV entry per key, written with the revision as compare-and-set.

use async_nats::jetstream::kv::{Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::spec::Keyed;
use crate::cell::Cell;
use crate::codec::Codec;
use crate::error::{DecodeError, EncodeError};

#[derive(Serialize)]
struct StoredRef<'a, S> {
    applied: u64,
    state: &'a S,
}

#[derive(Deserialize)]
struct Stored<S> {
    applied: u64,
    state: S,
}

pub(super) fn encode<S: Serialize>(
    applied: u64,
    state: &S,
    codec: Codec,
) -> Result<Bytes, EncodeError> {
    codec.encode(&StoredRef { applied, state })
}

pub(super) fn decode<S: DeserializeOwned>(
    bytes: &[u8],
    codec: Codec,
) -> Result<(u64, S), DecodeError> {
    let stored: Stored<S> = codec.decode(bytes)?;
    Ok((stored.applied, stored.state))
}

/// One actor in memory: its state, the revision it was read or written at, and the stream
/// sequence of the last command applied to it.
pub(super) struct Loaded<A> {
    pub(super) cell: Cell<A>,
    pub(super) revision: u64,
    pub(super) applied: u64,
}

/// Why a state could not be read or written.
#[derive(Debug)]
pub(super) enum StateError {
    /// Another activation wrote first.
    Conflict,
    /// The stored state does not decode (a changed schema): the key's messages wait.
    Decode(String),
    /// The state does not encode.
    Encode(String),
    /// The bucket did not answer (transient).
    Nats(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Conflict => f.write_str("another activation wrote the state first"),
            StateError::Decode(e) => write!(f, "the stored state does not decode: {e}"),
            StateError::Encode(e) => write!(f, "the state does not encode: {e}"),
            StateError::Nats(e) => write!(f, "the state bucket did not answer: {e}"),
        }
    }
}

/// Reads the state of `key` (`Default` when it has none).
pub(super) async fn load<A>(
    store: &Store,
    keyed: &Keyed<A>,
    codec: Codec,
    key: &str,
) -> Result<Loaded<A>, StateError> {
    let entry = store
        .entry(key)
        .await
        .map_err(|e| StateError::Nats(e.to_string()))?;
    let (revision, applied, state) = match entry {
        None => (0, 0, (keyed.fresh)()),
        Some(e) if e.operation != Operation::Put => (e.revision, 0, (keyed.fresh)()),
        Some(e) => {
            let (applied, state) = (keyed.decode)(&e.value, codec)
                .map_err(|err| StateError::Decode(err.to_string()))?;
            (e.revision, applied, state)
        }
    };
    Ok(Loaded {
        cell: Cell::new(state, true),
        revision,
        applied,
    })
}

/// Writes the state of `key` as applied up to stream sequence `applied`, if the bucket still
/// holds the revision it was read at; updates the revision.
pub(super) async fn save<A>(
    store: &Store,
    keyed: &Keyed<A>,
    codec: Codec,
    key: &str,
    loaded: &mut Loaded<A>,
    applied: u64,
) -> Result<(), StateError> {
    let bytes = {
        let state = loaded.cell.read().await;
        (keyed.encode)(applied, &state, codec).map_err(|e| StateError::Encode(e.to_string()))?
    };
    match store.update(key, bytes, loaded.revision).await {
        Ok(revision) => {
            loaded.revision = revision;
            loaded.applied = applied;
            Ok(())
        }
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(StateError::Conflict),
        Err(e) => Err(StateError::Nats(e.to_string())),
    }
}
