//! What the macros write for a keyed actor: its options, and how its state is made, encoded
//! and decoded.

use std::time::Duration;

use bytes::Bytes;

use super::layout;
use crate::codec::Codec;
use crate::error::{DecodeError, EncodeError};

/// The options of a keyed `#[actor(key = ...)]`, as the macro writes them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct KeyedOptions {
    /// The key template, e.g. `account.{id}`.
    pub key: &'static str,
    pub partitions: u16,
    /// How long an actor stays in memory without a message.
    pub idle: Duration,
    /// How many actors one process keeps in memory at most.
    pub max_active: usize,
    /// Replicas of the stream and bucket; 0 (not declared) makes them with one and keeps
    /// what an existing stream has.
    pub replicas: usize,
    /// Runs of a failing command before it is dead-lettered.
    pub attempts: u32,
}

impl KeyedOptions {
    /// The defaults for key template `key`.
    pub const fn new(key: &'static str) -> Self {
        Self {
            key,
            partitions: layout::DEFAULT_PARTITIONS,
            idle: Duration::from_secs(300),
            max_active: 10_000,
            replicas: 0,
            attempts: 5,
        }
    }
}

/// What the runtime needs to keep a keyed actor's state: its options and how its state is
/// made, encoded (with the last applied stream sequence) and decoded.
#[doc(hidden)]
pub struct Keyed<A> {
    pub options: KeyedOptions,
    pub fresh: fn() -> A,
    pub encode: fn(u64, &A, Codec) -> Result<Bytes, EncodeError>,
    pub decode: Decode<A>,
}

/// Reads a stored state: the last applied stream sequence and the state.
#[doc(hidden)]
pub type Decode<A> = fn(&[u8], Codec) -> Result<(u64, A), DecodeError>;
