//! The original spec's alerts, with its texts, and what a notification carries.
//!
//! The keys and their Spanish messages are the original system's interface: sites match on
//! them in their own `notify.sh`, mail filters and dashboards, so they are kept verbatim.

use super::record::Metrics;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What happened, as the original spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKey {
    /// The backup did not produce a snapshot (or a step before it failed).
    BackupFailed,
    /// The disk is fuller than the alert threshold, or ran out mid-job.
    SpaceLow,
    /// The new snapshot's check or test restore failed.
    IntegrityFailed,
    /// Retention or gc failed.
    RotationFailed,
    /// A run ended well (sent only when success summaries are asked for).
    BackupOk,
    /// `masclet notify --test`.
    Test,
}

impl AlertKey {
    /// Every key, in the order the documentation lists them.
    pub const ALL: [Self; 6] = [
        Self::BackupFailed,
        Self::SpaceLow,
        Self::IntegrityFailed,
        Self::RotationFailed,
        Self::BackupOk,
        Self::Test,
    ];

    /// The key as the original spec writes it (`backup_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupFailed => "backup_failed",
            Self::SpaceLow => "space_low",
            Self::IntegrityFailed => "integrity_failed",
            Self::RotationFailed => "rotation_failed",
            Self::BackupOk => "backup_ok",
            Self::Test => "test",
        }
    }

    /// The original spec's message for the key (the last two are masclet's own).
    pub fn message(self) -> &'static str {
        match self {
            Self::BackupFailed => "Error en proceso de backup",
            Self::SpaceLow => "Espacio insuficiente (<10%)",
            Self::IntegrityFailed => "Error en verificación",
            Self::RotationFailed => "Error en rotación",
            Self::BackupOk => "Backup completado",
            Self::Test => "Mensaje de prueba de masclet",
        }
    }

    /// Whether the key reports a problem (everything but `backup_ok` and `test`).
    pub fn is_problem(self) -> bool {
        !matches!(self, Self::BackupOk | Self::Test)
    }

    /// The key named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for AlertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification: the same fields go to every channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    /// The alert's key.
    #[serde(rename = "alert")]
    pub key: AlertKey,
    /// The original spec's message for the key.
    pub message: String,
    /// What happened, in a sentence (never a secret: errors are written without them).
    pub detail: String,
    /// Sent as urgent: a failure that persisted through its retries (an unreachable
    /// database, the original spec's "Notificación urgente").
    pub urgent: bool,
    /// The machine that sends it.
    pub host: String,
    /// When, UTC, RFC 3339.
    pub time: String,
    /// The tier of the run, when a run sends it.
    pub tier: Option<String>,
    /// The run's metrics, when a run sends it.
    pub metrics: Option<Metrics>,
}

impl Alert {
    /// An alert of `key` about `detail`, from this host, now.
    pub fn new(key: AlertKey, detail: impl Into<String>) -> Self {
        Self::at(key, detail, Utc::now())
    }

    /// An alert of `key` about `detail`, from this host, at `time`.
    pub fn at(key: AlertKey, detail: impl Into<String>, time: DateTime<Utc>) -> Self {
        Self {
            key,
            message: key.message().to_owned(),
            detail: detail.into(),
            urgent: false,
            host: crate::repository::lock::hostname(),
            time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
            tier: None,
            metrics: None,
        }
    }

    /// Mark as urgent.
    #[must_use]
    pub fn urgent(mut self, urgent: bool) -> Self {
        self.urgent = urgent;
        self
    }

    /// Say which tier's run sends it.
    #[must_use]
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// Attach the run's metrics.
    #[must_use]
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The alert as one line of JSON: what the webhook posts and the command hook reads
    /// on its standard input (`alert`, `message`, `detail`, `urgent`, `host`, `time`,
    /// `tier`, `metrics`).
    pub fn body_json(&self) -> String {
        serde_json::to_string(self).expect("an alert always serializes")
    }

    /// A one-line subject: `[masclet] URGENT backup_failed on host: Error en proceso de backup`.
    pub fn subject(&self) -> String {
        format!(
            "[masclet]{} {} on {}: {}",
            if self.urgent { " URGENT" } else { "" },
            self.key,
            self.host,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_alert_texts_are_kept_verbatim() {
        assert_eq!(
            AlertKey::BackupFailed.message(),
            "Error en proceso de backup"
        );
        assert_eq!(AlertKey::SpaceLow.message(), "Espacio insuficiente (<10%)");
        assert_eq!(AlertKey::IntegrityFailed.message(), "Error en verificación");
        assert_eq!(AlertKey::RotationFailed.message(), "Error en rotación");
        for k in AlertKey::ALL {
            assert_eq!(AlertKey::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(AlertKey::parse("nope"), None);
    }

    #[test]
    fn an_alert_serializes_with_the_original_key_and_message() {
        let a = Alert::new(AlertKey::SpaceLow, "disk 93% used")
            .urgent(true)
            .tier("daily");
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["alert"], "space_low");
        assert_eq!(v["message"], "Espacio insuficiente (<10%)");
        assert_eq!(v["urgent"], true);
        assert_eq!(v["tier"], "daily");
        assert!(a.subject().contains("URGENT space_low"));
    }
}
