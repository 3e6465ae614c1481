//! Removes what llmtap's own `include_usage` injection added to a stream, so a client that
//! did not ask for usage receives exactly the stream it would have received direct: the final
//! `choices: []` usage event is dropped and the `"usage":null` member OpenAI then adds to every
//! chunk is taken out again. Only used on streams llmtap injected into.

use bytes::Bytes;

use super::openai::{is_usage_only_chunk, null_usage_span};
use super::sse::SseParser;

/// Client-side filter over the raw SSE bytes. Whole events are passed on as soon as their
/// terminating blank line arrives; only the bytes of an incomplete event wait for the rest.
#[derive(Default)]
pub struct UsageStripper {
    parser: SseParser,
    /// Bytes not yet passed on, starting at stream offset `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
}

impl UsageStripper {
    pub fn new() -> Self {
        UsageStripper {
            parser: SseParser::new(),
            pending: Vec::new(),
            pending_start: 0,
        }
    }

    /// Takes the next upstream bytes and returns what the client gets now (maybe empty).
    pub fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let base = self.pending_start;
        let pending = &self.pending;
        let mut out = Vec::with_capacity(pending.len());
        let mut copied_to = base;
        self.parser.feed(chunk, |ev| {
            let (start, end) = (ev.start, ev.end);
            let rel = |off: u64| (off - base) as usize;
            if is_usage_only_chunk(ev.data) {
                out.extend_from_slice(&pending[rel(copied_to)..rel(start)]);
                copied_to = end;
            } else if let (Some(cut), Some(at)) = (null_usage_span(ev.data), ev.data_offset) {
                // Copy around the `"usage":null` member instead of rebuilding the event.
                out.extend_from_slice(&pending[rel(copied_to)..rel(at) + cut.start]);
                copied_to = at + cut.end as u64;
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
        Bytes::from(std::mem::take(&mut self.pending))
    }
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
}
