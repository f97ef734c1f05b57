//! `tracing` events in user code attach to the process span of the handler they happen in.
//!
//! While a handler is polled, a thread-local buffer collects the events that are not inside a
//! span of their own (those belong to that span, recorded by `tracing-opentelemetry`); the
//! handler's [`super::spans::Frame`] takes them after each poll. No `tracing` span is needed for
//! this, so a traced message does not pay for one unless a log layer wants it.

use std::borrow::Cow;
use std::cell::RefCell;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::record::{Ev, EvValue, PROCESS_TARGET};

/// At most this many events are kept per handler poll; later ones are dropped, uncounted.
const MAX_EVENTS: usize = 128;

thread_local! {
    /// The events of the handler being polled on this thread (`None`: no handler).
    static CURRENT: RefCell<Option<Vec<Ev>>> = const { RefCell::new(None) };
}

/// Starts collecting events for a handler poll; give the result to [`exit`].
pub(crate) fn enter() -> Option<Vec<Ev>> {
    CURRENT.with(|c| c.replace(Some(Vec::new())))
}

/// Stops collecting; returns the events of this poll.
pub(crate) fn exit(previous: Option<Vec<Ev>>) -> Vec<Ev> {
    CURRENT.with(|c| c.replace(previous)).unwrap_or_default()
}

/// Records the events of process spans.
pub(crate) struct EventLayer;

impl<S> Layer<S> for EventLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        // Inside a span the user opened: that span's event.
        if ctx
            .event_span(event)
            .is_some_and(|s| s.metadata().target() != PROCESS_TARGET)
        {
            return;
        }
        let collecting = CURRENT.with(|c| c.borrow().as_ref().map(Vec::len));
        if collecting.is_none_or(|n| n >= MAX_EVENTS) {
            return;
        }
        let meta = event.metadata();
        let mut visitor = Visitor {
            name: None,
            attrs: vec![
                ("level".into(), EvValue::Str(meta.level().as_str().into())),
                ("target".into(), EvValue::Str(meta.target().into())),
            ],
        };
        event.record(&mut visitor);
        let ev = Ev {
            name: visitor.name.map_or(Cow::Borrowed(meta.name()), Cow::Owned),
            at: super::metrics::wall_now(),
            attrs: visitor.attrs,
        };
        CURRENT.with(|c| {
            if let Some(events) = c.borrow_mut().as_mut() {
                events.push(ev);
            }
        });
    }
}

struct Visitor {
    name: Option<String>,
    attrs: Vec<(Cow<'static, str>, EvValue)>,
}

impl Visit for Visitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.name = Some(value.to_string());
        } else {
            self.attrs
                .push((field.name().into(), EvValue::Str(value.to_string().into())));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.name = Some(text);
        } else {
            self.attrs
                .push((field.name().into(), EvValue::Str(text.into())));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attrs.push((field.name().into(), EvValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value = match i64::try_from(value) {
            Ok(n) => EvValue::I64(n),
            Err(_) => EvValue::Str(value.to_string().into()),
        };
        self.attrs.push((field.name().into(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attrs.push((field.name().into(), EvValue::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attrs.push((field.name().into(), EvValue::Bool(value)));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.attrs
            .push((field.name().into(), EvValue::Str(value.to_string().into())));
    }
}
