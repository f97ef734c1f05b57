//! `#[kv_watch]`: the changes of a KV bucket as a handler kind. The macro turns the attribute
//! into an ordered consumer on the bucket's stream (`KV_<bucket>`, filtered to
//! `$KV.<bucket>.<key>`), run by the JetStream consumer loop, which starts a new consumer after
//! the last change handled when it has to; [`KvEntry`] is the handler's view of one change.

use serde::de::DeserializeOwned;

use super::{KvEntry, KvOperation};
use crate::context::Context;
use crate::error::HandlerError;
use crate::extract::FromContext;
use crate::handler::HandlerKind;

/// `#[kv_watch]`: no reply, no ack; changes in revision order.
pub static KV_WATCH: HandlerKind = HandlerKind {
    attribute: "kv_watch",
    replies: false,
    at_most_once: false,
};

/// A change seen by a `#[kv_watch]` handler: a put (with its value), a delete or a purge
/// (without one). A value that does not decode is rejected (logged and counted) and the watch
/// goes on; a delete or purge never needs decoding.
///
/// ```no_run
/// use nats_actors::kv::{KvEntry, KvOperation};
/// use nats_actors::prelude::*;
///
/// #[derive(Actor)]
/// struct Reload;
///
/// #[handlers]
/// impl Reload {
///     #[kv_watch(bucket = "config", key = "services.{name}")]
///     async fn changed(&self, name: Param<String>, entry: KvEntry<u32>) {
///         match entry.operation {
///             KvOperation::Put => println!("{} = {:?} (rev {})", *name, entry.value, entry.revision),
///             _ => println!("{} removed", *name),
///         }
///     }
/// }
/// ```
impl<'a, T: DeserializeOwned> FromContext<'a> for KvEntry<T> {
    type Rejection = HandlerError;

    fn from_context(ctx: &'a Context) -> Result<Self, HandlerError> {
        let not_kv = || HandlerError::bad_request("not a KV change: a KvEntry needs #[kv_watch]");
        let key = ctx
            .subject()
            .strip_prefix("$KV.")
            .and_then(|rest| rest.split_once('.'))
            .map(|(_bucket, key)| key.to_string())
            .ok_or_else(not_kv)?;
        let delivery = ctx.delivery().ok_or_else(not_kv)?;
        let operation = match ctx.header("KV-Operation") {
            Some("DEL") => KvOperation::Delete,
            Some("PURGE") => KvOperation::Purge,
            _ => KvOperation::Put,
        };
        let value = match operation {
            KvOperation::Put => Some(ctx.codec().decode(ctx.payload()).map_err(|e| {
                HandlerError::bad_request(format!("the value of `{key}` does not decode: {e}"))
            })?),
            _ => None,
        };
        Ok(KvEntry {
            key,
            value,
            revision: delivery.stream_sequence,
            created: delivery.published,
            operation,
        })
    }
}
