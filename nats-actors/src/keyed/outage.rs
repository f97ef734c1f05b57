//! One warning for an outage of the state bucket, not one per key: while the bucket is away
//! (a cluster electing its leader, say) every active key waits on it, and a warning per key
//! would be thousands of lines for one event.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often an outage that lasts is reported again.
const EVERY: Duration = Duration::from_secs(5);

/// The keys of one actor type now waiting on the bucket, and when that was last reported.
#[derive(Default)]
pub(super) struct Outage {
    waiting: AtomicUsize,
    reported: Mutex<Option<Instant>>,
}

impl Outage {
    /// Key `key` starts waiting on the bucket for `doing` (`read`, `save`): reported when no
    /// report was made in this outage or in the last 5 s. The key waits until the guard drops.
    pub(super) fn waits(
        &self,
        actor: &str,
        key: &str,
        doing: &str,
        error: &dyn std::fmt::Display,
    ) -> Waiting<'_> {
        let waiting = self.waiting.fetch_add(1, Relaxed) + 1;
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if reported.is_none_or(|at| at.elapsed() >= EVERY) {
            *reported = Some(Instant::now());
            tracing::warn!(actor, key, keys_waiting = waiting, %error, "cannot {doing} the state; trying again");
        }
        Waiting(self)
    }
}

/// A key waiting on the bucket; the outage is over when the last one drops.
pub(super) struct Waiting<'a>(&'a Outage);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Relaxed) == 1 {
            *self.0.reported.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_keys_waiting_and_forgets_the_outage_when_none_waits() {
        let outage = Outage::default();
        let first = outage.waits("A", "1", "save", &"away");
        let second = outage.waits("A", "2", "save", &"away");
        assert_eq!(outage.waiting.load(Relaxed), 2);
        assert!(outage.reported.lock().unwrap().is_some());
        drop(first);
        assert!(outage.reported.lock().unwrap().is_some());
        drop(second);
        assert_eq!(outage.waiting.load(Relaxed), 0);
        assert!(outage.reported.lock().unwrap().is_none());
    }
}
