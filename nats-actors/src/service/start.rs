//! Starting a service: its endpoints through the actor path (timed counters), then the
//! discovery subscriptions and their task, stopped with the request handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::discovery::{self, Instance};
use super::{EndpointSpec, Service, TypeSchema};
use crate::error::Error;
use crate::runtime::env::StartEnv;
use crate::runtime::start as runtime;

/// A service waiting to start.
pub(crate) struct ServiceStarter<S>(Option<S>);

impl<S> ServiceStarter<S> {
    pub(crate) fn new(service: S) -> Self {
        Self(Some(service))
    }
}

/// The shutdown phase of request handlers: discovery stops with them.
const REQUEST_PHASE: usize = 1;

impl<S: Service> runtime::Starter for ServiceStarter<S> {
    fn declare(&self, out: &mut Vec<crate::asyncapi::Declared>) {
        runtime::declare::<S>(out);
    }

    fn start<'a>(&'a mut self, env: &'a mut StartEnv<'_>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(service) = self.0.take() else {
                return Ok(());
            };
            let counters = runtime::start_actor(service, env, true).await?;
            let instance = Arc::new(instance::<S>(counters));
            let nats = env.client.nats().clone();
            let mut subscriptions = Vec::new();
            for (verb, subject) in instance.subjects() {
                let sub =
                    nats.subscribe(subject.clone())
                        .await
                        .map_err(|source| Error::Subscribe {
                            handler: format!("{} discovery", instance.name),
                            subject,
                            source,
                        })?;
                subscriptions.push((verb, sub));
            }
            tracing::debug!(
                service = instance.name,
                id = %instance.id,
                endpoints = instance.endpoints.len(),
                "service started"
            );
            let phase = &mut env.phases[REQUEST_PHASE];
            let stop = phase.stop.subscribe();
            #[cfg(feature = "telemetry")]
            let instruments = super::metrics::observe(instance.clone());
            #[cfg(not(feature = "telemetry"))]
            let instruments = ();
            phase.tasks.push(tokio::spawn(discovery::respond(
                instruments,
                nats,
                instance,
                subscriptions,
                stop,
            )));
            Ok(())
        })
    }
}

/// The instance as discovery describes it: the handlers' counters (one instance, in handler
/// order) matched to the endpoints by method.
fn instance<S: Service>(counters: Vec<Arc<crate::stats::HandlerCounters>>) -> Instance {
    let info = S::info();
    let opts = S::options();
    let specs = S::handlers();
    let endpoints = S::endpoints();
    let endpoints = specs
        .iter()
        .zip(counters)
        .filter_map(|(spec, counters)| {
            let e = endpoints.iter().find(|e| e.method == spec.method)?;
            Some(discovery::Endpoint {
                name: e.name,
                subject: spec.subject,
                queue_group: spec.queue.or(opts.queue).unwrap_or("q"),
                metadata: endpoint_metadata(e),
                counters,
            })
        })
        .collect();
    Instance {
        name: info.name,
        id: nuid::next().to_string(),
        version: info.version,
        description: info.description,
        metadata: pairs(info.metadata),
        started: now_rfc3339(),
        endpoints,
    }
}

/// The endpoint's own metadata, with the names and JSON Schemas of its payload and reply types
/// (`request_type`, `request_schema`, `response_type`, `response_schema`). A key the user set
/// keeps the user's value.
fn endpoint_metadata(e: &EndpointSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |what: &str, schema: Option<fn() -> TypeSchema>| {
        if let Some(schema) = schema {
            let s = schema();
            out.insert(format!("{what}_type"), s.name.into_owned());
            out.insert(format!("{what}_schema"), s.schema);
        }
    };
    add("request", e.request);
    add("response", e.response);
    out.extend(pairs(e.metadata));
    out
}

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
