//! Text log fields that a client cannot use to forge log lines. Every field of every event
//! is escaped: control characters (newline, carriage return, ESC and the rest of C0 and C1,
//! DEL, and the Unicode line and paragraph separators) are written as `\n`, `\r`, `\t` or
//! `\u001b`, so one event is always one line and no value can colour a terminal. String
//! fields are quoted (a `"` or `\` inside is escaped), so a value such as
//! `x level=ERROR` cannot pass for another field. The JSON format escapes by itself.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// The text format's field formatter (`fmt().fmt_fields(EscapedFields)`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn field(&mut self, field: &Field, value: &str, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        let w = &mut self.writer;
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = (|| {
            w.write_str(sep)?;
            if field.name() == "message" {
                return escape_into(w, value, false);
            }
            write!(w, "{}=", field.name())?;
            if quoted {
                w.write_char('"')?;
                escape_into(w, value, true)?;
                w.write_char('"')
            } else {
                escape_into(w, value, false)
            }
        })();
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here as Display wrapped in Debug: their text, unquoted.
        self.field(field, &format!("{value:?}"), false);
    }
}

/// Writes `s` with control characters escaped; `quoted` escapes `"` and `\` too.
pub fn escape_into(w: &mut impl Write, s: &str, quoted: bool) -> fmt::Result {
    for c in s.chars() {
        match c {
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            '"' | '\\' if quoted => {
                w.write_char('\\')?;
                w.write_char(c)?;
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                write!(w, "\\u{:04x}", c as u32)?
            }
            c => w.write_char(c)?,
        }
    }
    Ok(())
}

/// `s` with control characters escaped (see [`escape_into`]).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = escape_into(&mut out, s, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape("evil\n\u{1b}[31mFAKE LOG LINE level=ERROR"),
            "evil\\n\\u001b[31mFAKE LOG LINE level=ERROR"
        );
        assert_eq!(
            escape("a\r\tb\u{0}\u{7f}\u{9b}\u{2028}"),
            "a\\r\\tb\\u0000\\u007f\\u009b\\u2028"
        );
        assert_eq!(escape("gpt-4o ünïcode \"q\""), "gpt-4o ünïcode \"q\"");
        let mut quoted = String::new();
        escape_into(&mut quoted, "a\"b\\c", true).unwrap();
        assert_eq!(quoted, "a\\\"b\\\\c");
    }

    #[test]
    fn events_are_one_line_with_quoted_strings() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(move || out.clone())
            .finish();
        let model = "evil\n\u{1b}[31mFAKE LOG LINE level=ERROR";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(model, path = %"/v1/\u{1b}x", n = 3, "request\nsecond");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains(r#"request\nsecond model="evil\n\u001b[31mFAKE LOG LINE level=ERROR" path=/v1/\u001bx n=3"#),
            "{text:?}"
        );
    }
}
