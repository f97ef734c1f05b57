//! `tracing` events in user code attach to the process span they happen in: this layer keeps
//! them in the `tracing` span's extensions, and the span's [`super::spans::Frame`] takes them
//! when it ends.

use std::borrow::Cow;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::spans::PROCESS_TARGET;

/// At most this many events are kept per span; later ones are counted out.
const MAX_EVENTS: usize = 128;

/// An attribute value of an event.
pub(crate) enum EvValue {
    Str(Cow<'static, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// One event of a span.
pub(crate) struct Ev {
    pub name: Cow<'static, str>,
    pub at: SystemTime,
    pub attrs: Vec<(Cow<'static, str>, EvValue)>,
}

struct Events(Vec<Ev>);

/// Records the events of process spans.
pub(crate) struct EventLayer;

impl<S> Layer<S> for EventLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        if span.metadata().target() != PROCESS_TARGET {
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
            at: SystemTime::now(),
            attrs: visitor.attrs,
        };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<Events>() {
            Some(events) if events.0.len() < MAX_EVENTS => events.0.push(ev),
            Some(_) => {}
            None => ext.insert(Events(vec![ev])),
        }
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

/// Takes the events recorded in `span` so far.
pub(crate) fn take(span: &tracing::Span) -> Vec<Ev> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let mut ext = data.extensions_mut();
        ext.remove::<Events>()
    })
    .flatten()
    .map(|e| e.0)
    .unwrap_or_default()
}
