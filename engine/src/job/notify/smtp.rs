//! Mail: one plain-text message per alert to every address of `NOTIFY_EMAIL_TO`, through
//! `SMTP_HOST`.
//!
//! How the connection is protected follows from the settings, without a key of its own:
//! - `SMTP_PORT=465`: TLS from the first byte (SMTPS);
//! - any other port (587 by default): STARTTLS is required. A server that does not offer
//!   it is refused before anything, credentials above all, is sent;
//! - except when `SMTP_HOST` is written as a loopback address (`localhost`, `127.x.y.z`,
//!   `::1`): a relay on the same machine, such as the site's postfix, is spoken to in plain
//!   SMTP, since nothing leaves the machine and such relays rarely hold a certificate for
//!   `localhost`. The rule reads the host as written: a name that merely resolves to a
//!   loopback address still needs STARTTLS.
//!
//! Certificates are checked against the host name, with the bundled web PKI roots.
//! Credentials are sent (AUTH PLAIN or LOGIN) only when `SMTP_USER` is set, and then
//! `SMTP_PASSWORD` must be too. The sender is `SMTP_FROM`, by default
//! `masclet@<hostname>`. An urgent alert carries `X-Priority: 1` and `Importance: high`.
//!
//! A permanent refusal (a 5xx answer: bad credentials, an unknown recipient) ends the
//! attempts; anything else is retried.

use super::{Failure, TIMEOUT};
use crate::error::{Error, Result};
use crate::job::alert::Alert;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::net::IpAddr;

/// The channel's name in a [`super::Delivery`].
pub const NAME: &str = "smtp";

/// The port of SMTP over TLS from the first byte.
const SMTPS_PORT: u16 = 465;

/// The configured mail server and recipients.
pub struct Smtp {
    host: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: SmtpTransport,
    password: Option<zeroize::Zeroizing<String>>,
}

impl Smtp {
    /// The mail channel `var` configures, if any.
    pub(crate) fn from_vars(var: &dyn Fn(&str) -> Result<Option<String>>) -> Result<Option<Self>> {
        let host = var("SMTP_HOST")?.map(|h| h.trim().to_string());
        let to = var("NOTIFY_EMAIL_TO")?;
        let (host, to) = match (host, to) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(Error::invalid(
                    "SMTP_HOST is set but NOTIFY_EMAIL_TO is not: set the recipients, comma-separated",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "NOTIFY_EMAIL_TO is set but SMTP_HOST is not: set the mail server to send through",
                ));
            }
            (Some(h), Some(t)) => (h, t),
        };
        let port = match var("SMTP_PORT")? {
            Some(p) => p.trim().parse::<u16>().map_err(|_| {
                Error::invalid("SMTP_PORT is not a port from 1 to 65535: correct it")
            })?,
            None => 587,
        };
        let to = to
            .split(',')
            .map(|a| mailbox("NOTIFY_EMAIL_TO", a))
            .collect::<Result<Vec<_>>>()?;
        let from = match var("SMTP_FROM")? {
            Some(f) => mailbox("SMTP_FROM", &f)?,
            None => {
                let host = crate::repository::lock::hostname();
                mailbox("SMTP_FROM", &format!("masclet@{host}")).map_err(|_| {
                    Error::invalid(format!(
                        "this machine's name {host:?} does not make a mail address (masclet@{host}): set SMTP_FROM"
                    ))
                })?
            }
        };
        let user = var("SMTP_USER")?;
        let password = var("SMTP_PASSWORD")?.map(zeroize::Zeroizing::new);
        let credentials = match (user, &password) {
            (Some(u), Some(p)) => Some(Credentials::new(u, p.to_string())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "SMTP_USER is set without SMTP_PASSWORD: set the password too, or remove the user for a server that needs no login",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "SMTP_PASSWORD is set without SMTP_USER: set the login it belongs to",
                ));
            }
        };
        let tls = tls_for(&host, port)?;
        let mut builder = SmtpTransport::builder_dangerous(host.as_str())
            .port(port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(Some(Self {
            host,
            port,
            from,
            to,
            transport: builder.build(),
            password,
        }))
    }

    /// Send `alert` once, to every recipient.
    ///
    /// # Errors
    /// A [`Failure`], permanent when the server refused for good (5xx).
    pub fn attempt(&self, alert: &Alert) -> Result<(), Failure> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(alert.subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if alert.urgent {
            for (name, value) in [("X-Priority", "1"), ("Importance", "high")] {
                builder = builder.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str(name),
                    value.to_string(),
                ));
            }
        }
        let message = builder
            .body(text(alert))
            .map_err(|e| Failure::permanent(format!("cannot build the mail: {e}")))?;
        let at = format!("the mail server {}:{}", self.host, self.port);
        match self.transport.send(&message) {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut said = format!("{at}: {e}");
                if let Some(p) = self.password.as_deref().filter(|p| p.len() >= 4) {
                    said = said.replace(p.as_str(), "********");
                }
                // A server without STARTTLS will not grow it on a retry.
                let no_starttls = e.to_string().contains("STARTTLS");
                if no_starttls {
                    said.push_str(
                        "; masclet sends mail in the clear only to a loopback relay (SMTP_HOST=localhost): use a server offering STARTTLS, or port 465",
                    );
                }
                if e.is_permanent() || no_starttls {
                    Err(Failure::permanent(said))
                } else {
                    Err(Failure::transient(said))
                }
            }
        }
    }
}

/// Whether `host` is written as the loopback interface: `localhost`, `127.x.y.z` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The protection the rule in the module's documentation gives `host:port`.
fn tls_for(host: &str, port: u16) -> Result<Tls> {
    if port != SMTPS_PORT && is_loopback(host) {
        return Ok(Tls::None);
    }
    let params = TlsParameters::new(host.to_string()).map_err(|e| {
        Error::invalid(format!(
            "SMTP_HOST {host:?} cannot be checked against a certificate ({e}): give the server's DNS name"
        ))
    })?;
    Ok(if port == SMTPS_PORT {
        Tls::Wrapper(params)
    } else {
        Tls::Required(params)
    })
}

/// One address of `key`'s value.
fn mailbox(key: &str, address: &str) -> Result<Mailbox> {
    let address = address.trim();
    address.parse::<Mailbox>().map_err(|e| {
        Error::invalid(format!(
            "{key}: {address:?} is not a mail address ({e}): correct it"
        ))
    })
}

/// The mail's body: the message, the detail, then every field of the alert.
pub fn text(alert: &Alert) -> String {
    let mut out = format!("{}\n\n", alert.message);
    if !alert.detail.is_empty() {
        out.push_str(&format!("{}\n\n", alert.detail));
    }
    out.push_str(&format!(
        "alert:  {}\nurgent: {}\nhost:   {}\ntime:   {}\n",
        alert.key,
        if alert.urgent { "yes" } else { "no" },
        alert.host,
        alert.time
    ));
    if let Some(tier) = &alert.tier {
        out.push_str(&format!("tier:   {tier}\n"));
    }
    // Listed from the serialized form, so that the mail names each metric as the JSON does.
    if let Some(serde_json::Value::Object(m)) = alert
        .metrics
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok())
    {
        out.push_str("\nmetrics:\n");
        for (name, value) in m {
            let value = match value {
                serde_json::Value::Null => "-".to_string(),
                v => v.to_string(),
            };
            out.push_str(&format!("  {name}: {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_host_written_as_loopback_may_be_spoken_to_in_plain() {
        for h in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
            assert!(matches!(tls_for(h, 587).unwrap(), Tls::None), "{h}");
        }
        for h in [
            "mail.example.com",
            "10.0.0.1",
            "::ffff:127.0.0.1",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
            assert!(matches!(tls_for(h, 587).unwrap(), Tls::Required(_)), "{h}");
        }
        assert!(matches!(
            tls_for("mail.example.com", 465).unwrap(),
            Tls::Wrapper(_)
        ));
        assert!(matches!(
            tls_for("localhost", 465).unwrap(),
            Tls::Wrapper(_)
        ));
    }

    #[test]
    fn the_body_lists_the_alert_and_its_metrics() {
        let m = crate::job::record::Metrics {
            bytes_read: 1234,
            ..Default::default()
        };
        let a = Alert::new(crate::job::AlertKey::BackupFailed, "pg_dump exited 1")
            .tier("daily")
            .metrics(m);
        let t = text(&a);
        for needle in [
            "Error en proceso de backup",
            "pg_dump exited 1",
            "tier:   daily",
            "bytes_read: 1234",
            "tamaño_final: 0",
        ] {
            assert!(t.contains(needle), "{needle:?} missing in {t}");
        }
    }
}
