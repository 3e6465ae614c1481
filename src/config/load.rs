//! Reading the YAML file into a `Config`, and the checks that span several values.

use std::collections::HashMap;
use std::path::Path;

use super::{check, Config};

/// A configuration problem, rendered as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The environment as a lookup, so tests can pass a map instead of mutating the process env.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// An environment of the given pairs, for tests.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads and checks YAML text; what tests of shipped configs use.
pub fn load_yaml(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    let cfg = Config::from_yaml(text, env)?;
    cfg.validate()?;
    Ok(cfg)
}

impl Config {
    /// `from_yaml` of the file at `path`; every error names the file.
    pub fn from_file(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let in_file =
            |msg: &dyn std::fmt::Display| err(format!("config file {}: {msg}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| in_file(&e))?;
        Config::from_yaml(&text, env).map_err(|e| in_file(&e))
    }

    /// The defaults with the YAML text laid over them, each upstream's key read from the
    /// variable its `api_key_env` names. Not yet `validate`d, so flags can still be applied.
    /// Errors are one line naming the key (`upstreams[0]: unknown field `colour`...`).
    pub fn from_yaml(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_norway::from_str(text).map_err(|e| err(one_line(&e)))?
        };
        for (i, u) in cfg.upstreams.iter_mut().enumerate() {
            if let Some(var) = &u.api_key_env {
                let key = check::api_key(var, env)
                    .map_err(|m| err(format!("upstreams[{i}].api_key_env: {m}")))?;
                u.api_key = Some(key);
            }
            if let Some(s) = &u.aws_sigv4 {
                u.aws_signing = Some(
                    aws_signing(s, &u.base_url, env)
                        .map_err(|m| err(format!("upstreams[{i}].aws_sigv4: {m}")))?,
                );
            }
        }
        Ok(cfg)
    }

    /// Checks what no single key's type can: names that must match, ranges, pairs, patterns.
    /// Flags were checked as they were applied, so an error here names a file key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_upstreams()?;
        let positive = [
            ("header_read_timeout_secs", self.header_read_timeout),
            ("body_read_timeout_secs", self.body_read_timeout),
        ];
        for (key, d) in positive {
            if d.is_zero() {
                return Err(err(format!("{key}: must be greater than 0")));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(err("max_body_bytes: must be greater than 0"));
        }
        if let Some(n) = self.serve_threads {
            check::threads(n).map_err(|m| err(format!("serve_threads: {m}")))?;
        }
        if let Some(url) = &self.state_url {
            check::state_url(url).map_err(|m| err(format!("state_url: {m}")))?;
        }
        let tls = (self.tls_cert.as_ref(), self.tls_key.as_ref());
        check::tls_pair(tls.0, tls.1, ("tls_cert", "tls_key")).map_err(err)?;
        for (i, r) in self.telemetry.redact.iter().enumerate() {
            regex::Regex::new(&r.pattern)
                .map_err(|e| err(format!("telemetry.redact[{i}].pattern: {}", one_line(&e))))?;
        }
        self.validate_ui()?;
        self.validate_mcp()?;
        self.validate_prices()?;
        self.validate_auth()
    }

    fn validate_upstreams(&self) -> Result<(), ConfigError> {
        if self.upstreams.is_empty() {
            return Err(err("upstreams: at least one upstream is required"));
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            check::http_url(&u.base_url)
                .map_err(|m| err(format!("upstreams[{i}].base_url: {m}")))?;
            if self.upstreams[..i].iter().any(|o| o.name == u.name) {
                return Err(err(format!(
                    "upstreams[{i}].name: duplicate upstream name {:?}",
                    u.name
                )));
            }
            // llmtap's own AWS credentials sign for whoever reaches it: only behind client keys.
            if u.aws_signing.is_some() && self.auth.is_none() {
                return Err(err(format!(
                    "upstreams[{i}].aws_sigv4: signs with llmtap's own AWS credentials, so it needs client keys (auth.keys) to check who is asking"
                )));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if self.upstream(&r.upstream).is_none() {
                return Err(err(format!(
                    "routes[{i}].upstream: no upstream named {:?}",
                    r.upstream
                )));
            }
        }
        match &self.default_upstream {
            Some(name) if self.upstream(name).is_none() => {
                Err(err(format!("default_upstream: no upstream named {name:?}")))
            }
            _ => Ok(()),
        }
    }

    fn validate_ui(&self) -> Result<(), ConfigError> {
        let u = &self.ui;
        if !(1..=MAX_UI_CALLS).contains(&u.max_calls) {
            return Err(err(format!(
                "ui.max_calls: must be between 1 and {MAX_UI_CALLS}, got {}",
                u.max_calls
            )));
        }
        if let Some(t) = &u.trace_url {
            // The page turns it into a link: only http(s), so no `javascript:` URL can ride in.
            let ok =
                (t.starts_with("http://") || t.starts_with("https://")) && t.contains("{trace_id}");
            if !ok {
                return Err(err(format!(
                    "ui.trace_url: must be an http(s) URL containing {{trace_id}}, got {t:?}"
                )));
            }
        }
        if u.only_on_metrics_listen && self.metrics_listen.is_none() {
            return Err(err(
                "ui.only_on_metrics_listen: needs metrics_listen (--metrics-listen) to be set",
            ));
        }
        Ok(())
    }

    /// MCP server names are one path segment; URLs are http(s) with a host.
    fn validate_mcp(&self) -> Result<(), ConfigError> {
        for s in &self.mcp_servers {
            let key = format!("mcp_servers.{}", s.name);
            let ok_name = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && s.name != "."
                && s.name != "..";
            if !ok_name {
                return Err(err(format!(
                    "{key}: a server name is 1-64 letters, digits, '-', '_' or '.'"
                )));
            }
            check::http_url(&s.url).map_err(|m| err(format!("{key}: {m}")))?;
        }
        Ok(())
    }

    /// The file's prices (the shipped table is checked by its own test).
    fn validate_prices(&self) -> Result<(), ConfigError> {
        let upstream_prices = self
            .upstreams
            .iter()
            .flat_map(|u| u.prices.iter().flatten());
        for p in self.metrics.prices.iter().chain(upstream_prices) {
            let bad = |v: f64| !v.is_finite() || v < 0.0;
            let optional = [p.cached_input, p.cache_write_input];
            if bad(p.input) || bad(p.output) || optional.into_iter().flatten().any(bad) {
                return Err(err(format!(
                    "prices[{}]: prices must be non-negative numbers",
                    p.model
                )));
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if auth.keys.is_empty() {
            return Err(err(
                "auth.keys: at least one key is required (leave auth out to let every request in)",
            ));
        }
        for (i, k) in auth.keys.iter().enumerate() {
            let key = |f: &str| format!("auth.keys[{i}].{f}");
            if auth.keys[..i].iter().any(|o| o.sha256 == k.sha256) {
                return Err(err(format!("{}: the same key twice", key("sha256"))));
            }
            if k.tenant.trim().is_empty() {
                return Err(err(format!("{}: must not be empty", key("tenant"))));
            }
            let limits = [
                ("requests_per_minute", k.requests_per_minute),
                ("max_concurrent", k.max_concurrent),
            ];
            for (name, limit) in limits {
                if limit == Some(0) {
                    return Err(err(format!(
                        "{}: must be at least 1 (leave it out for no limit)",
                        key(name)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Most calls the view keeps; each holds a finished record of a few KB.
const MAX_UI_CALLS: usize = 1_000_000;

/// serde_norway's messages span lines; a config error is one.
/// The signing settings of an `aws_sigv4:` section: its region (else the base URL's, else
/// `AWS_REGION` / `AWS_DEFAULT_REGION`) and llmtap's AWS credentials (`crate::sigv4`).
fn aws_signing(
    s: &super::AwsSigv4Config,
    base_url: &str,
    env: &dyn Env,
) -> Result<crate::sigv4::AwsSigning, String> {
    let host = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|b| b.host_str().map(str::to_owned))
        .unwrap_or_default();
    let region = s
        .region
        .clone()
        .or_else(|| crate::sigv4::region_from_host(&host))
        .or_else(|| env.get("AWS_REGION"))
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .ok_or("no region (set region, use a bedrock-runtime.{region}.amazonaws.com base_url, or AWS_REGION)")?;
    let credentials = crate::sigv4::credentials_from(|k| env.get(k), s.profile.as_deref())?;
    Ok(crate::sigv4::AwsSigning {
        region,
        service: s.service.clone().unwrap_or_else(|| "bedrock".to_owned()),
        credentials,
    })
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
