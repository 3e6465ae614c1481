//! Filters an SSE stream on its way to the client, event by event, as a per-API [`StripRule`]
//! says: an event is kept, has a byte range cut out of its data, or is dropped whole. The
//! relay uses it to hide what a dialect's usage injection added (see
//! `dialect::UsageInjection`); this file knows framing only, not what the events mean.

use std::ops::Range;

use bytes::Bytes;

use super::sse::SseParser;

/// What happens to one event on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Cut this byte range out of the event's data (the rest is copied around it, never
    /// re-serialized).
    Cut(Range<usize>),
    Drop,
}

/// Decides each event's [`Verdict`] from its data; one per stream (it may keep state).
pub trait StripRule: Send {
    fn verdict(&mut self, data: &[u8]) -> Verdict;
}

/// Client-side filter over the raw SSE bytes. Whole events are passed on as soon as their
/// terminating blank line arrives; only the bytes of an incomplete event wait for the rest.
pub struct EventStripper {
    parser: SseParser,
    /// Bytes not yet passed on, starting at stream offset `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    rule: Box<dyn StripRule>,
    /// A dropped event ended on a CR whose LF had not arrived: that LF, when it comes first in
    /// the next event's bytes, belonged to the dropped event and goes with it.
    dropped_cr: bool,
}

impl EventStripper {
    pub fn new(rule: Box<dyn StripRule>) -> Self {
        EventStripper {
            parser: SseParser::default(),
            pending: Vec::new(),
            pending_start: 0,
            rule,
            dropped_cr: false,
        }
    }

    /// Takes the next upstream bytes and returns what the client gets now (maybe empty).
    pub fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.process_with(chunk, |_, _| {})
    }

    /// Whether framing gave up on this stream (an event past the parser's size limit).
    pub fn framing_failed(&self) -> bool {
        self.parser.failed()
    }

    /// Like [`process`](Self::process), also handing every event it framed (a dropped event
    /// too, before it is dropped) to `on_event`, so a watcher need not frame the chunk again.
    pub fn process_with(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(Option<&str>, &[u8]),
    ) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let base = self.pending_start;
        let EventStripper {
            parser,
            pending,
            rule,
            dropped_cr,
            ..
        } = self;
        let mut out = Vec::with_capacity(pending.len());
        let mut copied_to = base;
        parser.feed(chunk, |ev| {
            on_event(ev.event, ev.data);
            let (start, end) = (ev.start, ev.end);
            let rel = |off: u64| (off - base) as usize;
            if std::mem::take(dropped_cr) && copied_to == start && pending[rel(start)] == b'\n' {
                copied_to = start + 1;
            }
            match rule.verdict(ev.data) {
                Verdict::Keep => {}
                Verdict::Drop => {
                    // Comments and blank lines in front of the event are the server's own
                    // (keep-alives, the LF of the previous event's CRLF): they stay.
                    let own = &pending[rel(start)..rel(end)];
                    let keep_to = start + leading_non_fields(own) as u64;
                    out.extend_from_slice(&pending[rel(copied_to)..rel(keep_to)]);
                    copied_to = end;
                    *dropped_cr = pending[rel(end) - 1] == b'\r';
                }
                Verdict::Cut(cut) => {
                    if let Some(at) = ev.data_offset {
                        // Copy around the member instead of rebuilding the event.
                        out.extend_from_slice(&pending[rel(copied_to)..rel(at) + cut.start]);
                        copied_to = at + cut.end as u64;
                    }
                }
            }
            // Everything up to the end of this event may now be passed on.
            out.extend_from_slice(&pending[rel(copied_to)..rel(end)]);
            copied_to = end;
        });
        let consumed = (copied_to - base) as usize;
        self.pending.drain(..consumed);
        self.pending_start = copied_to;
        Bytes::from(out)
    }

    /// At the end of the stream: whatever trailing bytes never formed a whole event.
    pub fn finish(&mut self) -> Bytes {
        self.pending_start += self.pending.len() as u64;
        let mut rest = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.dropped_cr) && rest.first() == Some(&b'\n') {
            rest.remove(0);
        }
        Bytes::from(rest)
    }
}

/// Length of the comment lines and blank lines an event's bytes begin with.
fn leading_non_fields(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => i += 1,
            b'\r' => {
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b':' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drops events whose data is `drop`, cuts the first byte of those starting with `-`.
    struct Rule;

    impl StripRule for Rule {
        fn verdict(&mut self, data: &[u8]) -> Verdict {
            match data {
                b"drop" => Verdict::Drop,
                [b'-', ..] => Verdict::Cut(0..1),
                _ => Verdict::Keep,
            }
        }
    }

    #[test]
    fn the_rule_decides_and_framing_survives_every_split() {
        let input = "data: a\n\n: ping\ndata: drop\n\ndata: -b\r\n\r\nevent: x\ndata: c\n\ntail";
        let want = "data: a\n\n: ping\ndata: b\r\n\r\nevent: x\ndata: c\n\ntail";
        for split in 1..input.len() {
            let mut s = EventStripper::new(Box::new(Rule));
            let mut out = Vec::new();
            for piece in input.as_bytes().chunks(split) {
                out.extend_from_slice(&s.process(piece));
            }
            out.extend_from_slice(&s.finish());
            assert_eq!(String::from_utf8_lossy(&out), want, "split {split}");
        }
    }
}
