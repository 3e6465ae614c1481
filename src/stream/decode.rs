//! Decompression on the telemetry side only. A compressed upstream body is relayed to the
//! client as it came (the client asked for that encoding); the parser watches a decoded copy.

use std::io::Write;

/// Compressed bytes handed to a decoder at a time: with [`MAX_DECODED_PER_READ`], the largest
/// expansion llmtap follows is 4096:1 (deflate's own limit is about 1032:1; legitimate JSON
/// and SSE compress far less).
pub const DECODE_INPUT_STEP: usize = 1024;

/// Decoded bytes one [`DECODE_INPUT_STEP`] may produce. Past it the body is a decompression
/// bomb: telemetry stops parsing it, and a relay that decodes for the client cuts the stream
/// (it cannot hand the client a faithful rest).
pub const MAX_DECODED_PER_READ: usize = 4 * 1024 * 1024;

/// Largest zstd window accepted: 2^23 = 8 MiB (RFC 9659 §2).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Where a decoder writes: a buffer that refuses to grow past [`MAX_DECODED_PER_READ`]
/// (`ErrorKind::OutOfMemory`, and every step after it too), drained after every step.
#[derive(Default)]
pub struct Capped {
    buf: Vec<u8>,
    over: bool,
}

fn over_bound() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::OutOfMemory,
        "decoded output over llmtap's per-read bound",
    )
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_DECODED_PER_READ.saturating_sub(self.buf.len());
        if buf.len() > room {
            // Keep what fits: it is handed on before the step fails.
            self.buf.extend_from_slice(&buf[..room]);
            self.over = true;
            return Err(over_bound());
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An incremental decoder for one `content-encoding`, fed at most [`DECODE_INPUT_STEP`]
/// compressed bytes at a time, each step's output capped at [`MAX_DECODED_PER_READ`].
pub enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Capped>>),
    Deflate(Box<flate2::write::ZlibDecoder<Capped>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Capped>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Capped>>),
}

impl Decoder {
    /// `None` for identity or an encoding we cannot decode (telemetry parsing then stops).
    pub fn for_encoding(encoding: &str) -> Option<Result<Decoder, ()>> {
        let d = match encoding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => return None,
            "gzip" | "x-gzip" => {
                Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Capped::default())))
            }
            "deflate" => {
                Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(Capped::default())))
            }
            "br" => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Capped::default(),
                4096,
            ))),
            "zstd" => {
                // RFC 9659 §2: HTTP's zstd content coding uses windows of at most 8 MiB; a
                // frame asking for more (a decoder allocation of up to 2 GiB) is refused.
                let d = zstd::stream::write::Decoder::new(Capped::default()).and_then(|mut d| {
                    d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                    Ok(d)
                });
                match d {
                    Ok(d) => Decoder::Zstd(Box::new(d)),
                    Err(_) => return Some(Err(())),
                }
            }
            _ => return Some(Err(())),
        };
        Some(Ok(d))
    }

    /// Decodes one step of at most [`DECODE_INPUT_STEP`] bytes; returns what it decoded to
    /// (possibly nothing yet). A step that decodes past [`MAX_DECODED_PER_READ`] (a
    /// decompression bomb) returns the output up to the bound, and every step after it an
    /// error of kind `OutOfMemory`.
    pub fn step(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        debug_assert!(bytes.len() <= DECODE_INPUT_STEP);
        if self.sink().over {
            return Err(over_bound());
        }
        let ran = match self {
            Decoder::Gzip(d) => d.write_all(bytes).and_then(|_| d.flush()),
            Decoder::Deflate(d) => d.write_all(bytes).and_then(|_| d.flush()),
            Decoder::Brotli(d) => d.write_all(bytes).and_then(|_| d.flush()),
            Decoder::Zstd(d) => d.write_all(bytes).and_then(|_| d.flush()),
        };
        let sink = self.sink();
        match ran {
            Ok(()) => Ok(std::mem::take(&mut sink.buf)),
            Err(_) if sink.over && !sink.buf.is_empty() => Ok(std::mem::take(&mut sink.buf)),
            Err(e) => Err(e),
        }
    }

    fn sink(&mut self) -> &mut Capped {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }

    /// Decodes `bytes` step by step, handing each step's output to `sink` before the next
    /// step is decoded; stops early (`Ok`) when `sink` returns false.
    pub fn write_with(
        &mut self,
        bytes: &[u8],
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> std::io::Result<()> {
        for piece in bytes.chunks(DECODE_INPUT_STEP) {
            let out = self.step(piece)?;
            if !out.is_empty() && !sink(&out) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_in_pieces() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(br#"{"usage":{"prompt_tokens":3}}"#).unwrap();
        let z = enc.finish().unwrap();
        let Some(Ok(mut d)) = Decoder::for_encoding("gzip") else {
            panic!()
        };
        let mut out = Vec::new();
        for piece in z.chunks(5) {
            out.extend(d.step(piece).unwrap());
        }
        assert_eq!(out, br#"{"usage":{"prompt_tokens":3}}"#);
    }

    #[test]
    fn zstd_and_unknown() {
        let z = zstd::encode_all(&b"hello zstd"[..], 3).unwrap();
        let Some(Ok(mut d)) = Decoder::for_encoding("zstd") else {
            panic!()
        };
        let mut out = Vec::new();
        d.write_with(&z, |b| {
            out.extend_from_slice(b);
            true
        })
        .unwrap();
        assert_eq!(out, b"hello zstd");
        assert!(matches!(Decoder::for_encoding("compress"), Some(Err(()))));
        assert!(Decoder::for_encoding("identity").is_none());
    }

    #[test]
    fn a_bomb_is_refused_within_one_step() {
        // 256 MiB of zeros: a few hundred KB compressed with gzip, far less with zstd.
        let zeros = vec![0u8; 1 << 20];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..256 {
            enc.write_all(&zeros).unwrap();
        }
        let gz = enc.finish().unwrap();
        let zst = zstd::encode_all(std::io::repeat(0).take(256 << 20), 19).unwrap();
        for (enc, body) in [("gzip", gz), ("zstd", zst)] {
            let Some(Ok(mut d)) = Decoder::for_encoding(enc) else {
                panic!()
            };
            let (mut total, mut largest) = (0usize, 0usize);
            let r = d.write_with(&body, |b| {
                total += b.len();
                largest = largest.max(b.len());
                true
            });
            assert!(largest <= MAX_DECODED_PER_READ, "{enc}: {largest}");
            match r {
                // gzip's ratio stays under the per-step bound: every step is handed on.
                Ok(()) => assert_eq!(total, 256 << 20, "{enc}"),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory, "{enc}"),
            }
        }
    }
}
