//! Text a request supplies, bounded before it goes into a log line.
//!
//! The API server's own values are short, but anything that reaches the
//! webhook port can send a uid, kind or name of megabytes (the body limit
//! is 8 MiB), and a parse error quotes the body. Every log line that
//! carries such a value, in the server or on the shared decision path,
//! clips it here, so a line stays a few kilobytes whatever is sent.

use std::borrow::Cow;

/// Longest value a log line carries from a request, in bytes. The API
/// server's own values are far shorter (a name is at most 253 bytes, a uid
/// 36); clipped to this, the log queue of
/// [`QUEUE_LINES`](crate::server::log::QUEUE_LINES) stays a few megabytes
/// whatever is sent.
pub const FIELD_MAX: usize = 1_024;

/// `value`, cut where its JSON form (escapes included: a control
/// character takes six bytes there) would pass [`FIELD_MAX`] bytes, with
/// a note of its whole length; unchanged when it fits.
pub fn clip(value: &str) -> Cow<'_, str> {
    // Six bytes is the most one input byte can take once escaped.
    if value.len() <= FIELD_MAX / 6 {
        return Cow::Borrowed(value);
    }
    let mut escaped = 0;
    for (i, c) in value.char_indices() {
        escaped += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if escaped > FIELD_MAX {
            return Cow::Owned(format!("{}…[{} bytes]", &value[..i], value.len()));
        }
    }
    Cow::Borrowed(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_what_fits_and_cuts_the_rest_at_a_character() {
        let fits = "a".repeat(FIELD_MAX);
        assert!(matches!(clip(&fits), Cow::Borrowed(v) if v == fits));
        assert!(matches!(clip(""), Cow::Borrowed("")));

        let long = "b".repeat(FIELD_MAX + 1);
        assert_eq!(
            clip(&long),
            format!("{}…[{} bytes]", &long[..FIELD_MAX], FIELD_MAX + 1)
        );

        // "é" is two bytes: the cut falls inside one and moves back.
        let accents = format!("a{}", "é".repeat(FIELD_MAX));
        let clipped = clip(&accents);
        let (kept, note) = clipped.split_once('…').expect("clipped");
        assert_eq!(kept.len(), FIELD_MAX - 1);
        assert!(accents.starts_with(kept));
        assert_eq!(note, format!("[{} bytes]", accents.len()));

        // What counts is the length once escaped, as the line carries it.
        for (one, escaped) in [("\u{1}", 6), ("\"", 2), ("\\", 2), ("\n", 2)] {
            let long = one.repeat(FIELD_MAX);
            let clipped = clip(&long);
            let (kept, _) = clipped.split_once('…').expect("clipped");
            let kept_escaped = serde_json::to_string(kept).expect("JSON").len() - 2;
            assert!(
                kept_escaped <= FIELD_MAX && kept_escaped + escaped > FIELD_MAX,
                "{one:?}: {kept_escaped}"
            );
        }
        let fits_escaped = "\u{1}".repeat(FIELD_MAX / 6);
        assert!(matches!(clip(&fits_escaped), Cow::Borrowed(_)));
    }
}
