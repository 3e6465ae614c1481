//! A validating JSON cursor for the dialects' hot paths: reading the few members telemetry
//! needs from a stream event without building serde's machinery around every skipped value.
//!
//! The contract that keeps it safe is one-sided: every reader built on it answers `None`
//! ("not sure") for anything outside the shapes it handles, and the dialect then parses the
//! same bytes with serde_json, which stays the reference. So a reader may be *stricter* than
//! serde_json (rejecting valid JSON it does not want to reason about: numbers other than
//! plain integers where a number is read, lone surrogate escapes, deep nesting, non-ASCII
//! keys), never laxer: whatever it accepts, serde_json accepts too and reads the same way.
//! The checks below therefore mirror serde_json 1.x's `SliceRead`: control characters inside
//! strings and unknown escapes are errors, UTF-8 is checked for strings that are read (keys
//! and kept values) but not for skipped ones, and only JSON whitespace is skipped.

use std::borrow::Cow;

/// Deepest nesting of skipped arrays and objects the cursor follows before it gives up
/// (serde_json's own limit is 128; anything near it is left to serde_json).
const MAX_DEPTH: u32 = 32;

/// A position in one JSON text. Every method returns `None` when the text is not what it
/// expects (or not something it vouches for); the caller then falls back to serde_json.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Skips JSON whitespace (space, tab, LF, CR) and returns the next byte, if any.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.data.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// The offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// Reads an object's members: `member` is called with each key (raw bytes; keys with
    /// escapes or non-ASCII bytes are refused) and must consume its value.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads an array's items: `item` is called before each one and must consume it.
    pub(crate) fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key: ASCII without escapes or control bytes (every key these APIs define).
    fn key(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let len = find_special(self.data.get(start..)?)?;
        let key = &self.data[start..start + len];
        // The first special byte must be the closing quote (no escape, no control byte).
        if self.data[start + len] != b'"' || !key.is_ascii() {
            return None;
        }
        self.pos = start + len + 1;
        Some(key)
    }

    /// Consumes `null`, `true` or `false` and reports whether it was one of them (the
    /// cursor does not move otherwise).
    pub(crate) fn literal(&mut self) -> Option<bool> {
        let word: &[u8] = match self.peek()? {
            b'n' => b"null",
            b't' => b"true",
            b'f' => b"false",
            _ => return Some(false),
        };
        if self.data.get(self.pos..self.pos + word.len())? != word {
            return None;
        }
        self.pos += word.len();
        Some(true)
    }

    /// Consumes `null` and reports whether it was there.
    pub(crate) fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal()
    }

    /// A string value, unescaped: borrowed when it has no escapes. Refuses invalid UTF-8,
    /// control characters, unknown escapes and surrogate escapes (serde_json decides those).
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        let (raw, escaped) = self.raw_string()?;
        if !escaped {
            return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'\\', &raw[i..]) {
            out.extend_from_slice(&raw[i..i + at]);
            i += at + 1;
            let c = match raw[i] {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                // `u`: four hex digits (checked by `raw_string`).
                _ => {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 5]).ok()?;
                    let unit = u32::from_str_radix(hex, 16).ok()?;
                    i += 4;
                    // A surrogate (paired or not) is left to serde_json.
                    char::from_u32(unit)?
                }
            };
            i += 1;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        out.extend_from_slice(&raw[i..]);
        String::from_utf8(out).ok().map(Cow::Owned)
    }

    /// A string's raw bytes between its quotes, and whether it holds escapes. Checks what
    /// serde_json checks when it skips a string: no control characters, only known escapes
    /// (`\u` with four hex digits).
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i += find_special(self.data.get(i..)?)?;
            match self.data[i] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match *self.data.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = self.data.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
        self.pos = i + 1;
        Some((&self.data[start..i], escaped))
    }

    /// A non-negative integer written as plain digits that fits a `u64`; `None` for any other
    /// number (a fraction, an exponent, a sign), which serde_json reads differently.
    pub(crate) fn plain_u64(&mut self) -> Option<u64> {
        self.peek()?;
        let digits = self.data[self.pos..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.data.len() - self.pos);
        let text = &self.data[self.pos..self.pos + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        if matches!(self.data.get(self.pos + digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n: u64 = 0;
        for &d in text {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.pos += digits;
        Some(n)
    }

    /// Skips one value of any type, checking it as serde_json checks what it ignores.
    pub(crate) fn skip(&mut self) -> Option<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(drop),
            b'{' if depth < MAX_DEPTH => self.object(|c, _| c.skip_at(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(|c| c.skip_at(depth + 1)),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => self.literal()?.then_some(()),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        let d = self.data;
        let mut i = self.pos;
        if d.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: usize| {
            d[i.min(d.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let int = digits(i);
        if int == 0 || (int > 1 && d[i] == b'0') {
            return None;
        }
        i += int;
        if d.get(i) == Some(&b'.') {
            let frac = digits(i + 1);
            if frac == 0 {
                return None;
            }
            i += 1 + frac;
        }
        if matches!(d.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(d.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp = digits(i);
            if exp == 0 {
                return None;
            }
            i += exp;
        }
        self.pos = i;
        Some(())
    }
}

/// Index of the first `"`, `\` or control character (below 0x20) in `s`, eight bytes at a
/// time (Mycroft's zero-byte test, as serde_json does it).
#[inline]
fn find_special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let ctrl = v.wrapping_sub(ONES * 0x20) & !v;
        let q = v ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let bs = v ^ (ONES * u64::from(b'\\'));
        let backslash = bs.wrapping_sub(ONES) & !bs;
        let hit = (ctrl | quote | backslash) & HIGH;
        if hit != 0 {
            return Some(base + hit.trailing_zeros() as usize / 8);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips one whole value the way a reader does: `Some` only for a value followed by
    /// nothing but whitespace.
    fn skips(text: &[u8]) -> bool {
        let mut c = Cursor::new(text);
        c.skip().is_some() && c.at_end()
    }

    #[test]
    fn special_bytes_are_found_in_every_lane() {
        for len in 0..40 {
            for at in 0..len {
                for b in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert_eq!(find_special(&s), Some(at), "{len} {at} {b}");
                }
            }
            let mut s = vec![0xC3u8; len];
            s.extend_from_slice(b" ~\x7f\x20");
            assert_eq!(find_special(&s), None);
        }
    }

    #[test]
    fn strings_unescape_or_refuse() {
        let read = |s: &str| Cursor::new(s.as_bytes()).string().map(Cow::into_owned);
        assert_eq!(read(r#""plain""#).as_deref(), Some("plain"));
        assert_eq!(
            read(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC""#).as_deref(),
            Some("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{20ac}")
        );
        assert_eq!(read("\"h\u{e9}\"").as_deref(), Some("h\u{e9}"));
        for bad in [
            r#""\ud83d\ude00""#,
            r#""\udc00""#,
            r#""\x""#,
            r#""\u12""#,
            "\"a\nb\"",
            "\"open",
            "x",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
        assert_eq!(Cursor::new(b"\"\xff\"").string(), None);
    }

    /// The skipper accepts only what serde_json accepts (it may refuse more).
    #[test]
    fn skipping_is_never_laxer_than_serde() {
        let cases: &[&[u8]] = &[
            b"0",
            b"-0",
            b"1.5e-3",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b".5",
            b"+1",
            b"1E+2",
            b"true",
            b"tru",
            b"nul",
            b"null",
            b"falsey",
            b"\"a\\qb\"",
            b"\"\\u12g4\"",
            b"\"\x01\"",
            b"\"\xff\"",
            b"[1,2,]",
            b"[,]",
            b"[]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"{}",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            b"{\"a\":{\"b\":[1,{\"c\":\"\\u00e9\"}]}} ",
            b"  [ 1 , \"x\" ] ",
        ];
        for text in cases {
            let serde = serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok();
            if skips(text) {
                assert!(serde, "{}", String::from_utf8_lossy(text));
            }
        }
        assert!(skips(b"{\"a\":{\"b\":[1,{\"c\":\"\\u00e9\"}]}} "));
        assert!(
            skips(b"\"\xff\""),
            "skipped strings are not checked as UTF-8, as in serde"
        );
    }

    #[test]
    fn plain_integers_only() {
        let read = |s: &str| Cursor::new(s.as_bytes()).plain_u64();
        assert_eq!(read("0"), Some(0));
        assert_eq!(read("18446744073709551615"), Some(u64::MAX));
        for other in ["18446744073709551616", "01", "1.0", "1e3", "-1", "x"] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the skipper accepts whole, serde_json accepts.
        #[test]
        fn any_text_skipped_is_json(text in "[\\[\\]{}:,\"a-z0-9 .eE+\\-\\\\u]{0,40}") {
            if skips(text.as_bytes()) {
                proptest::prop_assert!(
                    serde_json::from_slice::<serde::de::IgnoredAny>(text.as_bytes()).is_ok(),
                    "{}", text
                );
            }
        }
    }
}
