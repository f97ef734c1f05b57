//! Procedural macros of [nats-actors](https://docs.rs/nats-actors).
//!
//! Use them through the `nats_actors` crate, which re-exports them:
//! `#[derive(Actor)]` with `#[actor(...)]` options on a struct, and `#[handlers]` on its `impl`
//! block, whose methods carry `#[subscribe("subject", ...)]`, `#[request("subject", ...)]` or
//! `#[consumer(stream = "...", durable = "...", ...)]` (a JetStream pull consumer).
//! Every misuse these macros can see is a compile error pointing at the offending token.

extern crate proc_macro;

mod actor;
mod handlers;
mod options;
mod subject;

use proc_macro::TokenStream;

/// Derives `nats_actors::Actor` for a struct; options go in `#[actor(...)]`.
///
/// Options: `name = "..."` (defaults to the type name), `queue = "..."` (default queue group of
/// its handlers), `codec = "json" | "msgpack"` (default codec), `instances = N` (instances started
/// in the queue group; needs `Clone`), `concurrency = N` (default handler concurrency).
#[proc_macro_derive(Actor, attributes(actor))]
pub fn derive_actor(input: TokenStream) -> TokenStream {
    actor::expand(input.into()).into()
}

/// Turns the `#[subscribe]`, `#[request]` and `#[consumer]` methods of an `impl` block into NATS
/// handlers.
#[proc_macro_attribute]
pub fn handlers(args: TokenStream, input: TokenStream) -> TokenStream {
    handlers::expand(args.into(), input.into()).into()
}
