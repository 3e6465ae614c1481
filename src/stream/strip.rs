//! Removes what llmtap's own `include_usage` injection added to a stream, so a client that
//! did not ask for usage receives exactly the stream it would have received direct. Servers
//! answer the flag in three ways, and all three are hidden:
//! - a final usage-only event (`choices: []`, or no `choices`, with a `usage` object): dropped;
//! - a `"usage":null` member on every other chunk (OpenAI): cut out;
//! - a running `usage` object on every chunk (some OpenAI-compatible servers): cut out. A
//!   stream is taken to run usage when its first chunk with choices already carries one;
//!   otherwise a usage object on a later chunk (a finish chunk that always carries usage, as
//!   some servers send whatever the request says) is left alone.
//!
//! Only used on streams llmtap injected into.

use bytes::Bytes;

use super::openai::{usage_shape, UsageMember};
use super::sse::SseParser;

/// Client-side filter over the raw SSE bytes. Whole events are passed on as soon as their
/// terminating blank line arrives; only the bytes of an incomplete event wait for the rest.
#[derive(Default)]
pub struct UsageStripper {
    parser: SseParser,
    /// Bytes not yet passed on, starting at stream offset `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    usage_mode: UsageMode,
    /// A dropped event ended on a CR whose LF had not arrived: that LF, when it comes first in
    /// the next event's bytes, belonged to the dropped event and goes with it.
    dropped_cr: bool,
}

/// Whether the stream carries a running usage on its content chunks, decided at its first
/// chunk with choices.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum UsageMode {
    #[default]
    Undecided,
    Running,
    NotRunning,
}

/// What happens to one event on its way to the client.
enum Verdict {
    Keep,
    /// Cut this range (the `usage` member) out of the event's data.
    Cut(std::ops::Range<usize>),
    Drop,
}

impl UsageMode {
    fn verdict(&mut self, data: &[u8]) -> Verdict {
        let Some(shape) = usage_shape(data) else {
            return Verdict::Keep;
        };
        let has_choices = shape.choices.is_some_and(|n| n > 0);
        if has_choices && *self == UsageMode::Undecided {
            *self = if shape.usage == UsageMember::Object {
                UsageMode::Running
            } else {
                UsageMode::NotRunning
            };
        }
        let cut = || shape.usage_span.clone().map_or(Verdict::Keep, Verdict::Cut);
        match shape.usage {
            UsageMember::Absent => Verdict::Keep,
            UsageMember::Null => cut(),
            UsageMember::Object if !has_choices => Verdict::Drop,
            UsageMember::Object if *self == UsageMode::Running => cut(),
            UsageMember::Object => Verdict::Keep,
        }
    }
}

impl UsageStripper {
    pub fn new() -> Self {
        UsageStripper::default()
    }

    /// Takes the next upstream bytes and returns what the client gets now (maybe empty).
    pub fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.process_with(chunk, |_, _| {})
    }

    /// Whether framing gave up on this stream (an event past the parser's size limit).
    pub fn framing_failed(&self) -> bool {
        self.parser.failed()
    }

    /// Like [`process`](Self::process), also handing every event it framed (the usage event
    /// too, before it is dropped) to `on_event`, so a watcher need not frame the chunk again.
    pub fn process_with(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(Option<&str>, &[u8]),
    ) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let base = self.pending_start;
        let UsageStripper {
            parser,
            pending,
            usage_mode,
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
            match usage_mode.verdict(ev.data) {
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

    const INJECTED: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
        "data: [DONE]\n\n"
    );
    const DIRECT: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n"
    );

    #[test]
    fn strips_at_every_split() {
        let input = INJECTED.as_bytes();
        for split in 1..input.len() {
            let mut s = UsageStripper::new();
            let mut out = Vec::new();
            for piece in input.chunks(split) {
                out.extend_from_slice(&s.process(piece));
            }
            out.extend_from_slice(&s.finish());
            assert_eq!(String::from_utf8_lossy(&out), DIRECT, "split {split}");
        }
    }

    #[test]
    fn untouched_stream_passes_whole_events() {
        let mut s = UsageStripper::new();
        let out = s.process(DIRECT.as_bytes());
        assert_eq!(&out[..], DIRECT.as_bytes());
    }

    fn strip_all(input: &str, split: usize) -> String {
        let mut s = UsageStripper::new();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(split) {
            out.extend_from_slice(&s.process(piece));
        }
        out.extend_from_slice(&s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn running_usage_on_every_chunk_is_cut() {
        let injected = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":0}}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1},\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n"
        );
        let direct = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        for split in [1, 2, 7, 4096] {
            assert_eq!(strip_all(injected, split), direct, "split {split}");
        }
    }

    #[test]
    fn usage_a_server_always_puts_on_its_finish_chunk_stays() {
        // Not a running usage (the first chunk with choices has none): the finish chunk's
        // usage is the server's own habit, sent with or without the flag.
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(strip_all(stream, 5), stream);
    }

    #[test]
    fn a_usage_event_without_choices_is_dropped() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        let direct = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(strip_all(stream, 3), direct);
    }

    #[test]
    fn crlf_comments_and_a_missing_done_survive_every_split() {
        let injected = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\r\n\r\n",
            ": keep-alive\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\r\n\r\n",
        );
        let direct = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
            ": keep-alive\r\n\r\n",
        );
        for tail in ["", "data: [DONE]\r\n\r\n"] {
            let input = format!("{injected}{tail}");
            let want = format!("{direct}{tail}");
            for split in 1..input.len() {
                assert_eq!(
                    strip_all(&input, split),
                    want,
                    "split {split} tail {tail:?}"
                );
            }
        }
    }
}
