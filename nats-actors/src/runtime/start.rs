//! Starting actors: every handler of every instance, through the start function of its kind,
//! into the shutdown phase it belongs to.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actor::Actor;
use crate::asyncapi::Declared;
use crate::cell::Cell;
use crate::error::Error;
use crate::runtime::env::{queue_of, worker, StartEnv};
use crate::stats::HandlerCounters;
use crate::supervision::{Reset, Stopper, Supervisor};

/// An actor waiting to start, with its type erased.
pub(crate) trait Starter: Send {
    fn start<'a>(&'a mut self, env: &'a mut StartEnv<'_>) -> BoxFuture<'a, Result<(), Error>>;
    /// Its handlers, as the AsyncAPI document lists them.
    fn declare(&self, out: &mut Vec<Declared>);
}

/// The handlers of `A`, as the AsyncAPI document lists them.
pub(crate) fn declare<A: Actor>(out: &mut Vec<Declared>) {
    let opts = A::options();
    for spec in A::handlers() {
        #[cfg(feature = "jetstream")]
        let jetstream = spec.consumer.map(|c| (c.stream, c.durable));
        #[cfg(not(feature = "jetstream"))]
        let jetstream = None;
        // A consumer of a whole stream has its name as the template, not a subject.
        let address = match jetstream {
            Some((stream, _)) if spec.template == stream => None,
            _ => Some(spec.template),
        };
        out.push(Declared {
            actor: opts.name,
            method: spec.method,
            attribute: spec.kind.attribute,
            address,
            replies: spec.kind.replies,
            queue: queue_of(&spec, &opts),
            codec: spec.codec.or(opts.codec).unwrap_or_default(),
            payload: spec.payload,
            reply: spec.reply,
            jetstream,
        });
    }
}

impl<A: Actor> Starter for Option<A> {
    fn declare(&self, out: &mut Vec<Declared>) {
        declare::<A>(out);
    }

    fn start<'a>(&'a mut self, env: &'a mut StartEnv<'_>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.take() {
                Some(actor) => start_actor(actor, env, false).await.map(drop),
                None => Ok(()),
            }
        })
    }
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
        // `on_limit = "stop_actor"`: the instance has stop signals of its own.
        let alone = (opts.stop_actor_on_limit && opts.restart_limit.is_some())
            .then(|| Arc::new(Stopper::instance()));
        let stops = alone.as_ref().map(|stopper| instance_stops(env, stopper));
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
            let stopper = alone.clone().unwrap_or_else(|| env.stopper.clone());
            Arc::new(Supervisor::new(
                opts.name,
                instance,
                reset,
                opts.restart_limit,
                stopper,
            ))
        });
        for spec in &specs {
            let (mut worker, counters) =
                worker(spec, &cell, env, &opts, instance, timed, supervisor.clone());
            if let Some(s) = &supervisor {
                s.watch(counters.clone());
            }
            registered.push(counters);
            let phase = usize::from(spec.kind.replies);
            let queue = worker.queue;
            let stop = match &stops {
                Some(own) => {
                    worker.stop = own[phase].1.clone();
                    own[phase].0.clone()
                }
                None => env.phases[phase].stop.subscribe(),
            };
            let tasks = (spec.start)(worker, stop).await?;
            // Health reads whether they still run.
            if let Some(c) = registered.last() {
                let mut held = c.tasks.lock().unwrap_or_else(|e| e.into_inner());
                held.extend(tasks.iter().map(JoinHandle::abort_handle));
            }
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

/// The stop signals of an instance that supervision may stop alone, one per shutdown phase:
/// each is given when the runtime stops that phase or when `stopper` stops the instance.
fn instance_stops(
    env: &StartEnv<'_>,
    stopper: &Arc<Stopper>,
) -> [(watch::Receiver<bool>, Arc<AtomicBool>); 2] {
    std::array::from_fn(|phase| {
        let (tx, rx) = watch::channel(false);
        let flag = Arc::new(AtomicBool::new(false));
        let mut runtime = env.phases[phase].stop.subscribe();
        let (stopper, set) = (stopper.clone(), flag.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = runtime.wait_for(|stop| *stop) => {}
                () = stopper.stopped() => {}
            }
            set.store(true, Relaxed);
            let _ = tx.send(true);
        });
        (rx, flag)
    })
}
