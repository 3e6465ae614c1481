//! The response stream: SSE framing, what OpenAI-style chunks say, the relay that tees bytes
//! to the client and the record, and the filter that undoes llmtap's own usage injection.

pub mod decode;
pub mod eventstream;
#[cfg(test)]
pub(crate) mod fixtures_for_tests;
pub mod openai;
pub mod sse;
pub mod strip;
pub mod tee;
