//! Client keys (gateway mode): which tenant a request comes from, and whether it may go on
//! now. Off unless `auth.keys` is configured; then every proxied request must present a
//! known key (`Authorization: Bearer`, `api-key` or `x-api-key`).
//!
//! The file holds only SHA-256 digests of the keys (`llmtap hash-key` makes the line). A
//! presented key is hashed and compared with every configured digest in constant time, so
//! neither the answer's timing nor its content says how close a guess came. Limits are per
//! key: `requests_per_minute` through `governor` (GCRA; a full minute's worth may come at
//! once, then one every 60/n seconds), `max_concurrent` through a semaphore whose permit the
//! request holds until its response body ends. Over either limit the answer is an immediate
//! 429: nothing queues.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{AuthConfig, ClientKeyConfig};
use crate::vocab::text::hex;

/// Request headers that carry a client's credential. They are never forwarded when client
/// keys are on, and never copied onto spans or metrics.
pub const CREDENTIAL_HEADERS: [&str; 6] = [
    "authorization",
    "api-key",
    "x-api-key",
    // Google's (Gemini Developer API); its `key=` query parameter is never recorded either.
    "x-goog-api-key",
    "proxy-authorization",
    "cookie",
];

/// Whether `header` (lower-case) carries a credential: never copied onto telemetry, whatever
/// the config names.
pub fn is_credential(header: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&header)
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

struct Client {
    digest: [u8; 32],
    tenant: Arc<str>,
    rate: Option<(u32, Limiter)>,
    concurrency: Option<(u32, Arc<Semaphore>)>,
}

/// The configured client keys with their limiters.
pub struct ClientKeys {
    clients: Vec<Client>,
    clock: DefaultClock,
}

/// A request let in: its tenant, and the concurrency slot it holds (when limited).
#[derive(Debug)]
pub struct Admission {
    pub tenant: Arc<str>,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Why a request is turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key in any of the three headers.
    MissingKey,
    /// A key that matches no configured digest.
    UnknownKey,
    /// Over the key's `requests_per_minute`; the next request fits in `retry_after`.
    RateLimited {
        tenant: Arc<str>,
        limit: u32,
        retry_after: Duration,
    },
    /// The key already has `max_concurrent` requests in flight.
    TooManyConcurrent { tenant: Arc<str>, limit: u32 },
}

impl Refusal {
    /// The tenant, when the key was known.
    pub fn tenant(&self) -> Option<Arc<str>> {
        match self {
            Refusal::RateLimited { tenant, .. } | Refusal::TooManyConcurrent { tenant, .. } => {
                Some(tenant.clone())
            }
            _ => None,
        }
    }
}

impl ClientKeys {
    pub fn new(config: &AuthConfig) -> ClientKeys {
        let clients = config.keys.iter().map(Client::new).collect();
        ClientKeys {
            clients,
            clock: DefaultClock::default(),
        }
    }

    /// Like [`admit`](Self::admit), with the per-minute limit counted across replicas in the
    /// shared state: one fixed one-minute window per key in Redis (`INCR`, the window's key
    /// expiring after two minutes), so N replicas together admit at most the limit per
    /// minute. Redis unavailable: this replica's own limiter decides (fail open, counted).
    pub async fn admit_shared(
        &self,
        headers: &HeaderMap,
        shared: &crate::state::SharedState,
    ) -> Result<Admission, Refusal> {
        let key = presented_key(headers).ok_or(Refusal::MissingKey)?;
        let client = self.find(&digest(key)).ok_or(Refusal::UnknownKey)?;
        let permit = client.take_slot()?;
        if let Some((limit, limiter)) = &client.rate {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let minute = now.as_secs() / 60;
            let id = hex(&client.digest[..16]);
            match shared.count_in_window(&format!("rate:{id}:{minute}")).await {
                Ok(n) if n > u64::from(*limit) => {
                    return Err(Refusal::RateLimited {
                        tenant: client.tenant.clone(),
                        limit: *limit,
                        retry_after: Duration::from_secs(60 - now.as_secs() % 60),
                    })
                }
                Ok(_) => {}
                Err(()) => {
                    if let Err(not_until) = limiter.check() {
                        return Err(Refusal::RateLimited {
                            tenant: client.tenant.clone(),
                            limit: *limit,
                            retry_after: not_until.wait_time_from(self.clock.now()),
                        });
                    }
                }
            }
        }
        Ok(Admission {
            tenant: client.tenant.clone(),
            permit,
        })
    }

    /// Checks the request's key and the key's limits; on success the request may go on.
    pub fn admit(&self, headers: &HeaderMap) -> Result<Admission, Refusal> {
        let key = presented_key(headers).ok_or(Refusal::MissingKey)?;
        let client = self.find(&digest(key)).ok_or(Refusal::UnknownKey)?;
        // Concurrency first: a slot not taken is given back for free, a rate token is not.
        let permit = client.take_slot()?;
        if let Some((limit, limiter)) = &client.rate {
            if let Err(not_until) = limiter.check() {
                return Err(Refusal::RateLimited {
                    tenant: client.tenant.clone(),
                    limit: *limit,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(Admission {
            tenant: client.tenant.clone(),
            permit,
        })
    }

    /// The client whose digest equals `d`, comparing with every configured digest in
    /// constant time (no early exit on a match or on a differing byte).
    fn find(&self, d: &[u8; 32]) -> Option<&Client> {
        let mut found = None;
        for c in &self.clients {
            if constant_time_eq(&c.digest, d) {
                found = Some(c);
            }
        }
        found
    }
}

impl Client {
    /// A concurrency slot, when the key is limited; refused at once when none is free.
    fn take_slot(&self) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        match &self.concurrency {
            None => Ok(None),
            Some((limit, sem)) => match sem.clone().try_acquire_owned() {
                Ok(p) => Ok(Some(p)),
                Err(_) => Err(Refusal::TooManyConcurrent {
                    tenant: self.tenant.clone(),
                    limit: *limit,
                }),
            },
        }
    }

    fn new(k: &ClientKeyConfig) -> Client {
        let rate = k.requests_per_minute.and_then(NonZeroU32::new).map(|n| {
            let limiter = RateLimiter::direct(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>();
            (n.get(), limiter)
        });
        let concurrency = k
            .max_concurrent
            .filter(|n| *n > 0)
            .map(|n| (n, Arc::new(Semaphore::new(n as usize))));
        Client {
            digest: k.sha256,
            tenant: Arc::from(k.tenant.as_str()),
            rate,
            concurrency,
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The key the client presented: `Authorization: Bearer <key>`, else `api-key`, else
/// `x-api-key`, else `x-goog-api-key` (Google's SDKs). Surrounding whitespace is not part of
/// the key.
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.as_bytes();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
            if let Some(k) = clean(&v[7..]) {
                return Some(k);
            }
        }
    }
    ["api-key", "x-api-key", "x-goog-api-key"]
        .iter()
        .filter_map(|h| headers.get(*h))
        .find_map(|v| clean(v.as_bytes()))
}

/// `v` without surrounding whitespace; `None` when nothing is left.
fn clean(v: &[u8]) -> Option<&[u8]> {
    let start = v.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = v.len() - v.iter().rev().position(|b| !b.is_ascii_whitespace())?;
    Some(&v[start..end])
}

/// SHA-256 of a key.
pub fn digest(key: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The YAML line `llmtap hash-key` prints for a key.
pub fn yaml_line(key: &[u8]) -> String {
    format!("sha256: \"{}\"", hex(&digest(key)))
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*` (`850ms`, `2s`, `1m30s`).
pub fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{}ms", ms.max(1));
    }
    let secs = d.as_secs_f64().ceil() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rpm: Option<u32>, conc: Option<u32>) -> ClientKeys {
        ClientKeys::new(&AuthConfig {
            keys: vec![
                ClientKeyConfig {
                    sha256: digest(b"sk-team-a"),
                    tenant: "team-a".into(),
                    requests_per_minute: rpm,
                    max_concurrent: conc,
                },
                ClientKeyConfig {
                    sha256: digest(b"sk-team-b"),
                    tenant: "team-b".into(),
                    requests_per_minute: None,
                    max_concurrent: None,
                },
            ],
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn keys_come_from_three_headers() {
        let k = keys(None, None);
        for h in [
            headers(&[("authorization", "Bearer sk-team-a")]),
            headers(&[("authorization", "bearer  sk-team-a ")]),
            headers(&[("api-key", "sk-team-a")]),
            headers(&[("x-api-key", "sk-team-a")]),
        ] {
            assert_eq!(&*k.admit(&h).unwrap().tenant, "team-a", "{h:?}");
        }
        assert_eq!(
            &*k.admit(&headers(&[("x-api-key", "sk-team-b")]))
                .unwrap()
                .tenant,
            "team-b"
        );
        assert_eq!(k.admit(&headers(&[])).unwrap_err(), Refusal::MissingKey);
        assert_eq!(
            k.admit(&headers(&[("authorization", "Basic c2stdGVhbS1h")]))
                .unwrap_err(),
            Refusal::MissingKey
        );
        assert_eq!(
            k.admit(&headers(&[("authorization", "Bearer sk-team-c")]))
                .unwrap_err(),
            Refusal::UnknownKey
        );
    }

    #[test]
    fn limits_refuse_at_once() {
        let k = keys(Some(2), Some(1));
        let h = headers(&[("api-key", "sk-team-a")]);
        let first = k.admit(&h).unwrap();
        // One in flight: the second is refused without waiting, and takes no rate token.
        assert!(matches!(
            k.admit(&h).unwrap_err(),
            Refusal::TooManyConcurrent { limit: 1, .. }
        ));
        drop(first);
        drop(k.admit(&h).unwrap());
        match k.admit(&h).unwrap_err() {
            Refusal::RateLimited {
                limit, retry_after, ..
            } => {
                assert_eq!(limit, 2);
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        // Another key is not affected.
        assert!(k.admit(&headers(&[("api-key", "sk-team-b")])).is_ok());
    }

    #[test]
    fn hash_line_and_reset_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            yaml_line(b"abc"),
            "sha256: \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
        );
        assert_eq!(reset_text(Duration::from_millis(850)), "850ms");
        assert_eq!(reset_text(Duration::from_millis(1200)), "2s");
        assert_eq!(reset_text(Duration::from_secs(90)), "1m30s");
    }
}
