//! The [`Runtime`]: connects, starts the actors' subscriptions, supervises them, and shuts down
//! gracefully.

#[cfg(feature = "compression")]
mod compress;
pub(crate) mod connect;
mod describe;
pub(crate) mod env;
pub(crate) mod health;
pub(crate) mod link;
#[cfg(feature = "health")]
mod listener;
mod pool;
mod shutdown;
pub(crate) mod start;

use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::buffer::Buffer;
use crate::client::Client;
use crate::error::Error;
use crate::stats::{Counters, Stats};
use crate::telemetry::metrics;
use connect::ConnectOptions;
use env::{Phase, StartEnv};
use health::Health;
use link::Link;
pub use shutdown::ShutdownHandle;
use start::Starter;

use crate::supervision::Stopper;

/// Default time in-flight handlers get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) enum Connection {
    Options(Result<ConnectOptions, Error>),
    Client(async_nats::Client),
}

/// Builds a [`Runtime`]: where to connect, which actors to run.
///
/// ```no_run
/// use nats_actors::prelude::*;
///
/// #[derive(Actor)]
/// struct Greeter;
///
/// #[handlers]
/// impl Greeter {
///     #[request("greet")]
///     async fn greet(&self, name: String) -> String {
///         format!("hello, {name}")
///     }
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), nats_actors::Error> {
///     Runtime::builder()
///         .connect_from_env()
///         .actor(Greeter)
///         .run_until_shutdown_signal()
///         .await
/// }
/// ```
pub struct RuntimeBuilder {
    connection: Connection,
    #[cfg(feature = "jetstream")]
    streams: Vec<crate::jetstream::StreamConfig>,
    #[cfg(feature = "jetstream")]
    buckets: Vec<crate::kv::KvConfig>,
    #[cfg(feature = "jetstream")]
    object_stores: Vec<crate::objects::ObjectStoreConfig>,
    actors: Vec<Box<dyn Starter>>,
    shutdown_timeout: Duration,
    buffer: Option<Buffer>,
    #[cfg(feature = "health")]
    health_addr: Option<String>,
    /// What [`RuntimeBuilder::publishes`] declared, for the AsyncAPI document.
    published: Vec<crate::asyncapi::Declared>,
    #[cfg(feature = "compression")]
    compression: Option<crate::compression::Compression>,
    /// `connections(n)`: the pool's size.
    connections: Option<usize>,
}

/// Running actors on one NATS connection.
///
/// ```no_run
/// # use nats_actors::prelude::*;
/// # #[derive(Actor)] struct Greeter;
/// # #[handlers] impl Greeter { #[subscribe("x")] async fn x(&self, b: nats_actors::Bytes) {} }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::builder().connect_from_env().actor(Greeter).start().await?;
/// // subscriptions are registered at the server once `start` returns
/// runtime.client().publish("x", &"hi").await?;
/// let report = runtime.shutdown().await;
/// assert_eq!(report.aborted, 0);
/// # Ok(()) }
/// ```
pub struct Runtime {
    client: Client,
    /// Its connections (one unless `connections(n)`).
    pool: pool::Pool,
    /// Subscription handlers first, then request handlers (see [`Runtime::shutdown`]).
    phases: [Phase; 2],
    counters: Arc<Counters>,
    shutdown_timeout: Duration,
    handle: ShutdownHandle,
    /// Keeps the observable runtime counters registered.
    _observers: metrics::RuntimeObservers,
    watched: Arc<health::Watched>,
    #[cfg(feature = "health")]
    listener: Option<listener::Listener>,
    stopper: Arc<Stopper>,
    /// Its handlers, for [`Runtime::asyncapi`].
    declared: Vec<crate::asyncapi::Declared>,
}

/// What a shutdown came to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Subscription tasks still running at the deadline, aborted with their in-flight handlers.
    pub aborted: usize,
    /// Why supervision stopped the runtime (an actor past its `max_restarts`), if it did.
    pub failure: Option<String>,
}

impl Runtime {
    /// A builder; connect it with [`RuntimeBuilder::connect_from_env`],
    /// [`RuntimeBuilder::connect`] or [`RuntimeBuilder::client`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            connection: Connection::Options(ConnectOptions::from_env()),
            #[cfg(feature = "jetstream")]
            streams: Vec::new(),
            #[cfg(feature = "jetstream")]
            buckets: Vec::new(),
            #[cfg(feature = "jetstream")]
            object_stores: Vec::new(),
            actors: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            #[cfg(feature = "health")]
            health_addr: None,
            buffer: None,
            published: Vec::new(),
            #[cfg(feature = "compression")]
            compression: None,
            connections: None,
        }
    }

    /// A typed client on the runtime's connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A snapshot of the health counters.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Whether it can do its work now: connected (every subscription confirmed again after a
    /// reconnect) and not draining; what `/readyz` answers from.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// let runtime = nats_actors::Runtime::builder().start().await?;
    /// let health = runtime.health();
    /// assert!(health.ready, "{:?}", health.reason());
    /// println!("connected to {}", health.server.unwrap_or_default());
    /// # Ok(()) }
    /// ```
    pub fn health(&self) -> Health {
        let mut health = self.watched.snapshot();
        health.partitions = self
            .counters
            .keyed()
            .into_iter()
            .map(|k| (k.actor, k.partitions))
            .collect();
        health.handlers = health::handlers(&self.counters);
        health
    }

    /// The address the health listener is bound to (feature `health`), when it was asked for.
    #[cfg(feature = "health")]
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().map(|l| l.addr)
    }

    /// A handle that starts the shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Runs until SIGINT, SIGTERM or [`ShutdownHandle::shutdown`], then shuts down gracefully.
    pub async fn run_until_shutdown_signal(self) -> Result<(), Error> {
        let handle = self.handle.clone();
        let stopper = self.stopper.clone();
        tokio::select! {
            _ = handle.requested() => tracing::info!("shutdown requested"),
            _ = signal() => tracing::info!("shutdown signal received"),
            _ = stopper.stopped() => tracing::error!("supervision stops the runtime"),
        }
        match self.shutdown().await.failure {
            Some(reason) => Err(Error::Supervision { reason }),
            None => Ok(()),
        }
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl RuntimeBuilder {
    /// Connect as the environment says (`NATS_URL`, credentials, TLS): see
    /// [`ConnectOptions::from_env`]. This is the default.
    pub fn connect_from_env(mut self) -> Self {
        self.connection = Connection::Options(ConnectOptions::from_env());
        self
    }

    /// Connect with explicit options.
    pub fn connect(mut self, options: ConnectOptions) -> Self {
        self.connection = Connection::Options(Ok(options));
        self
    }

    /// Use a connection made elsewhere. The runtime does not close it at shutdown, and connection
    /// events (reconnects) are not counted: prefer [`RuntimeBuilder::connect`]. Drops are
    /// counted exactly only up to its `subscription_capacity`: what async-nats drops past it
    /// (default 65,536 messages per subscription) is reported only to that connection's own
    /// event callback, so give it a large one (the runtime's own connections use 2^28).
    pub fn client(mut self, client: async_nats::Client) -> Self {
        self.connection = Connection::Client(client);
        self
    }

    /// Adds an actor (all its instances: `#[actor(instances = N)]`).
    pub fn actor<A: Actor>(mut self, actor: A) -> Self {
        self.actors.push(Box::new(Some(actor)));
        self
    }

    #[cfg(feature = "service")]
    /// Adds a service: its endpoints, and the answers to discovery (`$SRV.PING`, `INFO`,
    /// `STATS`) under a new instance id. See [`Service`](crate::Service).
    ///
    /// ```no_run
    /// use nats_actors::prelude::*;
    ///
    /// #[derive(Service)]
    /// #[service(name = "clock", version = "1.0.0")]
    /// struct Clock;
    ///
    /// #[endpoints]
    /// impl Clock {
    ///     #[endpoint(subject = "clock.now")]
    ///     async fn now(&self) -> u64 {
    ///         std::time::SystemTime::now()
    ///             .duration_since(std::time::UNIX_EPOCH)
    ///             .map_or(0, |d| d.as_secs())
    ///     }
    /// }
    ///
    /// # async fn run() -> Result<(), nats_actors::Error> {
    /// Runtime::builder().connect_from_env().service(Clock).run_until_shutdown_signal().await
    /// # }
    /// ```
    pub fn service<S: crate::Service>(mut self, service: S) -> Self {
        self.actors
            .push(Box::new(crate::service::ServiceStarter::new(service)));
        self
    }

    #[cfg(feature = "jetstream")]
    /// Declares a JetStream stream: at [`RuntimeBuilder::start`], before any actor starts, it is
    /// created if missing and updated if it differs. A change the server cannot apply (e.g. the
    /// storage type) fails the start with [`Error::JetStream`] naming the fields.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// use nats_actors::jetstream::{StreamConfig, RetentionPolicy};
    /// let runtime = nats_actors::Runtime::builder()
    ///     .stream(StreamConfig {
    ///         name: "ORDERS".into(),
    ///         subjects: vec!["orders.>".into()],
    ///         retention: RetentionPolicy::Limits,
    ///         max_age: std::time::Duration::from_secs(7 * 24 * 3600),
    ///         ..Default::default()
    ///     })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn stream(mut self, config: crate::jetstream::StreamConfig) -> Self {
        self.streams.push(config);
        self
    }

    #[cfg(feature = "jetstream")]
    /// Declares a KV bucket: at [`RuntimeBuilder::start`], after the streams and before any
    /// actor starts, it is created if missing and updated if it differs (`history`, `max_age`,
    /// `max_bytes`, `max_value_size`, `storage`, `num_replicas`, `description`). A change the
    /// server cannot apply fails the start with [`Error::JetStream`] naming those settings.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// use nats_actors::kv::KvConfig;
    /// let runtime = nats_actors::Runtime::builder()
    ///     .kv(KvConfig { bucket: "config".into(), history: 10, ..Default::default() })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn kv(mut self, config: crate::kv::KvConfig) -> Self {
        self.buckets.push(config);
        self
    }

    #[cfg(feature = "jetstream")]
    /// Declares an object store: at [`RuntimeBuilder::start`], with the KV buckets, it is
    /// created if missing and updated if it differs (`description`, `max_age`, `max_bytes`,
    /// `storage`, `num_replicas`, `compression`). A change the server cannot apply fails the
    /// start with [`Error::JetStream`] naming those settings.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// use nats_actors::objects::ObjectStoreConfig;
    /// let runtime = nats_actors::Runtime::builder()
    ///     .object_store(ObjectStoreConfig { bucket: "uploads".into(), ..Default::default() })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn object_store(mut self, config: crate::objects::ObjectStoreConfig) -> Self {
        self.object_stores.push(config);
        self
    }

    /// The [`Buffer`] of every core handler that does not set its own (`buffer = ...` on the
    /// handler or its actor). Without it, `NATS_ACTORS_BUFFER` (e.g. `100000` messages or
    /// `16MiB`), else [`Buffer::DEFAULT`] (64 MiB per handler).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// use nats_actors::{Buffer, Runtime};
    /// let runtime = Runtime::builder().buffer(Buffer::messages(10_000)).start().await?;
    /// # Ok(()) }
    /// ```
    pub fn buffer(mut self, buffer: Buffer) -> Self {
        self.buffer = Some(buffer);
        self
    }

    /// Serves `/livez`, `/readyz` and `/metrics` over HTTP on `addr` (feature `health`; without
    /// this call, on `NATS_ACTORS_HEALTH_ADDR` when it is set). `/readyz` is 200 once every
    /// subscription and consumer is confirmed, and 503 with the reason while the connection is
    /// down or the runtime drains; `/livez` is 200 until the runtime has shut down; `/metrics`
    /// is the Prometheus text of the telemetry's metrics when it has it (see
    /// [`TelemetryBuilder::prometheus`](crate::telemetry::TelemetryBuilder::prometheus)), 404
    /// otherwise. An address that cannot be bound fails the start with [`Error::Config`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// let runtime = nats_actors::Runtime::builder()
    ///     .health_listener("0.0.0.0:8080")
    ///     .start()
    ///     .await?;
    /// println!("probes on {:?}", runtime.health_addr());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "health")]
    pub fn health_listener(mut self, addr: impl Into<String>) -> Self {
        self.health_addr = Some(addr.into());
        self
    }

    /// How long in-flight handlers may run after shutdown starts (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Connects and starts every subscription; when it returns, the server knows them all.
    pub async fn start(self) -> Result<Runtime, Error> {
        let declared = describe::print_if_asked(&self);
        let counters = Arc::new(Counters::default());
        let pool =
            pool::Pool::open(self.connection, pool::size(self.connections)?, &counters).await?;
        let buffer = match self.buffer {
            Some(b) => b,
            None => buffer_from_env()?,
        };
        let stopper = Arc::new(Stopper::runtime());
        let watched = health::Watched::new(&pool, stopper.clone());
        // Bound before any actor starts: an address in use fails the start at once.
        #[cfg(feature = "health")]
        let listener = match self.health_addr.or_else(health_addr_from_env) {
            Some(addr) => Some(listener::listen(&addr, watched.clone()).await?),
            None => None,
        };
        // Reconnects of a connection made elsewhere are not seen (its events are its own).
        let link = pool.main().link.clone().unwrap_or_else(Link::new);
        let members: Vec<(Client, Arc<Link>)> = pool
            .clients()
            .into_iter()
            .zip(&pool.members)
            .map(|(client, member)| {
                #[cfg(feature = "compression")]
                let client = match self.compression {
                    Some(c) => client.with_compression(c),
                    None => client,
                };
                (client, member.link.clone().unwrap_or_else(|| link.clone()))
            })
            .collect();
        let client = members[0].0.clone();
        #[cfg(feature = "jetstream")]
        for stream in &self.streams {
            crate::jetstream::declare(client.jetstream(), stream).await?;
        }
        #[cfg(feature = "jetstream")]
        for bucket in &self.buckets {
            crate::kv::declare(client.jetstream(), bucket).await?;
        }
        #[cfg(feature = "jetstream")]
        for store in &self.object_stores {
            crate::objects::declare(client.jetstream(), store).await?;
        }
        let mut phases = [Phase::new(), Phase::new()];
        let mut env = StartEnv {
            client: client.clone(),
            counters: counters.clone(),
            link,
            spread: (members.len() > 1).then_some(members),
            next: Default::default(),
            phases: &mut phases,
            buffer,
            stopper: stopper.clone(),
        };
        for mut actor in self.actors {
            if let Err(e) = actor.start(&mut env).await {
                for phase in phases {
                    let _ = phase.stop.send(true);
                    for t in phase.tasks {
                        t.abort();
                    }
                }
                return Err(e);
            }
        }
        // A round trip to the server: every SUB above is registered once it returns.
        for member in &pool.members {
            member.nats.flush().await.map_err(Error::Flush)?;
        }
        // (`connect` returned, so the server is there; the flush is one round trip.)
        let counters_for_metrics = counters.clone();
        Ok(Runtime {
            client,
            pool,
            phases,
            counters,
            shutdown_timeout: self.shutdown_timeout,
            handle: ShutdownHandle::default(),
            _observers: metrics::observe_runtime(counters_for_metrics),
            watched,
            #[cfg(feature = "health")]
            listener,
            stopper,
            declared,
        })
    }

    /// Starts, then runs until SIGINT, SIGTERM or a shutdown handle; see
    /// [`Runtime::run_until_shutdown_signal`].
    pub async fn run_until_shutdown_signal(self) -> Result<(), Error> {
        self.start().await?.run_until_shutdown_signal().await
    }
}

/// `NATS_ACTORS_HEALTH_ADDR`, when set.
#[cfg(feature = "health")]
fn health_addr_from_env() -> Option<String> {
    std::env::var("NATS_ACTORS_HEALTH_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `NATS_ACTORS_BUFFER`, else the default.
fn buffer_from_env() -> Result<Buffer, Error> {
    match std::env::var("NATS_ACTORS_BUFFER") {
        Ok(v) if !v.trim().is_empty() => Buffer::parse(&v).map_err(|e| Error::Config {
            setting: "NATS_ACTORS_BUFFER",
            reason: format!("`{v}`: {e}"),
        }),
        _ => Ok(Buffer::DEFAULT),
    }
}
