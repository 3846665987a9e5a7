//! Logging: JSON when stdout is not a terminal (in a cluster), readable
//! text on one; `RUST_LOG` sets the level. One line per decision.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::admit::{Confirmation, Webhook};
use crate::decide::{Decision, Request, Verdict};

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init() {
    init_with_writer(|| Stderr, std::io::stderr().is_terminal());
}

/// Standard error that never reports a failure. tracing-subscriber reports
/// a failed write with `eprintln!`, which panics when standard error itself
/// is what failed (a closed pipe): `palisade serve 2>&1 | head` exited 101
/// at the next log line, and a panic in a runtime worker takes its
/// connections with it. Losing log lines is better than losing the webhook.
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

/// Installs the subscriber [`init`] installs, writing to `writer`: JSON
/// lines unless `text`. The load bench uses it to pay the same per-decision
/// formatting cost as the binary without flooding its own output.
pub fn init_with_writer<W>(writer: W, text: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
    // Already installed (tests start several servers in one process).
    let _ = result;
}

/// Logs one decision: uid, user, object, verdict, and the reason.
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
    // Strings as `&str`, not `%` Display: the JSON formatter then writes
    // them as they are instead of formatting each into a buffer first.
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                webhook = webhook.as_str(),
                uid = req.uid.as_str(),
                user = req.user.username.as_str(),
                kind = req.kind.kind.as_str(),
                operation = req.operation.as_str(),
                object = object.as_str(),
                dry_run = req.dry_run,
                mode = verdict.mode.as_str(),
                decision = decision.as_str(),
                rules = rules.as_str(),
                reason = reason.as_str(),
                changes = changes.as_str(),
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
