//! What the JetStream tests share (`jetstream_outcomes.rs` and `jetstream_streams.rs`): a
//! stream's configuration and the job they publish.

use nats_actors::jetstream::StreamConfig;
use nats_actors::prelude::*;

/// A stream named `name` that takes `subjects`, the rest of its configuration the defaults.
pub fn stream(name: &str, subjects: &str) -> StreamConfig {
    StreamConfig {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    }
}

/// The job the tests publish.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub n: u64,
}
