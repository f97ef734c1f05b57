//! `#[object_watch]`: the puts and deletes of an object store as a handler kind. The macro
//! turns the attribute into an ordered consumer on the bucket's stream (`OBJ_<bucket>`,
//! filtered to the infos, `$O.<bucket>.M.>`), run by the JetStream consumer loop, which starts
//! a new consumer after the last change handled when it has to; the handler reads each change
//! as an [`ObjectInfo`].

use super::ObjectInfo;
use crate::context::Context;
use crate::error::HandlerError;
use crate::extract::FromContext;
use crate::handler::HandlerKind;

/// `#[object_watch]`: no reply, no ack; changes in the order they were stored.
pub static OBJECT_WATCH: HandlerKind = HandlerKind {
    attribute: "object_watch",
    replies: false,
    at_most_once: false,
};

/// An object put or deleted, seen by an `#[object_watch]` handler (`deleted` tells which).
///
/// ```no_run
/// use nats_actors::objects::ObjectInfo;
/// use nats_actors::prelude::*;
///
/// #[derive(Actor)]
/// struct Thumbnails;
///
/// #[handlers]
/// impl Thumbnails {
///     #[object_watch(bucket = "uploads")]
///     async fn uploaded(&self, object: ObjectInfo, ctx: &Context) -> Result<(), HandlerError> {
///         if object.deleted {
///             return Ok(());
///         }
///         let data = ctx.objects("uploads").await?.get(&object.name).await?;
///         println!("{} ({} bytes) to scale", object.name, data.info().size);
///         Ok(())
///     }
/// }
/// ```
impl<'a> FromContext<'a> for ObjectInfo {
    type Rejection = HandlerError;

    fn from_context(ctx: &'a Context) -> Result<Self, HandlerError> {
        if !ctx.subject().starts_with("$O.") || ctx.delivery().is_none() {
            return Err(HandlerError::bad_request(
                "not an object store change: an ObjectInfo needs #[object_watch]",
            ));
        }
        serde_json::from_slice(ctx.payload())
            .map_err(|e| HandlerError::bad_request(format!("the object info does not decode: {e}")))
    }
}
