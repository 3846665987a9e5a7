//! What the leader writes next into the certificate Secret (pure).
//!
//! The facts come from [`super::material`]; the answer is one [`Step`].
//! A CA rotation takes several steps, each written and re-read before the
//! next: (1) a new CA, the old one kept as `ca-previous.crt`, while replicas
//! keep serving the old certificate; the webhooks' bundle becomes both CAs;
//! (2) once both webhook configurations have trusted both for
//! [`Policy::settle`], a serving certificate from the new CA; (3) once that
//! has been out for [`Policy::propagation`] (every replica reads the Secret
//! through a watch, within seconds), the old CA leaves the Secret and then
//! the bundle. No review fails on the way: at every moment each served
//! certificate chains to a CA the API server trusts.

use std::time::Duration;

/// Lifetimes and margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a new CA is valid.
    pub ca_validity: Duration,
    /// How long a new serving certificate is valid (never past its CA).
    pub serving_validity: Duration,
    /// Rotate the CA when less than this is left.
    pub ca_renew_before: Duration,
    /// Re-issue the serving certificate when less than this is left.
    pub serving_renew_before: Duration,
    /// How long both webhook configurations must have trusted a new CA
    /// before the serving certificate switches to it (the API servers'
    /// caches of the configurations catch up in that time).
    pub settle: Duration,
    /// How long a serving certificate of the new CA must have been out
    /// before the previous CA is dropped (replicas load it from their watch).
    pub propagation: Duration,
}

const DAY: u64 = 86_400;

impl Default for Policy {
    /// A CA of 5 years renewed a year ahead; serving certificates of 90
    /// days renewed 30 days ahead (so the 7-day expiry alert means renewal
    /// has been failing for three weeks).
    fn default() -> Self {
        Policy {
            ca_validity: Duration::from_secs(5 * 365 * DAY),
            serving_validity: Duration::from_secs(90 * DAY),
            ca_renew_before: Duration::from_secs(365 * DAY),
            serving_renew_before: Duration::from_secs(30 * DAY),
            settle: Duration::from_secs(30),
            propagation: Duration::from_secs(5 * 60),
        }
    }
}

/// What an operator asked for with the `palisade.io/rotate` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// `serving`: a new serving certificate now, same CA.
    Serving,
    /// `ca`: a CA rotation now.
    Ca,
}

/// The serving certificate in the Secret, as judged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// No `tls.crt`/`tls.key`.
    Missing,
    /// Present but unusable: unparseable, key mismatch, wrong names,
    /// expired, or from no CA in the Secret.
    Unusable(String),
    /// Usable.
    Valid {
        /// notAfter, unix seconds.
        not_after: i64,
        /// When it was written (`palisade.io/serving-issued-at`), if known.
        issued_at: Option<i64>,
        /// Signed by the current CA (else by the previous one).
        by_current_ca: bool,
    },
}

/// Everything the plan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Unix seconds.
    pub now: i64,
    /// notAfter of the current CA, if a usable one (certificate and
    /// matching key, not expired) is in the Secret.
    pub ca_not_after: Option<i64>,
    /// notAfter of `ca-previous.crt`, if there is one.
    pub previous_ca_not_after: Option<i64>,
    /// The serving certificate.
    pub serving: Serving,
    /// The operator's request, if any.
    pub force: Option<Force>,
    /// Since when both webhook configurations have carried exactly the
    /// bundle this Secret calls for; `None` while they do not.
    pub webhooks_trusted_since: Option<i64>,
}

/// The next write, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write a new CA and a serving certificate from it (and no previous
    /// CA): there is no usable CA.
    Bootstrap {
        /// Why.
        reason: String,
    },
    /// Write a new serving certificate from the current CA.
    IssueServing {
        /// Why.
        reason: String,
    },
    /// Move the current CA to `ca-previous.crt` and write a new CA; the
    /// serving certificate stays.
    RotateCa {
        /// Why.
        reason: String,
    },
    /// Remove `ca-previous.crt`: the rotation is complete.
    DropPreviousCa,
    /// Nothing to write; look again at `recheck_at` (unix seconds) or when
    /// something changes.
    Idle {
        /// When time alone would make the next step due.
        recheck_at: i64,
        /// What is awaited, for the logs.
        waiting_for: &'static str,
    },
}

impl Step {
    /// Does writing this step answer the operator's request?
    pub fn satisfies(&self, force: Force) -> bool {
        match self {
            Step::Bootstrap { .. } => true,
            Step::IssueServing { .. } => force == Force::Serving,
            Step::RotateCa { .. } => force == Force::Ca,
            Step::DropPreviousCa | Step::Idle { .. } => false,
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The next step for the Secret described by `f`.
pub fn plan(f: &Facts, p: &Policy) -> Step {
    let now = f.now;
    let Some(ca_not_after) = f.ca_not_after else {
        return Step::Bootstrap {
            reason: "the Secret holds no usable CA".into(),
        };
    };
    let rotating = f.previous_ca_not_after.is_some_and(|t| t > now);

    if rotating {
        match &f.serving {
            // Step 2: switch the serving certificate once the bundle settled.
            Serving::Valid {
                by_current_ca: false,
                ..
            } => {
                return match f.webhooks_trusted_since {
                    Some(since) if now >= since.saturating_add(secs(p.settle)) => {
                        Step::IssueServing {
                            reason: "CA rotation: both webhook configurations trust the new CA"
                                .into(),
                        }
                    }
                    Some(since) => Step::Idle {
                        recheck_at: since.saturating_add(secs(p.settle)),
                        waiting_for: "the new caBundle to settle in the API servers",
                    },
                    None => Step::Idle {
                        recheck_at: now.saturating_add(60),
                        waiting_for: "both webhook configurations to trust the new CA",
                    },
                };
            }
            // Step 3: drop the old CA once the new certificate spread.
            Serving::Valid {
                by_current_ca: true,
                issued_at,
                ..
            } => {
                let due = issued_at.map_or(now, |t| t.saturating_add(secs(p.propagation)));
                return if now >= due {
                    Step::DropPreviousCa
                } else {
                    Step::Idle {
                        recheck_at: due,
                        waiting_for: "every replica to load the serving certificate of the new CA",
                    }
                };
            }
            // Nothing usable is served: issue from the new CA at once
            // (nothing is being kept alive by waiting).
            Serving::Missing | Serving::Unusable(_) => {}
        }
    } else if f.previous_ca_not_after.is_some() {
        // An expired previous CA protects nobody.
        return Step::DropPreviousCa;
    }

    if !rotating {
        if f.force == Some(Force::Ca) {
            return Step::RotateCa {
                reason: "requested with palisade.io/rotate=ca".into(),
            };
        }
        if ca_not_after.saturating_sub(now) < secs(p.ca_renew_before) {
            return Step::RotateCa {
                reason: format!(
                    "the CA expires in {} days",
                    ca_not_after.saturating_sub(now) / 86_400
                ),
            };
        }
    }

    match &f.serving {
        Serving::Missing => Step::IssueServing {
            reason: "there is no serving certificate".into(),
        },
        Serving::Unusable(why) => Step::IssueServing {
            reason: format!("the serving certificate is unusable: {why}"),
        },
        Serving::Valid { not_after, .. } => {
            if f.force == Some(Force::Serving) && !rotating {
                return Step::IssueServing {
                    reason: "requested with palisade.io/rotate=serving".into(),
                };
            }
            let renew_at = not_after.saturating_sub(secs(p.serving_renew_before));
            if now >= renew_at {
                return Step::IssueServing {
                    reason: format!(
                        "the serving certificate expires in {} days",
                        not_after.saturating_sub(now) / 86_400
                    ),
                };
            }
            let ca_renew_at = ca_not_after.saturating_sub(secs(p.ca_renew_before));
            Step::Idle {
                recheck_at: renew_at.min(ca_renew_at),
                waiting_for: "the next renewal",
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const D: i64 = 86_400;

    fn policy() -> Policy {
        Policy {
            settle: Duration::from_secs(30),
            propagation: Duration::from_secs(300),
            ..Policy::default()
        }
    }

    fn valid(days_left: i64, by_current_ca: bool, issued_ago: Option<i64>) -> Serving {
        Serving::Valid {
            not_after: NOW + days_left * D,
            issued_at: issued_ago.map(|a| NOW - a),
            by_current_ca,
        }
    }

    fn facts(ca_days: Option<i64>, previous_days: Option<i64>, serving: Serving) -> Facts {
        Facts {
            now: NOW,
            ca_not_after: ca_days.map(|d| NOW + d * D),
            previous_ca_not_after: previous_days.map(|d| NOW + d * D),
            serving,
            force: None,
            webhooks_trusted_since: Some(NOW - 3600),
        }
    }

    fn kind(s: &Step) -> &'static str {
        match s {
            Step::Bootstrap { .. } => "bootstrap",
            Step::IssueServing { .. } => "issue-serving",
            Step::RotateCa { .. } => "rotate-ca",
            Step::DropPreviousCa => "drop-previous",
            Step::Idle { .. } => "idle",
        }
    }

    /// When to renew, and what to write across a CA rotation.
    #[test]
    fn plan_truth_table() {
        let with = |mut f: Facts, g: &dyn Fn(&mut Facts)| {
            g(&mut f);
            f
        };
        let steady = facts(Some(1000), None, valid(60, true, Some(D)));
        let cases: Vec<(&str, Facts, &str)> = vec![
            // First install and broken Secrets.
            (
                "empty Secret",
                facts(None, None, Serving::Missing),
                "bootstrap",
            ),
            (
                "no usable CA, a certificate left",
                facts(None, None, valid(60, true, None)),
                "bootstrap",
            ),
            (
                "no usable CA mid-rotation",
                facts(None, Some(100), valid(60, false, None)),
                "bootstrap",
            ),
            // Steady state and serving renewal.
            ("all good", steady.clone(), "idle"),
            (
                "serving certificate missing",
                facts(Some(1000), None, Serving::Missing),
                "issue-serving",
            ),
            (
                "serving certificate unusable",
                facts(Some(1000), None, Serving::Unusable("x".into())),
                "issue-serving",
            ),
            (
                "31 days left: keep",
                facts(Some(1000), None, valid(31, true, None)),
                "idle",
            ),
            (
                "30 days left: renew",
                facts(Some(1000), None, valid(30, true, None)),
                "issue-serving",
            ),
            (
                "expired leaf (judged unusable upstream)",
                facts(Some(1000), None, Serving::Unusable("expired".into())),
                "issue-serving",
            ),
            (
                "forced serving",
                with(steady.clone(), &|f| f.force = Some(Force::Serving)),
                "issue-serving",
            ),
            // CA renewal starts a rotation.
            (
                "CA with 366 days left: keep",
                facts(Some(366), None, valid(60, true, None)),
                "idle",
            ),
            (
                "CA with 364 days left: rotate",
                facts(Some(364), None, valid(60, true, None)),
                "rotate-ca",
            ),
            (
                "forced CA",
                with(steady.clone(), &|f| f.force = Some(Force::Ca)),
                "rotate-ca",
            ),
            (
                "CA due and leaf due: the CA first",
                facts(Some(10), None, valid(5, true, None)),
                "rotate-ca",
            ),
            // Mid-rotation, step 2: switch the leaf once the bundle settled.
            (
                "rotating, webhooks not yet trusting both",
                with(
                    facts(Some(1825), Some(300), valid(60, false, Some(D))),
                    &|f| f.webhooks_trusted_since = None,
                ),
                "idle",
            ),
            (
                "rotating, trusted 10 s ago",
                with(
                    facts(Some(1825), Some(300), valid(60, false, Some(D))),
                    &|f| f.webhooks_trusted_since = Some(NOW - 10),
                ),
                "idle",
            ),
            (
                "rotating, trusted 30 s ago",
                with(
                    facts(Some(1825), Some(300), valid(60, false, Some(D))),
                    &|f| f.webhooks_trusted_since = Some(NOW - 30),
                ),
                "issue-serving",
            ),
            (
                "rotating, nothing served: issue at once",
                with(facts(Some(1825), Some(300), Serving::Missing), &|f| {
                    f.webhooks_trusted_since = None
                }),
                "issue-serving",
            ),
            // Step 3: drop the old CA once the new leaf spread.
            (
                "rotating, new leaf 60 s old",
                facts(Some(1825), Some(300), valid(90, true, Some(60))),
                "idle",
            ),
            (
                "rotating, new leaf 300 s old",
                facts(Some(1825), Some(300), valid(90, true, Some(300))),
                "drop-previous",
            ),
            (
                "rotating, new leaf of unknown age",
                facts(Some(1825), Some(300), valid(90, true, None)),
                "drop-previous",
            ),
            (
                "an expired previous CA goes",
                facts(Some(1825), Some(-1), valid(90, true, Some(1))),
                "drop-previous",
            ),
            // Requests wait for a rotation to finish rather than break it.
            (
                "forced CA mid-rotation: finish first",
                with(
                    facts(Some(1825), Some(300), valid(60, false, Some(D))),
                    &|f| {
                        f.force = Some(Force::Ca);
                        f.webhooks_trusted_since = None;
                    },
                ),
                "idle",
            ),
            (
                "forced serving mid-rotation: finish first",
                with(
                    facts(Some(1825), Some(300), valid(90, true, Some(60))),
                    &|f| f.force = Some(Force::Serving),
                ),
                "idle",
            ),
        ];
        for (what, f, want) in cases {
            let got = plan(&f, &policy());
            assert_eq!(kind(&got), want, "{what}: {got:?}");
        }
    }

    #[test]
    fn idle_names_when_to_look_again() {
        let p = policy();
        let f = facts(Some(1000), None, valid(60, true, None));
        assert_eq!(
            plan(&f, &p),
            Step::Idle {
                recheck_at: NOW + 60 * D - 30 * D,
                waiting_for: "the next renewal"
            }
        );
        let f = facts(Some(400), None, valid(90, true, None));
        let Step::Idle { recheck_at, .. } = plan(&f, &p) else {
            panic!("idle")
        };
        assert_eq!(recheck_at, NOW + 35 * D, "the CA's renewal comes first");
        let mut f = facts(Some(1825), Some(300), valid(60, false, Some(D)));
        f.webhooks_trusted_since = Some(NOW - 10);
        assert!(matches!(plan(&f, &p), Step::Idle { recheck_at, .. } if recheck_at == NOW + 20));
    }

    #[test]
    fn which_step_answers_which_request() {
        let issue = Step::IssueServing {
            reason: String::new(),
        };
        let rotate = Step::RotateCa {
            reason: String::new(),
        };
        let boot = Step::Bootstrap {
            reason: String::new(),
        };
        assert!(issue.satisfies(Force::Serving) && !issue.satisfies(Force::Ca));
        assert!(rotate.satisfies(Force::Ca) && !rotate.satisfies(Force::Serving));
        assert!(boot.satisfies(Force::Ca) && boot.satisfies(Force::Serving));
        assert!(!Step::DropPreviousCa.satisfies(Force::Ca));
    }
}
