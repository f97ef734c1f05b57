//! The clock processing durations are measured with: a read costs a few nanoseconds (TSC) where
//! the OS clock costs tens, and the hot path reads it twice per message.

use std::sync::OnceLock;

pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Now, on [`clock`].
#[inline]
pub(crate) fn now() -> quanta::Instant {
    clock().now()
}

/// Time since `started` (a reading of [`now`]).
#[inline]
pub(crate) fn elapsed(started: quanta::Instant) -> std::time::Duration {
    clock().now().saturating_duration_since(started)
}
