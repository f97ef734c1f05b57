//! Procedural macros of [nats-actors](https://docs.rs/nats-actors).
//!
//! Use them through the `nats_actors` crate, which re-exports them:
//! `#[derive(Actor)]` with `#[actor(...)]` options on a struct, and `#[handlers]` on its `impl`
//! block, whose methods carry `#[subscribe("subject", ...)]`, `#[request("subject", ...)]` or
//! `#[consumer(stream = "...", durable = "...", ...)]` (a JetStream pull consumer) or
//! `#[kv_watch(bucket = "...", key = "...")]` (the changes of a KV bucket) or
//! `#[object_watch(bucket = "...")]` (the puts and deletes of an object store).
//! `#[derive(Service)]` with `#[service(...)]` and `#[endpoints]` with `#[endpoint(...)]` methods
//! make a discoverable NATS micro service (ADR-32) and its typed client.
//! Every misuse these macros can see is a compile error pointing at the offending token.

extern crate proc_macro;

mod actor;
mod handlers;
mod options;
mod service;
mod subject;

use proc_macro::TokenStream;

/// Derives `nats_actors::Actor` for a struct; options go in `#[actor(...)]`.
///
/// Options: `name = "..."` (defaults to the type name), `queue = "..."` (default queue group of
/// its handlers), `codec = "json" | "msgpack"` (default codec), `instances = N` (instances started
/// in the queue group; needs `Clone`), `concurrency = N` (default handler concurrency),
/// `buffer = N | "8MiB"` (default `nats_actors::Buffer` of its core handlers).
///
/// Supervision, after a handler panics (the panic is caught, counted and answered as an error
/// in any case): `restart = "keep" | "reset"` (`"keep"`, the default, leaves the state as the
/// panic left it; `"reset"` replaces it with `Default::default()` once no handler holds it, and
/// pauses the handler 10 ms, doubling with each panic in the window up to 5 s);
/// `max_restarts = N` with `restart_window = "60s"` (the default window): one panic more than
/// N within the window stops the runtime, and `Runtime::run_until_shutdown_signal` returns
/// `Error::Supervision` with the reason, so that the process exits non-zero and its
/// orchestrator starts it again; with `on_limit = "stop_actor"` (`"stop_runtime"` is the
/// default) only that instance stops instead: its handlers leave their subscriptions and
/// consumers as at shutdown (its queue group's other members take its messages), its health
/// says `Stopped` with the reason, and the rest of the runtime goes on.
#[proc_macro_derive(Actor, attributes(actor))]
pub fn derive_actor(input: TokenStream) -> TokenStream {
    actor::expand(input.into()).into()
}

/// Turns the `#[subscribe]`, `#[request]`, `#[consumer]`, `#[kv_watch]` and `#[object_watch]`
/// methods of an `impl` block into NATS
/// handlers; `#[handlers(client)]` (or `client = "pub(crate)"`) also generates `{Type}Client` for
/// the `#[request]` handlers.
///
/// Handler options: `#[subscribe("subject", queue = "...", codec = "json" | "msgpack",
/// concurrency = N, buffer = N | "8MiB")]`, the same for `#[request]` (`buffer`: the messages,
/// or bytes, held while the handler is busy; past it, new ones are dropped and counted, see
/// `nats_actors::Buffer`); `#[consumer(stream = "...", durable = "...",
/// ...)]` takes the JetStream options (see `nats_actors::jetstream`); `#[kv_watch(bucket =
/// "...", key = "services.{name}", from = "last_per_key" | "new" | "all_history", codec = ...)]`
/// watches a KV bucket (`key` defaults to every key, `from` to each key's current value and
/// then the changes), its handler taking a `nats_actors::kv::KvEntry<T>` (see
/// `nats_actors::kv`); `#[object_watch(bucket = "...", from = "last_per_object" | "new")]`
/// watches an object store, its handler taking a `nats_actors::objects::ObjectInfo` (see
/// `nats_actors::objects`).
///
/// Arguments are recognised by the traits of their types: `FromContext` extractors, a `Param<T>`
/// named after a `{name}` of the subject, and at most one payload (any other type). A generated
/// client decides from the signature what it sends; mark an argument `#[extract]` (your own
/// extractor) or `#[payload]` (a payload type named like a built-in extractor) where the name
/// misleads it; the compiler says which mark is missing.
#[proc_macro_attribute]
pub fn handlers(args: TokenStream, input: TokenStream) -> TokenStream {
    handlers::expand(args.into(), input.into()).into()
}

/// Derives `nats_actors::Service` (and `Actor`) for a struct; options go in `#[service(...)]`.
///
/// Options: `version = "1.2.0"` (SemVer, required), `name = "..."` (`[A-Za-z0-9_-]+`, defaults
/// to the type name), `description = "..."`, `metadata(key = "value", ...)`,
/// `queue_group = "..."` (default `q`).
#[proc_macro_derive(Service, attributes(service))]
pub fn derive_service(input: TokenStream) -> TokenStream {
    service::derive(input.into()).into()
}

/// Turns the `#[endpoint(...)]` methods of a service's `impl` block into endpoints, and generates
/// the typed `{Type}Client` (`#[endpoints(client = "pub(crate)")]` sets its visibility).
///
/// Endpoint options: `subject = "..."` (defaults to the name), `name = "..."` (defaults to the
/// method name), `group = "..."` (prefixes the subject), `queue_group = "..."`,
/// `metadata(key = "value", ...)`, `codec = "json" | "msgpack"`, `concurrency = N`,
/// `buffer = N | "8MiB"`.
#[proc_macro_attribute]
pub fn endpoints(args: TokenStream, input: TokenStream) -> TokenStream {
    service::endpoints(args.into(), input.into()).into()
}
