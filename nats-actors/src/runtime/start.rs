//! Starting actors: every handler of every instance, through the start function of its kind,
//! into the shutdown phase it belongs to.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actor::{Actor, ActorOptions};
use crate::buffer::Buffer;
use crate::cell::Cell;
use crate::client::Client;
use crate::error::Error;
use crate::handler::{HandlerSpec, Worker};
use crate::runtime::link::Link;
use crate::stats::{Counters, HandlerCounters};
use crate::supervision::{Reset, Stopper, Supervisor};
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
    pub(crate) phases: &'a mut [Phase; 2],
    /// The buffer of core handlers that set none.
    pub(crate) buffer: Buffer,
    /// How supervision stops the runtime (past an actor's `max_restarts`).
    pub(crate) stopper: Arc<Stopper>,
}

/// An actor waiting to start, with its type erased.
pub(crate) trait Starter: Send {
    fn start<'a>(&'a mut self, env: &'a mut StartEnv<'_>) -> BoxFuture<'a, Result<(), Error>>;
}

impl<A: Actor> Starter for Option<A> {
    fn start<'a>(&'a mut self, env: &'a mut StartEnv<'_>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.take() {
                Some(actor) => start_actor(actor, env, false).await.map(drop),
                None => Ok(()),
            }
        })
    }
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
    let queue = spec.queue.or(opts.queue).or(if opts.instances > 1 {
        Some(opts.name)
    } else {
        None
    });
    let phase = usize::from(spec.kind.replies);
    let (counters, tally) = env.counters.register(
        HandlerCounters::new(opts.name, spec.method, spec.template, instance)
            .timed(timed)
            .at_most_once(spec.kind.at_most_once),
    );
    let worker = Worker {
        spec: *spec,
        cell: cell.clone(),
        client: env.client.clone(),
        codec: spec.codec.or(opts.codec).unwrap_or_default(),
        queue,
        limit: spec.concurrency.or(opts.concurrency).unwrap_or(1),
        buffer: spec.buffer.or(opts.buffer).unwrap_or(env.buffer),
        counters: counters.clone(),
        tally,
        runtime: env.counters.clone(),
        link: env.link.clone(),
        stop: env.phases[phase].flag.clone(),
        meta: ProcessMeta::of(
            spec.template,
            match spec.consumer {
                Some(_) => spec.durable(),
                None => queue,
            },
            Server::of(env.client.nats()),
        ),
        metrics: HandlerMetrics::new(spec.template, queue),
        supervisor,
    };
    (worker, counters)
}

/// Subscribes every handler of every instance of `actor` and spawns their tasks; returns the
/// counters registered, in handler order, instance after instance. `timed` counters also sum
/// the processing time and keep the last error (the stats of service endpoints).
pub(crate) async fn start_actor<A: Actor>(
    actor: A,
    env: &mut StartEnv<'_>,
    timed: bool,
) -> Result<Vec<Arc<HandlerCounters>>, Error> {
    let opts = A::options();
    let specs = A::handlers();
    #[cfg(feature = "jetstream")]
    if let Some(keyed) = A::keyed() {
        return crate::keyed::start(keyed, &specs, env, &opts).await;
    }
    if specs.is_empty() {
        tracing::warn!(
            actor = opts.name,
            "actor has no #[subscribe], #[request] or #[consumer] handlers"
        );
    }
    // A state that a panic may reset is behind a lock, so that the reset waits for the
    // handlers that hold it.
    let exclusive = specs.iter().any(|s| s.exclusive) || opts.reset;
    let mut registered = Vec::new();
    for (instance, state) in actor.instances().into_iter().enumerate() {
        let cell = Arc::new(Cell::new(state, exclusive));
        let supervisor = (opts.reset || opts.restart_limit.is_some()).then(|| {
            let reset = opts.reset.then(|| {
                let cell = cell.clone();
                Box::new(move || {
                    let cell = cell.clone();
                    Box::pin(async move {
                        if let Some(fresh) = A::restart_state() {
                            cell.replace(fresh).await;
                        }
                    }) as BoxFuture<'static, ()>
                }) as Reset
            });
            let stopper = env.stopper.clone();
            Arc::new(Supervisor::new(
                opts.name,
                instance,
                reset,
                opts.restart_limit,
                stopper,
            ))
        });
        for spec in &specs {
            let (worker, counters) =
                worker(spec, &cell, env, &opts, instance, timed, supervisor.clone());
            registered.push(counters);
            let phase = usize::from(spec.kind.replies);
            let queue = worker.queue;
            let stop = env.phases[phase].stop.subscribe();
            let tasks = (spec.start)(worker, stop).await?;
            tracing::debug!(
                actor = opts.name,
                handler = spec.method,
                subject = spec.subject,
                queue,
                instance,
                "started"
            );
            env.phases[phase].tasks.extend(tasks);
        }
    }
    Ok(registered)
}
