//! How long since a watch was last known to be in sync with the API server,
//! for `palisade_watch_sync_age_seconds` and the "watch not synced" alert.
//!
//! kube-runtime's watcher restarts a dropped watch from its last
//! resourceVersion without telling its consumer, so a quiet, healthy watch
//! and a silently broken one look alike from events alone. What does show
//! is errors: a watch that cannot reach the API server yields one at every
//! retry (the backoff tops out well under [`QUIET`]). So a watch is in sync
//! when it listed everything once and, since then, either delivered
//! something or went [`QUIET`] without an error.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};

/// A watch that yielded no error for this long after its last one is
/// taken to have reconnected: longer than kube-runtime's largest retry
/// backoff (30 s), so a watch that keeps failing never gets there.
pub const QUIET: Duration = Duration::from_secs(60);

/// The sync state of one watch.
#[derive(Debug)]
pub struct WatchHealth {
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Inner {
    last_good: Option<Instant>,
    last_error: Option<Instant>,
}

impl Default for WatchHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHealth {
    /// A watch that has not listed yet.
    pub fn new() -> Self {
        WatchHealth {
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // Every update is a plain assignment: a poisoned lock holds nothing half done.
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The watch has listed everything (an `InitDone`).
    pub fn synced(&self, now: Instant) {
        self.with(|i| i.last_good = Some(now));
    }

    /// The watch delivered an event; counts only once it has synced.
    pub fn event(&self, now: Instant) {
        self.with(|i| {
            if i.last_good.is_some() {
                i.last_good = Some(now);
            }
        });
    }

    /// The watch yielded an error.
    pub fn error(&self, now: Instant) {
        self.with(|i| i.last_error = Some(now));
    }

    /// Nothing arrived for a while: if no error came for [`QUIET`], the
    /// watch is open and current.
    pub fn quiet(&self, now: Instant) {
        self.with(|i| {
            let calm = i
                .last_error
                .is_none_or(|e| now.saturating_duration_since(e) >= QUIET);
            if i.last_good.is_some() && calm {
                i.last_good = Some(now);
            }
        });
    }

    /// Time since the watch was last known in sync (since start if never).
    pub fn sync_age(&self, now: Instant) -> Duration {
        let last_good = self.with(|i| i.last_good);
        now.saturating_duration_since(last_good.unwrap_or(self.started))
    }

    /// The next item of a watch stream, recording errors and events (the
    /// caller records `synced`), and marking quiet stretches on the way.
    pub async fn next<S, T, E>(&self, stream: &mut S) -> Option<Result<T, E>>
    where
        S: Stream<Item = Result<T, E>> + Unpin,
    {
        loop {
            tokio::select! {
                item = stream.next() => {
                    let now = Instant::now();
                    match &item {
                        Some(Ok(_)) => self.event(now),
                        Some(Err(_)) => self.error(now),
                        None => {}
                    }
                    return item;
                }
                // `next` is cancel-safe: a tick loses nothing.
                _ = tokio::time::sleep(QUIET / 4) => self.quiet(Instant::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_age_truth_table() {
        let s = Duration::from_secs;
        let h = WatchHealth::new();
        let t0 = h.started;
        // Never listed: the age runs from the start, events and calm do not help.
        h.event(t0 + s(5));
        h.quiet(t0 + s(70));
        assert_eq!(h.sync_age(t0 + s(90)), s(90));

        h.synced(t0 + s(100));
        assert_eq!(h.sync_age(t0 + s(100)), s(0));
        h.event(t0 + s(110));
        assert_eq!(h.sync_age(t0 + s(130)), s(20), "an event is a sign of life");

        // Errors stop the clock being reset by calm...
        h.error(t0 + s(140));
        h.quiet(t0 + s(150));
        h.error(t0 + s(170));
        h.quiet(t0 + s(200));
        assert_eq!(
            h.sync_age(t0 + s(400)),
            s(290),
            "still failing: the age grows"
        );
        // ...until a whole quiet stretch passes without one.
        h.quiet(t0 + s(230));
        assert_eq!(h.sync_age(t0 + s(230)), s(0), "reconnected");
        // An event after an error is proof enough.
        h.error(t0 + s(300));
        h.event(t0 + s(301));
        assert_eq!(h.sync_age(t0 + s(301)), s(0));
    }

    #[tokio::test]
    async fn next_records_what_the_stream_yields() {
        let h = WatchHealth::new();
        h.synced(h.started);
        let mut items = futures::stream::iter([Err::<(), ()>(()), Ok(())]);
        assert_eq!(h.next(&mut items).await, Some(Err(())));
        assert!(h.with(|i| i.last_error.is_some()));
        let before = h.with(|i| i.last_good);
        assert_eq!(h.next(&mut items).await, Some(Ok(())));
        assert!(h.with(|i| i.last_good) > before, "the event counts");
        assert_eq!(h.next(&mut items).await, None);
    }
}
