//! Logging: JSON when stderr is not a terminal (in a cluster), readable
//! text on one; `RUST_LOG` sets the level. One line per decision.
//!
//! Lines are written by a thread of their own, never by the runtime's
//! workers: a review must not wait on a log reader. If nobody drains
//! stderr (a stalled container runtime, a full pipe), a synchronous write
//! blocks the worker that logs, then the next, and the webhook stops
//! answering: every pod creation in the cluster fails or, with
//! `failurePolicy: Ignore`, goes through unchecked. So the queue is
//! bounded and lossy: past [`QUEUE_LINES`] waiting lines, new ones are
//! dropped and counted (`palisade_log_lines_dropped_total`), and reviews go
//! on being answered. Decisions are counted in the metrics either way.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

use super::json_line::JsonLines;
use super::log_queue::{self, LineQueue};

use crate::admit::{Confirmation, Webhook};
use crate::decide::{Decision, Request, Verdict};
use crate::log_field::clip;

/// Log lines held while the writer falls behind, before new ones are
/// dropped. A decision line is about half a kilobyte: the queue absorbs
/// two seconds of stalled stderr at 2,000 reviews/s (a minute at the rate
/// of a busy cluster) in about 2 MiB. With every value from the request
/// [`clip`]ped to its longest, a line is at most about 7 KiB, so even a
/// hostile client cannot make the queue hold more than about 28 MiB, well
/// under the 128 MiB limit of deploy/.
pub const QUEUE_LINES: usize = 4_096;

/// The queue of the installed subscriber, for the count of dropped lines.
static QUEUE: OnceLock<LineQueue> = OnceLock::new();

/// Keeps the log writer's thread. Dropping it writes out the lines still
/// queued (waiting at most about a second if stderr is stalled), so hold
/// it until the process ends.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct Guard {
    _writer: Option<log_queue::Guard>,
}

/// Installs the global subscriber, writing to stderr (once; later calls
/// are no-ops and return an empty guard).
pub fn init() -> Guard {
    init_with_writer(Stderr, std::io::stderr().is_terminal())
}

/// Standard error that never reports a failure. tracing's writers report
/// a failed write with `eprintln!`, which panics when standard error itself
/// is what failed (a closed pipe): `palisade serve 2>&1 | head` exited 101
/// at the next log line. Losing log lines is better than losing the
/// webhook.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Installs the subscriber [`init`] installs, writing to `writer` through
/// the same bounded queue and thread ([`log_queue`]): JSON lines unless
/// `text`. The load bench uses it to pay the same per-decision cost as the
/// binary without flooding its own output.
pub fn init_with_writer<W: Write + Send + 'static>(writer: W, text: bool) -> Guard {
    if tracing::dispatcher::has_been_set() {
        // Already installed (tests start several servers in one process).
        return Guard { _writer: None };
    }
    match log_queue::spawn(writer, QUEUE_LINES, "palisade-log") {
        Ok((queue, guard)) => {
            if install(queue.clone(), text) {
                let _ = QUEUE.set(queue);
                return Guard {
                    _writer: Some(guard),
                };
            }
            // Installed by another thread meanwhile: this queue is unused.
            Guard { _writer: None }
        }
        Err(e) => {
            // No thread to spare at start-up: log synchronously, to
            // stderr (`writer` went with the thread that never started),
            // rather than not at all.
            install(|| Stderr, text);
            tracing::warn!(error = %e, "cannot start the log writer thread; logging synchronously");
            Guard { _writer: None }
        }
    }
}

/// Sets the global subscriber writing to `make`; false if one was set.
fn install<M>(make: M, text: bool) -> bool
where
    M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(make);
    let result = if text {
        builder.try_init()
    } else {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .try_init()
    };
    result.is_ok()
}

/// Log lines dropped because the queue was full (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    QUEUE.get().map_or(0, LineQueue::dropped_lines)
}

/// Logs one decision: uid, user, object, verdict, and the reason. Values
/// that come from the request are [`clip`]ped.
pub fn decision(
    webhook: Webhook,
    req: &Request,
    verdict: &Verdict,
    confirmation: Confirmation,
    elapsed: Duration,
) {
    let decision = verdict.decision();
    let rules: Vec<&str> = verdict.violations.iter().map(|v| v.rule.as_str()).collect();
    let reason: Vec<String> = verdict.violations.iter().map(|v| v.summary()).collect();
    let (rules, reason) = (rules.join(","), reason.join(" | "));
    let changes = verdict.changes.join("; ");
    let object = req.subject();
    let (uid, user, kind) = (
        clip(&req.uid),
        clip(&req.user.username),
        clip(&req.kind.kind),
    );
    let (object, reason, changes) = (clip(&object), clip(&reason), clip(&changes));
    // Strings as `&str`, not `%` Display: the JSON formatter then writes
    // them as they are instead of formatting each into a buffer first.
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                webhook = webhook.as_str(),
                uid = uid.as_ref(),
                user = user.as_ref(),
                kind = kind.as_ref(),
                operation = req.operation.as_str(),
                object = object.as_ref(),
                dry_run = req.dry_run,
                mode = verdict.mode.as_str(),
                decision = decision.as_str(),
                rules = rules.as_str(),
                reason = reason.as_ref(),
                changes = changes.as_ref(),
                confirmation = ?confirmation,
                micros = elapsed.as_micros() as u64,
                "admission decision"
            )
        };
    }
    match decision {
        Decision::Deny | Decision::WouldDeny => emit!(warn),
        Decision::Skip => emit!(debug),
        _ => emit!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_field::FIELD_MAX;

    /// The decision line as the binary writes it (JSON, flattened), for a
    /// request whose uid, user, kind and name are a megabyte each: the
    /// line stays a few kilobytes and is still one JSON object.
    #[test]
    fn a_decision_line_carries_clipped_request_values() {
        use crate::decide::{Gvk, Object, User};

        let huge = "x".repeat(1 << 20);
        let kind = Gvk::new("example.com", "v1", &huge);
        let user = User {
            username: huge.clone(),
            groups: vec![],
        };
        let req = crate::check::create_request(
            &kind,
            Some("shop"),
            &huge,
            &user,
            Object::Other(kind.clone()),
            huge.clone(),
        );
        let line = crate::server::json_line::tests::lines(|| {
            decision(
                Webhook::Validate,
                &req,
                &Verdict::new(crate::mode::Mode::Enforce),
                Confirmation::NotNeeded,
                Duration::from_micros(7),
            );
        });
        assert!(line.len() < 8 * FIELD_MAX, "{} bytes", line.len());
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
        let clipped = format!("{}…[{} bytes]", &huge[..FIELD_MAX], huge.len());
        for field in ["uid", "user", "kind"] {
            assert_eq!(v[field], clipped.as_str(), "{field}");
        }
        assert!(
            v["object"].as_str().is_some_and(|o| o.ends_with(" bytes]")),
            "{v}"
        );
        assert_eq!(v["message"], "admission decision");
        assert_eq!(v["micros"], 7);
    }
}
