//! W3C trace context and baggage in NATS headers, through the globally configured propagator.

use async_nats::header::{HeaderName, HeaderValue};
use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};

/// Baggage larger than this is dropped (with a warning) instead of being copied along.
pub(crate) const MAX_BAGGAGE_BYTES: usize = 8192;

/// Reads trace headers whatever the case of their names, and never hands out oversized baggage.
pub(crate) struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = crate::headers::get(self.0, key)?;
        if key.eq_ignore_ascii_case("baggage") && value.len() > MAX_BAGGAGE_BYTES {
            tracing::warn!(
                bytes = value.len(),
                max = MAX_BAGGAGE_BYTES,
                "baggage header over the size bound dropped"
            );
            return None;
        }
        Some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes trace headers; a name or value NATS cannot carry is skipped, never a panic.
pub(crate) struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key.eq_ignore_ascii_case("baggage") && value.len() > MAX_BAGGAGE_BYTES {
            tracing::warn!(
                bytes = value.len(),
                max = MAX_BAGGAGE_BYTES,
                "baggage over the size bound not propagated"
            );
            return;
        }
        let (Ok(name), Ok(value)) = (HeaderName::try_from(key), value.parse::<HeaderValue>())
        else {
            return;
        };
        self.0.insert(name, value);
    }
}

/// The context carried by `headers` (empty when there are none or they are garbage).
pub(crate) fn extract(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(h) => {
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h)))
        }
        None => opentelemetry::Context::new(),
    }
}

/// Writes `cx` into `headers`.
pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    });
}
