//! [`RuntimeBuilder::compression`]: what the runtime sends, compressed past a size.

use super::RuntimeBuilder;
use crate::compression::Compression;

impl RuntimeBuilder {
    /// Compresses what the runtime's handlers and client publish, request and reply once it is
    /// at least the threshold's size, marked with `Content-Encoding` (see
    /// [`compression`](crate::compression)). Compressed payloads are taken by every handler
    /// whether or not this is set.
    ///
    /// ```no_run
    /// use nats_actors::{Compression, Runtime};
    ///
    /// let builder = Runtime::builder().compression(Compression::gzip().min_size(2048));
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }
}
