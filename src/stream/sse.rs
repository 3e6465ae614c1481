//! Incremental parser for `text/event-stream` bodies.
//!
//! This module owns SSE framing and nothing else: it turns the bytes of a response body, fed
//! in whatever pieces the network delivers, into events (event type + data) that carry their
//! exact byte offsets in the stream. It follows the WHATWG EventSource parsing rules (lines end
//! in CRLF, LF or CR; `:` starts a comment; `data` lines join with `\n`; a blank line
//! dispatches; a leading UTF-8 BOM is skipped). `id` and `retry` are accepted and ignored: a
//! proxy has no reconnection to manage. What the events *mean* is each dialect's business.
//!
//! The parser sits on the relay's hot path, so the common case (a whole event inside one
//! `feed`) borrows its data straight from the input slice; bytes are only copied when an event
//! spans feeds or has several data lines, and then into buffers that are reused.

/// Largest event (data buffered so far plus the current line) the parser holds before it gives
/// up on the stream. Chat chunks are a few hundred bytes; 16 MiB only stops a runaway or
/// hostile upstream from growing the proxy's memory without bound.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Buffers that grew past this for one large event are released after it, so a single big
/// event doesn't pin its memory for the rest of a long-lived stream.
const RETAINED_CAPACITY: usize = 64 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event, borrowed from the parser or from the bytes just fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `None` for the default type (`message`), including when the
    /// field was present but empty.
    pub event: Option<&'a str>,
    /// The data lines joined with `\n` (no trailing newline). Raw bytes: not checked as UTF-8.
    pub data: &'a [u8],
    /// Absolute stream offset of `data` when it came from a single `data` line, so that
    /// `stream[data_offset..data_offset + data.len()] == data` and an edit of the data can be
    /// mapped back onto the raw bytes. `None` when several data lines were joined.
    pub data_offset: Option<u64>,
    /// Absolute offset where this event's raw bytes begin: just after the blank line that
    /// dispatched the previous event (0 for the first). Comments, stray blank lines and the
    /// BOM before an event therefore belong to it, and the ranges `start..end` of successive
    /// events tile the stream with no gap or overlap; whatever follows the last event's `end`
    /// is a not-yet-dispatched (or never-dispatched) tail.
    pub start: u64,
    /// Absolute offset just past the line ending of the blank line that dispatched the event.
    /// One exception: when that blank line ends in a CR that is the last byte of a `feed`,
    /// the event is dispatched at once (never held back waiting for the next read) and a LF
    /// arriving first in the next feed counts as the first byte of the next event. Dropping
    /// `start..end` can then leave that lone LF behind, which SSE clients read as an empty
    /// line: harmless.
    pub end: u64,
}

/// Incremental SSE parser: feed it byte slices as they arrive, get events back.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes fed so far.
    position: u64,
    /// Where the event being assembled starts (see [`SseEvent::start`]).
    event_start: u64,
    /// A line that started in an earlier feed and has not ended yet.
    line: Vec<u8>,
    /// The data buffer, when it could not be borrowed from the input.
    data: Vec<u8>,
    /// `data` holds at least one data line (it may still be empty: `data:` is a line).
    has_data: bool,
    /// See [`SseEvent::data_offset`]; valid while exactly one data line was seen.
    data_offset: Option<u64>,
    event_type: String,
    /// The last byte fed was a CR, so a LF first in the next feed completes a CRLF.
    after_cr: bool,
    /// The BOM check at the start of the stream is over.
    bom_done: bool,
    failed: bool,
}

/// What one `feed` call works on.
struct FeedCx<'b> {
    bytes: &'b [u8],
    /// The data buffer while it is a single data line inside `bytes` (its index range).
    borrowed: Option<(usize, usize)>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes fed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Where the next event will start: the end of the last dispatched event. Bytes from here
    /// to [`position`](Self::position) are an event (or comments) still in progress.
    pub fn event_start(&self) -> u64 {
        self.event_start
    }

    /// An event grew past [`MAX_EVENT_BYTES`]; the parser stopped and ignores further input
    /// (it still counts it in `position`).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Feeds the next bytes of the stream, calling `on_event` for every event completed by them.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        let base = self.position;
        self.position += bytes.len() as u64;
        if self.failed || bytes.is_empty() {
            return;
        }
        let mut i = 0;
        if !self.bom_done {
            i = self.skip_bom(bytes);
            if !self.bom_done {
                return;
            }
        }
        if self.after_cr {
            self.after_cr = false;
            if bytes.get(i) == Some(&b'\n') {
                i += 1;
            }
        }
        let mut cx = FeedCx {
            bytes,
            borrowed: None,
        };
        while i < bytes.len() {
            let Some(len) = find_line_end(&bytes[i..]) else {
                break;
            };
            let eol = i + len;
            let next = if bytes[eol] == b'\r' {
                match bytes.get(eol + 1) {
                    Some(b'\n') => eol + 2,
                    Some(_) => eol + 1,
                    None => {
                        self.after_cr = true;
                        eol + 1
                    }
                }
            } else {
                eol + 1
            };
            let end_abs = base + next as u64;
            if self.line.is_empty() {
                let line_abs = base + i as u64;
                self.process_line(
                    &mut cx,
                    &bytes[i..eol],
                    Some(i),
                    line_abs,
                    end_abs,
                    &mut on_event,
                );
            } else {
                // The line began in an earlier feed: complete it in the carry-over buffer.
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&bytes[i..eol]);
                if line.len() + self.data.len() > MAX_EVENT_BYTES {
                    self.fail();
                    return;
                }
                let line_abs = base + eol as u64 - line.len() as u64;
                self.process_line(&mut cx, &line, None, line_abs, end_abs, &mut on_event);
                line.clear();
                if line.capacity() <= RETAINED_CAPACITY {
                    self.line = line;
                }
            }
            if self.failed {
                return;
            }
            i = next;
        }
        // The event continues in a later feed: its data can no longer borrow from `bytes`.
        if let Some((s, e)) = cx.borrowed {
            self.data.clear();
            self.data.extend_from_slice(&bytes[s..e]);
            self.has_data = true;
        }
        self.line.extend_from_slice(&bytes[i..]);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            self.fail();
        }
    }

    /// Matches the start of the stream against the BOM, keeping the matched prefix in the line
    /// buffer (a BOM can be split across feeds too). Returns how many bytes it consumed.
    fn skip_bom(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while self.line.len() < BOM.len() && i < bytes.len() {
            if bytes[i] != BOM[self.line.len()] {
                // Not a BOM: what matched so far is the start of the first line.
                self.bom_done = true;
                return i;
            }
            self.line.push(bytes[i]);
            i += 1;
        }
        if self.line.len() == BOM.len() {
            self.line.clear();
            self.bom_done = true;
        }
        i
    }

    /// Handles one complete line. `at` is the line's index in `cx.bytes` when it lies there
    /// whole (so its data may be borrowed); `line_abs` is its absolute offset and `end_abs`
    /// the offset just past its line ending.
    fn process_line<F: FnMut(SseEvent<'_>)>(
        &mut self,
        cx: &mut FeedCx<'_>,
        line: &[u8],
        at: Option<usize>,
        line_abs: u64,
        end_abs: u64,
        on_event: &mut F,
    ) {
        if line.is_empty() {
            self.dispatch(cx, end_abs, on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value_at) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let space = usize::from(line.get(colon + 1) == Some(&b' '));
                (&line[..colon], colon + 1 + space)
            }
            None => (line, line.len()),
        };
        let value = &line[value_at..];
        match name {
            b"data" => {
                if let Some((s, e)) = cx.borrowed.take() {
                    // Second data line: the joined value has to live in our buffer.
                    self.data.clear();
                    self.data.extend_from_slice(&cx.bytes[s..e]);
                    self.data.push(b'\n');
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                    self.data_offset = None;
                } else if self.has_data {
                    self.data.push(b'\n');
                    self.data.extend_from_slice(value);
                    self.data_offset = None;
                } else {
                    match at {
                        Some(at) => cx.borrowed = Some((at + value_at, at + line.len())),
                        None => {
                            self.data.clear();
                            self.data.extend_from_slice(value);
                            self.has_data = true;
                        }
                    }
                    self.data_offset = Some(line_abs + value_at as u64);
                }
                if self.data.len() > MAX_EVENT_BYTES {
                    self.fail();
                }
            }
            b"event" => {
                self.event_type.clear();
                // The spec decodes the stream as UTF-8 with replacement; only invalid names
                // allocate here.
                self.event_type.push_str(&String::from_utf8_lossy(value));
            }
            // `id`, `retry` and unknown fields don't affect what a proxy sees.
            _ => {}
        }
    }

    fn dispatch<F: FnMut(SseEvent<'_>)>(
        &mut self,
        cx: &mut FeedCx<'_>,
        end_abs: u64,
        on_event: &mut F,
    ) {
        let data = match cx.borrowed.take() {
            Some((s, e)) => Some(&cx.bytes[s..e]),
            None if self.has_data => Some(self.data.as_slice()),
            None => None,
        };
        if let Some(data) = data {
            on_event(SseEvent {
                event: (!self.event_type.is_empty()).then_some(self.event_type.as_str()),
                data,
                data_offset: self.data_offset,
                start: self.event_start,
                end: end_abs,
            });
            self.event_start = end_abs;
            self.has_data = false;
            self.data_offset = None;
            if self.data.capacity() > RETAINED_CAPACITY {
                self.data = Vec::new();
            } else {
                self.data.clear();
            }
        }
        // A blank line resets the event type even when nothing was dispatched.
        self.event_type.clear();
    }

    fn fail(&mut self) {
        self.failed = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.event_type = String::new();
        self.has_data = false;
    }
}

/// Index of the first CR or LF in `hay`. Scans eight bytes per step (SWAR) because data lines
/// are hundreds of bytes long and this runs for every byte the proxy relays.
fn find_line_end(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = ONES * b'\n' as u64;
    const CRS: u64 = ONES * b'\r' as u64;
    let mut words = hay.chunks_exact(8);
    let mut offset = 0;
    for w in &mut words {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let lf = w ^ LFS;
        let cr = w ^ CRS;
        // Classic "has zero byte": the lowest flagged byte is always exact.
        let hits = ((lf.wrapping_sub(ONES) & !lf) | (cr.wrapping_sub(ONES) & !cr)) & HIGHS;
        if hits != 0 {
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|p| offset + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::fixtures_for_tests as fixtures;

    /// An event with everything owned, for comparisons.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        event: Option<String>,
        data: Vec<u8>,
        data_offset: Option<u64>,
        start: u64,
        end: u64,
    }

    fn own(e: SseEvent<'_>) -> Owned {
        Owned {
            event: e.event.map(str::to_owned),
            data: e.data.to_vec(),
            data_offset: e.data_offset,
            start: e.start,
            end: e.end,
        }
    }

    fn parse_in_pieces(stream: &[u8], sizes: impl IntoIterator<Item = usize>) -> Vec<Owned> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut rest = stream;
        let mut sizes = sizes.into_iter();
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
            parser.feed(&rest[..n], |e| out.push(own(e)));
            rest = &rest[n..];
        }
        assert_eq!(parser.position(), stream.len() as u64);
        out
    }

    fn parse(stream: &[u8]) -> Vec<Owned> {
        parse_in_pieces(stream, [stream.len()])
    }

    /// Deterministic "random-ish" chunk sizes (1..=max) from a small LCG.
    fn pseudo_random_sizes(seed: u64, max: usize) -> impl Iterator<Item = usize> {
        let mut state = seed;
        std::iter::from_fn(move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Some((state >> 33) as usize % max + 1)
        })
    }

    /// Pieces-fed events equal the whole-feed ones, except for the one documented difference:
    /// a blank line's CR that ended a feed closes the event before the LF that follows it.
    fn assert_same_events(name: &str, stream: &[u8], whole: &[Owned], pieces: &[Owned]) {
        let same_boundary = |w: u64, p: u64| {
            w == p || (p + 1 == w && stream[p as usize - 1] == b'\r' && stream[p as usize] == b'\n')
        };
        assert_eq!(whole.len(), pieces.len(), "{name}: event count");
        for (w, p) in whole.iter().zip(pieces) {
            assert_eq!(
                (&w.event, &w.data, w.data_offset),
                (&p.event, &p.data, p.data_offset),
                "{name}"
            );
            assert!(
                same_boundary(w.start, p.start) && same_boundary(w.end, p.end),
                "{name}: {w:?} vs {p:?}"
            );
        }
    }

    fn data_strings(events: &[Owned]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .collect()
    }

    #[test]
    fn lf_framing_and_offsets() {
        let s = b"data: a\n\ndata: {\"b\":1}\n\n";
        let ev = parse(s);
        assert_eq!(data_strings(&ev), ["a", "{\"b\":1}"]);
        assert_eq!((ev[0].start, ev[0].end), (0, 9));
        assert_eq!((ev[1].start, ev[1].end), (9, s.len() as u64));
        assert_eq!(ev[0].data_offset, Some(6));
        assert_eq!(ev[1].data_offset, Some(15));
        assert!(ev.iter().all(|e| e.event.is_none()));
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(
            data_strings(&parse(b"data: a\r\n\r\ndata: b\r\n\r\n")),
            ["a", "b"]
        );
        assert_eq!(data_strings(&parse(b"data: a\r\rdata: b\r\r")), ["a", "b"]);
        // Mixed endings, and a CR followed by LF is one line ending, not two.
        let ev = parse(b"data: a\r\ndata: b\r\r\ndata: c\n\n");
        assert_eq!(data_strings(&ev), ["a\nb", "c"]);
        assert_eq!(ev[0].end, 19);
    }

    #[test]
    fn crlf_split_between_cr_and_lf() {
        let s = b"data: a\r\n\r\ndata: b\r\n\r\n";
        for cut in 0..=s.len() {
            let ev = parse_in_pieces(s, [cut, s.len()]);
            assert_eq!(data_strings(&ev), ["a", "b"], "cut at {cut}");
            // Tiling holds; only the documented CR-at-end-of-feed case moves the boundary.
            assert_eq!(ev[0].start, 0);
            assert_eq!(ev[1].start, ev[0].end);
            let expected_end = if cut == 10 { 10 } else { 11 };
            assert_eq!(ev[0].end, expected_end, "cut at {cut}");
            let expected_end = if cut == s.len() - 1 { cut } else { s.len() };
            assert_eq!(ev[1].end, expected_end as u64, "cut at {cut}");
        }
    }

    #[test]
    fn comments_and_keepalives_belong_to_the_next_event() {
        let s = b": ping\n\ndata: a\n\n: keep-alive\n:\n\n\ndata: b\n: inside\n\n: trailing\n\n";
        let ev = parse(s);
        assert_eq!(data_strings(&ev), ["a", "b"]);
        assert_eq!(ev[0].start, 0);
        assert_eq!(
            &s[ev[1].start as usize..ev[1].end as usize],
            b": keep-alive\n:\n\n\ndata: b\n: inside\n\n"
        );
    }

    #[test]
    fn multi_line_data_and_field_forms() {
        let ev = parse(b"data: one\ndata:two\ndata:  three\ndata\n\n");
        assert_eq!(data_strings(&ev), ["one\ntwo\n three\n"]);
        assert_eq!(ev[0].data_offset, None);
        // `data` with no colon is a data line with an empty value, and it dispatches.
        let ev = parse(b"data\n\ndata:\n\n");
        assert_eq!(data_strings(&ev), ["", ""]);
        // Unknown fields, id and retry are ignored; a field name is matched exactly.
        let ev = parse(b"id: 7\nretry: 10\nfoo: bar\nDATA: x\ndata : y\ndata: z\n\n");
        assert_eq!(data_strings(&ev), ["z"]);
    }

    #[test]
    fn event_type_is_set_and_reset() {
        let ev = parse(
            b"event: error\ndata: x\n\ndata: y\n\nevent:\ndata: z\n\nevent: lost\n\ndata: w\n\n",
        );
        let types: Vec<_> = ev.iter().map(|e| e.event.as_deref()).collect();
        assert_eq!(types, [Some("error"), None, None, None]);
        assert_eq!(data_strings(&ev), ["x", "y", "z", "w"]);
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let s = b"event: ping\n\nid: 1\n\ndata: real\n\n";
        let ev = parse(s);
        assert_eq!(data_strings(&ev), ["real"]);
        // ...and their bytes go with the next event that is.
        assert_eq!(ev[0].start, 0);
    }

    #[test]
    fn unterminated_tail_is_not_dispatched() {
        let mut parser = SseParser::new();
        let mut n = 0;
        parser.feed(b"data: a\n\ndata: b\n", |_| n += 1);
        assert_eq!(n, 1);
        assert_eq!(parser.event_start(), 9);
        assert_eq!(parser.position(), 17);
    }

    #[test]
    fn bom_is_skipped_only_at_the_start() {
        let s = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\ndata: c\n\n";
        for cut in 0..=s.len() {
            let ev = parse_in_pieces(s, [cut, 1, 1, s.len()]);
            assert_eq!(data_strings(&ev), ["a", "c"], "cut at {cut}");
            assert_eq!(ev[0].start, 0);
            assert_eq!(ev[0].data_offset, Some(9));
        }
        // A BOM prefix that isn't a BOM stays part of the first line.
        assert_eq!(
            data_strings(&parse(b"\xEF\xBBdata: a\n\ndata: b\n\n")),
            ["b"]
        );
        assert_eq!(
            data_strings(&parse(b"\xEFdata: a\n\n")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let s = "data: héllo ✓ wörld\n\n".as_bytes();
        for cut in 0..=s.len() {
            let ev = parse_in_pieces(s, [cut, s.len()]);
            assert_eq!(data_strings(&ev), ["héllo ✓ wörld"]);
        }
    }

    #[test]
    fn whole_event_in_one_feed_is_borrowed_not_copied() {
        let input = b": c\ndata: {\"x\":1}\n\n".to_vec();
        let range = input.as_ptr_range();
        let mut parser = SseParser::new();
        let mut borrowed = false;
        parser.feed(&input, |e| borrowed = range.contains(&e.data.as_ptr()));
        assert!(borrowed);
        // One that spans feeds comes from the parser's buffer and is still correct.
        let mut got = Vec::new();
        parser.feed(b"data: {\"y\"", |e| got.push(own(e)));
        parser.feed(b":2}\n\n", |e| got.push(own(e)));
        assert_eq!(data_strings(&got), ["{\"y\":2}"]);
        assert_eq!(got[0].data_offset, Some(input.len() as u64 + 6));
    }

    #[test]
    fn oversized_event_stops_the_parser() {
        let mut parser = SseParser::new();
        let mut n = 0;
        parser.feed(b"data: ok\n\n", |_| n += 1);
        let line = vec![b'x'; 1024 * 1024];
        parser.feed(b"data: ", |_| n += 1);
        for _ in 0..=MAX_EVENT_BYTES / line.len() {
            parser.feed(&line, |_| n += 1);
        }
        assert!(parser.failed());
        parser.feed(b"\n\ndata: late\n\n", |_| n += 1);
        assert_eq!(n, 1);
        assert!(parser.position() > MAX_EVENT_BYTES as u64);

        // Many data lines count too, not just one long line.
        let mut parser = SseParser::new();
        let many =
            b"data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".repeat(4096);
        while !parser.failed() {
            parser.feed(&many, |_| n += 1);
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn own_crlf_fixture() {
        let s = fixtures::own("sse-crlf-keepalive.sse");
        assert!(s.windows(2).any(|w| w == b"\r\n"));
        let ev = parse(&s);
        let types: Vec<_> = ev.iter().map(|e| e.event.as_deref()).collect();
        assert_eq!(types, [None, None, Some("notice"), None, None]);
        assert_eq!(
            data_strings(&ev),
            [
                "{\"n\":1}",
                "{\"n\":2}",
                "first line\nsecond line",
                "{\"n\":3}",
                "[DONE]"
            ]
        );
        let s = fixtures::own("sse-cr-bom.sse");
        assert_eq!(
            data_strings(&parse(&s)),
            ["{\"n\":1}", "two\nlines", "[DONE]"]
        );
    }

    /// Byte-at-a-time and odd-sized feeds give exactly what one whole feed gives.
    #[test]
    fn every_split_of_every_fixture_matches_the_whole_feed() {
        for (name, s) in fixtures::all_sse() {
            let whole = parse(&s);
            assert!(!whole.is_empty(), "{name}: no events");
            let pieces = parse_in_pieces(&s, std::iter::repeat(1));
            assert_same_events(&format!("{name}: byte at a time"), &s, &whole, &pieces);
            for seed in 1..4 {
                let pieces = parse_in_pieces(&s, pseudo_random_sizes(seed, 97));
                assert_same_events(
                    &format!("{name}: random chunks, seed {seed}"),
                    &s,
                    &whole,
                    &pieces,
                );
            }
            if !s.contains(&b'\r') {
                // Without CRs there is no exception at all.
                assert_eq!(parse_in_pieces(&s, std::iter::repeat(1)), whole, "{name}");
            }
        }
    }

    #[test]
    fn offsets_tile_the_stream_and_point_at_the_data() {
        for (name, s) in fixtures::all_sse() {
            for events in [parse(&s), parse_in_pieces(&s, pseudo_random_sizes(7, 61))] {
                let mut at = 0;
                for e in &events {
                    assert_eq!(e.start, at, "{name}: gap or overlap");
                    assert!(e.end > e.start);
                    at = e.end;
                    if let Some(off) = e.data_offset {
                        let off = off as usize;
                        assert_eq!(&s[off..off + e.data.len()], e.data.as_slice(), "{name}");
                    }
                }
                assert!(at <= s.len() as u64);
                // What follows the last event holds no further event.
                assert!(parse(&s[at as usize..]).is_empty(), "{name}: tail");
            }
        }
    }

    /// The relay's use of offsets: cut one event out, the rest parses to the other events.
    #[test]
    fn dropping_one_event_by_offsets_leaves_the_others_intact() {
        let s = fixtures::own("openai-chat-text.sse");
        let events = parse(&s);
        let victim = &events[events.len() - 2]; // the include_usage chunk
        assert!(
            victim.data.starts_with(b"{")
                && victim.data.windows(13).any(|w| w == b"\"choices\":[],")
        );
        let mut cut = s[..victim.start as usize].to_vec();
        cut.extend_from_slice(&s[victim.end as usize..]);
        let rest = parse(&cut);
        let expected: Vec<_> = events
            .iter()
            .filter(|e| e.start != victim.start)
            .map(|e| e.data.clone())
            .collect();
        let got: Vec<_> = rest.into_iter().map(|e| e.data).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn find_line_end_agrees_with_a_plain_scan() {
        let mut hay = vec![b'a'; 40];
        for pos in 0..hay.len() {
            for b in [b'\n', b'\r'] {
                hay[pos] = b;
                assert_eq!(find_line_end(&hay), Some(pos));
                for len in 0..hay.len() {
                    let expected = hay[..len].iter().position(|&c| c == b'\n' || c == b'\r');
                    assert_eq!(find_line_end(&hay[..len]), expected);
                }
                hay[pos] = b'a';
            }
        }
        // Bytes near the CR/LF values (and 0x80+) must not be false hits.
        let tricky: Vec<u8> = (0u8..=255).filter(|&b| b != b'\n' && b != b'\r').collect();
        assert_eq!(find_line_end(&tricky), None);
    }

    /// Oracle: the `eventsource-stream` crate sees the same events (type and data).
    #[test]
    fn agrees_with_eventsource_stream() {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for (name, s) in fixtures::all_sse() {
            if name == "sse-cr-bom.sse" {
                // eventsource-stream 0.2 doesn't treat a lone CR as a line ending.
                continue;
            }
            let ours: Vec<(String, String)> = parse(&s)
                .into_iter()
                .map(|e| {
                    let data = String::from_utf8(e.data).expect("utf-8 fixture");
                    (e.event.unwrap_or_else(|| "message".to_owned()), data)
                })
                .collect();
            for chunk in [s.len(), 13, 1] {
                let pieces: Vec<Result<Vec<u8>, std::convert::Infallible>> =
                    s.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
                let theirs: Vec<(String, String)> = runtime.block_on(
                    futures_util::stream::iter(pieces)
                        .eventsource()
                        .map(|r| {
                            let e = r.expect("oracle parse");
                            (e.event, e.data)
                        })
                        .collect(),
                );
                assert_eq!(ours, theirs, "{name}, chunks of {chunk}");
            }
        }
    }

    /// Pieces an SSE stream is made of: fields, line endings of every kind, comments, JSON.
    fn sse_piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"event: error".to_vec()),
            Just(b": keep-alive".to_vec()),
            Just(b"id: 7".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(br#"{"choices":[{"delta":{"content":"hi"}}]}"#.to_vec()),
            Just(b"[DONE]".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Fed at any split, a stream yields the same events as fed whole.
        #[test]
        fn any_split_yields_the_same_events(
            pieces in proptest::collection::vec(sse_piece(), 0..40),
            sizes in proptest::collection::vec(1usize..32, 0..64),
        ) {
            let stream = pieces.concat();
            let whole = parse(&stream);
            let split = parse_in_pieces(&stream, sizes);
            assert_same_events("generated", &stream, &whole, &split);
        }

        /// Arbitrary bytes at arbitrary splits never panic, and every byte is accounted for.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            sizes in proptest::collection::vec(1usize..512, 0..32),
        ) {
            let _ = parse_in_pieces(&bytes, sizes);
        }
    }
}
