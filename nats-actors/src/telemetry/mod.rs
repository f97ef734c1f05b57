//! OpenTelemetry that just works: spans for every publish, request, reply and processed message,
//! W3C trace context in NATS headers, messaging metrics, and OTLP export configured from the
//! standard `OTEL_*` environment.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nats_actors::Error> {
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc
//! let telemetry = nats_actors::telemetry::init("inventory-svc")?;
//! // ... run the runtime; its graceful shutdown flushes spans and metrics too
//! telemetry.shutdown();
//! # Ok(()) }
//! ```
//!
//! ## Spans
//! A `process` span (CONSUMER, named `process <subject template>`) covers every handled message.
//! The handler runs inside its OpenTelemetry context: `tracing` events in user code become its
//! events, spans the handler opens are its children, and publishes and requests made through its
//! `Context` continue the trace. Its parent is the trace context in the message's headers: for
//! core NATS, request/reply and JetStream one message has one producer, so the producer's span
//! is the parent. Publishes get a `send` span (PRODUCER) whose context is injected into the
//! headers; requests a CLIENT span, under which the responder's `process` span appears.
//!
//! nats-actors records these spans itself, not through `tracing-opentelemetry`: with the OTLP
//! exporter [`init`] configures, a span is a small record encoded straight to OTLP protobuf on
//! an export thread; with any other exporter it is an SDK span. Inside a handler, use
//! `opentelemetry::Context::current()` (not `tracing::Span::current().context()`) to propagate
//! by hand.
//!
//! ## Cost
//! Whether a span will be recorded is decided before it is built (see [`Sampling`]): a message
//! that is not sampled costs a header lookup, and no span at all.

mod console;
mod deadline;
pub(crate) mod events;
pub(crate) mod metrics;
mod otlp;
mod prometheus;
mod propagation;
mod record;
mod sampling;
mod sdk_export;
pub(crate) mod spans;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter, TracerProviderBuilder};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::error::Error;
#[cfg(feature = "__bench")]
#[doc(hidden)]
pub use otlp::bench as __bench;
pub use sampling::Sampling;

/// What was installed, for the hot path to consult without locks.
struct Installed {
    sampling: Sampling,
    metrics: bool,
    sink: spans::Sink,
    tracer: SdkTracerProvider,
    meter: Option<SdkMeterProvider>,
    /// What `/metrics` reads, when Prometheus text is on.
    scrape: Option<prometheus::ScrapeReader>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

#[inline]
pub(crate) fn sampling() -> Option<&'static Sampling> {
    INSTALLED.get().map(|i| &i.sampling)
}

pub(crate) fn sink() -> Option<&'static spans::Sink> {
    INSTALLED.get().map(|i| &i.sink)
}

/// How long [`TelemetryGuard::flush`] waits for the exporters.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the guard's shutdown waits for the exporters (not at all for one still held by an
/// export given up on, as the runtime's shutdown does at its deadline).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The metrics as Prometheus text now: `None` when it is off (see
/// [`TelemetryBuilder::prometheus`]), an error once telemetry is shut down.
#[cfg_attr(not(feature = "health"), allow(dead_code))]
pub(crate) fn prometheus_text() -> Option<Result<String, String>> {
    let reader = INSTALLED.get()?.scrape.as_ref()?;
    Some(prometheus::scrape(reader))
}

pub(crate) fn metrics_enabled() -> bool {
    INSTALLED.get().is_some_and(|i| i.metrics)
}

/// Flushes spans and metrics, waiting until `deadline` at most; the runtime calls it at the
/// end of a graceful shutdown.
pub(crate) async fn flush(deadline: tokio::time::Instant) {
    let Some(i) = INSTALLED.get() else { return };
    let deadline = deadline.into_std();
    // The exporters block; keep them off the async worker threads.
    let _ = tokio::task::spawn_blocking(move || {
        deadline::flush(Some(&i.sink), Some(&i.tracer), i.meter.as_ref(), deadline);
    })
    .await;
}

/// Installs telemetry as the `OTEL_*` environment says; see [`TelemetryBuilder::from_env`].
///
/// Sets the global tracer and meter providers, the W3C trace-context and baggage propagator, and a
/// global `tracing` subscriber (logs to stderr filtered by `RUST_LOG`, default `info`, plus the
/// OpenTelemetry layer). Call it once, from within a tokio runtime (the gRPC exporter needs
/// one); shut the guard down outside async code or from a multi-thread runtime, since the
/// exporters block while they flush.
pub fn init(service_name: &str) -> Result<TelemetryGuard, Error> {
    TelemetryBuilder::new(service_name).from_env()?.install()
}

enum Traces {
    None,
    Console,
    Exporter(TracerProviderBuilder),
    /// nats-actors' spans through the built-in OTLP exporter, spans opened by user code
    /// through the SDK's.
    Otlp(Box<otlp::Config>, TracerProviderBuilder),
}

/// Telemetry set up in code; [`init`] is this builder with [`TelemetryBuilder::from_env`].
///
/// ```no_run
/// use nats_actors::telemetry::{Sampling, TelemetryBuilder};
/// let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
/// let guard = TelemetryBuilder::new("orders")
///     .sampling(Sampling::ratio(0.1).parent_based())
///     .span_exporter(exporter)
///     .install()
///     .unwrap();
/// ```
pub struct TelemetryBuilder {
    service_name: String,
    sampling: Sampling,
    traces: Traces,
    /// The metric readers given so far.
    metrics: Option<MeterProviderBuilder>,
    prometheus: bool,
    logs: bool,
    /// Warnings about the environment, logged once the subscriber is installed.
    notes: Vec<String>,
}

impl TelemetryBuilder {
    /// Telemetry for `service_name` (the resource's `service.name`), sampling
    /// `parentbased_always_on`, printing traces to the console until an exporter is given.
    pub fn new(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_string(),
            sampling: Sampling::default(),
            traces: Traces::Console,
            metrics: None,
            prometheus: false,
            logs: true,
            notes: Vec::new(),
        }
    }

    /// Applies the standard environment: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// the `_TRACES_`/`_METRICS_` forms) set, spans and metrics go over OTLP with
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`, the default), metrics every
    /// `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60000); without, traces print to the console.
    /// `OTEL_METRICS_EXPORTER` lists the metric exporters: `otlp` (the default), `prometheus`
    /// (see [`TelemetryBuilder::prometheus`]) or `none`.
    /// Each export gives up after `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]TIMEOUT` ms, 2000 when
    /// not set (the OTLP default is 10000: lower, a collector that does not answer holds up
    /// shutdown less).
    ///
    /// For an `http://` or `https://` endpoint, nats-actors' own spans go through its built-in
    /// exporter (encoded straight to protobuf; `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` and
    /// `_TIMEOUT`, and the batch settings `OTEL_BSP_MAX_QUEUE_SIZE` (2048),
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512), `OTEL_BSP_SCHEDULE_DELAY` (5000 ms) and
    /// `OTEL_BSP_MAX_CONCURRENT_EXPORTS` (2 requests in flight) apply); for any other endpoint,
    /// and for spans of user code, through the OpenTelemetry SDK's OTLP exporter (a warning at
    /// install says so when nats-actors' spans take that path).
    ///
    /// Both, and the metric exporter, honour `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]COMPRESSION`
    /// (`gzip` or `none`; another value is ignored with a warning naming it, as the SDK does) and,
    /// for `https://` (TLS through rustls on the ring provider), the platform's trusted roots
    /// plus the CAs of `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]CERTIFICATE` and a client
    /// certificate for mutual TLS (`_CLIENT_CERTIFICATE` and `_CLIENT_KEY`, PEM files). A file
    /// that cannot be read or parsed is an [`Error::Telemetry`].
    pub fn from_env(mut self) -> Result<Self, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        self.sampling = Sampling::from_env()?;
        let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
            None | Some("http/protobuf") => Protocol::HttpBinary,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(Error::Config {
                    setting: "OTEL_EXPORTER_OTLP_PROTOCOL",
                    reason: format!("`{other}` is not supported; use grpc or http/protobuf"),
                })
            }
        };
        if endpoint || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some() {
            let exporter = sdk_export::span_exporter(protocol)
                .map_err(|e| telemetry_error("the OTLP span exporter", e))?;
            self = self.span_exporter(exporter);
            match otlp::Config::from_env(protocol == Protocol::Grpc) {
                Ok(mut config) => {
                    self.notes.append(&mut config.notes);
                    if let Traces::Exporter(b) = std::mem::replace(&mut self.traces, Traces::None) {
                        self.traces = Traces::Otlp(Box::new(config), b);
                    }
                }
                Err(otlp::NotServed::Invalid(e)) => {
                    return Err(telemetry_error("the OTLP span exporter", e))
                }
                Err(otlp::NotServed::Unsupported(why)) => self.notes.push(format!(
                    "{why}: nats-actors' spans go through the OpenTelemetry SDK's OTLP \
                     exporter, slower than the built-in one"
                )),
                Err(otlp::NotServed::NoEndpoint) => {}
            }
        }
        // Which metric exporters: `otlp` (the default, once an endpoint is set), `prometheus`
        // (text at `/metrics`), `none`.
        let exporters = var("OTEL_METRICS_EXPORTER").unwrap_or_else(|| "otlp".into());
        let mut otlp_metrics = false;
        for exporter in exporters.split(',').map(str::trim) {
            match exporter {
                "otlp" => otlp_metrics = true,
                "prometheus" => self.prometheus = true,
                "none" | "" => {}
                other => self.notes.push(format!(
                    "OTEL_METRICS_EXPORTER: `{other}` is not supported (otlp, prometheus or \
                     none); ignored"
                )),
            }
        }
        if otlp_metrics && (endpoint || var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some()) {
            let (exporter, note) = sdk_export::metric_exporter(protocol)
                .map_err(|e| telemetry_error("the OTLP metric exporter", e))?;
            self.notes.extend(note);
            let interval = var("OTEL_METRIC_EXPORT_INTERVAL")
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_secs(60), Duration::from_millis);
            self = self.metric_exporter(exporter, interval);
        }
        Ok(self)
    }

    /// The sampling policy.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Export spans in batches through `exporter` (instead of the console).
    pub fn span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.traces = Traces::Exporter(SdkTracerProvider::builder().with_batch_exporter(exporter));
        self
    }

    /// Export each span as it ends through `exporter` (tests, debugging).
    pub fn span_exporter_unbatched<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.traces = Traces::Exporter(SdkTracerProvider::builder().with_simple_exporter(exporter));
        self
    }

    /// Record no spans (metrics only).
    pub fn no_traces(mut self) -> Self {
        self.traces = Traces::None;
        self
    }

    /// Record metrics and export them through `exporter` every `interval` (and at flush).
    pub fn metric_exporter<E: PushMetricExporter + 'static>(
        mut self,
        exporter: E,
        interval: Duration,
    ) -> Self {
        let reader = PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        let metrics = self
            .metrics
            .take()
            .unwrap_or_else(SdkMeterProvider::builder);
        self.metrics = Some(metrics.with_reader(reader));
        self
    }

    /// Record metrics and serve them in the Prometheus text format at `/metrics` of the
    /// health listener (feature `health`, see
    /// [`RuntimeBuilder::health_listener`](crate::RuntimeBuilder::health_listener)), read
    /// fresh at each scrape, beside any OTLP export. [`TelemetryBuilder::from_env`] turns it
    /// on when `OTEL_METRICS_EXPORTER` lists `prometheus` (`otlp,prometheus` for both).
    ///
    /// ```no_run
    /// let guard = nats_actors::telemetry::TelemetryBuilder::new("orders")
    ///     .prometheus()
    ///     .install()
    ///     .unwrap();
    /// ```
    pub fn prometheus(mut self) -> Self {
        self.prometheus = true;
        self
    }

    /// Whether to also install a stderr log layer filtered by `RUST_LOG` (default: yes).
    pub fn logs(mut self, on: bool) -> Self {
        self.logs = on;
        self
    }

    /// Installs the global providers, propagator and `tracing` subscriber.
    ///
    /// Fails when telemetry or another global `tracing` subscriber is already installed.
    pub fn install(mut self) -> Result<TelemetryGuard, Error> {
        if INSTALLED.get().is_some() {
            return Err(already_installed());
        }
        let resource = resource(&self.service_name);
        let scrape = self.prometheus.then(prometheus::reader);
        let mut metrics = self.metrics.take();
        if let Some(reader) = &scrape {
            let builder = metrics.unwrap_or_else(SdkMeterProvider::builder);
            metrics = Some(builder.with_reader(reader.clone()));
        }
        let meter = metrics.map(|m| m.with_resource(resource.clone()).build());
        let sampler = self.sampling.to_sdk();
        let (traces, otlp_config) = match self.traces {
            Traces::Otlp(config, b) => (Traces::Exporter(b), Some(config)),
            other => (other, None),
        };
        self.traces = traces;
        let sampling = match self.traces {
            Traces::None => Sampling::always_off(),
            _ => self.sampling,
        };
        let tracer = match self.traces {
            Traces::None => SdkTracerProvider::builder()
                .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff),
            Traces::Console => {
                SdkTracerProvider::builder().with_simple_exporter(console::ConsoleExporter::new())
            }
            Traces::Exporter(b) => b,
            Traces::Otlp(_, b) => b,
        }
        .with_sampler(sampler)
        .with_resource(resource.clone())
        .build();
        let sink = match otlp_config {
            Some(config) => spans::Sink::Otlp(
                otlp::Exporter::start(*config, &resource)
                    .map_err(|e| telemetry_error("the OTLP export thread", e))?,
            ),
            None => spans::Sink::Sdk(tracer.tracer("nats-actors")),
        };
        // Only the semantic-convention attributes: no code location, thread or busy/idle
        // attributes on every span (each costs allocations and clock reads).
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer.tracer("nats-actors"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // A static filter: callsites below INFO are never enabled, so the debug! events of
            // async-nats and tokio on the hot path cost nothing. The exporters' own HTTP/gRPC
            // spans would feed back into the exporter: they are off.
            // nats-actors records its process spans itself (see `spans`).
            .with_filter(quiet_targets().with_target(spans::PROCESS_TARGET, LevelFilter::OFF));
        // Events in user code inside a process span become that span's events.
        let events_layer = events::EventLayer
            .with_filter(quiet_targets().with_target(spans::PROCESS_TARGET, LevelFilter::OFF));
        // Off by a filter rather than left out: an absent (`None`) layer would declare interest
        // in every callsite, and spans nobody records would still be built.
        let log_filter = if self.logs {
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,opentelemetry=warn,opentelemetry_sdk=warn".into())
        } else {
            tracing_subscriber::EnvFilter::new("off")
        };
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter);
        tracing_subscriber::registry()
            .with(otel_layer)
            .with(events_layer)
            .with(logs)
            .try_init()
            .map_err(|e| telemetry_error("the tracing subscriber", e))?;
        self.notes.dedup();
        for note in &self.notes {
            tracing::warn!("{note}");
        }
        opentelemetry::global::set_text_map_propagator(
            opentelemetry::propagation::TextMapCompositePropagator::new(vec![
                Box::new(TraceContextPropagator::new()),
                Box::new(BaggagePropagator::new()),
            ]),
        );
        opentelemetry::global::set_tracer_provider(tracer.clone());
        if let Some(m) = &meter {
            opentelemetry::global::set_meter_provider(m.clone());
        }
        let installed = Installed {
            sampling,
            sink,
            metrics: meter.is_some(),
            tracer: tracer.clone(),
            meter: meter.clone(),
            scrape,
        };
        INSTALLED.set(installed).map_err(|_| already_installed())?;
        Ok(TelemetryGuard {
            tracer: Some(tracer),
            meter,
        })
    }
}

/// INFO and above, without the exporters' own HTTP/gRPC crates (their spans would feed back into
/// the exporter). A static filter: callsites below INFO are never enabled, so the `debug!`
/// events of async-nats and tokio on the hot path cost nothing.
fn quiet_targets() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_targets(
            [
                "h2",
                "hyper",
                "hyper_util",
                "tonic",
                "tower",
                "reqwest",
                "opentelemetry",
                "opentelemetry_sdk",
                "opentelemetry_otlp",
            ]
            .map(|t| (t, LevelFilter::OFF)),
        )
}

fn resource(service_name: &str) -> Resource {
    // The builder's detectors read OTEL_RESOURCE_ATTRIBUTES; the service name given wins.
    Resource::builder()
        .with_service_name(service_name.to_string())
        .build()
}

/// Flushes and shuts down the exporters when dropped (or on [`TelemetryGuard::shutdown`]).
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports what is pending and stops the exporters, waiting 2 s at most (not at all for an
    /// exporter still held by an export the runtime's shutdown gave up on). Blocks: call it
    /// outside async code or from a multi-thread runtime.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Exports what is pending now, without stopping; waits 10 s at most.
    pub fn flush(&self) {
        deadline::flush(
            sink(),
            self.tracer.as_ref(),
            self.meter.as_ref(),
            std::time::Instant::now() + FLUSH_TIMEOUT,
        );
    }

    fn stop(&mut self) {
        deadline::shutdown(
            sink(),
            self.tracer.take(),
            self.meter.take(),
            std::time::Instant::now() + SHUTDOWN_TIMEOUT,
        );
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

fn telemetry_error(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Telemetry {
        what,
        reason: e.to_string(),
    }
}

fn already_installed() -> Error {
    telemetry_error("a second time", "it is already installed in this process")
}
