//! The webhook: each alert POSTed as JSON to `NOTIFY_WEBHOOK_URL`.
//!
//! The request: `Content-Type: application/json`, `User-Agent: masclet/VERSION`, the body
//! the alert's JSON (`alert`, `message`, `detail`, `urgent`, `host`, `time`, `tier`,
//! `metrics`). Redirects are not followed (a POST should reach the configured address or
//! fail visibly).
//!
//! When `NOTIFY_WEBHOOK_SECRET` is set, two headers sign it:
//! - `X-Masclet-Timestamp: <unix seconds>`, taken at each attempt;
//! - `X-Masclet-Signature: sha256=<hex>`, the HMAC-SHA256 keyed with the secret's bytes
//!   over `<timestamp>.<body>` (the timestamp's decimal digits, a dot, the body's bytes).
//!
//! A receiver recomputes the HMAC over the raw body it received, compares it in constant
//! time, and rejects a timestamp more than a few minutes from its clock, so that a captured
//! request cannot be replayed later.
//!
//! A connection failure, a timeout, a 5xx or a 429 is worth another attempt; any other
//! status is reported at once. Messages name the endpoint as `scheme://host:port` only:
//! the path and query of a webhook URL are often its credential.

use super::{Failure, TIMEOUT};
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The channel's name in a [`super::Delivery`].
pub const NAME: &str = "webhook";

/// The configured endpoint.
pub struct Webhook {
    url: Zeroizing<String>,
    origin: String,
    secret: Option<Zeroizing<String>>,
    agent: ureq::Agent,
}

impl Webhook {
    /// The webhook `var` configures, if any.
    pub(crate) fn from_vars(var: &dyn Fn(&str) -> Result<Option<String>>) -> Result<Option<Self>> {
        let secret = var("NOTIFY_WEBHOOK_SECRET")?.map(Zeroizing::new);
        let Some(url) = var("NOTIFY_WEBHOOK_URL")? else {
            if secret.is_some() {
                return Err(Error::invalid(
                    "NOTIFY_WEBHOOK_SECRET is set without NOTIFY_WEBHOOK_URL: set the URL the alerts are posted to, or remove the secret",
                ));
            }
            return Ok(None);
        };
        let url = Zeroizing::new(url.trim().to_string());
        let origin = origin(&url).ok_or_else(|| {
            Error::invalid(
                "NOTIFY_WEBHOOK_URL is not an http:// or https:// URL with a host: correct it",
            )
        })?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("masclet/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Some(Self {
            url,
            origin,
            secret,
            agent,
        }))
    }

    /// POST `body` once.
    ///
    /// # Errors
    /// A [`Failure`], retryable for a connection failure, a timeout, a 5xx or a 429.
    pub fn attempt(&self, body: &str) -> Result<(), Failure> {
        let mut request = self
            .agent
            .post(self.url.as_str())
            .header("Content-Type", "application/json");
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
            request = request
                .header("X-Masclet-Timestamp", now.to_string())
                .header(
                    "X-Masclet-Signature",
                    signature(secret.as_bytes(), now, body),
                );
        }
        let at = &self.origin;
        match request.send(body.as_bytes()) {
            Ok(response) => {
                let status = response.status();
                let code = status.as_u16();
                if status.is_success() {
                    return Ok(());
                }
                let reason = status.canonical_reason().unwrap_or("");
                let said = format!("the webhook at {at} answered {code} {reason}");
                if code == 429 || status.is_server_error() {
                    Err(Failure::transient(said))
                } else if status.is_redirection() {
                    Err(Failure::permanent(format!(
                        "{said}: redirects are not followed, set NOTIFY_WEBHOOK_URL to the final address"
                    )))
                } else {
                    Err(Failure::permanent(format!(
                        "{said}: check NOTIFY_WEBHOOK_URL and, if it verifies signatures, NOTIFY_WEBHOOK_SECRET"
                    )))
                }
            }
            Err(e) => Err(self.describe(&e)),
        }
    }

    /// A transport error in words that never quote the URL.
    fn describe(&self, e: &ureq::Error) -> Failure {
        use ureq::Error as E;
        let at = &self.origin;
        let transient = |what: String| Failure::transient(format!("the webhook at {at}: {what}"));
        match e {
            E::Timeout(_) => transient(format!("no answer within {} s", TIMEOUT.as_secs())),
            E::HostNotFound => transient("its host name does not resolve".into()),
            E::ConnectionFailed => transient("the connection failed".into()),
            E::Io(io) => transient(io.to_string()),
            E::BadUri(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl => {
                Failure::permanent(format!(
                    "the webhook at {at}: the URL or the proxy setting is not usable: correct NOTIFY_WEBHOOK_URL or the *_PROXY variables"
                ))
            }
            other => {
                // Variants may quote the URL; keep only what is left once it is taken out.
                let text = other.to_string().replace(self.url.as_str(), at);
                transient(scrub(
                    &text,
                    &self.url,
                    self.secret.as_deref().map(String::as_str),
                ))
            }
        }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`.
pub fn signature(secret: &[u8], timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "sha256={}",
        crate::disk::id::to_hex(&mac.finalize().into_bytes())
    )
}

/// `scheme://host:port` of an http(s) URL (user info dropped, the port made explicit), or
/// `None` when `url` is not one.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().ok()?),
        _ => (host_port, default_port),
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    Some(format!("{scheme}://{host}:{port}"))
}

/// `text` without the URL's path and query or the secret, should a library quote them.
fn scrub(text: &str, url: &str, secret: Option<&str>) -> String {
    let mut out = text.to_string();
    if let Some((_, rest)) = url.split_once("://")
        && let Some(i) = rest.find(['/', '?', '#'])
        && rest.len() > i + 1
    {
        out = out.replace(&rest[i..], "/********");
    }
    if let Some(s) = secret.filter(|s| s.len() >= 4) {
        out = out.replace(s, "********");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_keeps_scheme_host_and_port_only() {
        assert_eq!(
            origin("https://hooks.example.com/services/T0/B1/tok?x=1").as_deref(),
            Some("https://hooks.example.com:443")
        );
        assert_eq!(
            origin("http://user:pw@127.0.0.1:8080/p").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("http://[::1]/x").as_deref(), Some("http://[::1]:80"));
        assert_eq!(origin("ftp://h/x"), None);
        assert_eq!(origin("https:///x"), None);
        assert_eq!(origin("not a url"), None);
    }

    #[test]
    fn scrubbing_removes_the_path_token_and_the_secret() {
        let text = "failed on https://h/hook/TOKEN123 with key k3y-s3cret";
        let out = scrub(text, "https://h/hook/TOKEN123", Some("k3y-s3cret"));
        assert!(
            !out.contains("TOKEN123") && !out.contains("k3y-s3cret"),
            "{out}"
        );
    }
}
