//! Keyed virtual actors: one actor per key, its messages handled one at a time in the order
//! the stream stored them, its state loaded from and saved to a KV bucket with the revision
//! as compare-and-set, placed on one process per partition by the server (a pinned pull
//! consumer per partition) and taken over by another process when that one goes.
//!
//! ```no_run
//! use nats_actors::prelude::*;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Deposit { amount: i64 }
//!
//! #[derive(Actor, Default, Serialize, Deserialize)]
//! #[actor(key = "account.{id}")]
//! struct Account { balance: i64 }
//!
//! #[handlers]
//! impl Account {
//!     #[command("account.{id}.deposit")]
//!     async fn deposit(&mut self, d: Deposit) {
//!         self.balance += d.amount;
//!     }
//!
//!     #[ask("account.{id}.balance")]
//!     async fn balance(&self) -> i64 {
//!         self.balance
//!     }
//! }
//!
//! # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let account = AccountRef::new(&client, "42")?;
//! account.deposit(&Deposit { amount: 5 }).await?;
//! assert_eq!(account.balance().await?, 5);
//! # Ok(()) }
//! ```
//!
//! See `docs/virtual-actors.md` for every guarantee and its limits.

mod balance;
mod declare;
mod fence;
mod host;
pub(crate) mod layout;
mod outage;
mod pins;
mod pull;
mod reference;
mod remind;
mod shared;
mod slots;
pub(crate) mod spec;
mod state;
mod turn;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::actor::{Actor, ActorOptions};
use crate::cell::Cell;
use crate::error::Error;
use crate::handler::{HandlerKind, HandlerSpec, Worker};
use crate::runtime::env::StartEnv;
use crate::stats::HandlerCounters;
use layout::Layout;
use shared::Route;
pub use spec::{Decode, Keyed, KeyedOptions};

pub use layout::REPLY_TO;
pub use reference::KeyedRef;

/// `#[command]`: durable, in order per key, may change the state (saved after the turn).
pub static COMMAND: HandlerKind = HandlerKind {
    attribute: "command",
    replies: false,
    at_most_once: false,
};

/// `#[ask]`: answered by the key's actor, in order with its commands.
pub static ASK: HandlerKind = HandlerKind {
    attribute: "ask",
    replies: true,
    at_most_once: false,
};

/// Marks a type with `#[actor(key = ...)]`: `#[command]` and `#[ask]` need it.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has #[command] or #[ask] handlers but no key",
    label = "add #[actor(key = \"...\")] to its #[derive(Actor)]",
    note = "a keyed actor exists once per value of its key, e.g. #[actor(key = \"account.{{id}}\")]"
)]
pub trait KeyedActor: crate::Actor {}

/// The reference to the actor of `key` of keyed actor `A`.
#[doc(hidden)]
pub fn keyed_ref<A: Actor>(
    client: &crate::Client,
    key: &str,
) -> Result<KeyedRef, crate::RequestError> {
    let options = A::options();
    let Some(keyed) = A::keyed() else {
        return Err(crate::RequestError::InvalidSubject {
            subject: key.to_string(),
            reason: format!("{} has no #[actor(key = ...)]", options.name),
        });
    };
    KeyedRef::new(client, options.name, keyed.options.key, key, options.codec)
}

/// The `Keyed` of `A`: state `Default`, encoded with the actor's codec.
#[doc(hidden)]
pub fn keyed<A: Default + Serialize + DeserializeOwned>(options: KeyedOptions) -> Keyed<A> {
    Keyed {
        options,
        fresh: A::default,
        encode: state::encode::<A>,
        decode: state::decode::<A>,
    }
}

/// The `start` of a `#[command]` or `#[ask]` handler: only a keyed actor has them, and its
/// handlers start together, with [`start`]; this one is never called.
#[doc(hidden)]
pub fn start_unkeyed<A: Send + Sync + 'static, const I: usize>(
    worker: Worker<A>,
    _stop: tokio::sync::watch::Receiver<bool>,
) -> futures::future::BoxFuture<'static, Result<Vec<tokio::task::JoinHandle<()>>, Error>> {
    let what = worker.name();
    Box::pin(async move {
        Err(Error::JetStream {
            what,
            reason: "#[command] and #[ask] handlers need #[actor(key = \"...\")]".into(),
        })
    })
}

/// Starts keyed actor `A`: its handlers (every one a `#[command]` or `#[ask]` under its key)
/// share one host, which stops with the request handlers.
pub(crate) async fn start<A: Actor>(
    keyed: Keyed<A>,
    specs: &[HandlerSpec<A>],
    env: &mut StartEnv<'_>,
    opts: &ActorOptions,
) -> Result<Vec<Arc<HandlerCounters>>, Error> {
    let layout = Layout::new(opts.name, keyed.options.key, keyed.options.partitions)?;
    // The handlers' own cell is never used: each key has its own.
    let cell = Arc::new(Cell::new((keyed.fresh)(), true));
    let mut routes = Vec::new();
    let mut registered = Vec::new();
    for spec in specs {
        let setting = || format!("{}::{}", opts.name, spec.method);
        let Some(turn) = spec.turn else {
            return Err(Error::JetStream {
                what: setting(),
                reason: format!(
                    "a keyed actor takes #[command] and #[ask] handlers only; this one is #[{}]",
                    spec.kind.attribute
                ),
            });
        };
        let key_tokens = keyed.options.key.split('.').count();
        let beyond = spec.template.split('.').skip(key_tokens);
        if layout.key_of(spec.subject).is_none()
            || beyond.clone().any(|t| t.contains(['{', '*', '>']))
        {
            return Err(Error::JetStream {
                what: setting(),
                reason: format!(
                    "`{}` is not its key `{}` and literal tokens after it: a keyed actor's subjects have the key's parameters only (put the rest in the payload)",
                    spec.template, keyed.options.key
                ),
            });
        }
        let (worker, counters) =
            crate::runtime::env::worker(spec, &cell, env, opts, 0, false, None);
        registered.push(counters);
        routes.push(Route::new(worker, turn, spec.exclusive, spec.kind.replies));
    }
    let tasks = host::setup(keyed, layout, routes, opts.codec.unwrap_or_default(), env).await?;
    tracing::debug!(
        actor = opts.name,
        handlers = specs.len(),
        "keyed actor started"
    );
    env.phases[1].tasks.extend(tasks);
    Ok(registered)
}
