//! The prompt fingerprint (`llmtap.prompt.hash`): one keyed hash over a prompt's canonical
//! JSON, whichever API carried it.

use serde::Serialize;

use super::text::hex;

/// Fingerprints prompts for `llmtap.prompt.hash` with HMAC-SHA-256 (RFC 2104) under a
/// per-deployment secret. A plain SHA-256 of a short prompt ("Hello") can be reversed by
/// hashing guesses; a keyed hash cannot without the secret. Replicas that share the secret
/// (`LLMTAP_PROMPT_HASH_KEY`) produce the same hash for the same prompt; without one, each
/// process draws a random key and hashes group within that process only.
///
/// The hash is only computed when something exports it: [`unexported`](Self::unexported)
/// gives a hasher that answers `None` (spans off: the span is the hash's only consumer).
pub struct PromptHasher {
    key: ring::hmac::Key,
    exported: bool,
}

/// The environment variable holding the prompt-hash secret.
pub const PROMPT_HASH_KEY_ENV: &str = "LLMTAP_PROMPT_HASH_KEY";

impl PromptHasher {
    pub fn from_secret(secret: &[u8]) -> PromptHasher {
        PromptHasher {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            exported: true,
        }
    }

    /// This hasher, answering `None` from [`prompt_hash`](Self::prompt_hash): for a process
    /// whose spans are off (`OTEL_SDK_DISABLED`), where no one reads `llmtap.prompt.hash` and
    /// the HMAC would be computed in vain on every request.
    pub fn unexported(self) -> PromptHasher {
        PromptHasher {
            exported: false,
            ..self
        }
    }

    /// A hasher with a random 256-bit key from the OS.
    pub fn random() -> PromptHasher {
        use ring::rand::SecureRandom;
        let mut secret = [0u8; 32];
        if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
            // No OS randomness: fall back to time and address entropy rather than fail the
            // proxy; the hash is a grouping key, not a credential.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            secret[..16].copy_from_slice(&t.to_le_bytes());
            let addr = &secret as *const _ as usize as u128;
            secret[16..].copy_from_slice(&addr.to_le_bytes());
        }
        PromptHasher::from_secret(&secret)
    }

    /// The hasher for a deployment: keyed with `secret` (the value of
    /// [`PROMPT_HASH_KEY_ENV`]) when there is one, else with a random key.
    pub fn from_secret_or_random(secret: Option<&str>) -> PromptHasher {
        match secret {
            Some(secret) => PromptHasher::from_secret(secret.as_bytes()),
            None => PromptHasher::random(),
        }
    }

    /// Lowercase hex HMAC-SHA-256 of `data` (64 characters).
    pub fn hash(&self, data: &[u8]) -> String {
        hex(ring::hmac::sign(&self.key, data).as_ref())
    }

    /// `llmtap.prompt.hash` of a prompt: [`hash`](Self::hash) of its canonical JSON. Every
    /// dialect passes what makes up its prompt (messages, system text, input), borrowed from
    /// the request body. serde_json's map is ordered by key, so serializing again gives a
    /// canonical form: the same prompt hashes the same whatever the client's key order or
    /// spacing. The JSON is written through a small stack buffer straight into the HMAC, never
    /// collected in a `Vec` (per request, that copy and its regrowth cost more than the
    /// serializing). A prompt that cannot be serialized hashes as the empty text, as before.
    pub fn prompt_hash(&self, prompt: &impl Serialize) -> Option<String> {
        if !self.exported {
            return None;
        }
        let mut out = HmacWriter {
            cx: ring::hmac::Context::with_key(&self.key),
            buf: [0; HMAC_WRITE_BUFFER],
            len: 0,
        };
        if serde_json::to_writer(&mut out, prompt).is_err() {
            return Some(self.hash(b""));
        }
        out.cx.update(&out.buf[..out.len]);
        Some(hex(out.cx.sign().as_ref()))
    }
}

/// Bytes gathered before an HMAC update: serde_json writes a prompt token by token, and one
/// update per token would cost more than the copy into this buffer.
const HMAC_WRITE_BUFFER: usize = 512;

/// An `io::Write` into an HMAC, buffered.
struct HmacWriter {
    cx: ring::hmac::Context,
    buf: [u8; HMAC_WRITE_BUFFER],
    len: usize,
}

impl std::io::Write for HmacWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len + data.len() > self.buf.len() {
            self.cx.update(&self.buf[..self.len]);
            self.len = 0;
            if data.len() > self.buf.len() {
                self.cx.update(data);
                return Ok(data.len());
            }
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for PromptHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptHasher(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed hash is the HMAC of the whole canonical JSON, whatever the prompt's size
    /// against the write buffer (tokens split across flushes, strings longer than it).
    #[test]
    fn streamed_hash_is_the_hash_of_the_canonical_json() {
        let h = PromptHasher::from_secret(b"k");
        let long = "x".repeat(3 * HMAC_WRITE_BUFFER + 7);
        let many: Vec<serde_json::Value> = (0..300)
            .map(|i| serde_json::json!({"role": "user", "content": format!("m{i} \u{e9}\"")}))
            .collect();
        for prompt in [
            serde_json::json!([]),
            serde_json::json!([{"role": "user", "content": "Hello"}]),
            serde_json::json!([{"content": long, "role": "user"}]),
            serde_json::Value::Array(many),
        ] {
            let canonical = serde_json::to_vec(&prompt).expect("json");
            assert_eq!(h.prompt_hash(&prompt), Some(h.hash(&canonical)));
        }
        let off = PromptHasher::from_secret(b"k").unexported();
        assert_eq!(off.prompt_hash(&serde_json::json!([])), None);
    }
}
