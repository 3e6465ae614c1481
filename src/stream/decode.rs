//! Decompression on the telemetry side only. A compressed upstream body is relayed to the
//! client as it came (the client asked for that encoding); the parser watches a decoded copy.

use std::io::Write;

/// An incremental decoder for one `content-encoding`. Output accumulates in an inner `Vec`
/// that the caller drains after each write.
pub enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    /// `None` for identity or an encoding we cannot decode (telemetry parsing then stops).
    pub fn for_encoding(encoding: &str) -> Option<Result<Decoder, ()>> {
        let d = match encoding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => return None,
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            "deflate" => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))),
            "br" => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                4096,
            ))),
            "zstd" => match zstd::stream::write::Decoder::new(Vec::new()) {
                Ok(d) => Decoder::Zstd(Box::new(d)),
                Err(_) => return Some(Err(())),
            },
            _ => return Some(Err(())),
        };
        Some(Ok(d))
    }

    /// Decodes the next compressed bytes; returns what they decoded to (possibly nothing yet).
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(bytes)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(bytes)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Brotli(d) => {
                d.write_all(bytes)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zstd(d) => {
                d.write_all(bytes)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            out.extend(d.write(piece).unwrap());
        }
        assert_eq!(out, br#"{"usage":{"prompt_tokens":3}}"#);
    }

    #[test]
    fn zstd_and_unknown() {
        let z = zstd::encode_all(&b"hello zstd"[..], 3).unwrap();
        let Some(Ok(mut d)) = Decoder::for_encoding("zstd") else {
            panic!()
        };
        assert_eq!(d.write(&z).unwrap(), b"hello zstd");
        assert!(matches!(Decoder::for_encoding("compress"), Some(Err(()))));
        assert!(Decoder::for_encoding("identity").is_none());
    }
}
