//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary stream Amazon
//! Bedrock's `ConverseStream` and `InvokeModelWithResponseStream` answer with. Framing only:
//! what a frame's headers and payload mean is the Bedrock dialect's business.
//!
//! A frame (AWS SDK reference, "Event stream encoding"; smithy's `aws.protocols#eventstream`):
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
//! ```
//!
//! all big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything before
//! it. Each header is `name length u8 | name | type u8 | value`, the value typed: 0 true,
//! 1 false, 2 byte, 3 short, 4 int, 5 long, 6 bytes (u16 length), 7 string (u16 length, UTF-8),
//! 8 timestamp (i64 ms), 9 UUID (16 bytes).
//!
//! [`EventStreamDecoder`] reads frames incrementally at any split of the body; a frame whose
//! length is impossible or whose CRC does not match ends decoding for the stream (the
//! relay's bytes are never touched: the decoder only watches a copy). A frame in one read is
//! decoded in place; only a frame split across reads is buffered, up to [`MAX_FRAME`] bytes.

use std::fmt;

/// The prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LEN: usize = 12;
/// The smallest frame: a prelude and a message CRC, no headers and no payload.
pub const MIN_FRAME: usize = PRELUDE_LEN + 4;
/// The largest frame accepted: 16 MiB of payload plus 128 KiB of headers, the limits the AWS
/// SDKs' decoders enforce (`aws-smithy-eventstream`, botocore's `EventStreamBuffer`).
pub const MAX_FRAME: usize = 16 * 1024 * 1024 + MAX_HEADERS + MIN_FRAME;
/// The largest headers section accepted (128 KiB, as the SDKs).
pub const MAX_HEADERS: usize = 128 * 1024;

/// Why a stream's framing was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The total length is below [`MIN_FRAME`] or above [`MAX_FRAME`], or the headers do not
    /// fit in it.
    Length,
    /// The prelude's CRC32 does not match its first 8 bytes.
    PreludeCrc,
    /// The message CRC32 does not match the frame.
    MessageCrc,
    /// A header runs past the headers section, has an unknown type, or a string header is
    /// not UTF-8.
    Header,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Length => "impossible frame length",
            FrameError::PreludeCrc => "prelude CRC32 mismatch",
            FrameError::MessageCrc => "message CRC32 mismatch",
            FrameError::Header => "malformed header",
        })
    }
}

/// One header's value, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

impl<'a> HeaderValue<'a> {
    /// The value of a string header.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One header: its name and value.
pub type Header<'a> = (&'a str, HeaderValue<'a>);

/// One decoded frame: its headers (checked, read lazily) and payload, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    headers: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The headers in wire order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The value of the string header `name`.
    pub fn str_header(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| v.as_str())
    }
}

/// Iterates a frame's headers (already checked by [`decode_frame`]).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let (item, len) = read_header(self.rest).ok()??;
        self.rest = &self.rest[len..];
        Some(item)
    }
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Reads one header at the start of `b`: `Ok(None)` when `b` is empty, else the header and
/// the bytes it took.
fn read_header(b: &[u8]) -> Result<Option<(Header<'_>, usize)>, FrameError> {
    let Some(&name_len) = b.first() else {
        return Ok(None);
    };
    let name_end = 1 + name_len as usize;
    let name = b.get(1..name_end).ok_or(FrameError::Header)?;
    let name = std::str::from_utf8(name).map_err(|_| FrameError::Header)?;
    let ty = *b.get(name_end).ok_or(FrameError::Header)?;
    let at = name_end + 1;
    let fixed = |n: usize| b.get(at..at + n).ok_or(FrameError::Header);
    let (value, len) = match ty {
        0 => (HeaderValue::Bool(true), 0),
        1 => (HeaderValue::Bool(false), 0),
        2 => (HeaderValue::Byte(fixed(1)?[0] as i8), 1),
        3 => (HeaderValue::Short(be_u16(fixed(2)?) as i16), 2),
        4 => (HeaderValue::Int(be_u32(fixed(4)?) as i32), 4),
        5 => (HeaderValue::Long(be_i64(fixed(8)?)), 8),
        6 | 7 => {
            let n = be_u16(fixed(2)?) as usize;
            let data = b.get(at + 2..at + 2 + n).ok_or(FrameError::Header)?;
            let v = if ty == 6 {
                HeaderValue::Bytes(data)
            } else {
                HeaderValue::String(std::str::from_utf8(data).map_err(|_| FrameError::Header)?)
            };
            (v, 2 + n)
        }
        8 => (HeaderValue::Timestamp(be_i64(fixed(8)?)), 8),
        9 => {
            let mut u = [0u8; 16];
            u.copy_from_slice(fixed(16)?);
            (HeaderValue::Uuid(u), 16)
        }
        _ => return Err(FrameError::Header),
    };
    Ok(Some(((name, value), at + len)))
}

/// Checks a prelude (12 bytes): the frame's total length.
pub fn check_prelude(prelude: &[u8]) -> Result<usize, FrameError> {
    let total = be_u32(&prelude[0..4]) as usize;
    let headers = be_u32(&prelude[4..8]) as usize;
    if crc32fast::hash(&prelude[..8]) != be_u32(&prelude[8..12]) {
        return Err(FrameError::PreludeCrc);
    }
    if !(MIN_FRAME..=MAX_FRAME).contains(&total)
        || headers > MAX_HEADERS
        || headers > total - MIN_FRAME
    {
        return Err(FrameError::Length);
    }
    Ok(total)
}

/// Decodes the frame at the start of `bytes`: `Ok(None)` when `bytes` holds less than a
/// whole frame, else the frame and its length.
pub fn decode_frame(bytes: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if bytes.len() < PRELUDE_LEN {
        return Ok(None);
    }
    let total = check_prelude(&bytes[..PRELUDE_LEN])?;
    let Some(frame) = bytes.get(..total) else {
        return Ok(None);
    };
    let (body, crc) = frame.split_at(total - 4);
    if crc32fast::hash(body) != be_u32(crc) {
        return Err(FrameError::MessageCrc);
    }
    let headers_len = be_u32(&frame[4..8]) as usize;
    let headers = &body[PRELUDE_LEN..PRELUDE_LEN + headers_len];
    // Checked once here, so iterating them later cannot fail.
    let mut rest = headers;
    while let Some((_, len)) = read_header(rest)? {
        rest = &rest[len..];
    }
    Ok(Some((
        Frame {
            headers,
            payload: &body[PRELUDE_LEN + headers_len..],
        },
        total,
    )))
}

/// Encodes one frame (the mock's streams, tests). Header names are cut to 255 bytes and
/// string or bytes values to 65,535: the wire cannot carry more.
pub fn encode_frame(headers: &[Header<'_>], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(255)];
        h.push(name.len() as u8);
        h.extend_from_slice(name);
        let var = |h: &mut Vec<u8>, ty: u8, data: &[u8]| {
            let data = &data[..data.len().min(u16::MAX as usize)];
            h.push(ty);
            h.extend_from_slice(&(data.len() as u16).to_be_bytes());
            h.extend_from_slice(data);
        };
        match value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => h.extend_from_slice(&[2, *v as u8]),
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(b) => var(&mut h, 6, b),
            HeaderValue::String(s) => var(&mut h, 7, s.as_bytes()),
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(u) => {
                h.push(9);
                h.extend_from_slice(u);
            }
        }
    }
    let total = MIN_FRAME + h.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event frame as Bedrock sends them: `:event-type`, `:content-type: application/json`,
/// `:message-type: event`.
pub fn encode_event(event_type: &str, json: &[u8]) -> Vec<u8> {
    encode_frame(
        &[
            (":event-type", HeaderValue::String(event_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("event")),
        ],
        json,
    )
}

/// An exception frame (`:message-type: exception`, `:exception-type`), as a modelled error
/// arrives mid-stream.
pub fn encode_exception(exception_type: &str, json: &[u8]) -> Vec<u8> {
    encode_frame(
        &[
            (":exception-type", HeaderValue::String(exception_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("exception")),
        ],
        json,
    )
}

/// Decodes the frames of a stream fed in pieces of any size.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    /// The start of a frame split across reads.
    pending: Vec<u8>,
    failed: Option<FrameError>,
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Why decoding stopped, if it did.
    pub fn failed(&self) -> Option<FrameError> {
        self.failed
    }

    /// Bytes held for a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the next bytes of the body; `on_frame` gets each frame they complete, in order.
    /// After a framing error nothing more is decoded.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        if self.failed.is_some() {
            return;
        }
        if !self.pending.is_empty() {
            // Complete the split frame first: its prelude, then the rest of its length.
            let want = PRELUDE_LEN
                .saturating_sub(self.pending.len())
                .min(bytes.len());
            self.pending.extend_from_slice(&bytes[..want]);
            bytes = &bytes[want..];
            if self.pending.len() < PRELUDE_LEN {
                return;
            }
            let total = match check_prelude(&self.pending[..PRELUDE_LEN]) {
                Ok(t) => t,
                Err(e) => return self.fail(e),
            };
            let want = (total - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..want]);
            bytes = &bytes[want..];
            if self.pending.len() < total {
                return;
            }
            match decode_frame(&self.pending) {
                Ok(Some((frame, _))) => on_frame(frame),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
            self.pending.clear();
        }
        while !bytes.is_empty() {
            match decode_frame(bytes) {
                Ok(Some((frame, len))) => {
                    on_frame(frame);
                    bytes = &bytes[len..];
                }
                Ok(None) => {
                    // A prelude seen whole is checked now, before its frame is buffered.
                    if bytes.len() >= PRELUDE_LEN {
                        if let Err(e) = check_prelude(&bytes[..PRELUDE_LEN]) {
                            return self.fail(e);
                        }
                    }
                    self.pending.extend_from_slice(bytes);
                    return;
                }
                Err(e) => return self.fail(e),
            }
        }
    }

    fn fail(&mut self, e: FrameError) {
        self.failed = Some(e);
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real recording from the shared folder (see `fixtures_for_tests`).
    fn recording(name: &str) -> Option<Vec<u8>> {
        let dir = crate::stream::fixtures_for_tests::shared_dir()?;
        Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
    }

    /// `(event type, payload)` of every frame, fed in pieces of `split` bytes.
    fn frames(bytes: &[u8], split: usize) -> (Vec<(String, Vec<u8>)>, Option<FrameError>) {
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(split.max(1)) {
            d.feed(piece, |f| {
                out.push((
                    f.str_header(":event-type").unwrap_or("").to_owned(),
                    f.payload.to_vec(),
                ))
            });
        }
        assert_eq!(d.pending(), 0);
        (out, d.failed())
    }

    /// Golden: every split of the real recordings gives the frames the whole body gives,
    /// and every frame re-encodes to its own bytes.
    #[test]
    fn recordings_decode_the_same_at_every_split() {
        for (name, count, first, last) in [
            (
                "bedrock-converse-stream-text.eventstream",
                33,
                "messageStart",
                "metadata",
            ),
            (
                "bedrock-converse-stream-tool-use.eventstream",
                25,
                "messageStart",
                "metadata",
            ),
            (
                "bedrock-invoke-stream-anthropic.eventstream",
                28,
                "chunk",
                "chunk",
            ),
        ] {
            let Some(bytes) = recording(name) else {
                return;
            };
            let (whole, failed) = frames(&bytes, bytes.len());
            assert_eq!(failed, None, "{name}");
            assert_eq!(whole.len(), count, "{name}");
            assert_eq!(whole[0].0, first);
            assert_eq!(whole[count - 1].0, last);
            for split in 1..=bytes.len().min(600) {
                assert_eq!(frames(&bytes, split).0, whole, "{name} split {split}");
            }
            // Re-encoded frame by frame, the body comes back byte for byte.
            let mut rest = &bytes[..];
            let mut again = Vec::new();
            while let Ok(Some((f, len))) = decode_frame(rest) {
                let headers: Vec<_> = f.headers().collect();
                again.extend(encode_frame(&headers, f.payload));
                rest = &rest[len..];
            }
            assert_eq!(again, bytes, "{name}");
        }
    }

    #[test]
    fn headers_of_every_type_round_trip() {
        let headers = [
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-3)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(70000)),
            ("l", HeaderValue::Long(-1 << 40)),
            ("by", HeaderValue::Bytes(b"\x00\xff")),
            ("str", HeaderValue::String("é")),
            ("ts", HeaderValue::Timestamp(1_700_000_000_000)),
            ("u", HeaderValue::Uuid([7; 16])),
        ];
        let bytes = encode_frame(&headers, b"{}");
        let (f, len) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(f.headers().collect::<Vec<_>>(), headers);
        assert_eq!(f.payload, b"{}");
        assert_eq!(f.str_header("str"), Some("é"));
    }

    #[test]
    fn bad_crcs_and_lengths_stop_decoding() {
        let good = encode_event("messageStart", br#"{"role":"assistant"}"#);
        let mut two = good.clone();
        two.extend_from_slice(&good);
        // A flipped payload byte: the message CRC catches it; the frame before is kept.
        let mut bad = two.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        let (seen, failed) = frames(&bad, 5);
        assert_eq!(seen.len(), 1);
        assert_eq!(failed, Some(FrameError::MessageCrc));
        // A flipped length byte: the prelude CRC.
        let mut bad = good.clone();
        bad[3] ^= 1;
        assert_eq!(frames(&bad, 1).1, Some(FrameError::PreludeCrc));
        // A consistent prelude with an impossible length.
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(frames(&huge, 3).1, Some(FrameError::Length));
        assert_eq!(decode_frame(&huge).err(), Some(FrameError::Length));
        // Headers longer than the frame.
        let mut p = Vec::new();
        p.extend_from_slice(&16u32.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        let crc = crc32fast::hash(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(check_prelude(&p), Err(FrameError::Length));
    }

    fn header_value() -> impl Strategy<Value = (String, u8, Vec<u8>, i64)> {
        (
            "[a-z:-]{0,12}",
            0u8..10,
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<i64>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes, split anywhere, never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            split in 1usize..64,
        ) {
            let mut d = EventStreamDecoder::new();
            for piece in bytes.chunks(split) {
                d.feed(piece, |f| { let _ = f.headers().count(); });
            }
            let _ = decode_frame(&bytes);
        }

        /// Arbitrary bytes behind a valid prelude still never panic.
        #[test]
        fn arbitrary_frames_behind_valid_preludes_never_panic(
            headers_len in 0u32..64,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let total = (MIN_FRAME + body.len()) as u32;
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&total.to_be_bytes());
            bytes.extend_from_slice(&headers_len.to_be_bytes());
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            bytes.extend_from_slice(&body);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            if let Ok(Some((f, _))) = decode_frame(&bytes) {
                let _ = f.headers().count();
            }
        }

        /// Valid frames decode at any split and re-encode to the same bytes.
        #[test]
        fn valid_frames_re_encode_to_the_same_bytes(
            specs in proptest::collection::vec(
                (proptest::collection::vec(header_value(), 0..5),
                 proptest::collection::vec(any::<u8>(), 0..300)),
                1..4),
            split in 1usize..50,
        ) {
            let mut body = Vec::new();
            for (hs, payload) in &specs {
                let texts: Vec<String> =
                    hs.iter().map(|(_, _, b, _)| String::from_utf8_lossy(b).into_owned()).collect();
                let headers: Vec<(&str, HeaderValue<'_>)> = hs
                    .iter()
                    .zip(&texts)
                    .map(|((name, ty, bytes, n), text)| {
                        let v = match ty {
                            0 => HeaderValue::Bool(true),
                            1 => HeaderValue::Bool(false),
                            2 => HeaderValue::Byte(*n as i8),
                            3 => HeaderValue::Short(*n as i16),
                            4 => HeaderValue::Int(*n as i32),
                            5 => HeaderValue::Long(*n),
                            6 => HeaderValue::Bytes(bytes),
                            7 => HeaderValue::String(text),
                            8 => HeaderValue::Timestamp(*n),
                            _ => HeaderValue::Uuid([*n as u8; 16]),
                        };
                        (name.as_str(), v)
                    })
                    .collect();
                body.extend(encode_frame(&headers, payload));
            }
            let mut d = EventStreamDecoder::new();
            let mut again = Vec::new();
            for piece in body.chunks(split) {
                d.feed(piece, |f| {
                    let headers: Vec<_> = f.headers().collect();
                    again.extend(encode_frame(&headers, f.payload));
                });
            }
            prop_assert_eq!(d.failed(), None);
            prop_assert_eq!(again, body);
        }
    }
}
