//! The [`Actor`] trait `#[derive(Actor)]` implements, and the options of `#[actor(...)]`.

use crate::codec::Codec;
use crate::handler::HandlerSpec;

/// A type whose handlers the runtime runs; implemented by `#[derive(Actor)]` together with
/// `#[handlers]` on its `impl` block.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Ping { n: u32 }
///
/// #[derive(Actor)]
/// #[actor(queue = "pingers", codec = "msgpack")]
/// struct Pinger;
///
/// #[handlers]
/// impl Pinger {
///     #[request("ping")]
///     async fn ping(&self, ping: Ping) -> Result<Ping, HandlerError> {
///         Ok(Ping { n: ping.n + 1 })
///     }
/// }
///
/// # async fn run() -> Result<(), nats_actors::Error> {
/// Runtime::builder().connect_from_env().actor(Pinger).run_until_shutdown_signal().await
/// # }
/// ```
///
/// Supervision: a fresh state after a panic, and past 3 panics a minute that instance stops
/// (its two siblings in the queue group go on) instead of the whole runtime:
///
/// ```
/// use nats_actors::prelude::*;
///
/// #[derive(Actor, Clone, Default)]
/// #[actor(instances = 3, restart = "reset", max_restarts = 3, restart_window = "1m",
///         on_limit = "stop_actor")]
/// struct Tally { seen: u64 }
///
/// #[handlers]
/// impl Tally {
///     #[subscribe("tally")]
///     async fn add(&mut self, n: u64) { self.seen += n; }
/// }
/// # let _ = Runtime::builder().actor(Tally::default());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an actor",
    label = "add #[derive(Actor)] to its struct and #[handlers] to its impl block"
)]
pub trait Actor: Sized + Send + Sync + 'static {
    #[doc(hidden)]
    fn options() -> ActorOptions;
    #[doc(hidden)]
    fn handlers() -> Vec<HandlerSpec<Self>>;
    #[doc(hidden)]
    fn instances(self) -> Vec<Self>;
    /// The state a panic resets an instance to (`restart = "reset"`: `Default::default()`).
    #[doc(hidden)]
    fn restart_state() -> Option<Self> {
        None
    }
    /// What a keyed actor (`#[actor(key = ...)]`) keeps per key; `None` for the others.
    #[cfg(feature = "jetstream")]
    #[doc(hidden)]
    fn keyed() -> Option<crate::keyed::spec::Keyed<Self>> {
        None
    }
}

/// The options of `#[actor(...)]`.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ActorOptions {
    pub name: &'static str,
    pub queue: Option<&'static str>,
    pub codec: Option<Codec>,
    pub instances: usize,
    pub concurrency: Option<usize>,
    pub buffer: Option<crate::buffer::Buffer>,
    /// `compress = ...`: how what its handlers send is compressed.
    pub compress: Option<crate::compression::Packing>,
    /// `restart = "reset"`: a panic resets the instance's state.
    pub reset: bool,
    /// `max_restarts` panics within `restart_window`; one more stops the runtime.
    pub restart_limit: Option<(u32, std::time::Duration)>,
    /// `on_limit = "stop_actor"`: past `restart_limit`, stop the instance, not the runtime.
    pub stop_actor_on_limit: bool,
}

impl ActorOptions {
    /// Defaults for an actor named `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            queue: None,
            codec: None,
            instances: 1,
            concurrency: None,
            buffer: None,
            compress: None,
            reset: false,
            restart_limit: None,
            stop_actor_on_limit: false,
        }
    }
}
