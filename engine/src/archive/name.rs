//! The original system's archive names: `masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz`
//! under `<root>/<tier>/`, e.g. `daily/masclet_daily_20250311_0745_a8f3bc12.tar.gz`. The
//! time is local time (as the old scripts wrote it); `<sha8>` is the first 8 hex digits of
//! the SHA-256 of the `.tar.gz` file itself, so a name says which bytes it must hold.

use crate::error::{Error, Result};
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

/// A retention tier, which is also the archive's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// `daily/`
    Daily,
    /// `weekly/`
    Weekly,
    /// `monthly/`
    Monthly,
    /// `yearly/`
    Yearly,
}

impl Tier {
    /// Every tier, in folder order.
    pub const ALL: [Tier; 4] = [Tier::Daily, Tier::Weekly, Tier::Monthly, Tier::Yearly];

    /// The tier's name (and folder, and snapshot tag).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Daily => "daily",
            Tier::Weekly => "weekly",
            Tier::Monthly => "monthly",
            Tier::Yearly => "yearly",
        }
    }

    /// The tier named `s`.
    ///
    /// # Errors
    /// `InvalidInput` naming the four tiers.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown tier {s:?}: use daily, weekly, monthly or yearly"
                ))
            })
    }
}

/// A parsed archive name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    /// The tier in the name.
    pub tier: Tier,
    /// The time in the name, local time to the minute.
    pub local: NaiveDateTime,
    /// The 8 lowercase hex digits in the name.
    pub sha8: String,
}

impl ArchiveName {
    /// The name of an archive of `tier` taken at `time`, whose SHA-256 is `sha256`.
    pub fn new(tier: Tier, time: DateTime<Utc>, sha256: &[u8; 32]) -> Self {
        let hex: String = sha256[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            tier,
            local: time.with_timezone(&Local).naive_local(),
            sha8: hex,
        }
    }

    /// `masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz`.
    pub fn file_name(&self) -> String {
        format!(
            "masclet_{}_{}_{}.tar.gz",
            self.tier.name(),
            self.local.format("%Y%m%d_%H%M"),
            self.sha8
        )
    }

    /// Parse a file name (not a path).
    ///
    /// # Errors
    /// `InvalidInput` saying what the name should look like.
    pub fn parse(file_name: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "{file_name:?} is not a classic archive name (masclet_<daily|weekly|monthly|yearly>_<YYYYMMDD_HHMM>_<8 hex digits>.tar.gz)"
            ))
        };
        let rest = file_name
            .strip_prefix("masclet_")
            .and_then(|r| r.strip_suffix(".tar.gz"))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('_').collect();
        let [tier, day, hm, sha8] = parts[..] else {
            return Err(bad());
        };
        let tier = Tier::parse(tier).map_err(|_| bad())?;
        let local = NaiveDateTime::parse_from_str(&format!("{day}_{hm}"), "%Y%m%d_%H%M")
            .map_err(|_| bad())?;
        if sha8.len() != 8
            || !sha8
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Self {
            tier,
            local,
            sha8: sha8.to_string(),
        })
    }

    /// Whether `sha256` (of the whole file) matches the name's checksum.
    pub fn matches(&self, sha256: &[u8; 32]) -> bool {
        Self::new(self.tier, Utc::now(), sha256).sha8 == self.sha8
    }

    /// The name's time as UTC, reading it in the local time zone (the earlier instant
    /// when a clock change makes it ambiguous; for a time a clock change skipped, the
    /// instant an hour later).
    pub fn utc(&self) -> DateTime<Utc> {
        let local = Local
            .from_local_datetime(&self.local)
            .earliest()
            .or_else(|| {
                Local
                    .from_local_datetime(&(self.local + chrono::TimeDelta::hours(1)))
                    .earliest()
            })
            .unwrap_or_else(|| Local.from_utc_datetime(&self.local));
        local.with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_example_name_parses_and_formats_back() {
        let n = ArchiveName::parse("masclet_daily_20250311_0745_a8f3bc12.tar.gz").unwrap();
        assert_eq!(n.tier, Tier::Daily);
        assert_eq!(
            n.local.format("%Y-%m-%d %H:%M").to_string(),
            "2025-03-11 07:45"
        );
        assert_eq!(n.sha8, "a8f3bc12");
        assert_eq!(n.file_name(), "masclet_daily_20250311_0745_a8f3bc12.tar.gz");
    }

    #[test]
    fn names_that_are_not_classic_archives_are_refused() {
        for bad in [
            "masclet_daily_20250311_0745_a8f3bc12.tgz",
            "masclet_hourly_20250311_0745_a8f3bc12.tar.gz",
            "masclet_daily_20251311_0745_a8f3bc12.tar.gz",
            "masclet_daily_20250311_0745_A8F3BC12.tar.gz",
            "masclet_daily_20250311_0745_a8f3bc1.tar.gz",
            "masclet_daily_20250311_0745_a8f3bc12_x.tar.gz",
            "backup_daily_20250311_0745_a8f3bc12.tar.gz",
        ] {
            assert!(ArchiveName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_checksum_is_the_first_four_bytes_of_the_sha256_in_hex() {
        let mut sha = [0u8; 32];
        sha[..4].copy_from_slice(&[0xa8, 0xf3, 0xbc, 0x12]);
        let t = Utc::now();
        let n = ArchiveName::new(Tier::Weekly, t, &sha);
        assert_eq!(n.sha8, "a8f3bc12");
        assert!(n.matches(&sha));
        sha[3] ^= 1;
        assert!(!n.matches(&sha));
    }
}
