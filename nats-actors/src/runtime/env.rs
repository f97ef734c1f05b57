//! What starting a handler needs from the runtime: the shutdown phases, the environment of a
//! start, and the worker of one handler on one instance.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actor::{Actor, ActorOptions};
use crate::buffer::Buffer;
use crate::cell::Cell;
use crate::client::Client;
use crate::handler::{HandlerSpec, Worker};
use crate::runtime::link::Link;
use crate::stats::{Counters, HandlerCounters};
use crate::supervision::{Stopper, Supervisor};
use crate::telemetry::metrics::HandlerMetrics;
use crate::telemetry::spans::{ProcessMeta, Server};

/// One shutdown phase: its stop signal and its subscription tasks.
pub(crate) struct Phase {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) flag: Arc<AtomicBool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Phase {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            flag: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }
}

/// What starting an actor needs from the runtime.
pub(crate) struct StartEnv<'a> {
    pub(crate) client: Client,
    pub(crate) counters: Arc<Counters>,
    pub(crate) link: Arc<Link>,
    /// With a pool of connections: each one's client and link, which the handlers are dealt
    /// to in turn.
    pub(crate) spread: Option<Vec<(Client, Arc<Link>)>>,
    pub(crate) next: std::sync::atomic::AtomicUsize,
    pub(crate) phases: &'a mut [Phase; 2],
    /// The buffer of core handlers that set none.
    pub(crate) buffer: Buffer,
    /// How supervision stops the runtime (past an actor's `max_restarts`).
    pub(crate) stopper: Arc<Stopper>,
}

impl StartEnv<'_> {
    /// The connection (its client and link) of the next handler: the only one, or the pool's
    /// next in turn.
    fn connection(&self) -> (&Client, &Arc<Link>) {
        match &self.spread {
            None => (&self.client, &self.link),
            Some(all) => {
                let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (client, link) = &all[i % all.len()];
                (client, link)
            }
        }
    }
}

/// The queue group of `spec`: its own, else the actor's, else the actor's name when it runs
/// several instances.
pub(crate) fn queue_of<A>(spec: &HandlerSpec<A>, opts: &ActorOptions) -> Option<&'static str> {
    spec.queue
        .or(opts.queue)
        .or((opts.instances > 1).then_some(opts.name))
}

/// The worker of handler `spec` on instance `instance` (its state in `cell`), with its counters
/// registered.
pub(crate) fn worker<A: Actor>(
    spec: &HandlerSpec<A>,
    cell: &Arc<Cell<A>>,
    env: &StartEnv<'_>,
    opts: &ActorOptions,
    instance: usize,
    timed: bool,
    supervisor: Option<Arc<Supervisor>>,
) -> (Worker<A>, Arc<HandlerCounters>) {
    let queue = queue_of(spec, opts);
    let phase = usize::from(spec.kind.replies);
    let (counters, tally) = env.counters.register(
        HandlerCounters::new(opts.name, spec.method, spec.template, instance)
            .timed(timed)
            .at_most_once(spec.kind.at_most_once),
    );
    let (client, link) = env.connection();
    let metrics = HandlerMetrics::new(spec.template, queue);
    let worker = Worker {
        spec: *spec,
        cell: cell.clone(),
        client: match spec.compress.or(opts.compress) {
            Some(packing) => client.with_packing(packing),
            None => client.clone(),
        },
        codec: spec.codec.or(opts.codec).unwrap_or_default(),
        queue,
        limit: spec.concurrency.or(opts.concurrency).unwrap_or(1),
        buffer: spec.buffer.or(opts.buffer).unwrap_or(env.buffer),
        counters: counters.clone(),
        tally,
        runtime: env.counters.clone(),
        link: link.clone(),
        stop: env.phases[phase].flag.clone(),
        meta: ProcessMeta::of(
            spec.template,
            match spec.consumer {
                Some(_) => spec.durable(),
                None => queue,
            },
            Server::of(client.nats()),
        ),
        timed: timed || metrics.is_some(),
        metrics,
        supervisor,
    };
    (worker, counters)
}
