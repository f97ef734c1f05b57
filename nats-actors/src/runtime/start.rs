//! Starting actors: every handler of every instance, through the start function of its kind,
//! into the shutdown phase it belongs to.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::actor::Actor;
use crate::cell::Cell;
use crate::error::Error;
use crate::runtime::env::{worker, StartEnv};
use crate::stats::HandlerCounters;
use crate::supervision::{Reset, Supervisor};

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
