//! The prompt fingerprint (`llmtap.prompt.hash`): one keyed hash over a prompt's canonical
//! JSON, whichever API carried it.

use serde::Serialize;

use super::text::hex;

/// Fingerprints prompts for `llmtap.prompt.hash` with HMAC-SHA-256 (RFC 2104) under a
/// per-deployment secret. A plain SHA-256 of a short prompt ("Hello") can be reversed by
/// hashing guesses; a keyed hash cannot without the secret. Replicas that share the secret
/// (`LLMTAP_PROMPT_HASH_KEY`) produce the same hash for the same prompt; without one, each
/// process draws a random key and hashes group within that process only.
pub struct PromptHasher(ring::hmac::Key);

/// The environment variable holding the prompt-hash secret.
pub const PROMPT_HASH_KEY_ENV: &str = "LLMTAP_PROMPT_HASH_KEY";

impl PromptHasher {
    pub fn from_secret(secret: &[u8]) -> PromptHasher {
        PromptHasher(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
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
        hex(ring::hmac::sign(&self.0, data).as_ref())
    }

    /// `llmtap.prompt.hash` of a prompt: [`hash`](Self::hash) of its canonical JSON. Every
    /// dialect passes what makes up its prompt (messages, system text, input), borrowed from
    /// the request body. serde_json's map is ordered by key, so serializing again gives a
    /// canonical form: the same prompt hashes the same whatever the client's key order or
    /// spacing.
    pub fn prompt_hash(&self, prompt: &impl Serialize) -> String {
        self.hash(&serde_json::to_vec(prompt).unwrap_or_default())
    }
}

impl std::fmt::Debug for PromptHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptHasher(<secret>)")
    }
}
