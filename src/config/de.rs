//! How the file's values that are not plain serde shapes are read: `*_secs` numbers as
//! durations, addresses, digests, lowercased header names, the `mcp_servers` map.
//!
//! Each check runs inside a visitor, so serde_norway puts the key's full path in front of
//! the message (`upstreams[0].timeouts.idle_secs: must be ...`); a check made after
//! `T::deserialize` returns would only be given the enclosing section's path.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{check, McpServerConfig};

/// A number, checked and converted by `check`.
struct Number<T>(fn(f64) -> Result<T, String>, &'static str);

impl<T> Visitor<'_> for Number<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_f64(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_f64(v as f64)
    }
}

/// A string, checked and converted by `check`.
struct Text<T>(fn(&str) -> Result<T, String>, &'static str);

impl<T> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

/// A `*_secs` key: a non-negative number of seconds.
pub(super) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_f64(Number(check::secs, "a number of seconds"))
}

pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    d.deserialize_str(Text(check::socket_addr, "an address, host:port"))
}

/// An optional address; `null` is none.
pub(super) fn socket_addr_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<SocketAddr>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an address, host:port")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            socket_addr(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// An upstream's base URL, its trailing slashes dropped (checked with the rest in `validate`,
/// which also sees `--upstream`).
pub(super) fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    Ok(url.trim_end_matches('/').to_string())
}

/// A client key's SHA-256, 64 hex characters.
pub(super) fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    d.deserialize_str(Text(check::sha256, "the SHA-256 of a key"))
}

/// Header names, lowercased (HTTP names are case-insensitive; lookups use lowercase).
pub(super) fn lowercase_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    Ok(names.into_iter().map(|h| h.to_ascii_lowercase()).collect())
}

/// One header name, lowercased; `null` is none.
pub(super) fn lowercase_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = Option::<String>::deserialize(d)?;
    Ok(name.map(|h| h.to_ascii_lowercase()))
}

/// A section left empty (`telemetry:` with every key commented out reads as `null`) keeps
/// its defaults, as a section left out does.
pub(super) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `mcp_servers:` is a map of name to URL (in name order; names are checked in `validate`,
/// which also sees `--mcp-servers`).
pub(super) fn mcp_servers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<McpServerConfig>, D::Error> {
    let map = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
    Ok(map
        .into_iter()
        .map(|(name, url)| McpServerConfig { name, url })
        .collect())
}
