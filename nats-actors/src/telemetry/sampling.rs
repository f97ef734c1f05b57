//! Which traces to record, decided before a span is built so that an unsampled message costs
//! next to nothing.

use opentelemetry::trace::{SpanContext, TraceId};
use opentelemetry_sdk::trace::Sampler;

use crate::error::Error;

/// The sampling policy, as `OTEL_TRACES_SAMPLER` names them.
///
/// ```
/// use nats_actors::telemetry::Sampling;
/// let s = Sampling::ratio(0.25).parent_based();
/// assert_eq!(format!("{s:?}"), "Sampling { parent_based: true, root: Ratio(0.25) }");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    parent_based: bool,
    root: Root,
}

#[derive(Clone, Debug, PartialEq)]
enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

/// What the fast path can tell before building a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The span will be recorded.
    Record,
    /// The span would be dropped: do not build it.
    Drop,
    /// Depends on the trace id: build it and let the SDK decide.
    Ask,
}

impl Default for Sampling {
    /// `parentbased_always_on`, the OpenTelemetry default.
    fn default() -> Self {
        Self::always_on().parent_based()
    }
}

impl Sampling {
    /// Record every trace.
    pub fn always_on() -> Self {
        Self {
            parent_based: false,
            root: Root::AlwaysOn,
        }
    }

    /// Record nothing.
    pub fn always_off() -> Self {
        Self {
            parent_based: false,
            root: Root::AlwaysOff,
        }
    }

    /// Record this fraction of traces, by trace id.
    pub fn ratio(ratio: f64) -> Self {
        Self {
            parent_based: false,
            root: Root::Ratio(ratio.clamp(0.0, 1.0)),
        }
    }

    /// Follow the parent's decision when there is a parent; use this policy for new traces.
    pub fn parent_based(mut self) -> Self {
        self.parent_based = true;
        self
    }

    /// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub fn from_env() -> Result<Self, Error> {
        let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Self::parse(name.trim(), arg.as_deref())
    }

    fn parse(name: &str, arg: Option<&str>) -> Result<Self, Error> {
        let ratio = || -> Result<f64, Error> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| Error::Config {
                        setting: "OTEL_TRACES_SAMPLER_ARG",
                        reason: format!("`{a}` is not a ratio in [0, 1]"),
                    }),
            }
        };
        Ok(match name {
            "" | "parentbased_always_on" => Self::default(),
            "always_on" => Self::always_on(),
            "always_off" => Self::always_off(),
            "traceidratio" => Self::ratio(ratio()?),
            "parentbased_always_off" => Self::always_off().parent_based(),
            "parentbased_traceidratio" => Self::ratio(ratio()?).parent_based(),
            other => {
                return Err(Error::Config {
                    setting: "OTEL_TRACES_SAMPLER",
                    reason: format!("`{other}` is not supported; use always_on, always_off, traceidratio or their parentbased_ forms"),
                })
            }
        })
    }

    pub(crate) fn decide(&self, parent: &SpanContext) -> Decision {
        if self.parent_based && parent.is_valid() {
            return if parent.is_sampled() {
                Decision::Record
            } else {
                Decision::Drop
            };
        }
        match self.root {
            Root::AlwaysOn => Decision::Record,
            Root::AlwaysOff => Decision::Drop,
            Root::Ratio(r) if r >= 1.0 => Decision::Record,
            Root::Ratio(r) if r <= 0.0 => Decision::Drop,
            Root::Ratio(_) => Decision::Ask,
        }
    }

    /// Whether a new trace (a message without a parent) is never recorded: then a message
    /// without headers needs no look at all.
    #[inline]
    pub(crate) fn drops_new_traces(&self) -> bool {
        match self.root {
            Root::AlwaysOff => true,
            Root::Ratio(r) => r <= 0.0,
            Root::AlwaysOn => false,
        }
    }

    /// For [`Decision::Ask`]: whether the ratio samples `trace_id`, by the same rule as the
    /// SDK's `TraceIdRatioBased` (so spans of user code in the same trace agree).
    pub(crate) fn ratio_samples(&self, trace_id: TraceId) -> bool {
        let Root::Ratio(r) = self.root else {
            return self.root == Root::AlwaysOn;
        };
        let bound = (r.max(0.0) * (1u64 << 63) as f64) as u64;
        let bytes = trace_id.to_bytes();
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[8..]);
        (u64::from_be_bytes(low) >> 1) < bound
    }

    pub(crate) fn to_sdk(&self) -> Sampler {
        let root = match self.root {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(r) => Sampler::TraceIdRatioBased(r),
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceState};

    fn parent(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn env_names_and_decisions() {
        let s = Sampling::parse("parentbased_traceidratio", Some("0")).unwrap();
        assert_eq!(s.decide(&SpanContext::empty_context()), Decision::Drop);
        assert_eq!(s.decide(&parent(true)), Decision::Record);
        assert_eq!(s.decide(&parent(false)), Decision::Drop);
        let s = Sampling::parse("traceidratio", Some("0.5")).unwrap();
        assert_eq!(s.decide(&parent(true)), Decision::Ask);
        assert_eq!(Sampling::parse("", None).unwrap(), Sampling::default());
        assert_eq!(
            Sampling::parse("always_off", None)
                .unwrap()
                .decide(&parent(true)),
            Decision::Drop
        );
        assert!(Sampling::parse("traceidratio", Some("2")).is_err());
        // Half of the trace ids, by their low 63 bits, as the SDK decides.
        let half = Sampling::ratio(0.5);
        assert!(half.ratio_samples(TraceId::from(1u128 << 62)));
        assert!(!half.ratio_samples(TraceId::from(u64::MAX as u128)));
        assert!(Sampling::parse("jaeger_remote", None).is_err());
    }

    #[test]
    fn drops_new_traces_agrees_with_the_decision_without_a_parent() {
        for s in [
            Sampling::always_on(),
            Sampling::always_off(),
            Sampling::ratio(0.0),
            Sampling::ratio(0.5),
            Sampling::ratio(1.0),
        ] {
            for s in [s.clone(), s.parent_based()] {
                let dropped = s.decide(&SpanContext::empty_context()) == Decision::Drop;
                assert_eq!(s.drops_new_traces(), dropped, "{s:?}");
            }
        }
    }
}
