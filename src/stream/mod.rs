//! The response stream, API-neutral: SSE framing, content decoding, the relay that tees bytes
//! to the client and the record, and the event filter a dialect's usage injection drives.

pub mod decode;
pub mod eventstream;
#[cfg(test)]
pub(crate) mod fixtures_for_tests;
pub mod sse;
pub mod strip;
pub mod tee;
