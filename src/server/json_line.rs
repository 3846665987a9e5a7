//! The JSON log line of palisade's own events, written directly.
//!
//! tracing-subscriber's JSON formatter serializes each event through
//! serde_json into an adaptor that checks every piece again as UTF-8; in
//! the load bench that was over a quarter of the review handler's time
//! (perf: the decision line 7% of all samples, parsing the review 5%).
//! [`JsonLines`] writes palisade's own events that sit in no span (every
//! decision line) straight into the line buffer, byte for byte as that
//! formatter does (the tests below compare the two); every other event
//! (one in a span, a record bridged from the `log` crate) goes to that
//! formatter unchanged.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of palisade's JSON logs: one object per line with
/// `timestamp`, `level`, the event's fields, and `target`.
#[derive(Debug)]
pub struct JsonLines {
    /// tracing-subscriber's formatter, configured as palisade's lines are,
    /// for the events not written here.
    general: Format<Json>,
}

impl Default for JsonLines {
    fn default() -> Self {
        JsonLines {
            general: Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // In a span the general formatter adds the span list; a `log`
        // record has the target "log" and metadata to normalise.
        let in_span = event.parent().is_some() || ctx.lookup_current().is_some();
        if in_span || !meta.target().starts_with("palisade") {
            return self.general.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(level(meta.level()))?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Writes each field as `,"name":value`, typed as tracing-serde's map
/// visitor types it: strings and `Debug` values as JSON strings, numbers
/// and booleans bare.
struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                string(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own float text (shortest round trip, `null` for
        // NaN and infinities); rare enough to allocate.
        let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        self.entry(field, |w| w.write_str(&text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `value` as a JSON string.
fn string(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(value)?;
    w.write_char('"')
}

/// Escapes what passes through as serde_json escapes a string's contents:
/// `"` and `\`, and control characters below U+0020 (the short forms
/// where JSON has one, else `\u00xx`).
struct Escaped<'w, 'a>(&'w mut Writer<'a>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Every byte escaped is ASCII, so `i` is a character boundary.
            self.0.write_str(&s[start..i])?;
            if short.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(short)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
        }
    }

    /// The lines `emit` logs in palisade's JSON format (every level).
    pub(crate) fn lines(emit: impl Fn()) -> String {
        let out = Buffer::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        out.text()
    }

    /// The lines `emit` logs through [`JsonLines`] and through
    /// tracing-subscriber's formatter as palisade used to configure it.
    fn both(emit: impl Fn()) -> (String, String) {
        let ours = lines(&emit);
        let theirs = Buffer::default();
        let w = theirs.clone();
        let general = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(general, &emit);
        (ours, theirs.text())
    }

    /// The lines, each without its timestamp (the two runs differ in
    /// time), after checking each has one.
    fn untimed(lines: &str) -> Vec<String> {
        lines
            .lines()
            .map(|l| {
                let rest = l
                    .strip_prefix("{\"timestamp\":\"")
                    .unwrap_or_else(|| panic!("no timestamp first: {l}"));
                let (time, rest) = rest.split_once('"').expect("timestamp ends");
                assert!(time.ends_with('Z') && time.contains('T'), "{time}");
                rest.to_owned()
            })
            .collect()
    }

    fn assert_same(emit: impl Fn()) {
        let (ours, theirs) = both(emit);
        assert!(!ours.is_empty());
        assert_eq!(
            untimed(&ours),
            untimed(&theirs),
            "\nours:   {ours}\ntheirs: {theirs}"
        );
    }

    #[test]
    fn every_kind_of_field_is_written_as_the_general_formatter_writes_it() {
        assert_same(|| {
            tracing::info!(
                text = "plain",
                quoted = "a \"quote\", a \\ and a / slash",
                controls = "tab\tnewline\nreturn\rbell\u{7}nul\u{0}bs\u{8}ff\u{c}esc\u{1b}del\u{7f}",
                unicode = "héllo → 世界 🎉",
                yes = true,
                no = false,
                big = u64::MAX,
                negative = i64::MIN,
                zero = 0u64,
                float = 1.0f64,
                tenth = 0.1f64,
                nan = f64::NAN,
                infinite = f64::INFINITY,
                wide = 1u128 << 100,
                debug = ?Some("in \"debug\"\n"),
                display = %"shown\twith a tab",
                error = &io::Error::other("broken \"pipe\"") as &(dyn std::error::Error + 'static),
                "a message with {} and \"quotes\"",
                "arguments"
            );
            tracing::warn!("only a message");
            tracing::error!(code = 7, "an error");
            tracing::debug!(empty = "", "debug");
            tracing::trace!(r#type = "raw identifier", "trace");
        });
    }

    #[test]
    fn events_in_spans_and_from_other_targets_go_to_the_general_formatter() {
        let (ours, theirs) = both(|| {
            let span = tracing::info_span!("watch", resource = "namespaces");
            let _in = span.enter();
            tracing::info!(n = 1, "in a span");
        });
        assert_eq!(untimed(&ours), untimed(&theirs));
        assert!(ours.contains("\"spans\":[{"), "{ours}");
        assert_same(|| tracing::info!(target: "kube_runtime::watcher", n = 2, "another target"));
    }

    #[test]
    fn a_decision_line_is_the_same_line() {
        use crate::admit::{Confirmation, Webhook};
        use crate::decide::{Gvk, Object, User, Verdict};
        let pod = Gvk::new("", "v1", "Pod");
        let user = User {
            username: "system:serviceaccount:kube-system:replicaset-controller".into(),
            groups: vec![],
        };
        let mut req = crate::check::create_request(
            &pod,
            Some("fx-apps"),
            "web-\"0\"",
            &user,
            Object::Pod(Box::default()),
            "705ab4f5-6393-11e8-b7cc-42010a800002".into(),
        );
        req.dry_run = true;
        let mut verdict = Verdict::new(crate::mode::Mode::Enforce);
        verdict.changes.push("label role=web".into());
        assert_same(|| {
            super::super::log::decision(
                Webhook::Mutate,
                &req,
                &verdict,
                Confirmation::NotNeeded,
                std::time::Duration::from_micros(42),
            );
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in any::<String>(), bytes in prop::collection::vec(0u8..0x80, 0..64)) {
            let ascii = String::from_utf8(bytes).expect("ASCII");
            let (ours, theirs) = both(|| {
                tracing::info!(s = s.as_str(), ascii = ascii.as_str(), debug = ?s, "m");
            });
            prop_assert_eq!(untimed(&ours), untimed(&theirs));
        }
    }
}
