//! Who may write: the leader-election decision over one observed Lease,
//! as client-go's `tryAcquireOrRenew` makes it (pure; no clock, no I/O).
//!
//! Expiry is judged by the *local* time at which the current record was
//! first observed, never by the `renewTime` written in it: replicas' clocks
//! differ, and a lease must not look expired to a replica whose clock runs
//! ahead of the holder's. The holder itself keeps renewing well before the
//! others would take over, and steps down when it could not renew within
//! its renew deadline (see [`should_step_down`]).

use std::time::{Duration, Instant};

/// The fields of a Lease's spec that election reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `holderIdentity`; `None` or empty when nobody holds it (released).
    pub holder: Option<String>,
    /// `leaseDurationSeconds`: how long others wait after the last renewal.
    pub duration_seconds: Option<i32>,
    /// `renewTime`, as written by the holder (compared, never trusted as a clock).
    pub renew_time: Option<String>,
    /// `leaseTransitions`.
    pub transitions: i32,
}

impl LeaseRecord {
    /// The holder, if the lease is held by anyone.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// A record and the local moment it was first seen unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What the Lease said.
    pub record: LeaseRecord,
    /// When this replica first saw exactly this record.
    pub observed_at: Instant,
}

impl Observation {
    /// Folds a freshly read record into the previous observation: the
    /// observation time moves only when the record changed (a holder that
    /// renews changes `renewTime`, so a live holder keeps moving it).
    pub fn update(previous: Option<Observation>, record: LeaseRecord, now: Instant) -> Self {
        match previous {
            Some(p) if p.record == record => p,
            _ => Observation {
                record,
                observed_at: now,
            },
        }
    }
}

/// What to do with the Lease this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, held by us.
    Create,
    /// We hold it: renew it (same holder, new `renewTime`).
    Renew,
    /// Nobody holds it, or the holder let it expire: take it, counting a
    /// transition when it changes hands.
    Acquire {
        /// `leaseTransitions` to write.
        transitions: i32,
    },
    /// Someone else holds a live lease: wait.
    Follow {
        /// Who leads.
        holder: String,
        /// When the lease would expire if it is not renewed before.
        expires: Instant,
    },
}

/// The decision for `me` given the last observation of the Lease (`None`
/// when the Lease does not exist). `default_duration` applies when the
/// record names none.
pub fn decide(
    observed: Option<&Observation>,
    me: &str,
    now: Instant,
    default_duration: Duration,
) -> Decision {
    let Some(obs) = observed else {
        return Decision::Create;
    };
    let record = &obs.record;
    let Some(holder) = record.holder() else {
        return Decision::Acquire {
            transitions: record.transitions,
        };
    };
    if holder == me {
        return Decision::Renew;
    }
    let duration = record
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(default_duration, Duration::from_secs);
    let expires = obs.observed_at + duration;
    if now < expires {
        Decision::Follow {
            holder: holder.to_owned(),
            expires,
        }
    } else {
        Decision::Acquire {
            transitions: record.transitions.saturating_add(1),
        }
    }
}

/// Should a leader that last renewed at `last_renewed` stop acting as one?
/// True once `renew_deadline` has passed without a successful renewal: the
/// deadline is shorter than the lease duration, so the old leader has
/// stopped writing before anyone else may take over.
pub fn should_step_down(last_renewed: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(last_renewed) >= renew_deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "palisade-a";
    const DURATION: Duration = Duration::from_secs(15);

    fn record(
        holder: Option<&str>,
        duration: Option<i32>,
        renew: &str,
        transitions: i32,
    ) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            duration_seconds: duration,
            renew_time: Some(renew.to_owned()),
            transitions,
        }
    }

    /// The truth table of who may write.
    #[test]
    fn who_may_write() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let obs = |r: LeaseRecord, at: Instant| {
            Some(Observation {
                record: r,
                observed_at: at,
            })
        };
        let follow = |holder: &str, expires: Instant| Decision::Follow {
            holder: holder.into(),
            expires,
        };
        let cases: Vec<(&str, Option<Observation>, Instant, Decision)> = vec![
            ("no lease: create it", None, t0, Decision::Create),
            (
                "released (no holder): acquire, same transition count",
                obs(record(None, Some(15), "r1", 3), t0),
                t0,
                Decision::Acquire { transitions: 3 },
            ),
            (
                "released (empty holder, as client-go writes it): acquire",
                obs(record(Some(""), Some(1), "r1", 3), t0),
                t0,
                Decision::Acquire { transitions: 3 },
            ),
            (
                "ours: renew",
                obs(record(Some(ME), Some(15), "r1", 2), t0),
                t0 + s(100),
                Decision::Renew,
            ),
            (
                "another holder, seen just now: follow",
                obs(record(Some("palisade-b"), Some(15), "r1", 2), t0),
                t0,
                follow("palisade-b", t0 + s(15)),
            ),
            (
                "another holder, 14 s without a change: still follow",
                obs(record(Some("palisade-b"), Some(15), "r1", 2), t0),
                t0 + s(14),
                follow("palisade-b", t0 + s(15)),
            ),
            (
                "another holder, unchanged for its whole duration: take over",
                obs(record(Some("palisade-b"), Some(15), "r1", 2), t0),
                t0 + s(15),
                Decision::Acquire { transitions: 3 },
            ),
            (
                "the record's own duration counts, not ours",
                obs(record(Some("palisade-b"), Some(60), "r1", 2), t0),
                t0 + s(30),
                follow("palisade-b", t0 + s(60)),
            ),
            (
                "no duration in the record: ours",
                obs(record(Some("palisade-b"), None, "r1", 2), t0),
                t0 + s(16),
                Decision::Acquire { transitions: 3 },
            ),
            (
                "a nonsensical duration is ours too",
                obs(record(Some("palisade-b"), Some(-5), "r1", 2), t0),
                t0 + s(10),
                follow("palisade-b", t0 + s(15)),
            ),
        ];
        for (what, observed, now, want) in cases {
            assert_eq!(decide(observed.as_ref(), ME, now, DURATION), want, "{what}");
        }
    }

    #[test]
    fn the_observation_time_moves_only_when_the_record_changes() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let r1 = record(Some("palisade-b"), Some(15), "r1", 0);
        let first = Observation::update(None, r1.clone(), t0);
        assert_eq!(first.observed_at, t0);
        // The holder's clock may say anything; only a change counts.
        let same = Observation::update(Some(first.clone()), r1, later);
        assert_eq!(same.observed_at, t0, "an unchanged record keeps aging");
        let renewed = Observation::update(
            Some(same),
            record(Some("palisade-b"), Some(15), "r2", 0),
            later,
        );
        assert_eq!(renewed.observed_at, later, "a renewal restarts the clock");
    }

    #[test]
    fn a_leader_steps_down_before_anyone_may_take_over() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(!should_step_down(t0, t0 + Duration::from_secs(9), deadline));
        assert!(should_step_down(t0, t0 + Duration::from_secs(10), deadline));
        // A clock that went "backwards" (it cannot for Instant, but the
        // caller may pass an older now) is no reason to step down.
        assert!(!should_step_down(t0 + Duration::from_secs(5), t0, deadline));
        assert!(
            deadline < DURATION,
            "others wait longer than the leader tries"
        );
    }
}
